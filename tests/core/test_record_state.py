"""Records checked against the trail (issue 18): every regulated row carries the ``seq`` of
the ``records.state`` entry holding its values, and ``verify_records`` names each row an
insider changed, put back, inserted or deleted in SQL (core/record_state.py)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from cellchain.chain import service as chain
from cellchain.chain.models import Unit, UnitStatus
from cellchain.cli import main
from cellchain.core import accounts, record_state
from cellchain.core.models import AuditEntry, User
from cellchain.core.record_state import Problem, RecordsReport
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.dosing.models import Patient
from cellchain.extensions import Model, db
from cellchain.manufacturing.models import Lot
from cellchain.wiring import import_models


@pytest.fixture
def database_url(demo_database_url: str) -> str:
    """The demo site: every row made through the services, as a site makes them."""
    return demo_database_url


def verify() -> RecordsReport:
    db.session.rollback()
    return record_state.verify_records(db.session, batch_size=100)


def only_problem(report: RecordsReport) -> record_state.RowProblem:
    assert len(report.problems) == 1, [p.describe() for p in report.problems]
    return report.problems[0]


def row_of(table: str, key: int) -> dict[str, Any]:
    return dict(
        db.session.execute(text(f"SELECT * FROM {table} WHERE id = :id"), {"id": key})
        .mappings()
        .one()
    )


def test_every_table_is_classified_regulated_or_not_once() -> None:
    import_models()
    names = {table.name for table in Model.metadata.sorted_tables}
    regulated = {table.name for table in record_state.regulated_tables()}
    unclassified = names - regulated - set(record_state.UNRECORDED)
    assert not unclassified, (
        f"classify these tables in record_state.UNRECORDED or Recorded: {unclassified}"
    )
    assert not regulated & set(record_state.UNRECORDED)
    assert {"patients", "lots", "units", "users", "user_roles", "signatures"} <= regulated


def test_the_demo_built_through_the_services_matches_the_trail(app: Any) -> None:
    report = verify()
    assert report.rows_checked > 500
    assert report.intact, [p.describe() for p in report.problems[:10]]
    # every row carries the seq of a state entry that names it
    patient = db.session.execute(select(Patient).limit(1)).scalar_one()
    entry = db.session.get(AuditEntry, patient.audit_seq)
    assert entry is not None and entry.action == record_state.STATE_ACTION
    rows = json.loads(entry.changes)["patients"][1]
    assert rows[str(patient.id)]["arm"] == patient.arm


def test_a_patients_arm_edited_in_sql_is_named(app: Any) -> None:
    patient = db.session.execute(select(Patient).order_by(Patient.id).limit(1)).scalar_one()
    arm = patient.arm
    other = "CONTROL" if arm != "CONTROL" else "MSC"
    db.session.execute(
        text("UPDATE patients SET arm = :arm WHERE id = :id"), {"arm": other, "id": patient.id}
    )
    db.session.commit()
    problem = only_problem(verify())
    assert (problem.table, problem.key, problem.problem) == (
        "patients",
        str(patient.id),
        Problem.DIFFERS,
    )
    assert [(c.column, c.trail, c.row) for c in problem.columns] == [("arm", arm, other)]
    assert f"patients {patient.id} differs from the trail" in problem.describe()


def test_a_lot_number_edited_in_sql_is_named(app: Any) -> None:
    lot = db.session.execute(select(Lot).order_by(Lot.id).limit(1)).scalar_one()
    lot_id, number = lot.id, lot.lot_number
    db.session.execute(
        text("UPDATE lots SET lot_number = :n WHERE id = :id"), {"n": number + "X", "id": lot_id}
    )
    db.session.commit()
    problem = only_problem(verify())
    assert (problem.table, problem.key, problem.problem) == ("lots", str(lot_id), Problem.DIFFERS)
    assert [(c.column, c.trail, c.row) for c in problem.columns] == [
        ("lot_number", number, number + "X")
    ]


def test_an_old_row_put_back_with_its_old_audit_seq_is_named(app: Any) -> None:
    patient = db.session.execute(select(Patient).order_by(Patient.id).limit(1)).scalar_one()
    before = row_of("patients", patient.id)
    # a change made through the application: a new state entry, a new audit_seq
    patient.arm = "CONTROL" if patient.arm != "CONTROL" else "MSC"
    db.session.commit()
    changed = row_of("patients", patient.id)
    assert changed["audit_seq"] > before["audit_seq"]
    assert verify().intact
    # the insider puts the old row back, audit_seq and all
    db.session.execute(
        text("UPDATE patients SET arm = :arm, audit_seq = :seq WHERE id = :id"),
        {"arm": before["arm"], "seq": before["audit_seq"], "id": patient.id},
    )
    db.session.commit()
    problem = only_problem(verify())
    assert problem.problem is Problem.PUT_BACK
    assert (problem.row_seq, problem.trail_seq) == (before["audit_seq"], changed["audit_seq"])
    assert [(c.column, c.trail, c.row) for c in problem.columns] == [
        ("arm", changed["arm"], before["arm"])
    ]


def test_a_role_inserted_in_sql_is_named(app: Any) -> None:
    user = db.session.execute(select(User).where(User.username == "tech")).scalar_one()
    assert Role.QA not in user.roles
    db.session.execute(
        text("INSERT INTO user_roles (user_id, role) VALUES (:id, 'qa')"), {"id": user.id}
    )
    db.session.commit()
    problem = only_problem(verify())
    assert (problem.table, problem.key, problem.problem) == (
        "user_roles",
        f"{user.id}/qa",
        Problem.NOT_IN_TRAIL,
    )


def test_a_row_deleted_in_sql_is_named(app: Any) -> None:
    user_id, role = db.session.execute(text("SELECT user_id, role FROM user_roles LIMIT 1")).one()
    db.session.execute(
        text("DELETE FROM user_roles WHERE user_id = :u AND role = :r"), {"u": user_id, "r": role}
    )
    db.session.commit()
    problem = only_problem(verify())
    assert (problem.table, problem.key, problem.problem) == (
        "user_roles",
        f"{user_id}/{role}",
        Problem.DELETED,
    )


def test_a_row_the_application_deleted_is_recorded_as_gone(app: Any) -> None:
    admin = db.session.execute(select(User).where(User.username == "admin")).scalar_one()
    user = db.session.execute(select(User).where(User.username == "tech")).scalar_one()
    for roles in ([Role.TECHNICIAN, Role.QC_ANALYST], [Role.TECHNICIAN]):
        accounts.set_roles(
            db.session, actor=admin, now=utcnow(), user=user, roles=roles, reason="test"
        )
        db.session.commit()
    assert verify().intact
    # the insider puts the removed role back
    db.session.execute(
        text("INSERT INTO user_roles (user_id, role) VALUES (:id, 'qc_analyst')"),
        {"id": user.id},
    )
    db.session.commit()
    assert only_problem(verify()).problem is Problem.DELETED_IN_TRAIL


def test_a_bulk_status_change_is_in_the_trail_with_every_unit(app: Any) -> None:
    units = list(
        db.session.execute(
            select(Unit).where(Unit.status == UnitStatus.AVAILABLE.value).limit(5)
        ).scalars()
    )
    assert len(units) >= 2
    chain.change_status_many(
        db.session, units, UnitStatus.BLOCKED, actor=None, now=utcnow(), reason="test"
    )
    db.session.commit()
    assert verify().intact
    db.session.execute(
        text("UPDATE units SET status = 'available' WHERE id = :id"), {"id": units[1].id}
    )
    db.session.commit()
    problem = only_problem(verify())
    assert (problem.table, problem.key) == ("units", str(units[1].id))


def test_an_unmarked_bulk_statement_on_a_regulated_table_is_refused(app: Any) -> None:
    with pytest.raises(record_state.UnmarkedRecordChange, match="patients"):
        db.session.execute(update(Patient).values(arm="MSC"))
    db.session.rollback()
    # a marked one passes; the rows it names are in the trail at commit
    patient = db.session.execute(select(Patient).order_by(Patient.id).limit(1)).scalar_one()
    db.session.execute(
        record_state.marked(
            update(Patient).where(Patient.id == patient.id).values(arm="CONTROL")
        ).execution_options(synchronize_session=False)
    )
    record_state.touched(db.session, Patient, [patient.id])
    db.session.commit()
    assert verify().intact


def test_the_state_entry_is_by_the_use_cases_actor_and_keeps_no_password_hash(app: Any) -> None:
    admin = db.session.execute(select(User).where(User.username == "admin")).scalar_one()
    user = db.session.execute(select(User).where(User.username == "tech")).scalar_one()
    accounts.set_roles(
        db.session,
        actor=admin,
        now=utcnow(),
        user=user,
        roles=[Role.TECHNICIAN, Role.QC_ANALYST],
        reason="test",
    )
    db.session.commit()
    entry = db.session.execute(
        select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)
    ).scalar_one()
    assert (entry.action, entry.actor_username) == (record_state.STATE_ACTION, "admin")
    hashes = db.session.execute(select(User.password_hash)).scalars().all()
    states = db.session.execute(
        select(AuditEntry.changes).where(AuditEntry.action == record_state.STATE_ACTION)
    ).scalars()
    for changes in states:
        assert not any(h in changes for h in hashes)
    # a password hash replaced in SQL is named all the same
    db.session.execute(text("UPDATE users SET password_hash = 'x' WHERE id = :id"), {"id": user.id})
    db.session.commit()
    problem = only_problem(verify())
    assert [c.column for c in problem.columns] == ["password_hash"]


def test_rows_from_before_the_trail_are_unsealed_until_the_baseline(app: Any) -> None:
    now = utcnow()
    params = {"at": now - dt.timedelta(days=400)}
    # an upgraded site: rows written before migration 0023 (which set their audit_seq to 0)
    db.session.execute(
        text(
            "INSERT INTO equipment (code, kind, name, active, created_at, audit_seq) "
            "VALUES ('OLD-1', 'incubator', 'old incubator', true, :at, 0)"
        ),
        params,
    )
    # and a row an insider inserted afterwards
    db.session.execute(
        text(
            "INSERT INTO equipment (code, kind, name, active, created_at) "
            "VALUES ('SQL-1', 'incubator', 'smuggled incubator', true, :at)"
        ),
        params,
    )
    db.session.commit()
    report = verify()
    assert [(p.key.isdigit(), p.problem) for p in report.unsealed] == [(True, Problem.UNSEALED)]
    assert [p.problem for p in report.differences] == [Problem.NOT_IN_TRAIL]
    with pytest.raises(ValueError):
        record_state.seal_baseline(db.session, reason=" ", at=now)
    assert record_state.seal_baseline(db.session, reason="upgrade to 0023", at=now) == 1
    db.session.commit()
    report = verify()
    assert not report.unsealed
    [smuggled] = report.differences
    assert smuggled.problem is Problem.NOT_IN_TRAIL
    baseline = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == record_state.BASELINE_ACTION)
    ).scalar_one()
    assert (baseline.reason, baseline.actor_username) == ("upgrade to 0023", "system")


def test_the_cli_names_the_rows_that_differ_and_seals_a_baseline(
    app: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLCHAIN_ENV", "testing")
    monkeypatch.setenv("CELLCHAIN_DATABASE_URL", database_url)
    runner = CliRunner()

    def run(*args: str) -> Any:
        db.session.remove()  # the test's own session holds no connection while the CLI runs
        return runner.invoke(main, list(args), catch_exceptions=False)

    clean = run("audit", "verify", "--records")
    assert clean.exit_code == 0, clean.output
    assert "Records match the trail" in clean.output and "intact" in clean.output
    patient_id = db.session.execute(select(Patient.id).order_by(Patient.id)).scalars().first()
    db.session.execute(
        text("UPDATE patients SET arm = 'EDITED', audit_seq = 0 WHERE id = :id"),
        {"id": patient_id},
    )
    db.session.commit()
    edited = run("audit", "verify", "--records")
    assert edited.exit_code == 1
    assert f"Record patients {patient_id} is not the row's latest state" in edited.output
    assert 'arm: trail "' in edited.output and 'row "EDITED"' in edited.output
    # without --records only the chain is checked, as before
    assert run("audit", "verify").exit_code == 0
    assert "--reason" in run("audit", "seal-baseline").output


def test_the_audit_page_leaves_the_record_states_out_unless_asked(
    app: Any, clients: Any, make_user: Any
) -> None:
    web = clients.web(make_user("quinn", "qa"))
    shown = '<td><code translate="no">records.state</code></td>'
    default = web.get("/audit?limit=1000").get_data(as_text=True)
    assert '<td><code translate="no">user.created</code></td>' in default
    assert shown not in default
    # newest first: the demo's one transaction writes its state entries last, after more than
    # a thousand entries (the oldest-first ``limit=1000`` page ends before them)
    assert shown in web.get("/audit?states=1").get_data(as_text=True)
    assert shown in web.get("/audit?action=records.state").get_data(as_text=True)
    exported = web.get("/audit/export.csv").get_data(as_text=True)
    assert ",records.state," in exported


def test_a_change_committed_while_verify_runs_is_not_reported(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app keeps working during a verify: a row changed (and a role removed) between the
    reading of the trail and the reading of the tables is checked against the new entries."""
    read_trail = record_state._latest_states
    patient_id = db.session.execute(select(Patient.id).order_by(Patient.id)).scalars().first()
    admin_id = db.session.execute(select(User.id).where(User.username == "admin")).scalar_one()
    tech_id = db.session.execute(select(User.id).where(User.username == "tech")).scalar_one()

    def meanwhile(session: Any, batch_size: int, *, after: int = 0) -> Any:
        read = read_trail(session, batch_size, after=after)
        if after == 0:
            with Session(db.engine) as other:
                patient = other.get(Patient, patient_id)
                assert patient is not None
                patient.arm = "CONTROL" if patient.arm != "CONTROL" else "MSC"
                admin, tech = other.get(User, admin_id), other.get(User, tech_id)
                accounts.set_roles(
                    other,
                    actor=admin,
                    now=utcnow(),
                    user=tech,
                    roles=[Role.QC_ANALYST],
                    reason="test",
                )
                other.commit()
        return read

    monkeypatch.setattr(record_state, "_latest_states", meanwhile)
    report = verify()
    assert report.intact, [p.describe() for p in report.problems]
