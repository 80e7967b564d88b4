"""The traceability package's fixture: one patient infused, one dose waiting."""

from __future__ import annotations

from typing import Any

from tests.support.recalls import infuse
from tests.support.scenes import scene
from tests.support.ward import Ward


@scene
def infused(ward: Ward) -> Any:
    """One patient infused from the released lot, and one with a dose prepared but not shipped."""
    infusion = infuse(ward)
    waiting = ward.prepared()
    return infusion, waiting
