"""Rules of the manufacturing package: product definition versions and their approval."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cellchain.core import versioning
from cellchain.core.models import Signature, User
from cellchain.core.roles import Permission
from cellchain.errors import Conflict
from cellchain.extensions import DbSession
from cellchain.manufacturing.defaults import UC_MSC_CODE, UC_MSC_PARAMETERS, UC_MSC_TITLE
from cellchain.manufacturing.models import ProductDefinition

#: The meaning printed with QA's signature on a product definition version.
APPROVAL_MEANING = "approval: product definition in force"


def draft_product(
    session: DbSession,
    *,
    actor: User | None,
    now: dt.datetime,
    code: str,
    title: str,
    parameters: dict[str, Any],
) -> ProductDefinition:
    """Write a new draft version of a product definition; it takes effect when QA signs it."""
    return versioning.draft(
        session,
        ProductDefinition,
        actor=actor,
        now=now,
        code=code,
        title=title,
        parameters=parameters,
    )


def load_default_product(
    session: DbSession, *, actor: User | None, now: dt.datetime
) -> ProductDefinition:
    """The UC-MSC defaults as a draft, unless that product is already on file."""
    return versioning.first_or_draft(
        session,
        ProductDefinition,
        actor=actor,
        now=now,
        code=UC_MSC_CODE,
        title=UC_MSC_TITLE,
        parameters=UC_MSC_PARAMETERS,
    )


def approve_product(
    session: DbSession, *, product: ProductDefinition, user: User, password: str, now: dt.datetime
) -> Signature:
    """QA signs a draft; it becomes the version in force and the previous one is superseded."""
    return versioning.approve(
        session,
        product,
        meaning=APPROVAL_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.SIGN_PRODUCT,
    )


def product_in_force(session: DbSession, code: str) -> ProductDefinition:
    """The effective version of product ``code``; refused when QA has approved none."""
    product = versioning.in_force(session, ProductDefinition, code.strip().upper())
    if product is None:
        raise Conflict(
            f"No version of product {code} is in force; QA must approve a product definition "
            "before donations for it can be registered.",
            errors={"product_code": ["No approved version."]},
        )
    return product


def list_products(session: DbSession) -> list[ProductDefinition]:
    return versioning.list_versions(session, ProductDefinition)


def get_product(session: DbSession, product_id: int) -> ProductDefinition:
    return versioning.get(session, ProductDefinition, product_id)
