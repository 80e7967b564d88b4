"""Pages of the manufacturing package: product definitions."""

from __future__ import annotations

from flask import Blueprint, url_for
from flask.typing import ResponseReturnValue

from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import now, requires
from cellchain.manufacturing import service
from cellchain.web.documents import approve_from_form, document_page, versions_page

blueprint = Blueprint("manufacturing", __name__)


@blueprint.get("/products")
@requires(Permission.READ_RECORDS)
def products() -> ResponseReturnValue:
    return versions_page(
        "Product definitions",
        list(service.list_products(db.session)),
        "manufacturing.product",
        "product_id",
    )


@blueprint.get("/products/<int:product_id>")
@requires(Permission.READ_RECORDS)
def product(product_id: int) -> ResponseReturnValue:
    found = service.get_product(db.session, product_id)
    return document_page("manufacturing/product.html", "product", found, service.APPROVAL_MEANING)


@blueprint.post("/products/<int:product_id>/approve")
@requires(Permission.SIGN_PRODUCT)
def approve(product_id: int) -> ResponseReturnValue:
    return approve_from_form(
        lambda session, user, password: service.approve_product(
            session,
            product=service.get_product(session, product_id),
            user=user,
            password=password,
            now=now(),
        ),
        back_url=url_for("manufacturing.product", product_id=product_id),
        what="product definition",
    )
