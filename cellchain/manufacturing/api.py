"""API of the manufacturing package: product definitions."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core import versioning
from cellchain.core.roles import Permission
from cellchain.core.schemas import SignIn
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, unit_of_work
from cellchain.manufacturing import service
from cellchain.manufacturing.schemas import ProductDefinitionOut

products_api = Blueprint(
    "products_api",
    __name__,
    url_prefix="/api/v1/products",
    description="Product definitions (QA-approved versions)",
)
blueprints = (products_api,)


@products_api.get("")
@requires(Permission.READ_RECORDS)
@products_api.response(200, ProductDefinitionOut(many=True))
def list_products() -> Any:
    """Every version of every product definition, newest version first."""
    return [versioning.describe(db.session, p) for p in service.list_products(db.session)]


@products_api.get("/<int:product_id>")
@requires(Permission.READ_RECORDS)
@products_api.response(200, ProductDefinitionOut)
def get_product(product_id: int) -> Any:
    """One version with its parameters and signatures (each marked valid or not)."""
    return versioning.describe(db.session, service.get_product(db.session, product_id))


@products_api.post("/<int:product_id>/approve")
@requires(Permission.SIGN_PRODUCT)
@products_api.arguments(SignIn)
@products_api.response(200, ProductDefinitionOut)
def approve_product(data: dict[str, Any], product_id: int) -> Any:
    """QA approves a draft with an e-signature (password re-entered); it takes effect."""
    with unit_of_work() as session:
        product = service.get_product(session, product_id)
        service.approve_product(
            session, product=product, user=acting_user(), password=data["password"], now=now()
        )
    return versioning.describe(db.session, product)
