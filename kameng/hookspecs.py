"""Every hook kameng calls. Plugins implement them with ``@kameng.hookimpl``.

Conventions: hooks are called with keyword arguments only. Unless a spec says
*first result wins*, every enabled plugin's implementation is called and the
core merges the results (lists are concatenated, ``None`` is skipped). A hook
marked *in transaction* runs inside the request's database transaction: it may
write its own rows through ``request.db`` but must not commit, and must not do
network I/O (enqueue a job instead). Hooks of disabled plugins are never
called, except where noted (startup, migrations).
"""
import pluggy

hookspec = pluggy.HookspecMarker("kameng")

# --- host and lifecycle --------------------------------------------------------------


@hookspec
def kameng_migration_locations():
    """Return a list of Alembic version directories (asset specs like
    ``"kameng_example:migrations"`` or absolute paths) that hold the plugin's
    own migrations. They are tracked in the table ``alembic_version_<plugin
    id>`` and run after the core's, so they need no ``depends_on``.

    Called by ``kameng migrate`` and ``kameng init`` for every *installed*
    plugin, enabled or not, so a plugin's tables exist before it is enabled
    (enabling is refused while its migrations are behind).

    .. versionadded:: 0.1
    """


@hookspec
def kameng_plugin_enabled(request, plugin_id):
    """Called once, in transaction, on the plugin that was just enabled (and
    on no other). Seed default rows here. Return value ignored.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_plugin_disabled(request, plugin_id):
    """Called once, in transaction, on the plugin that was just disabled. Its
    data must stay: do not delete rows here. Return value ignored.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_job_handlers():
    """Return a list of :class:`kameng.types.JobHandler` for the job kinds the
    plugin runs. Called once at startup for every installed plugin; a job of a
    disabled plugin waits in the queue until it is enabled again. Two handlers
    for one kind stop the start.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_scheduled_jobs():
    """Return a list of :class:`kameng.types.ScheduledJob`. Called once at
    startup; the worker enqueues each job once per period, across all worker
    processes.

    .. versionadded:: 0.1
    """


# --- payment gateways ------------------------------------------------------------------


@hookspec
def kameng_encrypted_columns():
    """Return a list of :class:`kameng.types.EncryptedColumn`: the columns
    of this plugin's tables encrypted with the shop's key ring. Called at
    key rotation for every installed plugin, enabled or not: ``kameng keys
    rotate`` re-encrypts them, ``--drop-old`` never drops a key they use.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_payment_gateways():
    """Return a list of :class:`kameng.payments.PaymentGateway` subclasses.

    Called once at startup for every installed plugin; the core keeps a
    registry keyed by ``identifier`` (two gateways with one identifier stop
    the start). A gateway whose plugin is disabled is not offered to buyers
    and its notify route answers 404.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_payment_succeeded(request, attempt):
    """Called in transaction, exactly once per payment attempt, right after
    the core moved it to ``paid`` (amount, currency and merchant already
    checked). Return value ignored.

    .. versionadded:: 0.1
    """


# --- supplier connectors ---------------------------------------------------------------


@hookspec
def kameng_supplier_connectors():
    """Return a list of supplier connector classes (upstream shops, top-up
    APIs). Called once at startup; registry keyed by ``identifier``.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_upstream_result(request, order, upstream_order, result):
    """Called in transaction after the core applied an upstream result to an
    order, for logging and notifications; must not change the order's state.

    .. versionadded:: 0.1
    """


# --- pricing ---------------------------------------------------------------------------


