"""Templates: only whitelisted ``{name}`` placeholders, no attribute or
index access, no format specs; subjects stay one line; the admin page
edits, previews and resets them; the defaults of every event check."""
from __future__ import annotations

import pytest
from notify_email_helpers import body_of, enable_email, html_of, log_rows, run_worker

from kameng.notifications import emit
from kameng.testing import app_request
from kameng_notify_email import render
from kameng_notify_email.events import EVENTS, SPECS

ALLOWED = frozenset({"order_no", "shop_name", "keys"})


@pytest.mark.parametrize("text", [
    "{order_no.__class__}", "{order_no.__class__.__init__.__globals__}", "{order_no[0]}", "{keys[secret]}",
    "{}", "{0}", "{order_no!r}", "{order_no:>99999999}", "{order_no:{shop_name}}", "{Order_No}", "{ order_no}",
    "{__import__}", "unbalanced {order_no", "unbalanced order_no}",
])
def test_unsafe_or_malformed_placeholders_are_refused(text):
    with pytest.raises(render.TemplateError):
        render.check("Subject", text, ALLOWED)
    with pytest.raises(render.TemplateError):
        render.check(text, "Body", ALLOWED)


def test_unknown_names_are_refused_and_the_allowed_ones_listed():
    with pytest.raises(render.TemplateError) as info:
        render.check("Subject", "Hello {password}", ALLOWED)
    assert info.value.part == "body"
    text = info.value.message.interpolate()
    assert "{password}" in text and "{order_no}" in text and "{keys}" in text


def test_fill_substitutes_names_only_and_keeps_literal_braces():
    out = render.fill("{{order_no}} is {order_no}; {{ {shop_name} }}", {"order_no": "{keys}", "shop_name": "S"})
    # a value is inserted as it is: a placeholder inside a value is not expanded again
    assert out == "{order_no} is {keys}; { S }"


def test_subjects_are_one_line():
    with pytest.raises(render.TemplateError):
        render.check("Hi\r\nBcc: victim@example.com", "Body", ALLOWED)
    assert render.one_line("a\r\nBcc: x@example.com\u2028b") == "a Bcc: x@example.com b"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_default_template_checks_in_every_language(email_app, spec):
    from kameng_notify_email.service import template_for

    with app_request(email_app.registry) as req:
        for language in ("zh_CN", "en"):
            subject, body, custom = template_for(req, spec.name, language)
            render.check(subject, body, spec.allowed)
            assert not custom
    render.check(str(spec.subject), str(spec.body), spec.allowed)


def test_a_value_with_line_breaks_cannot_add_a_header(email_app, smtp):
    """The merchant puts the buyer's report into the subject; the buyer writes header lines."""
    from kameng_notify_email.models import Template

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        req.db.add(Template(event="order.reported", language="en", subject="Report: {message}",
                            body="{message}\n{admin_url}"))
        emit(req.db, "order.reported", {"order_no": "202612010000000009", "contact": "b@example.com",
                                        "message": "broken\r\nBcc: victim@example.com\r\n\r\nhi"})
    run_worker(registry)
    [received] = smtp.inbox.received
    assert received["to"] == ["owner@example.com"]
    [msg] = smtp.inbox.messages()
    assert msg["Bcc"] is None and msg["Subject"] == "Report: broken Bcc: victim@example.com hi"
    assert "Bcc: victim@example.com" in body_of(msg)  # in the body it is only text


def test_html_escapes_values_and_links_only_http(email_app, smtp):
    from kameng_notify_email.models import Template

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        req.db.add(Template(event="order.reported", language="en", subject="Report {order_no}",
                            body="{message}\n{admin_url}"))
        emit(req.db, "order.reported", {"order_no": "202612010000000010", "contact": "b@example.com",
                                        "message": '<script>alert(1)</script> <a href="javascript:x">y</a> '
                                                   'javascript:alert(2) https://ok.example/"onmouseover="x'})
    run_worker(registry)
    [msg] = smtp.inbox.messages()
    html = html_of(msg)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="javascript' not in html and '&lt;a href="javascript:x"&gt;' in html
    assert 'href="https://ok.example/">' in html and 'onmouseover="x"' not in html
    assert 'href="http://localhost/admin/orders/202612010000000010"' in html


