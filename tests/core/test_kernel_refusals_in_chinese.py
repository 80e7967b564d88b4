"""Issue 21: the shared kernel refuses in the reader's language.

What a technician reads when a typed or scanned code is wrong (a DIN of the wrong length, a
wrong check character, a code without it, a letter O), a record that is not there, a
password rule and an account conflict: each is read in Chinese by whoever asks in Chinese
(``using_language`` for the rules themselves, ``Accept-Language: zh-CN`` for the API and the
pages), and is on record in English (``english_of``, what ``http.unit_of_work`` and the
failed-password audit store).
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.core import accounts
from cellchain.core.i18n import english_of, using_language
from cellchain.core.identifiers import (
    InvalidIdentifier,
    check_character,
    make_din,
    parse_identifier,
    validate_facility_code,
)
from cellchain.core.models import AuditEntry, User
from cellchain.core.payload import read_scan
from cellchain.core.records import get_or_404
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import db

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
#: G123498654321 has the check character H (DOMAIN.md §2)
DIN = "G123498654321"


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in text)


def refused(error: Any) -> tuple[str, str]:
    """What the reader reads and what the record keeps."""
    return str(error.value.detail), english_of(error.value.detail)


# --- identifiers: what a technician reads at the scanner or the keyboard ------------------------


def test_a_din_of_the_wrong_length_reads_in_chinese_and_records_in_english() -> None:
    with using_language("zh_Hans"), pytest.raises(InvalidIdentifier) as error:
        parse_identifier("G1234986543")
    with using_language("zh_Hans"):
        assert str(error.value.title) == "标识码无效"

    shown, english = refused(error)
    assert shown == (
        "DIN 有 13 个字符，含校验字符为 14 个（单位编码为 18 或 19 个）；'G1234986543' 有 11 个。"
    )
    assert english == (
        "A DIN has 13 characters, or 14 with its check character (a unit code 18 or 19); "
        "'G1234986543' has 11."
    )


def test_a_wrong_check_character_reads_in_chinese() -> None:
    with using_language("zh_Hans"), pytest.raises(InvalidIdentifier) as error:
        parse_identifier(DIN + "A")

    shown, english = refused(error)
    assert shown.startswith("校验字符不符：A 不是 'G123498654321' 的校验字符。")
    assert "逐个字符" in shown
    assert english.startswith("Check character mismatch: A is not the check character of")
    assert error.value.reason == "check"


def test_a_code_typed_without_its_check_character_says_what_it_looks_like_in_chinese() -> None:
    with using_language("zh_Hans"), pytest.raises(InvalidIdentifier) as din:
        parse_identifier(DIN)
    with using_language("zh_Hans"), pytest.raises(InvalidIdentifier) as unit:
        parse_identifier(DIN + "V0007")

    assert str(din.value.detail).startswith("'G123498654321' 看起来是缺少校验字符的 DIN")
    assert "（如 G1234 98 654321 [K]）" in str(din.value.detail)
    assert str(unit.value.detail).startswith("'G123498654321V0007' 看起来是缺少校验字符的单位编码")
    assert english_of(unit.value.detail).startswith(
        "'G123498654321V0007' looks like a unit code without its check character"
    )


def test_a_letter_o_in_a_facility_code_asks_about_zero_in_both_languages() -> None:
    with using_language("zh_Hans"), pytest.raises(InvalidInput) as error:
        validate_facility_code("GO234")

    shown, english = refused(error)
    assert shown == (
        "机构代码 'GO234' 的第 2 位是 'O'，此处不允许（从不使用字母 O；是否应为数字零？）。"
    )
    assert error.value.errors == {"facility_code": [shown]}
    assert english == (
        "Facility code 'GO234' has 'O' at position 2, which is not allowed there "
        "(letter O is never used; did you mean zero?)."
    )


def test_a_unit_kind_letter_unknown_names_every_kind_in_the_readers_language() -> None:
    code = make_din("G1234", 98, 654321).body + "X0001"
    with using_language("zh_Hans"), pytest.raises(InvalidIdentifier) as error:
        parse_identifier(code)

    shown, english = refused(error)
    assert "单位编码在 DIN 之后有一个类型字母：D (捐献容器), V (培养容器)" in shown
    assert "C (冻存袋)" in shown
    assert "D (donation container), V (culture vessel)" in english
    assert not has_chinese(english)


def test_a_code_of_another_kind_is_named_in_chinese() -> None:
    coi = "CHG123498654321"
    with using_language("zh_Hans"), pytest.raises(InvalidIdentifier) as error:
        read_scan(coi + check_character(coi), kinds=("DIN", "UNIT"))

    shown, english = refused(error)
    assert shown.endswith("是身份链标识码；此处需要 DIN 或单位编码。")
    assert english.endswith(
        "is a chain-of-identity identifier; a DIN or a unit code is expected here."
    )


def test_the_same_refusal_stays_english_without_a_language() -> None:
    with pytest.raises(InvalidIdentifier) as error:
        parse_identifier(DIN + "A")
    assert not has_chinese(str(error.value.detail))
    assert str(error.value.title) == "Invalid identifier"


def test_the_scan_box_refuses_a_mistyped_din_in_chinese(make_user: Any, clients: Any) -> None:
    web = clients.web(make_user("tess", "technician"))

    response = web.get("/scan", query_string={"code": DIN + "A"}, headers=CHINESE)

    page = response.get_data(as_text=True)
    assert response.status_code == 422, page
    assert "校验字符不符：A 不是 &#39;G123498654321&#39; 的校验字符。" in page
    assert "Check character mismatch" not in page


@pytest.mark.parametrize(
    ("error", "chinese"),
    [
        ("cellchain.core.identifiers:InvalidIdentifier", "标识码无效"),
        ("cellchain.core.accounts:TooManyAttempts", "失败尝试次数过多"),
        ("cellchain.scanning.codes:UnreadableCode", "编码无效"),
        ("cellchain.scanning.codes:AmbiguousCode", "编码有歧义"),
        ("cellchain.clinic.bedside.doses:NotADose", "不是剂量"),
        ("cellchain.clinic.bedside.post_thaw:CountRefused", "复苏后细胞计数被拒绝"),
        ("cellchain.labels.content:NotLabellable", "该单位无法打印标签"),
        ("cellchain.core.pdf:FontMissing", "未安装文档所需的字体"),
    ],
)
def test_a_refusals_title_reads_in_the_readers_language(error: str, chinese: str) -> None:
    """An error class's title is read when the problem is shown, in that moment's language."""
    module, name = error.split(":")
    title = getattr(importlib.import_module(module), name).title
    with using_language("zh_Hans"):
        assert str(title) == chinese
    assert not has_chinese(str(title))


# --- records, numbering -------------------------------------------------------------------------


def test_a_record_not_found_names_its_kind_in_chinese(app: Any) -> None:
    with using_language("zh_Hans"), pytest.raises(NotFound) as error:
        get_or_404(db.session, User, 999_999, "user")

    assert refused(error) == ("没有用户 #999999。", "There is no user #999999.")


def test_a_well_formed_din_this_site_never_issued_is_not_found_in_chinese(app: Any) -> None:
    from cellchain.core import numbering

    with using_language("zh_Hans"), pytest.raises(NotFound) as error:
        numbering.lookup(db.session, DIN + "H")

    shown, english = refused(error)
    assert shown == "G1234 98 654321 [H] 是机构 G1234 的有效 DIN，但本站点未签发过它。"
    assert english.endswith("but this site has not issued it.")


# --- passwords and accounts ---------------------------------------------------------------------


def test_a_password_rule_reads_in_chinese_on_the_field_and_in_english_on_record(
    app: Any, policy: Any
) -> None:
    with using_language("zh_Hans"), pytest.raises(InvalidInput) as error:
        accounts.create_user(
            db.session,
            actor=None,
            now=utcnow(),
            username="wei",
            full_name="Wei Zhang",
            password="short",
            roles=["technician"],
            policy=policy,
        )

    shown, english = refused(error)
    assert shown == f"密码至少需要 {policy.password_min_length} 个字符。"
    assert english == f"The password must have at least {policy.password_min_length} characters."
    assert error.value.errors == {"password": [f"至少 {policy.password_min_length} 个字符。"]}


def test_a_common_password_is_refused_in_chinese(app: Any, policy: Any) -> None:
    with using_language("zh_Hans"), pytest.raises(InvalidInput) as error:
        accounts.create_user(
            db.session,
            actor=None,
            now=utcnow(),
            username="wei",
            full_name="Wei Zhang",
            password="password1234",
            roles=["technician"],
            policy=policy,
        )
    assert str(error.value.detail).startswith("该密码是最常见的密码之一")
    assert error.value.errors == {"password": ["常见密码；请另选一个。"]}


def test_an_account_conflict_reads_in_chinese_and_is_audited_in_english(
    make_user: Any, clients: Any
) -> None:
    admin = make_user("ada", "admin")
    other = make_user("qiu", "qa")
    api = clients.api(admin)

    response = api.put(
        f"/api/v1/users/{other.id}/roles",
        json={"roles": ["admin", "qa"], "reason": "covering"},
        headers=CHINESE,
    )

    body = response.get_json()
    assert response.status_code == 409, body
    assert body["title"] == "管理角色与签名角色不可兼任"
    assert body["detail"].startswith("系统管理员与质量保证从不由同一账户兼任")
    assert body["errors"]["roles"] == [
        "系统管理员不能与质量保证、质量控制分析员、研究者或试验统计师兼任。"
    ]
    db.session.rollback()
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user.change_refused")
    ).one()
    refused_text = json.loads(entry.changes)["refused"][1]
    assert refused_text.startswith(
        "Administrator and Quality assurance are never held by one account"
    )
    assert not has_chinese(refused_text)
    kept = db.session.get(User, other.id)
    assert kept is not None and {role.value for role in kept.roles} == {Role.QA.value}


def test_a_wrong_password_at_signing_reads_in_chinese_and_is_audited_in_english(
    make_user: Any, app: Any
) -> None:
    from cellchain.core.accounts import AccountPolicy, CredentialsRejected

    user = make_user("qiu", "qa")
    with using_language("zh_Hans"), pytest.raises(CredentialsRejected) as error:
        accounts.verify_password(
            db.session, user=user, password="not it", purpose="signature", now=utcnow()
        )
    assert str(error.value.detail) == "密码不正确。"

    db.session.rollback()
    accounts.record_failed_authentication(
        db.session,
        failure=error.value,
        now=utcnow(),
        policy=AccountPolicy.from_config(app.config),
    )
    db.session.commit()
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "signature.failed")
    ).one()
    assert entry.reason == "The password is not correct."


def test_a_token_already_revoked_is_refused_in_chinese(make_user: Any) -> None:
    user = make_user("tess", "technician")
    token, _text = accounts.create_token(db.session, user=user, now=utcnow(), name="scanner")
    accounts.revoke_token(db.session, actor=user, now=utcnow(), token_id=token.id)
    with using_language("zh_Hans"), pytest.raises(Conflict) as error:
        accounts.revoke_token(db.session, actor=user, now=utcnow(), token_id=token.id)
    assert str(error.value.detail) == f"API 令牌 {token.prefix}… 已被吊销。"


# --- requests -----------------------------------------------------------------------------------


def test_a_request_too_large_is_refused_in_chinese(make_user: Any, clients: Any, app: Any) -> None:
    api = clients.api(make_user("tess", "technician"))
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024

    response = api.post("/api/v1/donations", data=b"x" * (1024 * 1024 + 1), headers={**CHINESE})

    assert response.status_code == 413
    assert response.get_json()["detail"] == (
        "请求大于 1 MB，超过本站点可接受的上限；请发送更小的照片或文件。"
    )


def test_a_page_too_large_reads_in_chinese_title_and_all(
    make_user: Any, clients: Any, app: Any
) -> None:
    """The 413's page, refused before any other hook, is in the reader's language: the
    language is the first hook of every request."""
    web = clients.web(make_user("tess", "technician"))
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024

    response = web.post("/donations", data=b"x" * (1024 * 1024 + 1), headers={**CHINESE})

    page = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "<title>内容过大" in page and "Too large" not in page
    assert "请求大于 1 MB" in page


def test_an_api_body_of_the_wrong_shape_is_refused_in_chinese(make_user: Any, clients: Any) -> None:
    """marshmallow's own field messages and the problem's title read in the reader's
    language in the API too, not only on pages."""
    api = clients.api(make_user("tess", "technician"))

    response = api.post("/api/v1/donations", json={"collected_at": "soon"}, headers=CHINESE)

    body = response.get_json()
    assert response.status_code == 422
    assert body["title"] == "输入无效"
    messages = [m for field in body["errors"].values() for m in field]
    assert "Missing data for required field." not in messages
    assert "必填字段缺少数据。" in messages


def test_a_wording_as_html_keeps_a_quoted_marking_as_written(app: Any) -> None:
    """A label problem on a page: the sentence in the reader's language, the marking quoted
    as printed on the label in translate="no", everything else escaped."""
    from cellchain.core.i18n import lazy
    from cellchain.core.wording import Quoted, markup_of, say

    wording = say(lazy("Its label reads “%(marking)s”."), marking=Quoted("NOT <FOR> USE"))
    with using_language("en"):
        assert str(markup_of(wording)) == (
            'Its label reads “<span translate="no">NOT &lt;FOR&gt; USE</span>”.'
        )
