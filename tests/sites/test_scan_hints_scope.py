"""The scan box's words for a code it does not find hold the site invariant (issue 22,
docs/sites.md): "This looks like a patient study ID, but no patient … is enrolled" (and the
like for shipper IDs; material lots, equipment and lots are the facility's, seen by all) is
said from the codes on file that the reader sees. A clinician of site B typing site A's
patient's study ID, or the shipper site A's dose travelled in, or site A's patient's COI,
gets exactly the answer for a code that does not exist — the page (``/scan``) and the API
(``/api/v1/lookup``, ``/api/v1/scan`` over a bearer token), in English and in Chinese. Each
answer is compared with the answer for a code on file nowhere, with the code swapped, so
the assertions can fail; and site A's own clinician still gets the hint, so it is not
simply gone. The monitor reads every site's hints, and no person's name in them.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from cellchain.core.identifiers import make_coi, parse_identifier
from cellchain.core.models import User
from cellchain.core.roles import Role
from cellchain.extensions import db
from cellchain.scanning import codes
from cellchain.sites import scope
from cellchain.sites.service import sites_of
from tests.sites import test_site_scope
from tests.support.ward import Ward

#: site A's patient infused (AS-001, its dose shipped in DS-0001), and site B's clinician
#: ``bea`` (the site scope tests' fixture)
two_sites = test_site_scope.two_sites

#: the shipper site A's dose travelled in (``Ward.ship``'s)
SHIPPED_IN = "DS-0001"

LANGUAGES = {"en": {"Accept-Language": "en"}, "zh": {"Accept-Language": "zh-CN,zh;q=0.9"}}

#: codes of the shapes of site A's on a prefix no record has: what a code on file nowhere gets
NOWHERE = {"study_id": "XQ-001", "shipper": "XQ-0001"}


def _page_error(response: Any) -> str:
    """The scan page's refusal (its status and the words of ``#scan-error``)."""
    found = re.search(
        r'<div class="message error" role="alert" id="scan-error">(.*?)</div>',
        response.get_data(as_text=True),
        re.S,
    )
    assert found is not None, response.get_data(as_text=True)
    return f"{response.status_code} {' '.join(found.group(1).split())}"


def _api_error(response: Any) -> str:
    body = response.get_json()
    errors = body.get("errors")
    return f"{response.status_code} {body.get('title')} | {body.get('detail')} | {errors}"


def _client(clients: Any, kind: str, user: Any) -> Any:
    """A logged-in browser for the page, a bearer token's client for the API."""
    return clients.web(user) if kind == "page" else clients.api(user)


def _answer(client: Any, kind: str, code: str, language: str) -> str:
    headers = LANGUAGES[language]
    if kind == "page":
        return _page_error(client.get("/scan", query_string={"code": code}, headers=headers))
    path = "/api/v1/lookup" if kind == "lookup" else "/api/v1/scan"
    return _api_error(client.get(path, query_string={"code": code}, headers=headers))


def _site_a_codes(two_sites: dict[str, Any]) -> dict[str, str]:
    return {"study_id": two_sites["patient"].study_id, "shipper": SHIPPED_IN}


@pytest.mark.parametrize("language", sorted(LANGUAGES))
@pytest.mark.parametrize("kind", ["page", "lookup"])
def test_site_as_codes_read_to_site_b_as_codes_on_file_nowhere(
    clients: Any, two_sites: dict[str, Any], ward: Ward, kind: str, language: str
) -> None:
    bea = two_sites["bea"]
    client, own = (_client(clients, kind, user) for user in (bea, ward.clinic.clinician))
    for what, code in _site_a_codes(two_sites).items():
        nowhere = NOWHERE[what]
        assert len(nowhere) == len(code) and nowhere[:3] != code[:3]
        # site A's clinician is told what a code of that prefix is (the hint exists) …
        prefix, _sep, _number = code.partition("-")
        near = f"{prefix}-{'9' * len(_number)}"
        hinted = _answer(own, kind, near, language)
        assert near in hinted and _answer(own, kind, nowhere, language) != hinted.replace(
            near, nowhere
        ), hinted
        # … and site B's, for site A's very code, exactly what a code on file nowhere gets
        answer = _answer(client, kind, code, language)
        assert answer.replace(code, nowhere) == _answer(client, kind, nowhere, language), answer
        # nor is the prefix of site A's codes a hint to site B
        assert _answer(client, kind, near, language).replace(near, nowhere) == _answer(
            client, kind, nowhere, language
        )