def test_a_stored_template_that_no_longer_checks_falls_back_to_the_default(email_app, smtp):
    from kameng_notify_email.models import Template

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        req.db.add(Template(event="stock.low", language="en", subject="{name.__class__}", body="{0}"))
        emit(req.db, "stock.low", {"sku": "S1", "name": "Card", "available": 1, "threshold": 2})
    run_worker(registry)
    [msg] = smtp.inbox.messages()
    assert msg["Subject"] == "Low stock: Card (S1) has 1 left"


# -- the admin pages -----------------------------------------------------------------------

def _edit_url(event="order.delivered", language="en"):
    return f"/-/notify_email/templates/{event}/{language}"


def test_templates_page_lists_every_event_and_language(email_app, email_admin, smtp):
    enable_email(email_app.registry, smtp)
    page = email_admin.get("/-/notify_email/templates")
    for spec in SPECS:
        assert f"/-/notify_email/templates/{spec.name}/zh_CN" in page.text
        assert f"/-/notify_email/templates/{spec.name}/en" in page.text
    # the password reset cannot be switched off
    assert 'name="event" value="account.password_reset"' not in page.text
    assert 'name="event" value="account.registered"' in page.text


def test_edit_preview_save_and_reset(email_app, email_admin, smtp):
    registry = email_app.registry
    enable_email(registry, smtp)
    page = email_admin.get(_edit_url())
    form = page.forms["template-form"]
    assert "{keys}" in form["body"].value  # the default text
    form["subject"] = "Delivered: {order_no} from {shop_name}"
    form["body"] = "Keys:\n{keys}\nPage: {url}\n{{literal}}"
    preview = form.submit("action", value="preview")
    assert preview.status_int == 200
    assert "Delivered: 202612011234567890 from" in preview.text
    assert "XXXX-XXXX-XXXX-0001" in preview.text and "{literal}" in preview.text
    assert "srcdoc=" in preview.text
    with app_request(registry) as req:  # a preview stores nothing
        from kameng_notify_email.models import Template

        assert req.db.query(Template).count() == 0

    saved = preview.forms["template-form"].submit("action", value="save").follow()
    assert "Delivered: {order_no} from {shop_name}" in saved.text
    with app_request(registry) as req:
        row = req.db.query(Template).one()
        assert (row.event, row.language, row.body) == ("order.delivered", "en", "Keys:\n{keys}\nPage: {url}\n{{literal}}")

    # the email uses it
    emit_delivered(registry)
    run_worker(registry)
    [msg] = smtp.inbox.messages()
    assert msg["Subject"].startswith("Delivered: 202612010000000011 from ")
    assert "{literal}" in body_of(msg)

    reset = saved.forms["template-form"].submit("action", value="reset").follow()
    assert "{keys}" in reset.forms["template-form"]["body"].value
    with app_request(registry) as req:
        assert req.db.query(Template).count() == 0


def emit_delivered(registry):
    with app_request(registry) as req:
        emit(req.db, "order.delivered", {"order_no": "202612010000000011", "contact": "b@example.com"})


