"""What each ``kameng`` command does."""
from __future__ import annotations

import configparser
import contextlib
import logging
import os
import secrets
import signal
import sys
import threading
import time

from pyramid.paster import get_appsettings, setup_logging
from pyramid.request import Request
from pyramid.scripting import prepare
from sqlalchemy import select

from kameng import accounts
from kameng.crypto import DecryptionError, KeyRingError, write_key_file
from kameng.pluginhost import SECRET_MASK, PluginError, configure as configure_plugin, set_enabled
from kameng.theming import ThemeError
from kameng.types import SettingError


class CLIError(Exception):
    pass


EXPECTED_ERRORS = (CLIError, accounts.AccountError, PluginError, SettingError, KeyRingError, DecryptionError,
                   ThemeError, FileExistsError, PermissionError)


def describe(exc) -> str:
    if isinstance(exc, SettingError):
        msg = exc.message
        if hasattr(msg, "interpolate"):
            msg = msg.interpolate()
        return f"setting {exc.field_name}: {msg}"
    return str(exc)


# -- loading a shop ----------------------------------------------------------------


def load_settings(config_path: str) -> dict:
    if not os.path.isfile(config_path):
        raise CLIError(f"no configuration file at {config_path} (use -c PATH, $KAMENG_CONFIG, or `kameng init`)")
    path = os.path.abspath(config_path)
    with contextlib.suppress(Exception):
        setup_logging(path)
    return dict(get_appsettings(path))


def load_registry(config_path: str):
    from kameng.config import configure

    return configure(load_settings(config_path)).registry


@contextlib.contextmanager
def request_for(registry, actor="cli"):
    """A request with its own transaction, committed when the block ends."""
    base = registry.settings.get("kameng.base_url") or "http://127.0.0.1:6543"
    req = Request.blank("/", base_url=base.rstrip("/"), environ={"kameng.write": True, "kameng.actor": actor})
    env = prepare(request=req, registry=registry)
    try:
        with env["request"].tm:
            yield env["request"]
    finally:
        env["closer"]()


# -- init -------------------------------------------------------------------------

INI = """\
# kameng configuration (written by `kameng init`). Reference: docs/configuration.md
[app:main]
use = egg:kameng
sqlalchemy.url = {db}
kameng.data_dir = {data}
kameng.key_file = %(here)s/secret.key
kameng.session_secret = {session_secret}
kameng.base_url = {base_url}
kameng.theme = default
kameng.secure_cookies = {secure}
kameng.limits.orders_per_ip_per_minute = 20
kameng.limits.lookups_per_ip_per_minute = 30
pyramid.default_locale_name = zh_CN

[server:main]
use = egg:waitress#main
listen = {listen}
threads = 8
# 25 MB: the largest key import the admin accepts is 20 MB
max_request_body_size = 26214400
trusted_proxy = 127.0.0.1
trusted_proxy_headers = x-forwarded-for x-forwarded-proto x-forwarded-host
clear_untrusted_proxy_headers = yes

[loggers]
keys = root, kameng, waitress

[handlers]
keys = console

[formatters]
keys = json

[logger_root]
level = WARNING
handlers = console

[logger_kameng]
level = INFO
handlers =
qualname = kameng

[logger_waitress]
level = INFO
handlers =
qualname = waitress

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = json

[formatter_json]
class = kameng.logs.JsonFormatter
"""


def init(args) -> int:
    data = os.path.abspath(args.data)
    ini_path = os.path.join(data, "kameng.ini")
    if os.path.exists(ini_path):
        raise CLIError(f"{ini_path} already exists: this shop is set up (run `kameng -c {ini_path} migrate` to upgrade)")
    password = args.admin_password or accounts.generate_password()
    accounts.normalize_email(args.admin_email)
    accounts.check_password_strength(password)
    os.makedirs(data, mode=0o700, exist_ok=True)
    db = args.db or f"sqlite:///{os.path.join(data, 'kameng.sqlite')}"
    key_file = os.path.join(data, "secret.key")
    if not os.path.exists(key_file):
        write_key_file(key_file)
    text = INI.format(db=db.replace("%", "%%"), data=data, session_secret=secrets.token_urlsafe(48),
                      base_url=args.base_url, listen=args.listen,
                      secure="true" if args.base_url.startswith("https://") else "false")
    tmp_path = os.path.join(data, ".kameng-init.ini")  # renamed once the shop works
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    registry = load_registry(tmp_path)
    from kameng.migrate import upgrade

    upgrade(registry["kameng.engine"], registry["kameng.plugins"])
    with request_for(registry, actor="kameng init") as request:
        if accounts.find_user(request.db, args.admin_email) is None:
            accounts.create_user(request.db, args.admin_email, password, role="admin")
        host = registry["kameng.plugins"]
        if "sandbox" in host.plugins and not host.plugins["sandbox"].errors:
            configure_plugin(request, "sandbox", {"secret": secrets.token_hex(32)})
            if args.demo:
                set_enabled(request, "sandbox", True)
        if args.demo:
            from kameng.catalog.models import load_demo

            load_demo(request.db)
    if args.demo:
        load_demo_keys(registry)
        connect_demo_supplier(registry)
    os.replace(tmp_path, ini_path)
    print(f"kameng is set up in {data}")
    print(f"  config:   {ini_path}")
    print(f"  database: {db.split('@')[-1] if '@' in db else db}")
    print(f"  shop:     {args.base_url}/")
    print(f"  admin:    {args.base_url}/admin")
    print(f"  email:    {args.admin_email}")
    if args.admin_password:
        print("  password: (as given)")
    else:
        print(f"  password: {password}   <- shown once; change it after signing in")
    return 0


