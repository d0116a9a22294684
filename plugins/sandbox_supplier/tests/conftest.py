"""Fixtures for the sandbox supplier's tests: a fresh simulation for every
test, a clock the tests move, and a loopback callback receiver."""
from __future__ import annotations

import pytest

from kameng import httpclient
from kameng.testing import load_sibling
from kameng_sandbox_supplier import simulator
from kameng_sandbox_supplier.connector import SandboxSupplier

SECRET = "sandbox-supplier-test-secret-0123"


def _load(name: str):
    return load_sibling(__file__, name, "kameng_sandbox_supplier_tests")


receiver_module = _load("sandbox_supplier_receiver")


@pytest.fixture(autouse=True)
def _fresh_simulation():
    """Every test starts from an empty simulated upstream (as after a restart)."""
    simulator.reset()
    yield
    simulator.reset()


class Clock:
    def __init__(self, start: float = 1_764_115_200.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    """The simulation's wall clock, moved by hand (no test waits for a recharge)."""
    fake = Clock()
    monkeypatch.setattr(simulator, "clock", fake)
    return fake


@pytest.fixture
def connector():
    """``connector(**settings)`` → a SandboxSupplier with the test secret."""

    def make(**settings):
        return SandboxSupplier({"secret": SECRET, **settings})

    return make


@pytest.fixture
def loopback(monkeypatch):
    """Outbound calls may reach 127.0.0.1, as ``kameng.http.allow_private_targets`` allows."""
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)


@pytest.fixture
def receiver(loopback):
    """``receiver(statuses=())`` → a started callback receiver, stopped afterwards."""
    made = []

    def start(statuses=()):
        r = receiver_module.Receiver(statuses).start()
        made.append(r)
        return r

    yield start
    simulator.reset()  # no callback thread outlives the test's receiver
    for r in made:
        r.stop()
