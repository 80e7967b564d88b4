"""Every page of the application in Simplified Chinese (issue 21: "a test renders every page
in zh-Hans and finds no untranslated string"): each GET route that answers HTML, opened on
the demo site with its richest records by a role allowed to use it, with a browser asking
for zh-CN, shows no English word outside the records' own values, codes and units
(``tests/support/untranslated.py``; content a record stores in English is marked
``translate="no"`` on the page).

Every page reads in Chinese now: :data:`KNOWN_ENGLISH`, which listed the pages (by their URL
pattern) still showing English words, each with why, is empty. It stays a ratchet: a page may
be listed there only with its reason, and the test fails when a listed page no longer shows
English (remove it from the list then)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cellchain.core import accounts
from cellchain.core.models import User
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.donors.models import DonorTestPanel
from cellchain.dosing.models import Protocol
from cellchain.extensions import db
from cellchain.labels.models import LabelTemplateDocument
from cellchain.manufacturing.models import Equipment, MaterialLot, ProductDefinition
from cellchain.quality.models import Specification
from tests.support.untranslated import english_words
from tests.test_permission_matrix import (  # noqa: F401 (fixtures)
    MATRIX,
    PUBLIC,
    Clients,
    database_url,
    demo_records,
    demo_urls,
    matrix_snapshot,
    route_methods,
)

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}

#: The pages (URL patterns) that still show English words in Chinese, and why. Only pages
#: that fail belong here: the test fails when one of them reads in Chinese, to remove it.
KNOWN_ENGLISH: dict[str, str] = {}


def record_values(app: Any) -> list[str]:
    """What the demo's records and the site's configuration hold as they are, taken away
    before reading. Each is a stored value shown as stored, in a place no element can mark
    translate="no" (a page's ``<title>``) or inside a sentence a service words (a release
    check's detail names the specification's tests): the people's names and usernames, the
    site's name (``SITE_NAME``), the controlled documents' codes (UC-MSC, an arm's CONTROL),
    the specification's test names, and the names of material lots, their suppliers and
    equipment."""
    users = list(db.session.scalars(select(User)))
    values = [app.config["SITE_NAME"]] + [u.full_name for u in users] + [u.username for u in users]
    documents = (ProductDefinition, Specification, Protocol, DonorTestPanel, LabelTemplateDocument)
    for model in documents:
        for document in db.session.scalars(select(model)):
            values.append(document.code)
            values += [test["name"] for test in document.parameters.get("tests", [])]
            values += [arm["code"] for arm in document.parameters.get("arms", [])]
    for material in db.session.scalars(select(MaterialLot)):
        values += [material.material, material.supplier]
    values += [item.name for item in db.session.scalars(select(Equipment))]
    return values


def test_the_check_reads_what_a_person_reads() -> None:
    """The check this test relies on finds English and follows HTML's translate attribute:
    translate="no" keeps an element's text and read attributes as they are, a translate="yes"
    inside it is read again; data and codes are taken away."""
    page = (
        "<title>Lot · demo site</title><p>已放行 <b>released</b></p>"
        '<a title="reason as stored" translate="no">kept <span translate="yes">召回 open</span></a>'
        '<input placeholder="Search"><td translate="no">lot.release</td> ISBT mL 12.5 Li Wei'
    )
    assert english_words(page, data=["demo site", "Li Wei"]) == [
        "Lot", "released", "open", "Search"
    ]  # fmt: skip


def test_every_page_reads_in_chinese(app: Any, make_user: Any) -> None:
    users: dict[Role, Clients] = {}
    for role in Role:
        user = make_user(f"zh-{role.value.replace('_', '-')}", role)
        _row, token = accounts.create_token(db.session, user=user, now=utcnow(), name="zh")
        users[role] = Clients(app, user, token)
    db.session.commit()
    records = demo_records()
    data = record_values(app)
    left: dict[str, list[str]] = {}  # URL pattern → each of its pages with English words
    read = 0
    for rule, method in route_methods(app):
        allowed = MATRIX[(rule.endpoint, method)]
        if method != "GET" or allowed == PUBLIC or rule.rule.startswith("/api/"):
            continue
        role = next(role for role in Role if role in allowed)
        client = users[role].for_(rule, method)
        for url in demo_urls(rule, records, every=False):
            response = client.get(url, headers=CHINESE)
            if response.status_code != 200 or response.mimetype != "text/html":
                continue
            read += 1
            words = english_words(response.get_data(as_text=True), data=data)
            if words:
                left.setdefault(rule.rule, []).append(f"{url} ({role.value}): {' '.join(words)}")
    assert read > 80, f"only {read} pages read"
    unexpected = {pattern: pages for pattern, pages in left.items() if pattern not in KNOWN_ENGLISH}
    assert not unexpected, "English left on pages not in KNOWN_ENGLISH:\n" + "\n".join(
        f"  {pattern!r}: {page}" for pattern, pages in unexpected.items() for page in pages
    )
    fixed = sorted(set(KNOWN_ENGLISH) - set(left))
    assert not fixed, (
        "These pages read in Chinese now: remove them from KNOWN_ENGLISH:\n  " + "\n  ".join(fixed)
    )
