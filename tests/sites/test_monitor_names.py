"""The monitor never reads a person's name (docs/sites.md, review 2 items 4 and 7): every GET
route the monitor may read, on two sites' records, answers without any user's full name,
username (as a word) or e-mail, and without the words of the fields that hold a person by
design (a donation's collector, who took custody at a hand-off, who performed a calibration,
a site's contact)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from cellchain.chain.models import UnitEvent
from cellchain.core.models import User
from cellchain.core.roles import Role
from cellchain.donors.models import Donation
from cellchain.extensions import db
from cellchain.sites import monitor
from tests.sites.test_site_scope import two_sites  # noqa: F401
from tests.support.ward import Ward
from tests.test_permission_matrix import MATRIX, PUBLIC, demo_records, demo_urls, route_methods

WITHHELD = "[withheld from the monitor]"


def _as_word(text: str, word: str) -> re.Match[str] | None:
    return re.search(r"(?<![\w./@-])" + re.escape(word) + r"(?![\w@-])", text)


def test_no_route_the_monitor_reads_names_a_person(
    app: Any,
    clients: Any,
    two_sites: dict[str, Any],  # noqa: F811
    ward: Ward,
    make_user: Any,
) -> None:
    mona = make_user("mona", Role.MONITOR)
    users = [user for user in db.session.scalars(select(User)) if user.id != mona.id]
    for user in users:
        user.email = user.email or f"{user.username}@hospital.example"
    donation = db.session.scalars(select(Donation)).first()
    assert donation is not None and donation.collector == "Midwife R. Okafor"
    hand_off = db.session.scalars(select(UnitEvent)).first()
    assert hand_off is not None
    hand_off.counterparty = "courier: J. Doe"
    db.session.commit()
    persons = [donation.collector, hand_off.counterparty]
    records = demo_records()
    web = clients.web(mona)
    hits: list[str] = []
    read = 0
    for rule, method in route_methods(app):
        allowed = MATRIX[(rule.endpoint, method)]
        if method != "GET" or allowed == PUBLIC or Role.MONITOR not in allowed:
            continue
        for url in demo_urls(rule, records, every=True):
            answer = web.get(url)
            read += 1
            assert answer.status_code < 500, url
            text = answer.get_data(as_text=True)
            for secret in [user.full_name for user in users] + [u.email for u in users] + persons:
                if secret and secret in text:
                    at = text.index(secret)
                    hits.append(f"{url}: {text[max(0, at - 60) : at + 40]!r}")
            for user in users:
                found = _as_word(text, user.username)
                if found:
                    at = found.start()
                    hits.append(f"{url}: {user.username} {text[max(0, at - 60) : at + 40]!r}")
    assert read > 300
    assert hits == []
    # the collector is shown as withheld, on the page and in the API
    for url in (f"/donations/{donation.id}", f"/api/v1/donations/{donation.id}"):
        text = web.get(url).get_data(as_text=True)
        assert WITHHELD in text, url
    answer = clients.api(mona).get(f"/api/v1/donations/{donation.id}").get_json()
    assert answer["collector"] == WITHHELD
    # in the reader's language
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
    page = web.get(f"/donations/{donation.id}", headers=chinese).get_data(as_text=True)
    assert donation.collector not in page and WITHHELD not in page
    assert "监查员" in page
    # others read the collector as before
    registrar = donation.registered_by
    assert registrar is not None
    own = clients.web(registrar).get(f"/donations/{donation.id}").get_data(as_text=True)
    assert donation.collector in own


def test_the_username_beside_a_pseudonym_is_removed() -> None:
    names = {"Clara Cline": "Clinician U4"}
    logins = {"cleo": "Clinician U4"}
    html = "Signed by <strong>Clara Cline</strong> (cleo), today; cleo"
    assert monitor.pseudonymise(html, names, json_body=False, logins=logins) == (
        "Signed by <strong>Clinician U4</strong>, today; cleo"
    )
    zh = "签名人 <strong>Clara Cline</strong>（cleo），今天"
    assert monitor.pseudonymise(zh, names, json_body=False, logins=logins) == (
        "签名人 <strong>Clinician U4</strong>，今天"
    )
    body = '{"administered_by": "Clara Cline (cleo)", "by": "cleo"}'
    assert monitor.pseudonymise(body, names, json_body=True, logins=logins) == (
        '{"administered_by": "Clinician U4", "by": "Clinician U4"}'
    )


def test_a_person_field_is_withheld_as_a_whole_word_outside_tags_and_keys() -> None:
    values = {"Ward 3": "[withheld]", "Okafor": "[withheld]"}
    html = '<a href="/x/Ward 3">Ward 3</a> Ward 30 <td title="Okafor">R. Okafor</td>'
    assert monitor.pseudonymise(html, {}, json_body=False, values=values) == (
        '<a href="/x/Ward 3">[withheld]</a> Ward 30 <td title="Okafor">R. [withheld]</td>'
    )
    body = '{"Okafor": "Okafor", "by": "Okafor, nurse"}'
    assert monitor.pseudonymise(body, {}, json_body=True, values=values) == (
        '{"Okafor": "[withheld]", "by": "[withheld], nurse"}'
    )
