"""The core's gateway conformance suite (kameng.testing.gateways), with the
Alipay driver playing Alipay: hostile notifies, replays, races, late and
double payments."""
from kameng.testing.gateways import GatewayConformance

from kameng_alipay.testing import AlipayDriver


class TestAlipayConformance(GatewayConformance):
    driver = AlipayDriver()
