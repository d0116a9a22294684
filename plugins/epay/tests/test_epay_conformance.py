"""kameng's gateway conformance suite (kameng.testing.gateways) against the
epay plugin, once for each flavour it speaks: V1 (MD5, 彩虹易支付), V1 with
the clones' ``&key=`` variant, and V2 (RSA with a 300 s timestamp)."""
from kameng.testing.gateways import GatewayConformance
from kameng_epay.testing import EpayDriver


class TestEpayV1Conformance(GatewayConformance):
    driver = EpayDriver("1")


class TestEpayV1AmpKeyConformance(GatewayConformance):
    driver = EpayDriver("1", sign_mode="amp_key")


class TestEpayV2Conformance(GatewayConformance):
    driver = EpayDriver("2")
