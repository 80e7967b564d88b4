"""Label templates as controlled documents (DOMAIN.md §9; issue 22).

Each label type's template is a versioned, QA-approved document (``LABEL_TEMPLATES``, table
``label_templates``): its ``code`` is the label type in capitals (CRYOBAG), its parameters
``{"toml": "<the template's text>"}``, the text a file in ``labels/`` holds. The files are the
default versions: ``cellchain init`` and the demo load each under its file's ``version`` (so
cryobag starts at v3, the version earlier prints recorded), later versions number on from
there. Printing reads the version in force of each label type (``templates_in_force``); a
print records that version's id, its number and the SHA-256 of its text, which for a default
version is the file's hash, so a print made before issue 22 still names the same layout.

A template that fails today's check (``templates.parse_template``: known fields, the fields its
label type must carry, 21 CFR 1271.370 and 312.6, everything inside the label) is refused when
drafted and before it is signed. A version's own text is read for everything but its version:
the document's version number is the template's.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cellchain.core import audit
from cellchain.core.i18n import N_, _, lazy
from cellchain.core.models import User
from cellchain.core.roles import Permission
from cellchain.core.types import canonical_json
from cellchain.documents.service import DefaultVersion, DocumentKind
from cellchain.documents.versioning import VersionStatus
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession
from cellchain.labels.models import LabelTemplateDocument
from cellchain.labels.template_documents.fit import Cut, cut_fields
from cellchain.labels.templates import REQUIRED, LabelTemplate, TemplateError, parse_template
from cellchain.quality.wording import formatted_later
from cellchain.resources import resource_path

#: the kind's name in messages (``VersionedDocument.document_label``), for the catalogue
DOCUMENT_LABELS = (N_("Label template"), N_("label template"))

TEXT_KEY = "toml"


def _default_files() -> dict[str, Path]:
    """The template files shipped in ``labels/``, by label type (their file name)."""
    return {path.stem: path for path in sorted(resource_path("labels").glob("*.toml"))}


def default_versions() -> list[tuple[int, DefaultVersion]]:
    """Each shipped template as (its file's version, the default version to load)."""
    out = []
    for label_type, path in _default_files().items():
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
        out.append(
            (
                int(data["version"]),
                DefaultVersion(label_type.upper(), str(data["title"]), {TEXT_KEY: text}),
            )
        )
    return out


def check_template(parameters: Mapping[str, Any]) -> None:
    """Refuse a template that could not print a correct label: not TOML, an unknown label
    type or field, a field its label type must carry missing (21 CFR 1271.370, 312.6), a
    box outside the label, text taller than its box, and text cut off the label at the
    longest values with any status marking (``fit.cut_fields``)."""
    extra = sorted(set(parameters) - {TEXT_KEY})
    text = parameters.get(TEXT_KEY)
    problems: list[str] = []
    if extra:
        problems.append(
            _("A label template holds its text only, not %(keys)s.", keys=", ".join(extra))
        )
    if not isinstance(text, str) or not text.strip():
        problems.append(_("A label template needs its text (TOML)."))
    else:
        try:
            cut = _cut_of(text)
        except TemplateError as error:
            problems.append(_("The template cannot be used: %(problem)s", problem=str(error)))
        else:
            if cut:
                problems.append(
                    _(
                        "Some text would be cut off the label: %(cases)s.",
                        cases="; ".join(str(case) for case in cut),
                    )
                )
    if problems:
        raise InvalidInput(" ".join(problems), errors={"parameters": problems})


@lru_cache(maxsize=64)
def _cut_of(text: str) -> tuple[Cut, ...]:
    """What the template ``text`` would cut (``fit.cut_fields``), once per text: the layouts
    take about a third of a second a template, and a version's text is checked when it is
    drafted and again when it is signed."""
    return tuple(cut_fields(parse_template(text, Path("template.toml"), version=1)))


def _cryobag_default() -> DefaultVersion:
    return next(default for _, default in default_versions() if default.code == "CRYOBAG")


def _same_label_type(code: str, parameters: Mapping[str, Any] | None) -> None:
    """Refuse a version of ``code`` whose text is the template of another label type."""
    text = (parameters or {}).get(TEXT_KEY)
    if not isinstance(text, str):
        return  # the check says what is wrong with it
    try:
        label_type = tomllib.loads(text).get("label_type")
    except tomllib.TOMLDecodeError:
        return
    wanted = code.strip().lower()
    if isinstance(label_type, str) and label_type != wanted:
        message = _(
            "This text is the template of %(other)s, not of %(code)s: a label type's versions "
            "hold its own template.",
            other=label_type,
            code=wanted,
        )
        raise InvalidInput(message, errors={"parameters": [message]})


LABEL_TEMPLATES = DocumentKind(
    model=LabelTemplateDocument,
    permission=Permission.SIGN_PRODUCT,
    approval_meaning="approval: label template in force",
    default=_cryobag_default(),
    missing=formatted_later(
        lazy("No label template {code} is in force; QA must approve one before it is printed.")
    ),
    check=check_template,
    # a version of a label type holds that label type's template (the text names it)
    check_code=_same_label_type,
)


def template_of(document: LabelTemplateDocument) -> LabelTemplate:
    """The layout of one version: its text read, checked and numbered as the document."""
    label_type = document.code.lower()
    template = parse_template(
        str(document.parameters[TEXT_KEY]),
        Path(f"{label_type}.toml"),
        version=document.version,
        document_id=document.id,
    )
    if template.label_type != label_type:
        raise TemplateError(
            f"{document.label}: its text is the template of {template.label_type}, "
            f"not {label_type}."
        )
    return template


def templates_in_force(session: DbSession, *, at: dt.datetime) -> dict[str, LabelTemplate]:
    """The template in force at ``at`` of each label type that has one, by label type."""
    found: dict[str, LabelTemplate] = {}
    for label_type in REQUIRED:
        document = LABEL_TEMPLATES.in_force_or_none(session, label_type.upper(), at=at)
        if document is not None:
            found[label_type] = template_of(document)
    return found


def load_defaults(
    session: DbSession, *, actor: User | None, now: dt.datetime
) -> list[LabelTemplateDocument]:
    """The shipped templates as drafts, each under its file's version, unless a version of
    its label type is already on file (then that first version)."""
    loaded = []
    for version, default in default_versions():
        LABEL_TEMPLATES.check_all(default.code, default.parameters)
        existing = (
            session.execute(
                select(LabelTemplateDocument)
                .where(LabelTemplateDocument.code == default.code)
                .order_by(LabelTemplateDocument.version)
            )
            .scalars()
            .first()
        )
        if existing is not None:
            loaded.append(existing)
            continue
        document = LabelTemplateDocument(
            code=default.code,
            version=version,
            title=default.title,
            parameters_json=canonical_json(default.parameters),
            status=VersionStatus.DRAFT.value,
            created_at=now,
            created_by_id=actor.id if actor else None,
        )
        session.add(document)
        session.flush()
        audit.record(
            session,
            actor=actor,
            at=now,
            action=f"{LabelTemplateDocument.signature_entity_type}.drafted",
            entity_type=LabelTemplateDocument.signature_entity_type,
            entity_id=document.id,
            changes={"code": (None, document.code), "version": (None, version)},
        )
        loaded.append(document)
    return loaded
