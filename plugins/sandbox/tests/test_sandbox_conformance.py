"""The sandbox passes the gateway conformance kit like any real gateway."""
from kameng.testing.gateways import GatewayConformance
from kameng_sandbox.testing import SandboxDriver


class TestSandboxConformance(GatewayConformance):
    driver = SandboxDriver()
