"""The release-testing page offers sampling, results and invalidation exactly while the
service accepts them: until the lot's disposition, and results only under a specification."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest

from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.manufacturing.models import Lot, LotStatus
from cellchain.quality import results
from cellchain.quality.models import QcResult, ResultStatus, Specification
from cellchain.quality.results import QcAction, ResultAction, SampleRequest

NOW = utcnow()
QA = SimpleNamespace(id=1, roles=frozenset({Role.QA}))


def lot(status: LotStatus) -> Lot:
    return Lot(id=1, lot_number="X9999260000011-L01", status=status.value)


def state_accepted(act: Callable[[], object]) -> bool:
    """Whether the service got past the lot's state: it then refuses the empty input."""
    try:
        act()
    except InvalidInput:
        return True
    except Conflict:
        return False
    raise AssertionError("the service accepted an empty request")


@pytest.mark.parametrize("with_specification", [False, True])
@pytest.mark.parametrize("status", list(LotStatus))
def test_sampling_and_results_are_offered_exactly_while_the_service_takes_them(
    status: LotStatus, with_specification: bool
) -> None:
    specification = Specification() if with_specification else None
    offered = results.qc_actions(lot(status), specification)
    open_ = status == LotStatus.QUARANTINE  # what the page asked before
    assert (QcAction.TAKE_SAMPLES in offered) == open_
    assert (QcAction.RECORD_RESULTS in offered) == (open_ and with_specification)
    sampled = state_accepted(
        lambda: results.take_samples(
            None, lot(status), SampleRequest(bag_code="", tubes=0), actor=QA, now=NOW
        )
    )
    assert sampled == (QcAction.TAKE_SAMPLES in offered)
    recorded = state_accepted(
        lambda: results.record_results(
            None, lot(status), sample_code="", entries=[], actor=QA, now=NOW, site_zone=None
        )
    )
    assert recorded == open_  # and without a specification nothing can be judged: not offered


@pytest.mark.parametrize("result_status", list(ResultStatus))
@pytest.mark.parametrize("status", list(LotStatus))
def test_a_result_is_offered_for_invalidation_exactly_where_the_service_accepts_it(
    status: LotStatus, result_status: ResultStatus
) -> None:
    result = QcResult(id=7, status=result_status.value, lot=lot(status))
    offered = ResultAction.INVALIDATE in results.result_actions(result)
    assert offered == (status == LotStatus.QUARANTINE and result_status == ResultStatus.VALID)
    if not offered:  # an invalidation accepted is signed: tests/quality/test_results.py
        with pytest.raises(Conflict):
            results.invalidate_result(
                None, result, reason="assay error", user=QA, password="-", now=NOW
            )