@pytest.mark.parametrize("subject,body,part", [
    ("Hi {order_no.__class__}", "x", "subject"),
    ("Hi", "{keys[0]}", "body"),
    ("Hi", "{password}", "body"),
    ("Hi", "{admin_url}", "body"),  # an admin link is not for the buyer's email
    ("Hi", "{url!r}", "body"),
    ("Hi", "{url:>100000000}", "body"),
    ("Hi", "{", "body"),
    ("", "x", "subject"),
    ("Hi", "   ", "body"),
    ("x" * 256, "x", "subject"),
])
def test_injection_attempts_are_refused_and_nothing_is_stored(email_app, email_admin, smtp, subject, body, part):
    from kameng_notify_email.models import Template

    enable_email(email_app.registry, smtp)
    form = email_admin.get(_edit_url()).forms["template-form"]
    form["subject"], form["body"] = subject, body
    for action in ("save", "preview"):
        resp = form.submit("action", value=action, status=400)
        assert f'id="{part}-error"' in resp.text
        assert 'id="preview"' not in resp.text
    with app_request(email_app.registry) as req:
        assert req.db.query(Template).count() == 0


def test_a_subject_with_a_line_break_is_refused(email_app, email_admin, smtp):
    enable_email(email_app.registry, smtp)
    token = email_admin.get(_edit_url()).forms["template-form"]["csrf_token"].value
    resp = email_admin.post(_edit_url(), {"csrf_token": token, "action": "save",
                                          "subject": "Hi\nBcc: x@example.com", "body": "x"}, status=400)
    assert 'id="subject-error"' in resp.text


def test_unknown_event_or_language_is_404(email_app, email_admin, smtp):
    enable_email(email_app.registry, smtp)
    email_admin.get(_edit_url("order.nothing"), status=404)
    email_admin.get(_edit_url("order.delivered", "fr"), status=404)
    email_admin.get(_edit_url("alert.other", "en"))


def test_switching_an_event_off_and_on(email_app, email_admin, smtp):
    registry = email_app.registry
    enable_email(registry, smtp)
    page = email_admin.get("/-/notify_email/templates")
    token = page.forms[0]["csrf_token"].value
    email_admin.post("/-/notify_email/templates/switch", {"csrf_token": token, "event": "stock.low", "enabled": "0"})
    with app_request(registry) as req:
        emit(req.db, "stock.low", {"sku": "S", "name": "N", "available": 0, "threshold": 1})
    run_worker(registry)
    assert smtp.inbox.received == [] and log_rows(registry) == []
    email_admin.post("/-/notify_email/templates/switch", {"csrf_token": token, "event": "stock.low", "enabled": "1"})
    with app_request(registry) as req:
        emit(req.db, "stock.low", {"sku": "S", "name": "N", "available": 0, "threshold": 1})
    run_worker(registry)
    assert len(smtp.inbox.received) == 1
    # the password reset is not a switch
    email_admin.post("/-/notify_email/templates/switch",
                     {"csrf_token": token, "event": "account.password_reset", "enabled": "0"}, status=404)


def test_the_edit_form_needs_the_csrf_token(email_app, email_admin, smtp):
    enable_email(email_app.registry, smtp)
    email_admin.post(_edit_url(), {"action": "save", "subject": "s", "body": "b"}, status=400)


def test_events_have_labels_and_audiences():
    for spec in SPECS:
        assert spec.audience in ("buyer", "admin", "account") and spec.label
        assert "url" not in spec.allowed or spec.audience != "admin"  # the buyer's link never goes to the shop
    assert EVENTS["order.delivered"].once_per_order


def test_emails_are_in_the_shops_language(email_app, smtp):
    from kameng import shop
    from kameng_notify_email.models import Template

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        shop.save(req.db, {"default_language": "zh_CN"})
        req.db.add(Template(event="stock.low", language="zh_CN", subject="库存不足：{name}（剩 {available}）",
                            body="{name} 只剩 {available} 件。\n{admin_url}"))
        req.db.add(Template(event="stock.low", language="en", subject="English {name}", body="{name}"))
        emit(req.db, "stock.low", {"sku": "S1", "name": "月卡", "available": 1, "threshold": 2})
    run_worker(registry)
    [msg] = smtp.inbox.messages()
    assert msg["Subject"] == "库存不足：月卡（剩 1）"
    assert "月卡 只剩 1 件。" in body_of(msg)
    assert [r.language for r in log_rows(registry)] == ["zh_CN"]
