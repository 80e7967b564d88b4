"""The labels package's fixture: the bags of the quality desk's lot."""

from __future__ import annotations

from typing import Any

import pytest

from cellchain.extensions import db
from cellchain.labels import service


@pytest.fixture
def bags(desk: Any) -> list[Any]:
    return service.bags_of(db.session, desk.lot)
