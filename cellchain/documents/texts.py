"""A version's parameters as text and side by side: TOML (what QA edits and what a site
exports), JSON, and the differences between two versions.

TOML is read with the standard library's ``tomllib``; it is written here (parameters are
plain data: tables, arrays, strings, numbers and booleans, never null).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cellchain.core.i18n import _
from cellchain.errors import InvalidInput

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _inline(value: Any) -> str:
    """One TOML value on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError("TOML parameters are finite numbers")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(str(k))} = {_inline(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    raise ValueError(f"a TOML parameter cannot hold {value!r}")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _table(lines: list[str], prefix: str, table: Mapping[str, Any]) -> None:
    plain = [
        (k, v) for k, v in table.items() if not isinstance(v, Mapping) and not _is_table_array(v)
    ]
    for k, v in plain:
        lines.append(f"{_key(str(k))} = {_inline(v)}")
    for k, v in table.items():
        path = f"{prefix}.{_key(str(k))}" if prefix else _key(str(k))
        if isinstance(v, Mapping):
            lines.append("")
            lines.append(f"[{path}]")
            _table(lines, path, v)
        elif _is_table_array(v):
            for item in v:
                lines.append("")
                lines.append(f"[[{path}]]")
                for ik, iv in item.items():
                    lines.append(f"{_key(str(ik))} = {_inline(iv)}")


def require_plain(parameters: Mapping[str, Any]) -> None:
    """Refuse parameters a TOML file could not hold (a null, a number that is not finite, a
    table key that is not text), naming each: a version is exported, compared and edited as
    TOML."""
    errors: dict[str, list[str]] = {}

    def walk(value: Any, path: str) -> None:
        if value is None:
            errors.setdefault(path, []).append(_("An empty (null) value is not allowed."))
        elif isinstance(value, float) and not math.isfinite(value):
            errors.setdefault(path, []).append(_("A number must be finite."))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    errors.setdefault(path or "parameters", []).append(
                        _("A table's keys are text.")
                    )
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    walk(parameters, "")
    if errors:
        message = _("Some parameters cannot be kept: %(fields)s", fields=", ".join(errors))
        raise InvalidInput(message, errors=errors)


def to_toml(data: Mapping[str, Any]) -> str:
    """``data`` as a TOML document (``tomllib.loads`` gives it back)."""
    lines: list[str] = []
    _table(lines, "", data)
    return "\n".join(lines).strip() + "\n"


def from_toml(text: str, *, field: str = "parameters") -> dict[str, Any]:
    """The parameters a TOML text gives; a text that is not TOML is refused, naming the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = _("The parameters are not valid TOML: %(error)s", error=str(error))
        raise InvalidInput(message, errors={field: [message]}) from error


def from_json(text: str, *, field: str = "parameters") -> dict[str, Any]:
    """The object a JSON text gives; anything else is refused."""
    try:
        value = json.loads(text)
    except ValueError as error:
        message = _("The text is not valid JSON: %(error)s", error=str(error))
        raise InvalidInput(message, errors={field: [message]}) from error
    if not isinstance(value, dict):
        message = _("The text is not a JSON object.")
        raise InvalidInput(message, errors={field: [message]})
    return value


#: the lines kept unchanged around each change of a text of several lines
LINE_CONTEXT = 3


@dataclass(frozen=True)
class Line:
    """One line of the line-by-line difference of a text of several lines (a label
    template's TOML): ``kept`` (context around a change), ``removed`` or ``added``, with its
    number in the old and the new text (1-based; None on the side it is not in). Lines are
    grouped in ``hunk``s, the changes with their context; lines between hunks are left out."""

    change: str  #: "kept", "removed" or "added"
    old_number: int | None
    new_number: int | None
    text: str
    hunk: int


def is_lines(value: Any) -> bool:
    """Whether ``value`` is a text of several lines (compared line by line)."""
    return isinstance(value, str) and ("\n" in value.rstrip("\n") or "\r" in value)


def line_differences(old: str, new: str) -> list[Line]:
    """The lines of ``new`` changed, added and removed from ``old``, each change with
    ``LINE_CONTEXT`` lines kept around it (``difflib``'s grouped opcodes)."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    out: list[Line] = []
    for hunk, group in enumerate(matcher.get_grouped_opcodes(LINE_CONTEXT)):
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for k in range(i2 - i1):
                    out.append(Line("kept", i1 + k + 1, j1 + k + 1, old_lines[i1 + k], hunk))
                continue
            if tag in ("replace", "delete"):
                for i in range(i1, i2):
                    out.append(Line("removed", i + 1, None, old_lines[i], hunk))
            if tag in ("replace", "insert"):
                for j in range(j1, j2):
                    out.append(Line("added", None, j + 1, new_lines[j], hunk))
    return out


@dataclass(frozen=True)
class Difference:
    """One parameter that differs between two versions; ``path`` names it as a reader does
    (``tests[VIABILITY].criterion.min``)."""

    path: str
    change: str  #: "changed", "added" or "removed"
    old: Any = None
    new: Any = None

    @property
    def old_text(self) -> str:
        return "" if self.change == "added" else shown(self.old)

    @property
    def new_text(self) -> str:
        return "" if self.change == "removed" else shown(self.new)

    @property
    def lines(self) -> list[Line] | None:
        """Line by line, when a side is a text of several lines (a label template's TOML)
        and the other a text or absent; None otherwise (the values side by side)."""
        old = "" if self.change == "added" else self.old
        new = "" if self.change == "removed" else self.new
        if not (isinstance(old, str) and isinstance(new, str)):
            return None
        if not (is_lines(old) or is_lines(new)):
            return None
        return line_differences(old, new)

    @property
    def unified(self) -> str | None:
        """The same difference as a unified diff (``difflib.unified_diff``), or None."""
        if self.lines is None:
            return None
        old = "" if self.change == "added" else str(self.old)
        new = "" if self.change == "removed" else str(self.new)
        return "\n".join(
            difflib.unified_diff(
                old.splitlines(),
                new.splitlines(),
                fromfile="old",
                tofile="new",
                n=LINE_CONTEXT,
                lineterm="",
            )
        )


def shown(value: Any) -> str:
    """A parameter value as one line of text."""
    try:
        return _inline(value)
    except ValueError:
        return repr(value)


def _coded(items: list[Any]) -> dict[str, Any] | None:
    """A list of rows each with its own unique ``code`` keyed by it, else None."""
    if not items or not all(
        isinstance(i, Mapping) and isinstance(i.get("code"), str) for i in items
    ):
        return None
    keyed = {str(i["code"]): i for i in items}
    return keyed if len(keyed) == len(items) else None


def _walk(out: list[Difference], path: str, old: Any, new: Any) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append(Difference(sub, "removed", old=old[key]))
            elif key not in old:
                out.append(Difference(sub, "added", new=new[key]))
            else:
                _walk(out, sub, old[key], new[key])
        return
    if isinstance(old, list) and isinstance(new, list):
        old_keyed, new_keyed = _coded(old), _coded(new)
        if old_keyed is not None and new_keyed is not None:
            for code in list(old_keyed) + [c for c in new_keyed if c not in old_keyed]:
                sub = f"{path}[{code}]"
                if code not in new_keyed:
                    out.append(Difference(sub, "removed", old=old_keyed[code]))
                elif code not in old_keyed:
                    out.append(Difference(sub, "added", new=new_keyed[code]))
                else:
                    _walk(out, sub, old_keyed[code], new_keyed[code])
            return
        if all(not isinstance(v, Mapping | list) for v in old + new):
            if old != new:
                out.append(Difference(path, "changed", old=old, new=new))
            return
        for index in range(max(len(old), len(new))):
            sub = f"{path}[{index}]"
            if index >= len(new):
                out.append(Difference(sub, "removed", old=old[index]))
            elif index >= len(old):
                out.append(Difference(sub, "added", new=new[index]))
            else:
                _walk(out, sub, old[index], new[index])
        return
    if old != new or (type(old) is not type(new) and not _same_number(old, new)):
        out.append(Difference(path, "changed", old=old, new=new))


def _same_number(old: Any, new: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(old, numbers)
        and isinstance(new, numbers)
        and not isinstance(old, bool)
        and not isinstance(new, bool)
        and old == new
    )


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Difference]:
    """Every parameter changed, added or removed from ``old`` to ``new``; rows of a list that
    each carry a ``code`` are matched by it, other lists by position."""
    out: list[Difference] = []
    _walk(out, "", old, new)
    return out
