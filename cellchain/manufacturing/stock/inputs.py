"""What the stock service takes in and filters by (issue 22), apart from the service so that
the schemas name them without reaching it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cellchain.manufacturing.models import StockAdjustmentKind


class StockState(enum.StrEnum):
    """The stock list's filters, and the technician's queue lines that link to them."""

    IN_STOCK = "in_stock"  #: some remains (or not counted), not recalled
    EXPIRING = "expiring"  #: unexpired, expiring within the warning days, some remains
    EXPIRED_IN_STOCK = "expired_in_stock"  #: expired and some remains: to write off
    LOW = "low"  #: lots of a material whose usable stock is below its reorder level


@dataclass(frozen=True)
class AdjustmentInput:
    kind: StockAdjustmentKind
    #: a write-off or spillage: the quantity taken away; a count correction: the quantity
    #: the count found
    quantity: float
    reason: str
