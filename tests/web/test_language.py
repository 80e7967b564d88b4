"""The language of the pages: the browser's, then the user's choice, saved and audited."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from cellchain.core.i18n import ACTIVE_LANGUAGE, best_language, gettext, lazy, using_language
from cellchain.core.models import AuditEntry, User
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD


def html_lang(page: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', page)
    assert found, "no <html lang>"
    return found.group(1)


@pytest.fixture
def clinician(make_user):
    return make_user("clara", "clinician")


def test_the_browser_language_decides_before_anyone_chooses(app):
    client = app.test_client()
    chinese = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    english = client.get("/login", headers={"Accept-Language": "de-DE,en;q=0.5"})

    assert html_lang(chinese.get_data(as_text=True)) == "zh-Hans"
    assert "<h1>登录</h1>" in chinese.get_data(as_text=True)
    assert html_lang(english.get_data(as_text=True)) == "en"
    assert "<h1>Log in</h1>" in english.get_data(as_text=True)


def test_a_browser_asking_for_no_language_cellchain_speaks_gets_the_site_language(make_app):
    app = make_app(SITE_LANGUAGE="zh_Hans")
    page = app.test_client().get("/login", headers={"Accept-Language": "fr"})

    assert html_lang(page.get_data(as_text=True)) == "zh-Hans"


def test_a_user_switches_to_chinese_and_keeps_it_on_the_next_login(app, clients, clinician):
    web = clients.web(clinician)
    assert "Log out" in web.get("/").get_data(as_text=True)

    switched = web.post("/language", data={"language": "zh_Hans", "next": "/"})
    assert switched.status_code == 302 and switched.location.endswith("/")
    home = web.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert html_lang(home) == "zh-Hans"
    assert "退出登录" in home and "临床医生" in home

    db.session.expire_all()
    saved = db.session.get(User, clinician.id)
    assert saved is not None and saved.language == "zh_Hans"
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user.language_chosen")
    ).one()
    assert entry.entity_id == str(clinician.id)

    elsewhere = clients.web(clinician)  # a new browser, asking for English
    page = elsewhere.get("/", headers={"Accept-Language": "en-GB"}).get_data(as_text=True)
    assert html_lang(page) == "zh-Hans"


def test_a_language_cellchain_does_not_speak_changes_nothing(clients, clinician):
    web = clients.web(clinician)
    response = web.post("/language", data={"language": "klingon", "next": "//evil.example/"})

    assert response.status_code == 302 and response.location.endswith("/")
    db.session.expire_all()
    assert db.session.get(User, clinician.id).language is None
    assert html_lang(web.get("/").get_data(as_text=True)) == "en"


def test_a_choice_made_on_the_login_page_survives_the_login(app, clinician):
    client = app.test_client()
    client.post("/language", data={"language": "zh_Hans", "next": "/login"})
    login = client.post("/login", data={"username": clinician.username, "password": TEST_PASSWORD})
    assert login.status_code == 302

    home = client.get("/", headers={"Accept-Language": "en"})
    assert home.status_code == 200 and html_lang(home.get_data(as_text=True)) == "zh-Hans"


@pytest.mark.parametrize(
    ("accepted", "language"),
    [
        (["zh-CN", "en"], "zh_Hans"),
        (["zh-Hans-CN"], "zh_Hans"),
        (["zh"], "zh_Hans"),
        (["fr", "en-US"], "en"),
        (["fr", "de"], None),
        ([], None),
    ],
)
def test_best_language_reads_the_browser_order(accepted, language):
    assert best_language(accepted) == language


def test_texts_follow_the_language_of_the_moment():
    label = lazy("Log out")
    assert ACTIVE_LANGUAGE.get() == "en"
    assert str(label) == "Log out"
    with using_language("zh_Hans"):
        assert str(label) == "退出登录"
        assert gettext("Welcome, %(name)s", name="Li") == "欢迎，Li"
    assert gettext("Welcome, %(name)s", name="Li") == "Welcome, Li"


def test_a_refusal_is_audited_in_english_whatever_the_refused_person_reads(app, clinician):
    from flask_login import login_user

    from cellchain.errors import InvalidInput
    from cellchain.http import AuditedRefusal, unit_of_work

    refusal = AuditedRefusal("weight.refused", "patient", 7)
    with app.test_request_context("/"), using_language("zh_Hans"):
        login_user(clinician)
        shown = gettext("Welcome, %(name)s", name="Li")
        with pytest.raises(InvalidInput) as refused, unit_of_work(refusal):
            raise InvalidInput(shown)

    assert refused.value.detail == "欢迎，Li"  # what the person reads
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "weight.refused")
    ).one()
    assert "Welcome, Li" in str(entry.changes) and "欢迎" not in str(entry.changes)


def test_a_plural_in_a_template_is_filled_with_its_count(app):
    template = app.jinja_env.from_string(
        "{% trans count=n %}{{ count }} dose waits{% pluralize %}{{ count }} doses wait"
        "{% endtrans %}"
    )
    with app.test_request_context("/"):
        assert template.render(n=1) == "1 dose waits"
        assert template.render(n=3) == "3 doses wait"


def test_a_page_asks_a_chinese_reader_to_log_in_as_it_asks_an_english_one(app):
    client = app.test_client()
    for accepted in ("zh-CN", "en"):
        response = client.get("/patients", headers={"Accept-Language": accepted})
        assert response.status_code == 302, accepted
        assert "/login" in response.location
    api = client.get("/api/v1/worklist", headers={"Accept-Language": "zh-CN"})
    assert api.status_code == 401
    assert api.get_json()["title"] == "需要登录"


def test_a_document_text_inside_a_sentence_reads_in_english_in_its_english():
    from cellchain.core.i18n import document_text, english_of

    with using_language("zh_Hans"):
        shown = gettext("%(role)s: waiting for you", role=document_text("Month 3"))
        unknown = document_text("Day 5 (a visit QA named)")
    assert shown == "第 3 个月：待您处理"
    assert english_of(shown) == "Month 3: waiting for you"
    assert unknown == "Day 5 (a visit QA named)"  # not in the catalogue: as signed


def test_a_form_refused_by_its_shape_says_so_in_the_readers_language(app):
    import marshmallow as ma
    from werkzeug.datastructures import MultiDict

    from cellchain.errors import InvalidInput
    from cellchain.web.forms import load_form

    class Weight(ma.Schema):
        weight_kg = ma.fields.Float(required=True)
        measured_on = ma.fields.Date(required=True)

    form = MultiDict({"weight_kg": "heavy"})
    with (
        app.test_request_context("/"),
        using_language("zh_Hans"),
        pytest.raises(InvalidInput) as refused,
    ):
        load_form(Weight(), form)
    assert refused.value.detail == "部分字段需要修改。"
    assert refused.value.errors == {
        "weight_kg": ["不是有效的数字。"],
        "measured_on": ["必填字段缺少数据。"],
    }
    with app.test_request_context("/"), pytest.raises(InvalidInput) as english:
        load_form(Weight(), form)
    assert english.value.errors["measured_on"] == ["Missing data for required field."]
