"""A donation collects the tissue its product is made from (review 2 item 11): a placenta
product (PL-MSC, ``source = "placenta"``) registered with umbilical cord only is refused, on
the page and through the API, with the refusal on the tissue boxes, in the reader's
language; nothing is saved."""

from __future__ import annotations

from sqlalchemy import func, select

from cellchain.donors.models import Donation
from cellchain.extensions import db
from cellchain.manufacturing.defaults import PL_MSC_CODE
from tests.donors.test_donation_pages import path_of, register_form, text
from tests.donors.test_donations_api import donation_body, problem
from tests.donors.test_registration_product import CHINESE, sign_placenta_product


def donation_count() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count(Donation.id))).scalar_one()


def test_a_placenta_product_with_cord_only_is_refused_on_the_page(lab, clients):
    sign_placenta_product(lab.qa)
    web = clients.web(lab.tech)
    before = donation_count()

    response = web.post(
        "/donations/new", data=register_form(product_code=PL_MSC_CODE, placenta=None)
    )

    assert response.status_code == 422, text(response)
    page = text(response)
    assert "PL-MSC is made from the placenta: tick placenta among the tissues collected" in page
    assert donation_count() == before


def test_the_page_refusal_reads_in_chinese(lab, clients):
    sign_placenta_product(lab.qa)
    web = clients.web(lab.tech)
    web.environ_base["HTTP_ACCEPT_LANGUAGE"] = CHINESE

    response = web.post(
        "/donations/new", data=register_form(product_code=PL_MSC_CODE, placenta=None)
    )

    assert response.status_code == 422
    assert "PL-MSC 由胎盘制备" in text(response)


def test_a_placenta_product_with_placenta_is_registered(lab, clients):
    sign_placenta_product(lab.qa)
    web = clients.web(lab.tech)

    response = web.post(
        "/donations/new", data=register_form(product_code=PL_MSC_CODE, umbilical_cord=None)
    )

    donation = db.session.get(Donation, int(path_of(response).rsplit("/", 1)[1]))
    assert donation is not None and donation.tissues == ["placenta"]


def test_the_api_refuses_it_on_the_tissue_field(lab, clients):
    sign_placenta_product(lab.qa)
    api = clients.api(lab.tech)
    before = donation_count()

    body = problem(
        api.post(
            "/api/v1/donations",
            json=donation_body(product_code=PL_MSC_CODE, placenta=False),
        ),
        422,
    )

    assert "made from the placenta" in body["detail"]
    assert body["errors"]["tissues"] == [body["detail"]]
    assert donation_count() == before


def test_a_product_naming_no_source_takes_either_tissue(lab, clients):
    api = clients.api(lab.tech)

    created = api.post("/api/v1/donations", json=donation_body(umbilical_cord=False))

    assert created.status_code == 201, text(created)
    assert created.get_json()["tissues"] == ["placenta"]
