"""A version's parameters as labelled form fields, whatever the kind: every value a field
named by its path, each row of a list of tables (a specification's tests, a protocol's arms
and visits) a group of fields with its own "remove" box, and a new row to add after the
last one (prefilled from it). What the form posts is read back onto the parameters it was
drawn from.

A field's name carries its path as JSON (``f:["tests",3,"criterion","min"]``), so any key
survives the trip; its label is the path as a reader writes it (``tests[VIABILITY].
criterion.min``: a row with a ``code`` is named by it), shown small for the expert under its
words and hint (``field_labels``: "Lowest accepted", "in the result's unit"), which the kind
of document gives.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cellchain.core.i18n import _
from cellchain.documents.field_labels import label_for
from cellchain.errors import InvalidInput

Path = tuple[str | int, ...]

#: the prefixes of the posted names: a value, its type, a row removed, a row added and a
#: value of the row added (with its type)
VALUE, TYPE, REMOVE, ADD, NEW, NEW_TYPE = "f:", "t:", "r:", "a:", "n:", "nt:"
#: the key of a row's code (a test's, an arm's, a criterion's): rows are matched and answered by it
CODE = "code"


def _key(path: Sequence[str | int]) -> str:
    return json.dumps(list(path), ensure_ascii=False)


def label_of(parameters: Any, path: Path) -> str:
    """``path`` as a reader writes it, a row of a list named by its ``code`` when it has one."""
    text = ""
    node = parameters
    for step in path:
        if isinstance(step, int):
            row = node[step] if isinstance(node, list) and step < len(node) else None
            code = row.get("code") if isinstance(row, Mapping) else None
            text += f"[{code}]" if isinstance(code, str) else f"[{step}]"
            node = row
        else:
            text += f".{step}" if text else step
            node = node.get(step) if isinstance(node, Mapping) else None
    return text


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "lines" if "\n" in value or "\r" in value else "text"
    return "json"


def _shown(value: Any) -> str:
    kind = _kind(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind in ("number", "text", "lines"):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Item:
    """One line of the field editor: a heading (``group``), a row of a list (``row``, with
    its remove box), a value (``field``) or the new row to add (``add``, then its
    ``new`` fields)."""

    kind: str  #: "group", "row", "field", "add" or "new"
    label: str
    depth: int
    name: str = ""  #: the posted name of the value, or of the remove / add box
    type_name: str = ""  #: the posted name of the value's type
    #: "number", "text", "lines" (a text of several lines: a text area), "bool" or "json"
    #: (a list or table as JSON)
    value_type: str = ""
    value: str = ""
    #: what the parameter is, in the reader's words ("" when the kind gives none)
    title: str = ""
    #: its unit or what it takes ("" when none)
    hint: str = ""


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def items(parameters: Mapping[str, Any], *, kind: str | None = None) -> list[Item]:
    """Every line of the field editor of ``parameters``, in order; ``kind`` (the document's
    signature type, ``protocol``) gives each its words and hint (``field_labels``)."""
    out: list[Item] = []
    _walk(out, parameters, parameters, (), 0, kind)
    return out


def _walk(
    out: list[Item],
    root: Any,
    node: Mapping[str, Any],
    path: Path,
    depth: int,
    document_kind: str | None,
) -> None:
    for key, value in node.items():
        here = (*path, key)
        label = label_of(root, here)
        title, hint = label_for(document_kind, here)
        if isinstance(value, Mapping):
            out.append(Item("group", label, depth, title=title, hint=hint))
            _walk(out, root, value, here, depth + 1, document_kind)
        elif _is_rows(value):
            out.append(Item("group", label, depth, title=title, hint=hint))
            for index, row in enumerate(value):
                row_path = (*here, index)
                out.append(
                    Item("row", label_of(root, row_path), depth + 1, name=REMOVE + _key(row_path))
                )
                _walk(out, root, row, row_path, depth + 2, document_kind)
            out.append(Item("add", label, depth + 1, name=ADD + _key(here), title=title))
            for row_key, template in value[-1].items():  # the last row's values to start
                kind = _kind(template)
                new_title, new_hint = label_for(document_kind, (*here, 0, row_key))
                out.append(
                    Item(
                        "new",
                        f"{label}[+].{row_key}",
                        depth + 2,
                        name=NEW + _key((*here, row_key)),
                        type_name=NEW_TYPE + _key((*here, row_key)),
                        value_type=kind,
                        # a row's code names it: a new row never starts with another's
                        value="" if row_key == CODE else _shown(template),
                        title=new_title,
                        hint=new_hint,
                    )
                )
        else:
            kind = _kind(value)
            out.append(
                Item(
                    "field",
                    label,
                    depth,
                    name=VALUE + _key(here),
                    type_name=TYPE + _key(here),
                    value_type=kind,
                    value=_shown(value),
                    title=title,
                    hint=hint,
                )
            )


def _read(text: str, kind: str) -> Any:
    r"""A typed value, or ValueError naming what it should be. A text of several lines
    (``lines``, edited in a text area) is kept as typed, its line ends as ``\n`` (a browser
    sends a text area's as ``\r\n``); a one-line value is read without the spaces around it."""
    if kind == "lines":
        return text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.strip()
    if kind == "number":
        try:
            return int(text)
        except ValueError:
            pass
        try:
            real = float(text)
        except ValueError:
            real = math.nan
        if not math.isfinite(real):
            raise ValueError(_("a number is expected, not %(value)s", value=repr(text)))
        return real
    if kind == "bool":
        if text in ("true", "false"):
            return text == "true"
        raise ValueError(_("true or false is expected, not %(value)s", value=repr(text)))
    if kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            message = _("a JSON value is expected, not %(value)s", value=repr(text))
            raise ValueError(message) from None
    return text


def _node(root: Any, path: Path) -> Any:
    node = root
    for step in path:
        node = node[step]
    return node


def _path(name: str, prefix: str) -> Path | None:
    try:
        steps = json.loads(name[len(prefix) :])
    except ValueError:
        return None
    if not isinstance(steps, list) or not all(isinstance(s, str | int) for s in steps):
        return None
    return tuple(steps)


def parameters_from_form(source: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The parameters the field editor posted, read onto ``source`` (the version it was
    drawn from): each value set where its path says, rows ticked "remove" removed, the new
    row (prefilled from the last) appended when "add" is ticked. A value of the wrong type is
    refused, naming its field."""
    result: dict[str, Any] = copy.deepcopy(dict(source))
    errors: dict[str, list[str]] = {}
    for name in form:
        if not name.startswith(VALUE):
            continue
        path = _path(name, VALUE)
        if not path:
            continue
        try:
            parent, last = _node(result, path[:-1]), path[-1]
            if isinstance(parent, list) and not isinstance(last, int):
                continue
            parent[last]  # the path must name a value of the source
        except (KeyError, IndexError, TypeError):
            continue
        try:
            parent[last] = _read(form[name], form.get(TYPE + name[len(VALUE) :], "text"))
        except ValueError as error:
            errors.setdefault(label_of(source, path), []).append(str(error))
    removed = sorted(
        (p for p in (_path(n, REMOVE) for n in form if n.startswith(REMOVE)) if p),
        key=lambda p: [str(s) if isinstance(s, str) else f"{s:09d}" for s in p],
        reverse=True,
    )
    for path in removed:
        try:
            rows = _node(result, path[:-1])
            del rows[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
    for name in form:
        if not name.startswith(ADD):
            continue
        path = _path(name, ADD)
        if not path:
            continue
        try:
            template = _node(source, path)[-1]
            rows = _node(result, path)
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(template, Mapping) or not isinstance(rows, list):
            continue
        row: dict[str, Any] = copy.deepcopy(dict(template))
        for key in template:
            posted = NEW + _key((*path, key))
            if posted not in form:
                continue
            kind = form.get(NEW_TYPE + posted[len(NEW) :], "text")
            label = f"{label_of(source, path)}[+].{key}"
            if key == CODE and form[posted].strip() == "":
                errors.setdefault(label, []).append(_("a row added needs a code of its own"))
                continue
            if form[posted].strip() == "" and kind not in ("text", "lines"):
                errors.setdefault(label, []).append(_("a value is required in a row added"))
                continue
            try:
                row[key] = _read(form[posted], kind)
            except ValueError as error:
                errors.setdefault(label, []).append(str(error))
        rows.append(row)
    if errors:
        message = _("Some parameters need attention.")
        raise InvalidInput(message, errors=errors)
    return result