DEMO_KEYS_PER_SKU = 50


def connect_demo_supplier(registry) -> int:
    """With the sandbox_supplier plugin installed, the demo also resells a
    simulated upstream's goods (marked [SANDBOX]; 10 % over cost), so orders
    fulfilled by a supplier can be tried at once. Gives how many products
    were imported (none when the plugin is missing or it ran before)."""
    from sqlalchemy import select

    from kameng.suppliers import connections, sync
    from kameng.suppliers.models import SupplierConnection

    host = registry["kameng.plugins"]
    if "sandbox_supplier" not in host.plugins or host.plugins["sandbox_supplier"].errors:
        return 0
    with request_for(registry, actor="kameng init") as request:
        if request.db.scalar(select(SupplierConnection.id).where(SupplierConnection.connector == "sandbox_supplier")):
            return 0
        set_enabled(request, "sandbox_supplier", True)
    with request_for(registry, actor="kameng init") as request:  # a request that sees the plugin on
        connection = connections.save_connection(request, None, "sandbox_supplier", "演示上游（模拟）",
                                                 {"secret": secrets.token_hex(32), "seed": "demo"})
        goods = connections.connector_for(request, connection).list_goods()
        return len(sync.import_goods(request, connection, [g.id for g in goods], ("markup", "10", 1)))


def load_demo_keys(registry) -> int:
    """Give each demo card-key SKU that has no keys yet a batch of generated
    ones (number and secret marked DEMO), so the demo shop can sell."""
    from sqlalchemy import func, select

    from kameng.catalog.models import DEMO, Sku
    from kameng.inventory.models import CardKey
    from kameng.inventory.service import import_keys

    codes = [code for _cat, products in DEMO for _name, ptype, _desc, skus in products if ptype == "card_key"
             for code, _sname, _price in skus]
    factory = registry["kameng.session_factory"]

    def session():
        return factory(bind=registry["kameng.write_engine"])

    added = 0
    with session() as db:
        empty = [(sku_id, code) for sku_id, code in db.execute(select(Sku.id, Sku.code).where(Sku.code.in_(codes)))
                 if not db.scalar(select(func.count()).select_from(CardKey).where(CardKey.sku_id == sku_id))]
    for sku_id, code in empty:
        lines = [f"DEMO-{code}-{i:03d}----DEMO-{secrets.token_hex(6).upper()}" for i in range(DEMO_KEYS_PER_SKU)]
        added += import_keys(session, registry["kameng.keyring"], sku_id, lines, separator="----",
                             source="kameng init --demo", actor="kameng init").imported
    return added


# -- serve and worker ---------------------------------------------------------------


def _start_workers(registry, count: int) -> list:
    from kameng.jobs import Worker

    workers = []
    for i in range(count):
        w = Worker(registry)
        w.thread = threading.Thread(target=w.run_forever, name=f"kameng-worker-{i}", daemon=True)
        w.thread.start()
        workers.append(w)
    return workers


def _stop_workers(workers, timeout: float = 30) -> None:
    """Let each worker finish the job in hand (its lease would otherwise
    make the job wait), then return."""
    for w in workers:
        w.stop.set()
    for w in workers:
        w.thread.join(timeout)


