"""kameng's gateway conformance suite, played against the usdt gateway by the
epusdt driver that ships with the plugin (kameng_usdt.testing)."""
from kameng.testing.gateways import GatewayConformance

from kameng_usdt.testing import UsdtDriver


class TestUsdtConformance(GatewayConformance):
    driver = UsdtDriver()