def _never_issued_coi(coi: str) -> str:
    """A COI of the same facility and year as ``coi`` that no one was issued."""
    body = parse_identifier(coi).body
    facility, year = body[2:7], 2000 + int(body[7:9])
    return make_coi(facility, year, 999_999).canonical


@pytest.mark.parametrize("language", sorted(LANGUAGES))
@pytest.mark.parametrize("kind", ["page", "lookup", "scan"])
def test_site_as_coi_reads_to_site_b_as_a_coi_never_issued(
    clients: Any, two_sites: dict[str, Any], ward: Ward, kind: str, language: str
) -> None:
    patient, bea = two_sites["patient"], two_sites["bea"]
    client = _client(clients, kind, bea)
    coi = parse_identifier(patient.coi)
    other = parse_identifier(_never_issued_coi(patient.coi))
    answer = _answer(client, kind, patient.coi, language)
    assert answer.startswith("404"), answer
    nowhere = _answer(client, kind, other.canonical, language)
    assert answer.replace(coi.display, other.display) == nowhere, answer
    assert patient.study_id not in answer


def test_the_hints_read_only_what_the_site_filter_lets_through(
    app: Any, two_sites: dict[str, Any]
) -> None:
    """Below the interfaces: ``codes.find`` under site B's filter answers site A's codes as
    codes on file nowhere (every read the hints make goes through the ORM's site filter)."""
    bea = two_sites["bea"]
    visible = frozenset(site.id for site in sites_of(db.session, bea))
    assert visible
    told = []
    for what, code in _site_a_codes(two_sites).items():
        with app.test_request_context(headers=LANGUAGES["en"]):
            with scope.restricted_to(visible):
                with pytest.raises(codes.UnknownCode) as found:
                    codes.find(db.session, code, roles=bea.roles)
                with pytest.raises(codes.UnknownCode) as nowhere:
                    codes.find(db.session, NOWHERE[what], roles=bea.roles)
            if found.value.detail.replace(code, NOWHERE[what]) != nowhere.value.detail:
                told.append(f"{what}: {found.value.detail}")
            with pytest.raises(codes.UnknownCode) as everyone:
                codes.find(db.session, code.rsplit("-", 1)[0] + "-999", roles=bea.roles)
            assert "looks like" in everyone.value.detail  # unfiltered, the hint is there
    assert told == []


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_the_monitor_reads_every_sites_hints_and_no_name(
    clients: Any, two_sites: dict[str, Any], make_user: Any, ward: Ward, language: str
) -> None:
    monitor = make_user("mona", Role.MONITOR)
    users = list(db.session.query(User))
    names = {u.full_name for u in users if u.full_name} | {u.username for u in users}
    names.discard("mona")
    codes_typed = ["AS-999", "DS-9999", "XQ-001", _never_issued_coi(two_sites["patient"].coi)]
    for kind in ("page", "lookup"):
        mine, lab = (_client(clients, kind, user) for user in (monitor, ward.lab.tech))
        for code in codes_typed:
            answer = _answer(mine, kind, code, language)
            # the monitor sees every site: the same hint as the facility's technician
            assert answer == _answer(lab, kind, code, language), answer
            named = [name for name in names if re.search(rf"\b{re.escape(name)}\b", answer)]
            assert named == [], answer