def _exit_on_sigterm() -> None:
    """systemd stops services with SIGTERM: leave the serve loop as on Ctrl-C."""
    def handler(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


def serve(args) -> int:
    import waitress
    from paste.deploy import loadapp

    path = os.path.abspath(args.config)
    load_settings(path)
    app = loadapp(f"config:{path}")
    registry = app.registry
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(path, encoding="utf-8")
    server = dict(cp.items("server:main")) if cp.has_section("server:main") else {}
    server.pop("use", None)
    listen = server.pop("listen", "127.0.0.1:6543")
    host, _, port = listen.rpartition(":")
    host = args.host or host or "127.0.0.1"
    port = args.port or int(port or 6543)
    server["threads"] = str(args.threads or server.get("threads", 8))
    # waitress's polling thread and the request threads share the GIL: a short
    # switch interval triples insert-heavy throughput (docs/performance.md).
    sys.setswitchinterval(1e-4)
    workers = [] if args.no_worker else _start_workers(registry, 1)
    _exit_on_sigterm()
    logging.getLogger("kameng").info("serving", extra={"path": f"http://{host}:{port}/"})
    print(f"kameng serving on http://{host}:{port}/" + ("" if args.no_worker else " (with a worker)"), flush=True)
    try:
        waitress.serve(app, host=host, port=port, **server)
    finally:
        _stop_workers(workers)
    return 0


def worker(args) -> int:
    registry = load_registry(args.config)
    from kameng.jobs import Worker

    if args.once:
        w = Worker(registry)
        w.schedule_due()
        while w.run_one():
            pass
        return 0
    workers = _start_workers(registry, max(1, args.threads))
    _exit_on_sigterm()
    print(f"kameng worker running ({len(workers)} thread(s)); Ctrl-C stops it", flush=True)
    try:
        while all(w.thread.is_alive() for w in workers):
            time.sleep(1)
    finally:
        _stop_workers(workers)
    return 0


def migrate(args) -> int:
    registry = load_registry(args.config)
    from kameng.migrate import current_heads, upgrade

    upgrade(registry["kameng.engine"], registry["kameng.plugins"])
    current, _heads = current_heads(registry["kameng.engine"], registry["kameng.plugins"])
    print("database at " + ", ".join(sorted(current)))
    return 0


# -- plugins ----------------------------------------------------------------------


def plugins_list(args) -> int:
    registry = load_registry(args.config)
    host = registry["kameng.plugins"]
    with request_for(registry) as request:
        rows = []
        for pid in sorted(host.plugins):
            p = host.plugins[pid]
            state = "broken" if p.errors else ("enabled" if pid in request.enabled_plugins else "disabled")
            rows.append((pid, p.version, state, p.meta.name, "; ".join(p.errors)))
    if not rows:
        print("no plugin is installed")
    for pid, version, state, name, errors in rows:
        print(f"{pid:<16} {version:<10} {state:<9} {name}" + (f"  [{errors}]" if errors else ""))
    return 0


def _toggle(args, enabled: bool) -> int:
    registry = load_registry(args.config)
    with request_for(registry) as request:
        set_enabled(request, args.name, enabled)
    print(f"{args.name} {'enabled' if enabled else 'disabled'}")
    return 0


def plugins_enable(args) -> int:
    return _toggle(args, True)


def plugins_disable(args) -> int:
    return _toggle(args, False)


def plugins_configure(args) -> int:
    values = {}
    for pair in args.pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"expected key=value, got {pair!r}")
        if value.startswith("@"):
            try:
                with open(value[1:], encoding="utf-8") as fh:
                    value = fh.read().strip("\n")
            except OSError as exc:
                raise CLIError(f"cannot read {value[1:]}: {exc.strerror}") from None
        values[key] = value
    registry = load_registry(args.config)
    with request_for(registry) as request:
        configure_plugin(request, args.name, values)
        fields = registry["kameng.plugins"].get(args.name).fields
    for key in values:
        shown = SECRET_MASK if fields[key].secret else values[key]
        print(f"{args.name}.{key} = {shown}")
    return 0


# -- admin ------------------------------------------------------------------------


def admin_create(args) -> int:
    password = args.password or accounts.generate_password()
    registry = load_registry(args.config)
    with request_for(registry) as request:
        accounts.create_user(request.db, args.email, password, role="admin")
    print(f"admin {args.email} created")
    if not args.password:
        print(f"password: {password}")
    return 0


def admin_reset_password(args) -> int:
    password = args.password or accounts.generate_password()
    accounts.check_password_strength(password)
    registry = load_registry(args.config)
    with request_for(registry) as request:
        user = accounts.find_user(request.db, args.email)
        if user is None or not user.is_admin:
            raise CLIError(f"no admin account {args.email}")
        user.set_password(password)
        user.failed_logins = 0
        user.locked_until = None
    print(f"password of {args.email} reset; its sessions are signed out")
    if not args.password:
        print(f"password: {password}")
    return 0


