"""Permission-matrix entries of the follow-up and adverse-event routes (merged into
``tests/test_permission_matrix.MATRIX``)."""

from __future__ import annotations

from cellchain.core.roles import Role

FOLLOW_UP_MATRIX: dict[tuple[str, str], frozenset[Role] | str] = {}