@hookspec
def kameng_price_adjustments(request, quote):
    """Return a list of :class:`kameng.types.Adjustment` for a price quote
    (coupons, promotions, member discounts), or ``None``. Must not write:
    it runs on every cart view and again, authoritatively, when the order is
    created. The core resolves all results; plugin order does not matter.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_adjustments_committed(request, order, adjustments):
    """Called in transaction when an order is created with ``adjustments``
    from this plugin: consume coupon uses with row locks. Raise
    :class:`kameng.errors.APIError` to refuse the order (nothing is written).

    .. versionadded:: 0.1
    """


@hookspec
def kameng_adjustments_released(request, order):
    """Called in transaction when an unpaid order expires or is cancelled:
    give coupon uses back. Return value ignored.

    .. versionadded:: 0.1
    """


# --- accounts --------------------------------------------------------------------------


@hookspec
def kameng_user_registered(request, user):
    """Called in transaction once a buyer registered (the storefront form
    or the API), after the account row is written: bind a referrer, give
    a welcome coupon. Raise :class:`kameng.errors.APIError` to refuse the
    registration (nothing is written).

    .. versionadded:: 0.1
    """


# --- order lifecycle -------------------------------------------------------------------


@hookspec
def kameng_order_created(request, order):
    """Called in transaction after an order and its reservation are written.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_order_paid(request, order, payment):
    """Called in transaction, once, when an order becomes paid, before it
    is delivered (card keys from own stock are delivered right after, in the
    same transaction). Setting ``order.held`` to a reason here holds the
    order for review instead.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_order_delivered(request, order):
    """Called in transaction, once, when an order is delivered (commissions
    become due here, never earlier).

    .. versionadded:: 0.1
    """


@hookspec
def kameng_order_failed(request, order):
    """Called in transaction when delivery became impossible (out of stock
    when the payment arrived, a supplier refused) and the order moved to
    ``failed``; its refund, if any, is already recorded.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_order_refunded(request, order, refund):
    """Called in transaction, once per refund, after the money went back.

    .. versionadded:: 0.1
    """


# --- anti-fraud ------------------------------------------------------------------------


@hookspec
def kameng_risk_check_order(request, draft):
    """Return a :class:`kameng.types.RiskVerdict` (or ``None``) before an
    order is created. Every plugin's verdict is collected: any ``deny``
    refuses the order with the first ``user_message``; any ``review`` holds
    it for an admin.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_risk_check_payment(request, order, gateway_id):
    """Return a :class:`kameng.types.RiskVerdict` (or ``None``) before a
    payment attempt is created; aggregated like ``kameng_risk_check_order``.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_risk_check(request, action, subject):
    """Return a :class:`kameng.types.RiskVerdict` (or ``None``) before the
    core does ``action`` for a client: ``login``, ``register``,
    ``lookup`` (a guest order lookup or an order page opened with a query
    password), ``password_reset`` or ``coupon`` (an order names a coupon
    code). ``subject`` is a dict of what the action is about: ``ip``
    always, and where known ``email``, ``phone``, ``contact``,
    ``user_id``, ``order_no``, ``coupon``. Verdicts are folded like
    ``kameng_risk_check_order``; a ``deny`` is refused by
    :func:`kameng.risk.refusal` (429 ``rate_limited``, 403 ``blocked`` …)
    before anything is written. Must not write to the request's
    transaction: a refused request is rolled back.

    .. versionadded:: 0.1
    """


# --- notifications ---------------------------------------------------------------------


@hookspec
def kameng_notify(request, event, data):
    """Deliver a notification (email, webhook, Telegram). Called by the
    worker after the triggering transaction committed, once per enabled
    plugin, each in its own job so one failing channel never blocks another.
    ``event`` is a name like ``order.delivered``; ``data`` a JSON-safe dict.
    May do network I/O; raise to have the job retried.

    .. versionadded:: 0.1
    """


# --- API ---------------------------------------------------------------------------------


@hookspec
def kameng_openapi_paths(request):
    """Return a dict of OpenAPI 3.1 path items (``{"/api/v1/...": {...}}``)
    for this plugin's JSON routes, or ``None``: ``/api/v1/openapi.json``
    lists them while the plugin is enabled. A path the core documents is
    never replaced. Responses may reference ``#/components/schemas/Error``.

    .. versionadded:: 0.1
    """


# --- admin and storefront --------------------------------------------------------------


@hookspec
def kameng_admin_menu(request):
    """Return a list of :class:`kameng.types.MenuItem` to add to the admin
    menu. Called on every admin page for enabled plugins.

    .. versionadded:: 0.1
    """


@hookspec
def kameng_admin_dashboard_widgets(request):
    """Return a list of ``(title, html)`` pairs shown on the admin dashboard;
    ``html`` must be rendered from a template (escaped).

    .. versionadded:: 0.1
    """


@hookspec
def kameng_storefront_blocks(request, slot):
    """Return a list of :class:`kameng.types.StorefrontBlock` for ``slot``
    (``home.top``, ``home.bottom``, ``category.top``, ``product.top``,
    ``product.bottom``, ``footer``, ``account.top``), or ``None``. Called
    while the storefront page renders. The ``form.*`` slots (``form.order``,
    ``form.login``, ``form.register``, ``form.lookup``,
    ``form.password_reset``) are rendered inside those forms, before the
    submit button: inputs placed there (a captcha, a referral code) are
    posted with the form and read by the plugin's risk or account hooks.

    .. versionadded:: 0.1
    """
