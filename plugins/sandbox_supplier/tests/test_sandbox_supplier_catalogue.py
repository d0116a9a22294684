"""The plugin, its connection settings and the generated catalogue."""
from decimal import Decimal
from importlib.metadata import entry_points

import pytest

import kameng_sandbox_supplier
from kameng.catalog import recharge
from kameng.suppliers.base import SupplierConnector
from kameng.types import PluginMeta, SettingError
from kameng_sandbox_supplier import protocol
from kameng_sandbox_supplier.connector import SandboxSupplier


def test_the_plugin_offers_its_connector_under_its_entry_point_name():
    (ep,) = [ep for ep in entry_points(group="kameng") if ep.name == "sandbox_supplier"]
    assert ep.value == "kameng_sandbox_supplier"
    meta = kameng_sandbox_supplier.PLUGIN
    assert isinstance(meta, PluginMeta) and meta.category == "supplier"
    assert kameng_sandbox_supplier.kameng_supplier_connectors() == [SandboxSupplier]
    assert issubclass(SandboxSupplier, SupplierConnector)
    assert SandboxSupplier.identifier == ep.name
    assert SandboxSupplier.callbacks is True and SandboxSupplier.currency == "CNY"


def test_it_says_it_is_a_simulation():
    assert "simulat" in str(kameng_sandbox_supplier.PLUGIN.name).lower()
    assert "simulat" in str(SandboxSupplier.public_name).lower()


def _field(name):
    return {f.name: f for f in SandboxSupplier.settings}[name]


def test_settings_are_declared_with_their_defaults():
    fields = {f.name: f for f in SandboxSupplier.settings}
    assert set(fields) == {"failure_rate", "latency_ms", "seed", "processing_seconds", "poll_only", "secret"}
    assert (fields["failure_rate"].type, fields["failure_rate"].default) == ("int", 0)
    assert (fields["latency_ms"].type, fields["latency_ms"].default) == ("int", 0)
    assert (fields["seed"].type, fields["seed"].default) == ("string", "demo")
    assert (fields["processing_seconds"].type, fields["processing_seconds"].default) == ("int", 2)
    assert fields["secret"].secret and fields["secret"].required


@pytest.mark.parametrize("name,raw", [("failure_rate", "101"), ("failure_rate", "-1"), ("failure_rate", "5%"),
                                      ("latency_ms", "-5"), ("processing_seconds", "3601"),
                                      ("seed", "two words"), ("seed", "x" * 65), ("secret", ""),
                                      ("secret", "too-short")])
def test_settings_refuse_bad_values(name, raw):
    with pytest.raises(SettingError):
        _field(name).parse(raw)


def test_settings_parse_good_values():
    assert _field("failure_rate").parse("100") == 100
    assert _field("seed").parse("shop-2.b_x") == "shop-2.b_x"
    assert _field("poll_only").parse("on") is True
    assert _field("poll_only").parse("") is False  # an unticked box: callbacks stay on


def test_blank_settings_fall_back_to_the_defaults(connector):
    c = connector(failure_rate=None, latency_ms=None, seed=None, processing_seconds=None, poll_only=None)
    assert (c.failure_rate, c.latency_ms, c.seed, c.processing_seconds, c.callbacks) == (0, 0, "demo", 2, True)
    assert connector(poll_only=True).callbacks is False
    assert connector(poll_only=False).callbacks is True


def test_the_catalogue_has_card_keys_and_direct_recharges(connector):
    goods = connector().list_goods()
    types = {g.type for g in goods}
    assert types == {"card_key", "direct_recharge"}
    codes = [s.code for g in goods for s in g.skus]
    assert len(codes) == len(set(codes))
    for g in goods:
        assert protocol.LABEL in g.name and protocol.LABEL in g.category
        for sku in g.skus:
            assert isinstance(sku.cost, Decimal) and Decimal("0") < sku.cost
            face = protocol.find_sku(sku.code)[1][2]
            assert sku.cost < face
        if g.type == "direct_recharge":
            assert all(s.stock is None for s in g.skus)
            # kameng's own checks accept the declared fields, and a phone number passes them
            spec = recharge.parse_spec(list(g.recharge_fields))
            assert recharge.validate(spec, {"phone": "13800138000"}) == {"phone": "13800138000"}
        else:
            assert g.recharge_fields == ()
            assert all(isinstance(s.stock, int) for s in g.skus)


def test_the_catalogue_shows_sold_out_and_stopped_goods(connector):
    skus = {s.code: s for g in connector().list_goods() for s in g.skus}
    assert skus[protocol.SOLD_OUT].stock == 0 and skus[protocol.SOLD_OUT].available
    assert not skus[protocol.STOPPED].available
    assert sum(1 for s in skus.values() if not s.available) == 1


def test_the_seed_fixes_the_catalogue(connector):
    first = connector(seed="alpha").list_goods()
    again = connector(seed="alpha").list_goods()
    other = connector(seed="beta").list_goods()
    assert first == again
    assert [g.id for g in first] == [g.id for g in other]
    assert [(s.cost, s.stock) for g in first for s in g.skus] != [(s.cost, s.stock) for g in other for s in g.skus]


def test_the_default_seed_is_demo(connector):
    assert connector().list_goods() == connector(seed="demo").list_goods()


def test_test_connection_and_balance(connector):
    c = connector(seed="conn")
    message = c.test_connection()
    assert "simulation" in message and "conn" in message and c.secret not in message
    assert c.balance() == "1000000.00"


def test_latency_is_spent_on_every_call(connector, monkeypatch):
    from kameng_sandbox_supplier import connector as module

    slept = []
    monkeypatch.setattr(module.time, "sleep", slept.append)
    c = connector(latency_ms=250)
    c.list_goods()
    c.test_connection()
    c.query_order("nothing")
    assert slept == [0.25, 0.25, 0.25]
    connector().list_goods()
    assert slept == [0.25, 0.25, 0.25]  # no latency: no sleep at all
