"""Loading by id or 404, and a second signer named by username or 404: one kernel helper each,
with the messages the features have always given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cellchain.core import accounts
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.errors import NotFound


def test_a_record_is_loaded_by_its_id(session: Any, make_user: Callable[..., User]) -> None:
    user = make_user("rhea")
    assert get_or_404(session, User, user.id, "user") is user


def test_a_missing_record_is_a_404_naming_what_and_which(session: Any) -> None:
    with pytest.raises(NotFound) as numbered:
        get_or_404(session, User, 999_999, "user")
    assert numbered.value.detail == "There is no user #999999."
    with pytest.raises(NotFound) as bare:
        get_or_404(session, User, 999_999, "bedside check", id_prefix="")
    assert bare.value.detail == "There is no bedside check 999999."


def test_a_second_signer_is_named_exactly(session: Any, make_user: Callable[..., User]) -> None:
    user = make_user("selma")
    assert accounts.user_named(session, "selma") is user
    assert accounts.user_named(session, "  selma ", strip=True) is user
    with pytest.raises(NotFound) as blanks:
        accounts.user_named(session, " selma")
    assert blanks.value.detail == "There is no user ' selma'."
    with pytest.raises(NotFound) as case:
        accounts.user_named(session, "Selma", strip=True)
    assert case.value.detail == "There is no user 'Selma'."
