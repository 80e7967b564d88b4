"""The site-wide doses list and the print log as lists that scale (issue 21): newest first,
paged, sorted, filtered and searched in the database; bad values a 422 on the API and a
note on the page; the related rows of a page read once for the page, so a page costs as
many statements with thousands of doses or prints; both pages read in Chinese."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, inspect, select

from cellchain.core.roles import Role
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.dosing.models import DoseOrder, Patient
from cellchain.extensions import db
from cellchain.labels.models import LabelPrint
from cellchain.manufacturing.models import Lot
from tests.lists.support import cells, pagination, statements_of
from tests.support.untranslated import assert_translated
from tests.support.ward import Ward

CHINESE = {"Accept-Language": "zh-CN"}


def dose_copies(order: DoseOrder, count: int, *, start: int = 1) -> list[int]:
    """``count`` cancelled copies of ``order``, each for a new patient (study IDs ZZ-…),
    inserted in bulk (below the ORM: test rows); their ids, the newest last."""
    patient = order.patient
    columns = {c.key: getattr(patient, c.key) for c in inspect(Patient).column_attrs}
    first_patient = db.session.execute(select(func.max(Patient.id))).scalar_one() + 1
    patients = [
        {
            **columns,
            "id": first_patient + n,
            "study_id": f"ZZ-{start + n:05d}",
            "coi": f"C{start + n:014d}X",
            "randomization_number": None,
        }
        for n in range(count)
    ]
    db.session.connection().execute(insert(Patient.__table__), patients)
    columns = {c.key: getattr(order, c.key) for c in inspect(DoseOrder).column_attrs}
    first = db.session.execute(select(func.max(DoseOrder.id))).scalar_one() + 1
    rows = [
        {
            **columns,
            "id": first + n,
            "patient_id": first_patient + n,
            "status": "cancelled",
            "dose_unit_id": None,
        }
        for n in range(count)
    ]
    db.session.connection().execute(insert(DoseOrder.__table__), rows)
    db.session.commit()
    return [row["id"] for row in rows]


def print_copies(record: LabelPrint, count: int, *, reason: str = "smudged") -> list[int]:
    """``count`` copies of the print ``record`` (reprints for ``reason``) in one insert
    (below the ORM: test rows); their ids, the newest last."""
    columns = {c.key: getattr(record, c.key) for c in inspect(LabelPrint).column_attrs}
    first = db.session.execute(select(func.max(LabelPrint.id))).scalar_one() + 1
    rows = [
        {**columns, "id": first + n, "reason": f"{reason} {n}", "applied": 0, "destroyed": 0}
        for n in range(count)
    ]
    db.session.connection().execute(insert(LabelPrint.__table__), rows)
    db.session.commit()
    return [row["id"] for row in rows]


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [row["id"] for row in response.get_json()]


def first_print(order: DoseOrder) -> LabelPrint:
    return db.session.execute(
        select(LabelPrint).where(LabelPrint.unit_id == order.dose_unit_id)
    ).scalar_one()


# --- doses ------------------------------------------------------------------------------------


def test_doses_newest_first_paged_filtered_searched_and_corrected(ward: Ward, clients: Any) -> None:
    order = ward.prepared()
    added = dose_copies(order, 60)
    api = clients.api(ward.lab.qa)
    first = api.get("/api/v1/doses")
    assert pagination(first)["total"] == 61 and pagination(first)["next_page"] == 2
    pages = [
        ids(api.get("/api/v1/doses", query_string={"page_size": 25, "page": n})) for n in (1, 2, 3)
    ]
    assert [i for page in pages for i in page] == sorted([*added, order.id], reverse=True)
    row = api.get("/api/v1/doses", query_string={"status": "prepared"}).get_json()
    assert [r["id"] for r in row] == [order.id]
    assert row[0]["patient"] == order.patient.study_id and row[0]["visit"] == "D0"
    assert row[0]["bags"] == [bag.unit.code for bag in order.bags]
    assert row[0]["infused_at"] is None
    # searched by study ID, COI and bag code, case-insensitively
    assert ids(api.get("/api/v1/doses", query_string={"q": order.patient.study_id.lower()})) == [
        order.id
    ]
    assert ids(api.get("/api/v1/doses", query_string={"q": "C00000000000007"})) == [added[6]]
    bag_code = order.bags[0].unit.code
    assert ids(api.get("/api/v1/doses", query_string={"q": bag_code[2:].lower()})) == [order.id]
    assert pagination(api.get("/api/v1/doses", query_string={"visit": "M3"}))["total"] == 0
    by_study = ids(api.get("/api/v1/doses", query_string={"sort": "study_id", "direction": "asc"}))
    assert by_study[0] == order.id  # AS-… before ZZ-…
    for query, field in (
        ({"page": 0}, "page"),
        ({"page": "two"}, "page"),
        ({"page_size": 10000}, "page_size"),
        ({"sort": "weight"}, "sort"),
        ({"direction": "up"}, "direction"),
        ({"status": "lost"}, "status"),
        ({"visit": "M" * 11}, "visit"),
        ({"q": "x" * 101}, "q"),
    ):
        response = api.get("/api/v1/doses", query_string=query)
        assert response.status_code == 422 and field in response.get_json()["errors"], query

    web = clients.web(ward.lab.qa)
    html = web.get("/doses").get_data(as_text=True)
    assert cells(html, "doses", 0) == [str(i) for i in sorted(added, reverse=True)[:50]]
    assert "Page 1 of 2" in html
    last = web.get("/doses?page=2").get_data(as_text=True)
    assert cells(last, "doses", 0)[-1] == str(order.id)
    assert cells(last, "doses", 1)[-1] == order.patient.study_id
    assert cells(last, "doses", 5)[-1].replace(" ", "") == bag_code
    found = web.get(f"/doses?q={order.patient.coi}").get_data(as_text=True)
    assert cells(found, "doses", 0) == [str(order.id)]
    for bad in ("page=0", "sort=weight", "page_size=100000", "page=9", "status=lost"):
        response = web.get(f"/doses?{bad}")
        assert response.status_code == 200 and "list-note" in response.get_data(as_text=True), bad
    assert "There is no page 9: the list has 2." in web.get("/doses?page=9").get_data(as_text=True)


def test_an_infused_dose_shows_when_its_infusion_started(ward: Ward, clients: Any) -> None:
    patient, order = ward.at_bedside()
    started = ward.start(ward.sign(ward.verify(patient, order)))
    api = clients.api(ward.lab.qa)
    (row,) = api.get("/api/v1/doses", query_string={"q": order.patient.study_id}).get_json()
    assert row["status"] == "infused" and row["infused_at"] is not None
    assert started.infusion is not None
    assert row["infused_at"].startswith(started.infusion.started_at.isoformat()[:16])


def test_a_doses_page_costs_as_many_statements_with_thousands(ward: Ward, clients: Any) -> None:
    order = ward.prepared()
    dose_copies(order, 60)
    web, api = clients.web(ward.lab.qa), clients.api(ward.lab.qa)
    paths = (
        "/doses?sort=ordered&direction=asc&page_size=50",
        "/doses?q=ZZ&page=2&sort=study_id",
        "/api/v1/doses?sort=ordered&direction=asc&page_size=50",
        "/api/v1/doses?q=zz&status=cancelled&page=2&page_size=20",
    )
    for path in paths:
        statements_of(api if "/api/" in path else web, path)
    few = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    dose_copies(order, 3000, start=1000)
    many = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    assert many == few


# --- the print log ----------------------------------------------------------------------------


def test_the_print_log_newest_first_paged_filtered_searched_and_corrected(
    ward: Ward, clients: Any
) -> None:
    order = ward.prepared()
    dose_print = first_print(order)
    added = print_copies(dose_print, 60)
    api = clients.api(ward.lab.qa)
    every = pagination(api.get("/api/v1/label-prints", query_string={"page_size": 500}))
    total = every["total"]
    assert total > 61
    pages = [
        ids(api.get("/api/v1/label-prints", query_string={"page_size": 40, "page": n}))
        for n in range(1, every["total"] // 40 + 2)
    ]
    listed = [i for page in pages for i in page]
    assert listed == sorted(listed, reverse=True) and len(set(listed)) == total
    assert listed[:60] == added[::-1]
    # a reprint's reason, a unit code, a lot number
    assert ids(api.get("/api/v1/label-prints", query_string={"q": "SMUDGED 7"})) == [added[7]]
    dose_code = order.dose_unit.code
    by_unit = ids(
        api.get("/api/v1/label-prints", query_string={"q": dose_code.lower(), "page_size": 500})
    )
    assert set(by_unit) == {dose_print.id, *added}
    bag = order.bags[0].unit
    lot = (
        db.session.execute(select(LabelPrint.lot_id).where(LabelPrint.unit_id == bag.id))
        .scalars()
        .first()
    )
    assert lot is not None
    lot_number = db.session.get(Lot, lot).lot_number
    by_lot = api.get("/api/v1/label-prints", query_string={"q": lot_number, "page_size": 500})
    assert by_lot.get_json() and {row["lot_id"] for row in by_lot.get_json()} == {lot}
    # filters
    first_prints = api.get("/api/v1/label-prints", query_string={"reprint": "no"}).get_json()
    assert first_prints and all(row["reason"] is None for row in first_prints)
    reprints = pagination(api.get("/api/v1/label-prints", query_string={"reprint": "yes"}))
    assert reprints["total"] >= 60
    doses = api.get("/api/v1/label-prints", query_string={"label_type": "prepared_dose"})
    assert pagination(doses)["total"] == 61
    assert {row["label_type"] for row in doses.get_json()} == {"prepared_dose"}
    fmt = dose_print.output_format
    other = "zpl" if fmt != "zpl" else "png"
    assert pagination(api.get("/api/v1/label-prints", query_string={"format": other}))["total"] == 0
    quarantined = api.get("/api/v1/label-prints", query_string={"quarantine": "yes"}).get_json()
    assert all(row["quarantine"] for row in quarantined)
    unmarked = api.get("/api/v1/label-prints", query_string={"quarantine": "no"})
    assert not any(row["quarantine"] for row in unmarked.get_json())
    by_unit_asc = ids(
        api.get("/api/v1/label-prints", query_string={"sort": "unit", "direction": "asc"})
    )
    assert len(by_unit_asc) == 50
    for query, field in (
        ({"page": 0}, "page"),
        ({"page_size": 501}, "page_size"),
        ({"sort": "copies"}, "sort"),
        ({"direction": "sideways"}, "direction"),
        ({"label_type": "banner"}, "label_type"),
        ({"format": "gif"}, "format"),
        ({"quarantine": "perhaps"}, "quarantine"),
        ({"reprint": "often"}, "reprint"),
        ({"q": "x" * 101}, "q"),
    ):
        response = api.get("/api/v1/label-prints", query_string=query)
        assert response.status_code == 422 and field in response.get_json()["errors"], query

    web = clients.web(ward.lab.qa)
    html = web.get("/labels/prints").get_data(as_text=True)
    assert cells(html, "print-log", 0) == [str(i) for i in added[::-1][:50]]
    assert "Page 1 of" in html
    found = web.get("/labels/prints?q=smudged+12").get_data(as_text=True)
    assert cells(found, "print-log", 0) == [str(added[12])]
    assert cells(found, "print-log", 7) == ["smudged 12"]
    for bad in (
        "page=0",
        "sort=copies",
        "page_size=100000",
        "page=99",
        "label_type=banner",
        "quarantine=perhaps",
    ):
        response = web.get(f"/labels/prints?{bad}")
        assert response.status_code == 200 and "list-note" in response.get_data(as_text=True), bad


def test_a_print_log_page_costs_as_many_statements_with_thousands(ward: Ward, clients: Any) -> None:
    order = ward.prepared()
    dose_print = first_print(order)
    print_copies(dose_print, 60)
    web, api = clients.web(ward.lab.qa), clients.api(ward.lab.qa)
    paths = (
        "/labels/prints",
        "/labels/prints?page=2&q=smudged&sort=unit&page_size=20",
        "/api/v1/label-prints",
        "/api/v1/label-prints?reprint=yes&label_type=prepared_dose&page=2&page_size=20",
    )
    for path in paths:
        statements_of(api if "/api/" in path else web, path)
    few = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    print_copies(dose_print, 3000, reason="torn")
    many = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    assert many == few


def test_a_units_and_a_lots_own_log_page_through_the_same_list(ward: Ward, clients: Any) -> None:
    """The label pages show their own log a page at a time, newest first (the first page
    is what a print reads again); their APIs page it with X-Pagination."""
    order = ward.prepared()
    dose_print = first_print(order)
    added = print_copies(dose_print, 60)
    unit_id = order.dose_unit_id
    api = clients.api(ward.lab.qa)
    first = api.get(f"/api/v1/units/{unit_id}/labels")
    assert pagination(first)["total"] == 61 and ids(first) == added[::-1][:50]
    second = api.get(f"/api/v1/units/{unit_id}/labels", query_string={"page": 2})
    assert ids(second) == [*added[::-1][50:], dose_print.id]
    bad = api.get(f"/api/v1/units/{unit_id}/labels", query_string={"sort": "copies"})
    assert bad.status_code == 422 and "sort" in bad.get_json()["errors"]
    bag = order.bags[0].unit
    lot_id = db.session.execute(
        select(LabelPrint.lot_id).where(LabelPrint.unit_id == bag.id)
    ).scalar()
    lot = api.get(f"/api/v1/lots/{lot_id}/labels", query_string={"page_size": 1})
    body = lot.get_json()
    assert set(body) == {"lot", "reconciliation", "prints"} and len(body["prints"]) == 1
    assert pagination(lot)["total"] >= 1 and body["reconciliation"]["issued"] >= 1

    web = clients.web(ward.lab.qa)
    html = web.get(f"/units/{unit_id}/labels").get_data(as_text=True)
    listed = [cell for cell in cells(html, "print-log", 0) if cell]  # not the detail rows
    assert listed == [str(i) for i in added[::-1][:50]]
    assert 'id="print-log-pager"' in html and "Page 1 of 2" in html
    last = web.get(f"/units/{unit_id}/labels?page=2").get_data(as_text=True)
    assert str(dose_print.id) in cells(last, "print-log", 0)
    assert "list-note" in web.get(f"/units/{unit_id}/labels?page=7").get_data(as_text=True)

    paths = (f"/units/{unit_id}/labels", f"/api/v1/units/{unit_id}/labels?page=2&page_size=20")
    for path in paths:
        statements_of(api if "/api/" in path else web, path)
    few = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    print_copies(dose_print, 3000, reason="torn")
    many = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    assert many == few


def test_both_lists_show_on_a_new_site_before_any_protocol(clients: Any, make_user: Any) -> None:
    """No protocol approved yet (no visit to filter by), no dose, no print: empty lists."""
    user = make_user("first-qa", Role.QA)
    web, api = clients.web(user), clients.api(user)
    for path, table, none in (
        ("/doses", "doses", "No dose order found."),
        ("/labels/prints", "print-log", "No label printed yet."),
    ):
        response = web.get(path)
        assert response.status_code == 200, path
        assert cells(response.get_data(as_text=True), table, 0) == [none], path
    for path in ("/api/v1/doses", "/api/v1/label-prints"):
        response = api.get(path)
        assert response.get_json() == [] and pagination(response)["total"] == 0, path


# --- who sees them, and in which language ------------------------------------------------------


def test_every_role_reads_both_lists(ward: Ward, clients: Any, make_user: Any) -> None:
    ward.prepared()
    for role in Role:
        user = make_user(f"lists-{role.value}", role)
        web, api = clients.web(user), clients.api(user)
        for path in ("/doses", "/labels/prints", "/api/v1/doses", "/api/v1/label-prints"):
            client = api if "/api/" in path else web
            assert client.get(path).status_code == 200, (role, path)


def test_both_pages_read_in_chinese(ward: Ward, clients: Any, app: Any) -> None:
    order = ward.prepared()
    print_copies(first_print(order), 3)
    web = clients.web(ward.lab.qa)
    pages = {}
    for path in (
        "/doses",
        "/doses?status=prepared&visit=D0&q=AS",
        "/doses?page=9&sort=weight",
        "/labels/prints",
        "/labels/prints?reprint=yes&quarantine=no&label_type=prepared_dose&format=pdf",
        "/labels/prints?page=99&sort=copies",
    ):
        response = web.get(path, headers=CHINESE)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        assert "剂量" in html and "打印记录" in html  # the navigation's links
        # the page's own text: the navigation's other links are other pages' to translate
        pages[path] = html.split("<main", 1)[1].split(">", 1)[1].split("</main>", 1)[0]
    users = [ward.lab.qa, ward.lab.tech]
    data = [app.config["SITE_NAME"], *(u.full_name for u in users), *(u.username for u in users)]
    data += ["smudged", "relabel", "PNG", "ZPL"]  # reasons typed; formats' codes
    data += ["weight", "copies"]  # the sort keys asked for, and those the notes name
    data += ["ordered", "status", "study_id", "visit", "printed", "unit", "type"]
    data += [str(v["name"]) for v in NCT01420432_PARAMETERS["infusions"]]
    assert_translated(pages, data=data)
