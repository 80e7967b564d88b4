"""Labels over HTTP: the API returns the files and the log, the pages print and reconcile, and
a photo of a label (uploaded) opens the right unit, or says clearly why not."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image, ImageFilter

from cellchain.core.identifiers import make_din, make_unit_code
from cellchain.core.payload import encode_payload
from cellchain.labels.layout import LabelContent, lay_out
from cellchain.labels.output import render_png
from cellchain.labels.templates import load_templates
from tests.support.labels import print_units

zxingcpp = pytest.importorskip("zxingcpp")


def _bag_png(bag: Any) -> bytes:
    printed = print_units([bag], bag.created_by, fmt="png", reason="photo test")
    return printed.data


def _photographed(png: bytes) -> bytes:
    """The label as a phone sees it: on a grey bench, tilted, softer, smaller, as JPEG."""
    label = Image.open(io.BytesIO(png)).convert("L")
    tilted = label.rotate(7, expand=True, fillcolor=150, resample=Image.BICUBIC)
    bench = Image.new("L", (tilted.width + 400, tilted.height + 300), 140)
    bench.paste(tilted, (230, 120))
    soft = bench.filter(ImageFilter.GaussianBlur(1.2)).resize(
        (bench.width * 2 // 3, bench.height * 2 // 3)
    )
    buffer = io.BytesIO()
    soft.convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _upload(data: bytes, name: str = "label.jpg") -> dict[str, Any]:
    return {"photo": (io.BytesIO(data), name)}


def test_api_prints_a_lot_as_pdf_and_logs_it(desk: Any, clients: Any, bags: list[Any]) -> None:
    api = clients.api(desk.lab.tech)
    response = api.post(f"/api/v1/lots/{desk.lot.id}/labels", json={"format": "pdf"})
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert len(response.headers["X-Label-Print-Ids"].split(",")) == len(bags)
    log = api.get(f"/api/v1/lots/{desk.lot.id}/labels").get_json()
    assert log["reconciliation"]["issued"] == len(bags)
    assert log["reconciliation"]["outstanding"] == len(bags)
    assert {p["unit"] for p in log["prints"]} == {bag.code for bag in bags}
    assert all(p["quarantine"] and p["template_version"] == 3 for p in log["prints"])


def test_api_reprint_without_reason_is_a_problem_naming_the_field(
    desk: Any, clients: Any, bags: list[Any]
) -> None:
    api = clients.api(desk.lab.tech)
    url = f"/api/v1/units/{bags[0].id}/labels"
    assert api.post(url, json={"format": "zpl"}).status_code == 200
    refused = api.post(url, json={"format": "zpl"})
    assert refused.status_code == 422
    assert refused.mimetype == "application/problem+json"
    assert "reason" in refused.get_json()["errors"]
    again = api.post(url, json={"format": "zpl", "reason": "torn", "copies": 2})
    assert again.status_code == 200 and again.mimetype == "application/vnd.zebra.zpl"
    log = api.get(url).get_json()
    assert [entry["reason"] for entry in log] == ["torn", None]


def test_api_counts_applied_and_destroyed_labels(desk: Any, clients: Any, bags: list[Any]) -> None:
    api = clients.api(desk.lab.tech)
    api.post(f"/api/v1/units/{bags[0].id}/labels", json={"format": "pdf", "copies": 2})
    applied = api.post(
        f"/api/v1/lots/{desk.lot.id}/labels/applied", json={"code": f"CC1.{bags[0].code}"}
    )
    assert applied.status_code == 200 and applied.get_json()["applied"] == 1
    print_id = applied.get_json()["id"]
    destroyed = api.post(
        f"/api/v1/label-prints/{print_id}/destroyed", json={"count": 1, "reason": "spoiled"}
    )
    assert destroyed.get_json()["outstanding"] == 0
    assert destroyed.get_json()["events"][-1]["reason"] == "spoiled"
    too_many = api.post(
        f"/api/v1/label-prints/{print_id}/destroyed", json={"count": 1, "reason": "x"}
    )
    assert too_many.status_code == 422


def test_a_clinician_may_not_print_labels(desk: Any, clients: Any, make_user: Any) -> None:
    nurse = make_user("nora", "clinician")
    response = clients.api(nurse).post(f"/api/v1/lots/{desk.lot.id}/labels", json={})
    assert response.status_code == 403


def test_a_photographed_label_resolves_to_its_bag_by_api_and_page(
    desk: Any, clients: Any, bags: list[Any]
) -> None:
    photo = _photographed(_bag_png(bags[3]))
    api = clients.api(desk.lab.tech)
    found = api.post("/api/v1/scan/photo", data=_upload(photo))
    assert found.status_code == 200, found.get_json()
    assert found.get_json()["unit"]["code"] == bags[3].code
    web = clients.web(desk.lab.tech)
    opened = web.post("/scan/photo", data=_upload(photo))
    assert opened.status_code == 302
    assert opened.headers["Location"].endswith(f"/units/{bags[3].id}")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "No photo was received"),
        (b"not a picture at all", "not a picture"),
        (None, "No label could be read"),
    ],
)
def test_an_unreadable_photo_gets_a_clear_message(
    desk: Any, clients: Any, data: bytes | None, message: str
) -> None:
    if data is None:  # a real picture without any code on it
        buffer = io.BytesIO()
        Image.new("RGB", (800, 600), (200, 180, 160)).save(buffer, format="JPEG")
        data = buffer.getvalue()
    api = clients.api(desk.lab.tech)
    refused = api.post("/api/v1/scan/photo", data=_upload(data))
    assert refused.status_code == 422
    assert message in refused.get_json()["detail"]
    page = clients.web(desk.lab.tech).post("/scan/photo", data=_upload(data))
    assert page.status_code == 422
    assert message in page.get_data(as_text=True)


def test_a_photo_of_a_label_this_site_never_issued_is_not_found(desk: Any, clients: Any) -> None:
    stranger = make_unit_code(make_din("B1234", 26, 9).canonical, "C", 1)
    png = render_png(lay_out(load_templates()["cryobag"], LabelContent(encode_payload(stranger))))
    page = clients.web(desk.lab.tech).post("/scan/photo", data=_upload(png, "label.png"))
    assert page.status_code == 404
    assert "facility B1234, but this site has not issued it" in page.get_data(as_text=True)


def test_lot_labels_page_prints_and_keeps_what_was_typed_when_refused(
    desk: Any, clients: Any, bags: list[Any]
) -> None:
    web = clients.web(desk.lab.tech)
    page = web.get(f"/lots/{desk.lot.id}/labels")
    assert page.status_code == 200
    assert 'id="reconciliation"' in page.get_data(as_text=True)
    printed = web.post(f"/lots/{desk.lot.id}/labels", data={"format": "zpl", "copies": "1"})
    assert printed.status_code == 200 and printed.mimetype == "application/vnd.zebra.zpl"
    refused = web.post(f"/lots/{desk.lot.id}/labels", data={"format": "pdf", "copies": "3"})
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert "a reprint needs a reason" in body
    assert 'value="3"' in body  # the copies typed are kept
    applied = web.post(
        f"/lots/{desk.lot.id}/labels/applied",
        data={"code": bags[0].code},
        follow_redirects=True,
    )
    assert f"Label of {bags[0].code} applied" in applied.get_data(as_text=True)


def test_unit_label_page_shows_what_the_label_prints(
    desk: Any, clients: Any, bags: list[Any]
) -> None:
    body = clients.web(desk.lab.qc).get(f"/units/{bags[0].id}/labels").get_data(as_text=True)
    assert "QUARANTINE — NOT FOR CLINICAL USE" in body
    assert f"CC1.{bags[0].code}" in body
    assert 'id="print-form"' not in body  # a QC analyst does not print labels
