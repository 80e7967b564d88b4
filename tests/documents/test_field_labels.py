"""Every parameter of every kind of controlled document reads in words in the field editor
(issue 22, ``documents/field_labels.py``): "Dose (viable cells per kg of body weight)" with
``dose_viable_cells_per_kg`` small beside it, kept as it is (``translate="no"``), in English
and in Chinese. A parameter added to a version the app ships (or the demo records) without
its words fails here, so none is added unlabelled."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.core.types import utcnow
from cellchain.documents import fields
from cellchain.documents.field_labels import LABELS, label_for
from cellchain.documents.service import KINDS
from cellchain.donors.panels import DEFAULT_PANEL_PARAMETERS, DONOR_TEST_PANELS
from cellchain.dosing.defaults import NCT01420432_PARAMETERS, PL_MSC_OL_01_PARAMETERS
from cellchain.dosing.service import PROTOCOLS
from cellchain.extensions import db
from cellchain.labels.template_documents import LABEL_TEMPLATES, default_versions
from cellchain.manufacturing.defaults import (
    PL_MSC_DONOR_TEST_PANEL,
    PL_MSC_PARAMETERS,
    UC_MSC_PARAMETERS,
)
from cellchain.manufacturing.service import PRODUCTS
from cellchain.quality.defaults import PL_MSC_SPECIFICATION, UC_MSC_SPECIFICATION
from cellchain.quality.service import SPECIFICATIONS

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def database_url(demo_database_url: str) -> str:
    """The demo site's documents: every kind, with the second protocol and product."""
    return demo_database_url


def _kind(document_kind: Any) -> str:
    return str(document_kind.model.signature_entity_type)


def unlabelled(kind: str, parameters: dict[str, Any]) -> list[str]:
    """The paths of the headings and values of ``parameters`` the field editor has no words
    for."""
    return [
        item.label
        for item in fields.items(parameters, kind=kind)
        if item.kind in ("group", "field", "new") and not item.title
    ]


#: every version the app ships: the defaults ``cellchain init`` loads and the demo's others
SHIPPED = [
    (PROTOCOLS, NCT01420432_PARAMETERS),
    (PROTOCOLS, PL_MSC_OL_01_PARAMETERS),
    (PRODUCTS, UC_MSC_PARAMETERS),
    (PRODUCTS, PL_MSC_PARAMETERS),
    (SPECIFICATIONS, UC_MSC_SPECIFICATION),
    (SPECIFICATIONS, PL_MSC_SPECIFICATION),
    (DONOR_TEST_PANELS, DEFAULT_PANEL_PARAMETERS),
    (DONOR_TEST_PANELS, {"tests": PL_MSC_DONOR_TEST_PANEL}),
    *((LABEL_TEMPLATES, default.parameters) for _number, default in default_versions()),
]


@pytest.mark.parametrize(("kind", "parameters"), SHIPPED)
def test_every_parameter_the_app_ships_has_words(kind: Any, parameters: dict[str, Any]) -> None:
    assert unlabelled(_kind(kind), parameters) == []
    assert any(item.hint for item in fields.items(parameters, kind=_kind(kind)))


def test_a_parameter_added_without_words_is_found() -> None:
    """The check above can fail: a new parameter (and a new kind) has no words until given."""
    added = {**UC_MSC_PARAMETERS, "max_glucose_mmol_per_l": 25, "feeding": {"every_days": 3}}
    assert unlabelled("product_definition", added) == [
        "max_glucose_mmol_per_l",
        "feeding",
        "feeding.every_days",
    ]
    assert unlabelled("a_new_kind", {"limit": 1}) == ["limit"]


def test_every_kind_and_every_version_on_the_demo_site_has_words(app: Any) -> None:
    assert {_kind(kind) for kind in KINDS.values()} <= set(LABELS)
    checked = 0
    for kind in KINDS.values():
        for document in db.session.scalars(select(kind.model)):
            missing = unlabelled(_kind(kind), document.parameters)
            assert missing == [], f"{document.code} v{document.version}: {missing}"
            checked += 1
    assert checked >= 5


def test_a_free_key_is_named_in_its_words_and_kept_as_written(app: Any) -> None:
    words, hint = label_for("product_definition", ("vessel_formats", "T75"))
    assert words == 'Growth area of <span translate="no">T75</span>' and hint == "cm²"
    escaped, _hint = label_for("product_definition", ("vessel_formats", "<b>"))
    assert "&lt;b&gt;" in escaped and "<b>" not in escaped


def _draft_page(clients: Any, make_user: Any, headers: dict[str, str] | None = None) -> str:
    qa = make_user("h2qa", "qa")
    protocol = PROTOCOLS.in_force(db.session, "NCT01420432", at=utcnow())
    db.session.commit()
    page = clients.web(qa).get(f"/protocols/{protocol.id}/draft", headers=headers or {})
    assert page.status_code == 200, page.get_data(as_text=True)
    return page.get_data(as_text=True)


def _label_of(page: str, path: str) -> str:
    """The words of the label of the field at ``path``, tags taken away."""
    end = f'<code class="parameter-path" translate="no">{path}</code></label>'
    labels = [chunk for chunk in page.split('<label for="parameter-')[1:] if end in chunk]
    assert len(labels) == 1, path
    words = labels[0].split(end)[0].split(">", 1)[1]
    return " ".join(re.sub(r"<[^>]+>", " ", words).split())


def test_the_draft_form_names_each_field_in_words_with_its_path_small(
    clients: Any, make_user: Any
) -> None:
    page = _draft_page(clients, make_user)
    assert _label_of(page, "dose_viable_cells_per_kg") == (
        "Dose (viable cells per kg of body weight)"
    )
    assert _label_of(page, "age_years.min") == "Youngest (years)"
    assert _label_of(page, "arms[MSC].receives_cells") == (
        "The arm receives cells (its patients are dosed)"
    )
    assert '<h3 class="field-group depth-0">Arms <code class="parameter-path"' in page


def test_the_draft_form_reads_in_chinese(clients: Any, make_user: Any) -> None:
    page = _draft_page(clients, make_user, CHINESE)
    assert _label_of(page, "dose_viable_cells_per_kg") == "剂量 （每千克体重的活细胞数）"
    assert _label_of(page, "thaw_to_infusion_minutes") == "复苏至输注的最长时间 （分钟）"
    assert "Dose (viable" not in page
