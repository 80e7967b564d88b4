"""Issue 16 item 11 on the eligibility determination: each check reads PASSED, FAILED or
NOT YET (a panel test without a result), on the page and in the API."""

from __future__ import annotations

import re
from typing import Any

from cellchain.donors.models import InfectiousResult


def test_each_eligibility_check_reads_passed_failed_or_not_yet(lab: Any, clients: Any):
    donation = lab.receive(lab.register())
    lab.full_panel(donation, skip=("SYPHILIS",), results={"HBSAG": InfectiousResult.REACTIVE})
    page = clients.web(lab.qa).get(f"/donations/{donation.id}/eligibility").get_data(as_text=True)
    rows = re.findall(
        r'<tr class="(?:ok|bad)" data-state="([A-Z ]+)"><td>[^<]*<strong>([A-Z ]+)</strong></td>'
        r'<th scope="row"[^>]*>([^<]+)</th>',
        page,
    )
    states = {label: state for state, shown, label in rows if state == shown}
    assert len(states) == len(rows) > 3
    assert states["Donor screening"] == "PASSED"
    assert states["Syphilis (Treponema pallidum)"] == "NOT YET"
    assert [label for label, state in states.items() if state == "FAILED"] == [
        "Hepatitis B surface antigen (HBsAg)"
    ]

    body = clients.api(lab.qa).get(f"/api/v1/donations/{donation.id}/eligibility").get_json()
    by_label = {c["label"]: c for c in body["checks"]}
    assert (
        by_label["Syphilis (Treponema pallidum)"]["state"] == "NOT YET"
        and by_label["Syphilis (Treponema pallidum)"]["passed"] is False
    )
    assert (
        by_label["Hepatitis B surface antigen (HBsAg)"]["state"] == "FAILED"
        and by_label["Hepatitis B surface antigen (HBsAg)"]["passed"] is False
    )
    assert by_label["Donor screening"]["passed"] is True
