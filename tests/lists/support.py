"""Helpers of the list tests (issue 21): many rows inserted in bulk, a page's rows read back
from the HTML, the statements a request sends."""

from __future__ import annotations

import json
import re
from typing import Any

from cellchain.extensions import db
from tests.support.statements import counting_statements


def statements_of(client: Any, path: str) -> list[str]:
    """The SQL statements ``client.get(path)`` sends (a bearer token's last use left out:
    it is written by the clock, at most once a minute, not by the data)."""
    db.session.commit()
    with counting_statements() as statements:
        response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [s for s in statements if not s.lstrip().upper().startswith("UPDATE API_TOKENS")]


def pagination(response: Any) -> dict[str, int]:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return json.loads(response.headers["X-Pagination"])


def cells(html: str, table_id: str, column: int) -> list[str]:
    """The text of column ``column`` (from 0) of each body row of the table ``table_id``."""
    table = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    found = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S):
        columns = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        if len(columns) > column:
            found.append(re.sub(r"<[^>]+>", "", columns[column]).strip())
    return found
