"""Outside development and tests the app refuses settings that would make records untrustworthy."""

from __future__ import annotations

import pytest

from cellchain import create_app
from cellchain.config import DEVELOPMENT_SECRET_KEY, ConfigurationError
from cellchain.core.audit_keys import create_key_file

GOOD_KEY = "k" * 64


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in (
        *("ENV", "SECRET_KEY", "FACILITY_CODE", "DATABASE_URL", "ISBT128_PRODUCT_CODES"),
        *("AUDIT_KEY_FILE", "AUDIT_CHECKPOINT_DIR"),
    ):
        monkeypatch.delenv(f"CELLCHAIN_{name}", raising=False)
    monkeypatch.setenv("CELLCHAIN_INSTANCE_PATH", str(tmp_path))


@pytest.mark.parametrize("key", [None, DEVELOPMENT_SECRET_KEY, "short"])
def test_production_refuses_a_missing_default_or_short_secret_key(monkeypatch, key):
    monkeypatch.setenv("CELLCHAIN_FACILITY_CODE", "A1234")
    if key:
        monkeypatch.setenv("CELLCHAIN_SECRET_KEY", key)
    with pytest.raises(ConfigurationError, match="CELLCHAIN_SECRET_KEY"):
        create_app()


def test_production_refuses_a_missing_facility_code(monkeypatch):
    monkeypatch.setenv("CELLCHAIN_SECRET_KEY", GOOD_KEY)
    with pytest.raises(ConfigurationError, match="CELLCHAIN_FACILITY_CODE"):
        create_app()


def test_production_starts_with_real_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("CELLCHAIN_SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("CELLCHAIN_FACILITY_CODE", "A1234")
    create_key_file(tmp_path / "audit-keys")
    monkeypatch.setenv("CELLCHAIN_AUDIT_KEY_FILE", str(tmp_path / "audit-keys"))
    monkeypatch.setenv("CELLCHAIN_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    app = create_app()
    assert app.config["ENV_NAME"] == "production"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/cellchain.sqlite"


def test_environment_variables_override_defaults(monkeypatch):
    monkeypatch.setenv("CELLCHAIN_ENV", "development")
    monkeypatch.setenv("CELLCHAIN_IDLE_TIMEOUT_MINUTES", "5")
    monkeypatch.setenv("CELLCHAIN_DATABASE_URL", "postgresql+psycopg://db.example/cellchain")
    app = create_app()
    assert app.config["IDLE_TIMEOUT_MINUTES"] == 5
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://db.example/cellchain"
    assert app.config["SECRET_KEY"] == DEVELOPMENT_SECRET_KEY


def test_the_follow_up_report_days_come_from_the_environment(monkeypatch):
    """The sponsor's follow-up report deadline is the protocol's figure, set per site; 15
    calendar days (ICH E2A) when not set. tests/clinic/test_adverse_event_reporting.py shows
    the deadline following the setting."""
    monkeypatch.setenv("CELLCHAIN_ENV", "development")
    assert create_app().config["AE_FOLLOW_UP_REPORT_DAYS"] == 15
    monkeypatch.setenv("CELLCHAIN_AE_FOLLOW_UP_REPORT_DAYS", "7")
    assert create_app().config["AE_FOLLOW_UP_REPORT_DAYS"] == 7


def test_a_non_number_is_refused_with_the_variable_named(monkeypatch):
    monkeypatch.setenv("CELLCHAIN_ENV", "development")
    monkeypatch.setenv("CELLCHAIN_LOCKOUT_THRESHOLD", "five")
    with pytest.raises(ConfigurationError, match="CELLCHAIN_LOCKOUT_THRESHOLD"):
        create_app()


@pytest.mark.parametrize("code", ["nonsense", "O1234", "X9999"])
def test_production_refuses_a_malformed_or_demo_facility_code(monkeypatch, code):
    monkeypatch.setenv("CELLCHAIN_SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("CELLCHAIN_FACILITY_CODE", code)
    with pytest.raises(ConfigurationError, match="CELLCHAIN_FACILITY_CODE"):
        create_app()


def test_an_unknown_time_zone_is_refused(monkeypatch):
    monkeypatch.setenv("CELLCHAIN_ENV", "development")
    monkeypatch.setenv("CELLCHAIN_TIMEZONE", "Mars/Base")
    with pytest.raises(ConfigurationError, match="CELLCHAIN_TIMEZONE"):
        create_app()


def test_isbt128_product_codes_are_read_and_checked(monkeypatch):
    monkeypatch.setenv("CELLCHAIN_ENV", "development")
    assert create_app().config["ISBT128_PRODUCT_CODES"] == {}  # ISBT 128 mode off
    monkeypatch.setenv("CELLCHAIN_ISBT128_PRODUCT_CODES", "UC-MSC=S1234V00, PL-MSC=S1235V00")
    codes = create_app().config["ISBT128_PRODUCT_CODES"]
    assert codes == {"UC-MSC": "S1234V00", "PL-MSC": "S1235V00"}


@pytest.mark.parametrize(
    ("value", "message"),
    [("UC-MSC", "comma-separated list"), ("UC-MSC=S12", "UC-MSC=S12"), ("=S1234V00", "list")],
)
def test_a_malformed_isbt128_product_code_stops_the_app(monkeypatch, value, message):
    monkeypatch.setenv("CELLCHAIN_ENV", "development")
    monkeypatch.setenv("CELLCHAIN_ISBT128_PRODUCT_CODES", value)
    with pytest.raises(ConfigurationError, match=message):
        create_app()
