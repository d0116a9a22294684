"""The core's gateway conformance suite, played by WeChat Pay's driver,
and a check that the driver's own callbacks are what the gateway expects."""
import time

from kameng.testing.gateways import MISSING, GatewayConformance
from pyramid.request import Request

from kameng_wechatpay import testing
from kameng_wechatpay.gateway import WechatPayGateway


class TestWechatPayConformance(GatewayConformance):
    driver = testing.WechatPayDriver()


def _request(n):
    return Request.blank(n.path, method=n.method, body=n.body, headers=dict(n.headers),
                         content_type=n.content_type)


def test_the_drivers_notify_verifies_in_both_key_modes():
    driver = testing.WechatPayDriver()
    gw = WechatPayGateway(driver.settings())
    n = gw.parse_notification(_request(driver.notify("P1", 100, trade_no="4200001")))
    assert (n.attempt_no, n.provider_trade_no, str(n.amount), n.status) == ("P1", "4200001", "1", "paid")
    body, headers = testing.callback(testing.transaction("P2", 250, "4200002"), mode="public_key")
    assert headers["Wechatpay-Serial"].startswith("PUB_KEY_ID_")
    n = gw.parse_notification(Request.blank("/pay/wechatpay/notify", method="POST", body=body, headers=headers))
    assert (n.attempt_no, str(n.amount)) == ("P2", "2.5")


def test_the_drivers_variants_are_refused_by_the_gateway():
    import pytest
    from kameng.payments import NotificationRejected

    driver = testing.WechatPayDriver()
    gw = WechatPayGateway(driver.settings())
    good = driver.notify("P1", 100, trade_no="4200001")
    bad = [driver.with_signature(good, MISSING), driver.with_signature(good, ""), driver.with_signature(good, True),
           driver.notify("P1", 100, trade_no="4200001", wrong_key=True), driver.with_duplicate(good),
           driver.notify("P1", 100, trade_no="4200001", timestamp=int(time.time()) - 301)]
    bad += [n for _name, n in driver.empty_fields("P1", 100, "4200001")]
    bad += [driver.notify("P1", amount, trade_no="4200001") for amount in driver.malformed_amounts()]
    for n in bad:
        with pytest.raises(NotificationRejected):
            gw.parse_notification(_request(n))
    with pytest.raises(NotificationRejected, match="query"):
        gw.parse_notification(Request.blank("/pay/wechatpay/notify?kit_extra=1", method="POST", body=good.body,
                                            headers=dict(good.headers)))
