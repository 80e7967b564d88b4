"""The scan box answers in the reader's language (issue 21): a technician reading Chinese who
scans a lot number or a shipper ID that names nothing is told so in Chinese."""

from __future__ import annotations

import re
from typing import Any

import pytest

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def web(make_user: Any, clients: Any) -> Any:
    return clients.web(make_user("tess-zh", "technician"))


def test_a_lot_number_naming_no_lot_is_refused_in_chinese(
    web: Any, scan_site: dict[str, Any]
) -> None:
    missing = scan_site["din"] + "-L99"

    response = web.get("/scan", query_string={"code": missing}, headers=CHINESE)

    page = response.get_data(as_text=True)
    assert response.status_code == 404, page
    assert f"这看起来是批号，但批次 {missing} 不存在。" in page
    assert not re.search(r"looks like|exists", page)


def test_a_shipper_id_naming_no_shipment_is_refused_in_chinese(
    web: Any, scan_site: dict[str, Any]
) -> None:
    response = web.get("/scan", query_string={"code": "DS-9999"}, headers=CHINESE)

    page = response.get_data(as_text=True)
    assert response.status_code == 404, page
    assert "这看起来是运输箱编号，但没有使用运输箱 DS-9999 的运输。" in page
    assert not re.search(r"looks like|travelled", page)


def test_a_lot_number_and_a_shipper_id_on_file_land_on_their_pages_in_chinese(
    web: Any, scan_site: dict[str, Any]
) -> None:
    for code, path in (
        (scan_site["lot"], f"/lots/{scan_site['lot_id']}"),
        (scan_site["shipper"], f"/shipments/{scan_site['shipment_id']}"),
    ):
        response = web.get("/scan", query_string={"code": code}, headers=CHINESE)
        assert response.status_code == 302 and response.location.endswith(path), code
        page = web.get(response.location, headers=CHINESE).get_data(as_text=True)
        assert '<html lang="zh-Hans">' in page


def test_the_same_refusal_stays_english_without_a_language(
    web: Any, scan_site: dict[str, Any]
) -> None:
    missing = scan_site["din"] + "-L99"
    page = web.get("/scan", query_string={"code": missing}).get_data(as_text=True)
    assert f"This looks like a lot number, but no lot {missing} exists." in page
