from sqlalchemy import func, select

from kameng.testing import app_request, set_plugin


def test_greeting_is_shown_escaped_and_goes_away_when_disabled(hello_app, hello_testapp):
    set_plugin(hello_app.registry, "hello", enabled=True, greeting="Hi <b>there</b>")
    page = hello_testapp.get("/")
    assert "Hi &lt;b&gt;there&lt;/b&gt;" in page.text
    assert "<b>there</b>" not in page.text

    set_plugin(hello_app.registry, "hello", enabled=False)
    assert "hello-block" not in hello_testapp.get("/").text


def test_record_visit_job_is_idempotent(hello_app):
    from kameng_hello.jobs import record_visit
    from kameng_hello.models import HelloVisit

    for _ in range(2):  # a job may run twice: the second run changes nothing
        with app_request(hello_app.registry) as req:
            record_visit(req, {"visit_id": "v1", "note": "hi"})
    with app_request(hello_app.registry) as req:
        assert req.db.scalar(select(func.count()).select_from(HelloVisit)) == 1
