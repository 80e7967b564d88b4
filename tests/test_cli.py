"""The cellchain command: demo, init, users and audit verify, as an operator runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from cellchain.cli import main
from cellchain.core.types import utcnow
from tests.support.tamper import triggers_off
from tests.test_demo_trial_paths import late_morning_zone

#: long tests: started first (tests/conftest.py, ``heavy``)
pytestmark = pytest.mark.heavy


@pytest.fixture
def run(database_url, monkeypatch):
    monkeypatch.setenv("CELLCHAIN_ENV", "testing")
    monkeypatch.setenv("CELLCHAIN_DATABASE_URL", database_url)
    monkeypatch.setenv("CELLCHAIN_PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")
    runner = CliRunner()

    def invoke(*args: str, **kwargs):
        return runner.invoke(main, list(args), catch_exceptions=False, **kwargs)

    return invoke


def create_rita(run):
    """A technician account created through the CLI, as an operator would."""
    return run(
        "users",
        "create",
        "rita",
        "--full-name",
        "Rita Tech",
        "--role",
        "technician",
        "--password",
        "a-long-password-1",
    )


def test_demo_builds_a_fresh_database_with_users_for_every_role(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CELLCHAIN_PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")
    # late morning at the site: AS-009's thaw window has closed (not so just after midnight)
    monkeypatch.setenv("CELLCHAIN_TIMEZONE", late_morning_zone(utcnow()).key)
    database = tmp_path / "demo.sqlite"
    result = CliRunner().invoke(main, ["demo", "--no-serve", "--database", str(database)])
    assert result.exit_code == 0, result.output
    users = ("tech", "qc", "qa", "clinician", "nurse", "investigator", "statistician", "admin")
    users += ("berlin", "monitor")  # the second clinical site's clinician; the sponsor's monitor
    for username in users:
        assert f"{username}-demo-pass" in result.output
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM users")) == 10
        protocols = conn.execute(text("SELECT code, status FROM protocols ORDER BY id"))
        assert protocols.all() == [("NCT01420432", "effective"), ("PL-MSC-OL-01", "effective")]
        products = conn.execute(text("SELECT code, status FROM product_definitions ORDER BY id"))
        assert products.all() == [("UC-MSC", "effective"), ("PL-MSC", "effective")]
        # protocol, product definition, specification, four eligible donations'
        # determinations, a release, a closed OOS investigation, a rejection, and the second
        # checks of the five MSC-arm patients' day-0 doses, and AS-003's bedside check signed by
        # two clinicians, the statistician's randomization list, and the investigator's
        # signed protocol deviation of AS-010's day 0 moved beyond the protocol's 14 days (19);
        # the second protocol, the placenta product and its specification, the two donor test
        # panels, the seven label templates, the placenta donation's determination, its lot's
        # release and PL-001's second check (15, issue 22)
        assert conn.scalar(text("SELECT count(*) FROM signatures")) == 34
        arms = conn.execute(text("SELECT arm, count(*) FROM patients GROUP BY 1 ORDER BY 1"))
        assert dict(arms.all()) == {"CONTROL": 5, "MSC": 5, "OPEN": 1}
        doses = "SELECT visit, status, count(*) FROM dose_orders GROUP BY 1, 2 ORDER BY 2"
        assert conn.execute(text(doses)).all() == [("D0", "infused", 1), ("D0", "prepared", 5)]
        shipped = "SELECT status, count(*) FROM shipments GROUP BY 1 ORDER BY 1"
        assert conn.execute(text(shipped)).all() == [
            ("held", 1),
            ("in_transit", 1),
            ("received", 2),  # AS-003's, and AS-009's whose thaw window was missed
        ]
        verdicts = "SELECT verdict, count(*) FROM bedside_checks GROUP BY 1 ORDER BY 1"
        # AS-003's go and its re-check; its wrong wristband; AS-009's thaw window exceeded
        assert conn.execute(text(verdicts)).all() == [("go", 2), ("stop", 2)]
        assert conn.scalar(text("SELECT status FROM infusions")) == "completed"
        lots = conn.execute(text("SELECT status FROM lots ORDER BY id")).scalars().all()
        assert lots == ["quarantine", "released", "quarantine", "rejected", "released"]
        oos = "SELECT count(*) FROM qc_results WHERE status = 'valid' AND NOT passes"
        assert conn.scalar(text(oos)) == 2
        specifications = conn.execute(text("SELECT code, status FROM specifications ORDER BY id"))
        assert specifications.all() == [("UC-MSC", "effective"), ("PL-MSC", "effective")]
        rows = conn.execute(text("SELECT eligibility, count(*) FROM donations GROUP BY 1"))
        stages = {eligibility: count for eligibility, count in rows}
        assert stages == {"eligible": 5, "pending": 2}
        # five expansions (the placenta lot's too) of 16 vessels and 10 bags each; one QC tube
        # from each tested lot
        assert conn.scalar(text("SELECT count(*) FROM units WHERE kind = 'culture_vessel'")) == 80
        assert conn.scalar(text("SELECT count(*) FROM units WHERE kind = 'cryobag'")) == 50
        assert conn.scalar(text("SELECT count(*) FROM units WHERE kind = 'sample_tube'")) == 4
    for stage in ("eligible", "quarantine", "awaiting receipt", "out of specification"):
        assert stage in result.output
    # Run again: the demo database is recreated, not added to.
    again = CliRunner().invoke(main, ["demo", "--no-serve", "--database", str(database)])
    assert again.exit_code == 0
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM users")) == 10


def test_init_creates_the_first_admin_and_the_protocol_draft(run, monkeypatch):
    monkeypatch.setenv("CELLCHAIN_ADMIN_PASSWORD", "a-long-admin-password")
    result = run("init", "--admin-name", "First Admin")
    assert result.exit_code == 0, result.output
    assert "Created administrator admin" in result.output
    assert "NCT01420432 v1 is draft" in result.output
    assert "UC-MSC v1 is draft" in result.output
    assert "Release specification UC-MSC v1 is draft" in result.output
    listed = run("users", "list").output
    assert "admin" in listed and "First Admin" in listed


def test_users_create_deactivate_and_refuse_reuse(run):
    created = run(
        "users",
        "create",
        "rita",
        "--full-name",
        "Rita Tech",
        "--role",
        "technician",
        "--password",
        "a-long-password-1",
    )
    assert created.exit_code == 0, created.output
    reused = run(
        "users",
        "create",
        "RITA",
        "--full-name",
        "Other",
        "--role",
        "qa",
        "--password",
        "a-long-password-2",
    )
    assert reused.exit_code == 1 and "never reused" in reused.output
    deactivated = run("users", "deactivate", "rita", "--reason", "left the site")
    assert deactivated.exit_code == 0
    assert "deactivated" in run("users", "list").output
    missing_reason = run("users", "unlock", "rita")
    assert missing_reason.exit_code == 2


def test_audit_verify_reports_a_clean_chain_and_catches_an_edit(run, database_url):
    create_rita(run)
    clean = run("audit", "verify")
    assert clean.exit_code == 0 and "intact" in clean.output
    engine = create_engine(database_url)
    with engine.begin() as conn, triggers_off(conn):
        conn.execute(text("UPDATE audit_entries SET actor_username = 'mallory' WHERE seq = 1"))
    engine.dispose()
    broken = run("audit", "verify")
    assert broken.exit_code == 1
    assert "BROKEN at entry #1" in broken.output


def test_audit_export_writes_csv(run):
    create_rita(run)
    exported = run("audit", "export", "--entity-type", "user")
    assert exported.exit_code == 0
    lines = exported.output.strip().splitlines()
    assert lines[0].startswith("seq,at_utc,actor,action") and "user.created" in lines[1]
