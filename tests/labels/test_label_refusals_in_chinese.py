"""The label service, the photo reader and the ISBT 128 reader refuse in the reader's language
(issue 21), while what is recorded stays English: a reprint refused, a photo that shows no
label and a scanned ISBT 128 code that is wrong read in Chinese for a technician reading
Chinese; the audit trail, the print log and the label problems a bedside check signs read in
English."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pytest
from flask_login import login_user
from PIL import Image
from sqlalchemy import select

from cellchain.core.audit import AuditEntry
from cellchain.core.i18n import document_text, english_of, using_language
from cellchain.core.types import utcnow
from cellchain.errors import InvalidInput
from cellchain.extensions import db
from cellchain.http import AuditedRefusal, unit_of_work
from cellchain.labels import isbt128, photo, schemas, service
from cellchain.labels.isbt128 import IsbtError, parse_compound_message
from cellchain.labels.models import MAX_COPIES
from tests.support.labels import SETTINGS, print_units, release

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
DIN = "X999926000001"
VALID = isbt128.compound_message(DIN, "S1234V00", dt.datetime(2026, 3, 1, 14, 30))


def _upload(data: bytes) -> dict[str, Any]:
    return {"photo": (io.BytesIO(data), "label.jpg")}


def _blank_photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), (200, 180, 160)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _reprint_refused(bag: Any, actor: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        print_units([bag], actor)
    db.session.rollback()
    return refused.value


# --- label printing and reprints ---------------------------------------------------------------


def test_a_reprint_without_a_reason_is_refused_in_chinese_over_the_api(
    desk: Any, clients: Any, bags: list[Any]
) -> None:
    api = clients.api(desk.lab.tech)
    url = f"/api/v1/units/{bags[0].id}/labels"
    assert api.post(url, json={"format": "zpl"}).status_code == 200

    refused = api.post(url, json={"format": "zpl"}, headers=CHINESE)

    problem = refused.get_json()
    assert refused.status_code == 422, problem
    assert problem["title"] == "需要原因"
    assert problem["detail"] == f"{bags[0].code} 之前已打印过标签；重新打印需要填写原因。"
    assert problem["errors"] == {"reason": ["请填写重新打印的原因。"]}
    # the same refusal without a language is English
    english = api.post(url, json={"format": "zpl"}).get_json()
    assert (
        english["detail"]
        == f"A label was printed before for {bags[0].code}; a reprint needs a reason."
    )


def test_a_refused_reprint_is_audited_in_english_whatever_the_technician_reads(
    app: Any, desk: Any, bags: list[Any]
) -> None:
    print_units([bags[0]], desk.lab.tech)
    refusal = AuditedRefusal("label.print_refused", "unit", bags[0].id)

    with app.test_request_context("/"), using_language("zh_Hans"):
        login_user(desk.lab.tech)
        with pytest.raises(InvalidInput) as refused, unit_of_work(refusal) as session:
            service.print_labels(
                session,
                [bags[0]],
                output_format="pdf",
                copies=1,
                reason="  ",
                settings=SETTINGS,
                actor=desk.lab.tech,
                now=utcnow(),
                name="labels",
            )

    assert refused.value.detail == f"{bags[0].code} 之前已打印过标签；重新打印需要填写原因。"
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "label.print_refused")
    ).one()
    changes = json.loads(entry.changes)
    assert changes["refused"][1] == (
        f"A label was printed before for {bags[0].code}; a reprint needs a reason."
    )
    assert "重新打印" not in entry.changes


def test_the_print_form_refuses_copies_and_format_in_chinese(
    desk: Any, clients: Any, bags: list[Any]
) -> None:
    web = clients.web(desk.lab.tech)
    url = f"/units/{bags[0].id}/labels"

    refused = web.post(url, data={"format": "bmp", "copies": "99"}, headers=CHINESE)

    page = refused.get_data(as_text=True)
    assert refused.status_code == 422, page
    assert "请选择 PNG、PDF 或 ZPL。" in page  # the schema's own message (N_)
    assert "1 到 50。" in page
    assert "Choose PNG" not in page and "From 1 to" not in page


def test_label_service_refusals_read_in_chinese_and_keep_their_english(
    desk: Any, bags: list[Any]
) -> None:
    (record,) = print_units([bags[0]], desk.lab.tech).prints
    with using_language("zh_Hans"):
        cases = []
        for call in (
            lambda: service.print_labels(
                db.session,
                [],
                output_format="pdf",
                copies=1,
                reason=None,
                settings=SETTINGS,
                actor=desk.lab.tech,
                now=utcnow(),
                name="labels",
            ),
            lambda: service.print_labels(
                db.session,
                [bags[1]],
                output_format="pdf",
                copies=MAX_COPIES + 1,
                reason=None,
                settings=SETTINGS,
                actor=desk.lab.tech,
                now=utcnow(),
                name="labels",
            ),
            lambda: service.record_applied(
                db.session,
                None,
                bags[1].code,
                actor=desk.lab.tech,
                now=utcnow(),
                unit=bags[0],
            ),
            lambda: service.destroy_labels(
                db.session, record, 1, " ", actor=desk.lab.tech, now=utcnow()
            ),
            lambda: service.destroy_labels(
                db.session, record, 2, "torn", actor=desk.lab.tech, now=utcnow()
            ),
        ):
            with pytest.raises(InvalidInput) as refused:
                call()
            cases.append(refused.value)
        db.session.rollback()

    no_unit, too_many, wrong_unit, no_reason, too_many_destroyed = cases
    assert no_unit.detail == "没有可打印标签的单位。"
    assert english_of(no_unit.detail) == "There is no unit to print a label for."
    assert too_many.detail == f"份数必须在 1 到 {MAX_COPIES} 之间。"
    assert too_many.errors == {"copies": [f"1 到 {MAX_COPIES}。"]}
    assert wrong_unit.detail == (
        f"扫描的标签属于 {bags[1].code}，不属于 {bags[0].code}；请扫描 {bags[0].code} 上的标签。"
    )
    assert english_of(wrong_unit.detail) == (
        f"The label scanned is {bags[1].code}'s, not {bags[0].code}'s; scan the label on "
        f"{bags[0].code}."
    )
    assert wrong_unit.errors == {"code": ["不是此单位的标签。"]}
    assert no_reason.detail == "销毁标签需要填写原因。"
    assert str(no_reason.title) == "需要原因"
    assert too_many_destroyed.detail == "此次打印只有 1 张标签未核清。"
    assert too_many_destroyed.errors == {"count": ["1 到 1。"]}


def test_a_label_problem_reads_in_chinese_on_a_page_and_in_english_where_it_is_signed(
    desk: Any, bags: list[Any]
) -> None:
    with using_language("zh_Hans"):
        state = service.label_state(db.session, bags[0])
        signed = service.label_problems(db.session, [bags[0]])

    marking = state.marking
    assert state.problem == (f"{bags[0].code}（冻存袋）没有标签：标有“{marking}”的标签从未打印。")
    # what a bedside check signs and a dispatch's refusal quotes: English, as stored
    assert signed == [
        f"{bags[0].code} (cryobag) has no label: its label marked “{marking}” was never printed."
    ]


def test_the_release_reason_offered_in_chinese_is_stored_in_english(
    desk: Any, bags: list[Any]
) -> None:
    print_units(bags, desk.lab.tech)
    release(desk)
    with using_language("zh_Hans"):
        offered = document_text(service.RELEASE_REPRINT_REASON)
        assert offered == "批次已放行：更换隔离标签"
        printed = service.print_lot_labels(
            db.session,
            desk.lot,
            output_format="pdf",
            copies=1,
            reason=offered,  # the form's offered reason, sent back as shown
            settings=SETTINGS,
            actor=desk.lab.tech,
            now=utcnow(),
            only_to_replace=True,
        )
    db.session.commit()

    assert printed.prints
    assert {record.reason for record in printed.prints} == {service.RELEASE_REPRINT_REASON}
    reasons = db.session.scalars(
        select(AuditEntry.reason).where(
            AuditEntry.action == "label.reprinted",
            AuditEntry.entity_id.in_([str(record.id) for record in printed.prints]),
        )
    ).all()
    assert reasons and set(reasons) == {"Lot released: replacing the quarantine labels"}


def test_the_schemas_copies_message_names_the_most_copies() -> None:
    # the message is written out whole so that the catalogue has it: it must say MAX_COPIES
    assert f"From 1 to {MAX_COPIES}." == schemas.COPIES_MESSAGE


# --- a photo of a label ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "chinese", "english"),
    [
        (b"", "未收到照片；请拍摄或选择一张标签照片。", "No photo was received"),
        (
            b"not a picture at all",
            "该文件不是本系统能读取的图片；请发送 JPEG 或 PNG 照片。",
            "not a picture this system can read",
        ),
        (None, "无法从照片中读取标签。", "No label could be read"),
    ],
)
def test_an_unreadable_photo_is_refused_in_chinese(
    desk: Any, clients: Any, data: bytes | None, chinese: str, english: str
) -> None:
    pytest.importorskip("zxingcpp")
    upload = _blank_photo() if data is None else data

    refused = clients.api(desk.lab.tech).post(
        "/api/v1/scan/photo", data=_upload(upload), headers=CHINESE
    )
    problem = refused.get_json()
    assert refused.status_code == 422, problem
    assert problem["title"] == "无法读取标签"
    assert chinese in problem["detail"] and english not in problem["detail"]
    assert problem["errors"]["photo"] == [problem["detail"]]

    page = clients.web(desk.lab.tech).post("/scan/photo", data=_upload(upload), headers=CHINESE)
    assert page.status_code == 422
    assert chinese in page.get_data(as_text=True)


def test_a_photo_refusal_keeps_its_english() -> None:
    with using_language("zh_Hans"), pytest.raises(photo.UnreadablePhoto) as refused:
        photo.read_photo(b"")
    assert english_of(refused.value.detail) == (
        "No photo was received; take or choose a photo of the label."
    )


# --- a scanned ISBT 128 code -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "chinese", "english"),
    [
        (
            "",
            "未扫描到任何内容：ISBT 128 编码为空。",
            "Nothing was scanned: the ISBT 128 code is empty.",
        ),
        (
            VALID[1:],
            "这不是 ISBT 128 标签编码：此类编码以 '=+' 开头，",
            "This is not an ISBT 128 label code: such a code starts with '=+',",
        ),
        (
            "=+04000" + VALID[7:],
            "扫描的 ISBT 128 编码不完整：应包含 4 个部分，但在第 3 个部分后就结束了。",
            "The scanned ISBT 128 code is incomplete: it should hold 4 parts but ends after 3.",
        ),
        (
            "=+02000" + VALID[7:33],
            "扫描的 ISBT 128 编码中没有有效期；",
            "The scanned ISBT 128 code has no expiry;",
        ),
        (
            VALID.replace("=X9999", "=Y9999"),
            "与 DIN Y999926000001 不符",
            "do not match DIN Y999926000001",
        ),
        (
            VALID[:33] + "&>0263661430",
            "有效期 '0263661430' 指的是 2026 年的第 366 天，而该年只有第 001–365 天。",
            "The expiry '0263661430' names day 366 of 2026, which has days 001–365.",
        ),
        (
            VALID[:23] + "=<s1234V00" + VALID[33:],
            "产品代码 's1234V00' 第 1 位是 's'，此处应为大写字母。",
            "Product code 's1234V00' has 's' at position 1, where a capital letter belongs.",
        ),
    ],
)
def test_a_wrong_isbt_code_is_refused_in_plain_chinese(
    text: str, chinese: str, english: str
) -> None:
    with using_language("zh_Hans"), pytest.raises(IsbtError) as refused:
        parse_compound_message(text)

    message = str(refused.value)
    assert chinese in message
    assert english in english_of(refused.value.args[0])
    # plain words for the technician: none of the standard's jargon, in either language
    for jargon in ("data structure", "data identifier", "compound message", "flags"):
        assert jargon not in english_of(refused.value.args[0])


def test_a_wrong_isbt_code_reads_in_english_without_a_language() -> None:
    with pytest.raises(IsbtError, match="holds the DIN twice"):
        parse_compound_message(VALID[:23] + VALID[7:23] + VALID[23:33])
