"""The plugin's settings (API.md names), its metadata, and its migration
against its models."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kameng.pluginhost import PluginError, configure, set_enabled
from kameng.testing import app_request
from kameng.types import SettingError

from kameng_distribution import PLUGIN, config
from kameng_distribution.models import Base


def test_the_settings_are_those_of_api_md():
    assert [f.name for f in PLUGIN.settings] == ["levels", "rate_1", "rate_2", "rate_3", "min_withdrawal",
                                                 "withdrawal_fee"]


@pytest.mark.parametrize("text,bp", [("5", 500), ("2.5", 250), ("0.01", 1), ("100", 10000), ("0", 0),
                                     ("33.33", 3333)])
def test_percentages_parse_to_hundredths(text, bp):
    assert config.parse_percent(text) == bp
    assert config.parse_percent(config.format_percent(bp)) == bp


@pytest.mark.parametrize("text", ["100.01", "101", "-1", "1e2", "2.555", " ", "five", "05", "NaN", "1,5", "５"])
def test_bad_percentages_are_refused(text):
    with pytest.raises(SettingError):
        config.parse_percent(text)


@pytest.mark.parametrize("values,field", [
    ({"rate_1": "60", "rate_2": "41", "levels": 2}, "rate_2"),
    ({"rate_1": "50", "rate_2": "30", "rate_3": "20.01", "levels": 3}, "rate_3"),
    ({"rate_1": "101"}, "rate_1"),
    ({"rate_1": "5", "min_withdrawal": "-1"}, "min_withdrawal"),
    ({"rate_1": "5", "min_withdrawal": "1.001"}, "min_withdrawal"),
    ({"rate_1": "5", "withdrawal_fee": "100"}, "withdrawal_fee"),
    ({"rate_1": "5", "withdrawal_fee": "x"}, "withdrawal_fee"),
])
def test_settings_are_checked_as_a_whole(values, field):
    with pytest.raises(SettingError) as exc:
        config.validate(values)
    assert exc.value.field_name == field


def test_rates_of_levels_not_in_use_do_not_count():
    config.validate({"levels": 1, "rate_1": "90", "rate_2": "50", "rate_3": "50"})
    config.validate({"levels": 3, "rate_1": "50", "rate_2": "30", "rate_3": "20"})


def test_enabling_needs_the_level_1_rate_and_saving_checks_the_rest(dreg):
    with app_request(dreg) as req:
        with pytest.raises(PluginError):
            set_enabled(req, "distribution", True)
    with app_request(dreg) as req:
        with pytest.raises(SettingError):
            configure(req, "distribution", {"rate_1": "80", "rate_2": "30", "levels": "2"})
    with app_request(dreg) as req:
        configure(req, "distribution", {"rate_1": "80", "rate_2": "20", "levels": "2", "min_withdrawal": "50"})
        set_enabled(req, "distribution", True)
    with app_request(dreg) as req:
        cfg = config.read(req)
    assert cfg == config.Config(levels=2, rates=(8000, 2000, 0), min_withdrawal=5000, fee=0)


def test_models_match_the_migration(dreg):
    engine = dreg["kameng.engine"]

    def mine(obj, name, type_, reflected, compare_to):
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table is None or table in Base.metadata.tables

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": mine})
        assert compare_metadata(ctx, Base.metadata) == []
