"""The registration page offers the product definitions in force (follow-up of issue 22): a
placenta (PL-MSC) donation is registered through the page, held to its own product and donor
test panel; with no product in force the page says so and registers nothing."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from cellchain.core.types import utcnow
from cellchain.donors.models import Donation
from cellchain.donors.panels import DONOR_TEST_PANELS
from cellchain.extensions import db
from cellchain.manufacturing.defaults import (
    PL_MSC_CODE,
    PL_MSC_DONOR_TEST_PANEL,
    PL_MSC_PARAMETERS,
    PL_MSC_TITLE,
)
from cellchain.manufacturing.models import ProductDefinition
from cellchain.manufacturing.service import PRODUCTS
from tests.conftest import TEST_PASSWORD
from tests.donors.test_donation_pages import path_of, register_form, text

CHINESE = "zh-CN,zh;q=0.9"


def sign_placenta_product(qa: Any) -> ProductDefinition:
    """PL-MSC and its own donor test panel, signed into force beside UC-MSC."""
    panel = DONOR_TEST_PANELS.draft(
        db.session,
        actor=qa,
        now=utcnow(),
        code=PL_MSC_CODE,
        title="Infectious-disease tests of the birth mother, placenta product",
        parameters={"tests": PL_MSC_DONOR_TEST_PANEL},
    )
    DONOR_TEST_PANELS.approve(db.session, panel, user=qa, password=TEST_PASSWORD, now=utcnow())
    product = PRODUCTS.draft(
        db.session,
        actor=qa,
        now=utcnow(),
        code=PL_MSC_CODE,
        title=PL_MSC_TITLE,
        parameters=PL_MSC_PARAMETERS,
    )
    PRODUCTS.approve(db.session, product, user=qa, password=TEST_PASSWORD, now=utcnow())
    db.session.commit()
    return product


def donation_count() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count(Donation.id))).scalar_one()


def test_the_only_product_in_force_is_chosen_already(lab, clients):
    page = text(clients.web(lab.tech).get("/donations/new"))

    assert re.search(r'id="product-UC-MSC"[^>]*checked', page)
    assert 'id="product-PL-MSC"' not in page


def test_a_placenta_donation_is_registered_through_the_page(lab, clients):
    sign_placenta_product(lab.qa)
    web = clients.web(lab.tech)

    form_page = text(web.get("/donations/new"))
    # two products: none chosen for the technician, each with its source of tissue
    assert 'id="product-UC-MSC"' in form_page and 'id="product-PL-MSC"' in form_page
    assert not re.search(r'name="product_code"[^>]*checked', form_page)
    assert re.search(r'for="product-PL-MSC">.*from the Placenta', form_page)

    response = web.post(
        "/donations/new",
        data=register_form(product_code=PL_MSC_CODE, umbilical_cord=None),
    )

    path = path_of(response)
    donation = db.session.get(Donation, int(path.rsplit("/", 1)[1]))
    assert donation is not None
    assert donation.product_definition.code == PL_MSC_CODE
    # the panel followed the product: PL-MSC's own, with anti-HTLV
    assert donation.donor_test_panel.code == PL_MSC_CODE
    assert "HTLV-AB" in {test["code"] for test in donation.donor_test_panel.parameters["tests"]}
    page = text(web.get(path))
    assert re.search(r'<span translate="no">PL-MSC</span> v1</a>', page)
    assert re.search(r'id="donation-panel"><a [^>]*><span translate="no">PL-MSC</span> v1', page)


def test_an_unknown_or_unchosen_product_is_refused_and_nothing_saved(lab, clients):
    web = clients.web(lab.tech)
    before = donation_count()

    unknown = web.post("/donations/new", data=register_form(product_code="XX-MSC"))
    unchosen = web.post("/donations/new", data=register_form(product_code=""))

    assert unknown.status_code == 409 or unknown.status_code == 422, text(unknown)
    assert "XX-MSC" in text(unknown)
    assert unchosen.status_code == 422
    assert "Choose the product this donation is for." in text(unchosen)
    assert donation_count() == before


def test_the_choice_and_its_refusal_read_in_chinese(lab, clients):
    sign_placenta_product(lab.qa)
    web = clients.web(lab.tech)
    web.environ_base["HTTP_ACCEPT_LANGUAGE"] = CHINESE

    form_page = text(web.get("/donations/new"))
    refused = text(web.post("/donations/new", data=register_form(product_code="")))

    assert "来自胎盘" in form_page
    assert "产品" in form_page
    assert "请选择此捐献所属的产品。" in refused


def test_with_no_product_in_force_the_page_says_so(app, make_user, clients):
    tech = make_user("tina", "technician")

    page = text(clients.web(tech).get("/donations/new"))

    assert 'id="no-product"' in page
    assert re.search(r'<button type="submit" disabled', page)
