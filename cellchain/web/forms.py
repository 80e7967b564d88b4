"""HTML forms are loaded through the API's marshmallow schemas: one set of shape rules."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from werkzeug.datastructures import MultiDict

from cellchain.core.i18n import N_, _, document_text
from cellchain.errors import DomainError, InvalidInput

#: marshmallow's own messages a form can get, marked so that the catalogue has them; a page
#: shows them in the reader's language (``document_text``: a message not listed reads as is)
MARSHMALLOW_MESSAGES = (
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Invalid value."),
    N_("Not a valid integer."),
    N_("Not a valid number."),
    N_("Number too large."),
    N_("Not a valid string."),
    N_("Not a valid date."),
    N_("Not a valid boolean."),
    N_("Not a valid email address."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_("Unknown field."),
    N_("Invalid input type."),
)


def load_form(schema: ma.Schema, form: MultiDict[str, str], *, lists: tuple[str, ...] = ()) -> Any:
    """Load a posted form with ``schema``; raise ``InvalidInput`` with field messages.

    The result is what the schema loads: a dict, or what its ``post_load`` makes of it.

    Empty optional fields count as absent; ``lists`` names fields sent as repeated inputs.
    The CSRF token is the form's own business and is dropped.
    """
    data: dict[str, Any] = {}
    for key in form:
        if key == "csrf_token":
            continue
        if key in lists:
            data[key] = [value for value in form.getlist(key) if value]
        elif form[key] != "":
            data[key] = form[key]
    for key in lists:
        data.setdefault(key, [])
    try:
        return schema.load(data)
    except ma.ValidationError as error:
        messages = error.normalized_messages()
        errors = {
            str(k): [document_text(str(m)) for m in (v if isinstance(v, list) else [v])]
            for k, v in messages.items()
        }
        raise InvalidInput(_("Some fields need attention."), errors=errors) from error


#: Form fields never sent back to the page after a refusal.
SECRET_FIELDS = frozenset({"csrf_token", "password", "second_password", "investigator_password"})


def refusal_context(error: DomainError | None, **context: Any) -> dict[str, Any]:
    """A form page's context after ``error`` (or none): the message, the field errors and
    what the person typed, passwords left out, so the page keeps their work."""
    typed = {k: v for k, v in request.form.items() if k not in SECRET_FIELDS} if error else {}
    return {
        "error": error.detail if error else None,
        "errors": error.errors if error else {},
        "form": typed,
        **context,
    }
