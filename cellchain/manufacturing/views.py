"""Pages of the manufacturing package: product definitions."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.core import signatures
from cellchain.core.roles import Permission
from cellchain.core.schemas import SignIn
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, unit_of_work
from cellchain.manufacturing import service
from cellchain.web.forms import load_form

blueprint = Blueprint("manufacturing", __name__)


@blueprint.get("/products")
@requires(Permission.READ_RECORDS)
def products() -> ResponseReturnValue:
    return render_template(
        "core/versions.html",
        heading="Product definitions",
        documents=service.list_products(db.session),
        detail_endpoint="manufacturing.product",
        id_name="product_id",
    )


@blueprint.get("/products/<int:product_id>")
@requires(Permission.READ_RECORDS)
def product(product_id: int) -> ResponseReturnValue:
    found = service.get_product(db.session, product_id)
    return render_template(
        "manufacturing/product.html",
        product=found,
        manifests=signatures.manifest(db.session, found),
        approval_meaning=service.APPROVAL_MEANING,
    )


@blueprint.post("/products/<int:product_id>/approve")
@requires(Permission.SIGN_PRODUCT)
def approve(product_id: int) -> ResponseReturnValue:
    try:
        data = load_form(SignIn(), request.form)
        with unit_of_work() as session:
            found = service.get_product(session, product_id)
            service.approve_product(
                session, product=found, user=acting_user(), password=data["password"], now=now()
            )
    except DomainError as error:
        flash(f"Not signed: {error.detail}", "error")
    else:
        flash("Signed: this product definition version is now in force.", "success")
    return redirect(url_for("manufacturing.product", product_id=product_id))
