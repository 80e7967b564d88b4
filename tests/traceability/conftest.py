"""The traceability package's fixture: one patient infused, one dose waiting."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.recalls import infuse
from tests.support.ward import Ward


@pytest.fixture
def infused(ward: Ward) -> Any:
    """One patient infused from the released lot, and one with a dose prepared but not shipped."""
    infusion = infuse(ward)
    waiting = ward.prepared()
    return infusion, waiting