def admin_token_create(args) -> int:
    registry = load_registry(args.config)
    with request_for(registry) as request:
        if args.email:
            user = accounts.find_user(request.db, args.email)
        else:
            user = request.db.scalar(select(accounts.User).where(accounts.User.role == "admin")
                                     .order_by(accounts.User.id).limit(1))
        if user is None or not user.is_admin:
            raise CLIError("no such admin account" if args.email else "there is no admin account yet")
        token = accounts.create_token(request.db, user, args.name)
    print(token)
    return 0


# -- keys ---------------------------------------------------------------------------


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, label: str, total: int | None = None, stream=None):
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.started = time.monotonic()

    def __call__(self, done: int, extra: int | None = None) -> None:
        if not self.enabled:
            return
        rate = done / max(time.monotonic() - self.started, 1e-6)
        if self.total:
            width = 30
            filled = int(width * done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            text = f"\r{self.label} [{bar}] {done}/{self.total} ({rate:,.0f}/s)"
        else:
            text = f"\r{self.label} {done} ({rate:,.0f}/s)"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def _count_lines(path: str) -> int | None:
    if path == "-":
        return None
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def keys_import(args) -> int:
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    from kameng.catalog.models import Sku
    from kameng.inventory.service import import_keys

    registry = load_registry(args.config)
    engine = registry["kameng.write_engine"]
    with Session(engine) as s:
        sku = s.scalar(select(Sku).where(Sku.code == args.sku))
        if sku is None:
            raise CLIError(f"no SKU with code {args.sku!r}")
        sku_id = sku.id
    try:
        total = _count_lines(args.file)
        fh = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8-sig", errors="strict")
    except OSError as exc:
        raise CLIError(f"cannot read {args.file}: {exc.strerror}") from None
    progress = Progress("importing", total)
    committed = [0]  # keys imported so far: each chunk commits on its own

    def step(lines: int, imported: int) -> None:
        committed[0] = imported
        progress(lines)

    try:
        with fh if fh is not sys.stdin else contextlib.nullcontext(fh):
            report = import_keys(lambda: Session(engine), registry["kameng.keyring"], sku_id, fh,
                                 separator=args.separator, source=os.path.basename(args.file), actor="cli",
                                 total=total or 0, progress=step)
    except UnicodeDecodeError:
        raise CLIError(f"{args.file} is not UTF-8 text") from None
    except OperationalError as exc:  # a full disk, a lost or locked database: never a traceback full of keys
        reason = (str(getattr(exc, "orig", exc)).strip().splitlines() or ["?"])[0][:200]
        raise CLIError(f"the import stopped: the database could not store the keys ({reason}). "
                       f"{committed[0]} keys of {args.file} were imported before that and are kept; "
                       "fix the cause (free some disk space) and run the same import again to finish it: "
                       "keys already imported are skipped") from None
    finally:
        progress.close()
    print(f"imported {report.imported}, skipped {report.skipped} "
          f"({report.duplicates} duplicates, {report.invalid} invalid lines)")
    if report.invalid_lines:
        print("invalid lines: " + ", ".join(map(str, report.invalid_lines[:20]))
              + (" ..." if len(report.invalid_lines) > 20 else ""))
    return 0


def keys_rotate(args) -> int:
    from kameng.inventory import rotate

    registry = load_registry(args.config)
    path = registry["kameng.keyring"].path
    engine = registry["kameng.write_engine"]
    ring = rotate.KeyRing.from_file(path) if args.resume else rotate.add_key(path)
    if not args.resume:
        print(f"new key {ring.current_id} added to {path} (the old file is kept as {os.path.basename(path)}.bak-*)")
    columns = rotate.plugin_columns(registry)
    progress = Progress("re-encrypting", rotate.remaining(engine, ring))
    try:
        done = rotate.reencrypt(engine, ring, progress=progress, columns=columns)
    finally:
        progress.close()
    print(f"re-encrypted {done['card_keys']} card keys, {done['plugin_secrets']} plugin secret sets and "
          f"{done['plugin_columns']} values in plugins' tables")
    left = rotate.remaining(engine, rotate.KeyRing.from_file(path))
    if left:
        print(f"{left} keys were written under the old key meanwhile: run `kameng keys rotate --resume`")
    elif args.drop_old:
        dropped = rotate.drop_unused(path, engine, columns)
        print("removed unused keys: " + (", ".join(dropped) if dropped else "none"))
    return 0
