"""A parameter holding a text of several lines (a label template's TOML): edited in a text
area of the field editor, kept as typed, and compared line by line on the differences page
and in the API."""

from __future__ import annotations

import html
import re
from typing import Any

from cellchain.core.types import utcnow
from cellchain.documents import fields, texts
from cellchain.extensions import db
from cellchain.labels import template_documents
from cellchain.labels.models import LabelTemplateDocument

KIND = template_documents.LABEL_TEMPLATES
OLD_LINE = "# 4 × 3 inch thermal label on the bag’s overwrap."
NEW_LINE = "# 4 × 3 inch thermal label on the bag’s overwrap (reviewed for issue 22)."
ADDED_LINE = "# The status box is checked at the longest marking in both languages."


def _cryobag(lab: Any) -> LabelTemplateDocument:
    in_force = template_documents.templates_in_force(db.session, at=utcnow())
    document = db.session.get(LabelTemplateDocument, in_force["cryobag"].document_id)
    assert document is not None
    return document


def _text_areas(page: str) -> dict[str, str]:
    """Each text area of the field editor by its posted name, its value as a browser reads
    it (the one line end right after the opening tag is not part of it)."""
    found = re.findall(
        r'<textarea id="parameter-\d+" name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S
    )
    return {html.unescape(name): html.unescape(value.removeprefix("\n")) for name, value in found}


def test_a_text_of_several_lines_is_a_text_area_kept_as_typed() -> None:
    text = "a = 1\n\n  b = 2  \n"
    (item,) = fields.items({"toml": text})
    assert item.value_type == "lines" and item.value == text
    # a browser sends a text area's line ends as CR LF: read back as typed, spaces kept
    posted = {item.name: text.replace("\n", "\r\n"), item.type_name: item.value_type}
    assert fields.parameters_from_form({"toml": text}, posted) == {"toml": text}
    (one_line,) = fields.items({"name": "  one line "})
    assert one_line.value_type == "text"


def test_a_label_template_is_drafted_through_the_fields_editor_with_its_lines(
    lab: Any, clients: Any
) -> None:
    cryobag = _cryobag(lab)
    text = cryobag.parameters["toml"]
    assert OLD_LINE in text
    web = clients.web(lab.qa)
    page = web.get(f"/labels/templates/{cryobag.id}/draft").get_data(as_text=True)
    (item,) = fields.items(cryobag.parameters)
    areas = _text_areas(page)
    assert areas == {item.name: text}  # the whole text, every line, in a text area
    assert f'name="{html.escape(item.name)}" value=' not in page  # not a one-line input

    # untouched, the text round-trips unchanged (a browser posts CR LF)
    form = {
        "editor": "fields",
        "title": cryobag.title,
        "reason": "Same layout, drafted again through the fields",
        item.name: areas[item.name].replace("\n", "\r\n"),
        item.type_name: "lines",
    }
    same = web.post(f"/labels/templates/{cryobag.id}/draft", data=form)
    assert same.status_code == 302, same.get_data(as_text=True)
    first = db.session.scalars(
        db.select(LabelTemplateDocument)
        .where(LabelTemplateDocument.code == "CRYOBAG")
        .order_by(LabelTemplateDocument.version.desc())
    ).first()
    assert first is not None and first.status == "draft"
    assert first.parameters["toml"] == text

    # a line changed and one added
    changed = text.replace(OLD_LINE, NEW_LINE) + ADDED_LINE + "\n"
    form["reason"] = "Comment on the overwrap reviewed"
    form[item.name] = changed.replace("\n", "\r\n")
    made = web.post(f"/labels/templates/{cryobag.id}/draft", data=form)
    assert made.status_code == 302
    draft = db.session.scalars(
        db.select(LabelTemplateDocument)
        .where(LabelTemplateDocument.code == "CRYOBAG")
        .order_by(LabelTemplateDocument.version.desc())
    ).first()
    assert draft is not None and draft.id != first.id
    assert draft.parameters["toml"] == changed
    assert made.headers["Location"].endswith(f"/labels/templates/{draft.id}/differences")

    # the differences page: the lines removed and added, with their numbers
    shown = web.get(made.headers["Location"]).get_data(as_text=True)
    assert 'class="line-diff" data-path="toml"' in shown
    removed = re.findall(r'<tr class="line-removed">(.*?)</tr>', shown, re.S)
    added = re.findall(r'<tr class="line-added">(.*?)</tr>', shown, re.S)
    assert len(removed) == 1 and html.escape(OLD_LINE) in removed[0]
    assert len(added) == 2
    assert html.escape(NEW_LINE) in added[0] and html.escape(ADDED_LINE) in added[1]
    assert "(lines unchanged left out)" in shown  # two changes far apart: two groups
    assert html.escape("y_mm = 31") not in shown  # a line far from both changes

    # the API: the same lines, numbered, and as a unified diff
    api = clients.api(lab.qa)
    answer = api.get(f"/api/v1/label_templates/{draft.id}/differences").get_json()
    (row,) = answer["differences"]
    assert row["path"] == "toml" and row["change"] == "changed"
    changes = [(line["change"], line["text"]) for line in row["lines"] if line["change"] != "kept"]
    old_number = text.splitlines().index(OLD_LINE) + 1
    assert changes == [("removed", OLD_LINE), ("added", NEW_LINE), ("added", ADDED_LINE)]
    (removed_line,) = [line for line in row["lines"] if line["change"] == "removed"]
    assert (removed_line["old_number"], removed_line["new_number"]) == (old_number, None)
    assert f"-{OLD_LINE}\n+{NEW_LINE}" in row["unified"]
    assert f"+{ADDED_LINE}" in row["unified"]


def test_a_one_line_value_is_compared_side_by_side() -> None:
    (row,) = texts.differences({"dose": 1.0}, {"dose": 2.0})
    assert row.lines is None and row.unified is None
    (added,) = texts.differences({}, {"toml": "a = 1\nb = 2\n"})
    assert [(line.change, line.text) for line in added.lines or []] == [
        ("added", "a = 1"),
        ("added", "b = 2"),
    ]
