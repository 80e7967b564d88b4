"""The language a person reads: translations of every page, message, e-mail and PDF.

English is the source language: every text in the code and the templates is written in
English and marked for translation, in Python with ``_("…")`` (``%(name)s`` placeholders,
filled by keyword) or ``lazy("…")`` for a text defined before any language is known (a
navigation label, a role's name), and in templates with ``{{ _("…") }}`` or
``{% trans %}…{% endtrans %}``.

The translations are gettext catalogues (``.po``), one file per area of the application,
under ``translations/<language>/``. They are compiled when first used in a process, in
memory (:func:`translations`): no compiled file is kept in the repository or written into an
installed package, so what runs is always what the catalogues say. ``cellchain translations
check`` (run by CI) compiles them strictly: a text marked in the code with no translation, a
translation whose placeholders differ from its source, or the same text translated twice
differently fails the build.

The language of the moment is a context variable, :data:`ACTIVE_LANGUAGE`: the web wiring
sets it for each request (the user's choice, else the browser's, else the site's), the CLI
to the site's language, and :func:`using_language` for a text made for someone else (an
e-mail to a user, a PDF in the reader's language). Nothing here knows about Flask.
"""

from __future__ import annotations

import functools
import gettext as gettext_module
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from cellchain.resources import resource_path

#: the languages a person can choose, by code, each with its name in itself
LANGUAGES: dict[str, str] = {"en": "English", "zh_Hans": "中文"}
#: the source language of every text: it needs no catalogue
SOURCE_LANGUAGE = "en"
#: the language of the moment; see the module's docstring for who sets it
ACTIVE_LANGUAGE: ContextVar[str] = ContextVar("cellchain_language", default=SOURCE_LANGUAGE)


def translations_folder() -> Path:
    """The folder of the catalogues: ``translations/<language>/<area>.po``."""
    return resource_path("translations")


def catalogue_files(language: str) -> list[Path]:
    """The ``.po`` files of one language, in a stable order."""
    return sorted((translations_folder() / language).glob("*.po"))


@dataclass(frozen=True)
class CatalogueProblem:
    """One thing wrong with a language's catalogues, in words for the translator."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def merged_catalogue(language: str) -> tuple[Catalog, list[CatalogueProblem]]:
    """Every area's catalogue of ``language`` merged into one, and what does not fit:
    a text translated differently in two areas."""
    merged = Catalog(locale=language, fuzzy=False)
    origin: dict[str, str] = {}
    problems: list[CatalogueProblem] = []
    for path in catalogue_files(language):
        with path.open("rb") as handle:
            catalogue = read_po(handle, locale=language)
        for message in catalogue:
            if not message.id:
                continue
            key = message.id if isinstance(message.id, str) else message.id[0]
            known = merged.get(message.id)
            if known is not None and known.string != message.string:
                problems.append(
                    CatalogueProblem(
                        path.name,
                        f"{key!r} is translated differently in {origin[key]}",
                    )
                )
                continue
            if message.fuzzy:
                problems.append(CatalogueProblem(path.name, f"{key!r} is marked fuzzy"))
                continue
            merged[message.id] = message
            origin[key] = path.name
    return merged, problems


@functools.cache
def translations(language: str) -> gettext_module.NullTranslations:
    """The compiled translations of ``language``, once per process; English has none."""
    if language == SOURCE_LANGUAGE or language not in LANGUAGES:
        return gettext_module.NullTranslations()
    catalogue, _problems = merged_catalogue(language)
    compiled = BytesIO()
    write_mo(compiled, catalogue, use_fuzzy=False)
    compiled.seek(0)
    return gettext_module.GNUTranslations(compiled)


class Translated(str):
    """A text in the reader's language that remembers its English (``english``): what is
    shown goes to the person, what is stored (an audit entry's refused reason, a recorded
    stop) goes to the record in English, whoever's language was active (:func:`english_of`)."""

    english: str


def _translated(text: str, english: str) -> Translated:
    result = Translated(text)
    result.english = english
    return result


def english_of(text: str) -> str:
    """The English of a text made by :func:`gettext`/:func:`ngettext` (itself otherwise:
    a text built around a translation by concatenation keeps what it reads)."""
    return getattr(text, "english", text)


def gettext(message: str, **variables: Any) -> str:
    """``message`` in the language of the moment, its ``%(name)s`` placeholders filled."""
    text = translations(ACTIVE_LANGUAGE.get()).gettext(message)
    if not variables:
        return _translated(text, message)
    # a value that is itself a translation (a visit's name) reads in English in the English
    english = {name: english_of(value) for name, value in variables.items()}
    return _translated(text % variables, message % english)


def ngettext(singular: str, plural: str, count: int, **variables: Any) -> str:
    """The singular or plural form for ``count`` (``%(num)d`` is the count)."""
    text = translations(ACTIVE_LANGUAGE.get()).ngettext(singular, plural, count)
    values = {"num": count, **variables}
    english = singular if count == 1 else plural
    english_values = {name: english_of(value) for name, value in values.items()}
    return _translated(text % values, english % english_values)


def N_(message: str) -> str:
    """Mark a text for the catalogue without translating it now: the default content of a
    controlled document (a protocol's visit names), stored and signed in English and shown
    through :func:`document_text`."""
    return message


def document_text(text: str) -> str:
    """A controlled document's text (a visit's name, a checklist item) in the reader's
    language when the catalogue has it (the defaults' texts, marked with :func:`N_`), else
    as the signed version says it."""
    if not text:
        return text
    return _translated(translations(ACTIVE_LANGUAGE.get()).gettext(text), text)


def template_gettext(message: str) -> str:
    """For Jinja's newstyle ``_``: the translation alone; Jinja fills the placeholders
    (escaping the values) itself."""
    return translations(ACTIVE_LANGUAGE.get()).gettext(message)


def template_ngettext(singular: str, plural: str, count: int) -> str:
    """For Jinja's newstyle ``{% trans count=n %}…{% pluralize %}…``: the form alone."""
    return translations(ACTIVE_LANGUAGE.get()).ngettext(singular, plural, count)


#: the short name every module imports: ``from cellchain.core.i18n import _``
_ = gettext


class LazyText:
    """A text translated each time it is read: for labels defined at import, before any
    request's language is known (navigation, roles, work queues)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __str__(self) -> str:
        return gettext(self.message)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return f"lazy({self.message!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyText):
            return self.message == other.message
        return str(self) == other

    def __hash__(self) -> int:
        return hash(self.message)

    def __add__(self, other: str) -> str:
        return str(self) + other

    def __radd__(self, other: str) -> str:
        return other + str(self)

    def __lt__(self, other: object) -> bool:
        return str(self) < str(other)


def lazy(message: str) -> LazyText:
    """``message`` translated when it is read, not now."""
    return LazyText(message)


@contextmanager
def using_language(language: str) -> Iterator[None]:
    """Make texts in ``language`` for the length of the block (an e-mail, a PDF)."""
    token = ACTIVE_LANGUAGE.set(language if language in LANGUAGES else SOURCE_LANGUAGE)
    try:
        yield
    finally:
        ACTIVE_LANGUAGE.reset(token)


def best_language(accepted: Iterator[str] | list[str]) -> str | None:
    """The first of a browser's languages (in its order of preference) that cellchain
    speaks: ``zh``, ``zh-CN``, ``zh-Hans`` and ``zh-SG`` read Simplified Chinese."""
    for tag in accepted:
        normal = tag.replace("-", "_").lower()
        if normal.startswith("en"):
            return "en"
        if normal in {"zh", "zh_cn", "zh_hans", "zh_sg", "zh_hans_cn"} or normal.startswith(
            "zh_hans"
        ):
            return "zh_Hans"
    return None


#: how the texts are found: Python modules by their calls, templates by Jinja's extractor
_KEYWORDS: dict[str, Any] = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "lazy": None,
    "N_": None,
}


@dataclass(frozen=True)
class SourceText:
    """A text marked for translation, and the first place it is marked."""

    message: str | tuple[str, ...]
    where: str

    @property
    def key(self) -> str:
        return self.message if isinstance(self.message, str) else self.message[0]


def marked_texts() -> dict[str, SourceText]:
    """Every text the code and the templates mark for translation, by its source text."""
    from babel.messages.extract import extract_from_dir

    found: dict[str, SourceText] = {}
    sources: tuple[tuple[Path, list[tuple[str, str]], dict[str, dict[str, Any]]], ...] = (
        (Path(__file__).resolve().parent.parent, [("**.py", "python")], {}),
        (
            resource_path("templates"),
            [("**.html", "jinja2")],
            {"**.html": {"trimmed": "true", "extensions": "jinja2.ext.do"}},
        ),
    )
    for folder, method_map, options in sources:
        for filename, line, message, _comments, _context in extract_from_dir(
            str(folder), method_map, options, keywords=_KEYWORDS, strip_comment_tags=True
        ):
            text = SourceText(message, f"{folder.name}/{filename}:{line}")
            found.setdefault(text.key, text)
    return found


_PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdrfeEgGixXo]")


def _placeholders(text: str | tuple[str, ...] | list[str] | None) -> set[str]:
    """The ``%(name)s`` placeholders of a text (of every plural form together)."""
    forms = (text,) if isinstance(text, str) else tuple(text or ())
    return {name for form in forms for name in _PLACEHOLDER.findall(form or "")}


def catalogue_problems(language: str) -> list[CatalogueProblem]:
    """What keeps ``language`` from being complete: a marked text with no translation, a
    translation whose placeholders differ from its source, a translation of a text the code
    no longer has, or one text translated two ways."""
    catalogue, problems = merged_catalogue(language)
    marked = marked_texts()
    for key, text in sorted(marked.items(), key=lambda item: item[1].where):
        entry = catalogue.get(text.message)
        if (
            entry is None
            or not entry.string
            or (isinstance(entry.string, tuple) and not all(entry.string))
        ):
            problems.append(CatalogueProblem(text.where, f"no translation of {key!r}"))
    for message, errors in catalogue.check():
        for error in errors:
            problems.append(CatalogueProblem(f"{message.id!r}", str(error)))
    for message in catalogue:
        if message.id and _placeholders(message.id) != _placeholders(message.string):
            problems.append(
                CatalogueProblem(
                    f"{message.id!r}",
                    f"the translation's placeholders {sorted(_placeholders(message.string))} "
                    f"are not the source's {sorted(_placeholders(message.id))}",
                )
            )
    for message in catalogue:
        key = message.id if isinstance(message.id, str) else message.id[0]
        if message.id and key not in marked:
            problems.append(
                CatalogueProblem(language, f"{key!r} is translated but no longer in the code")
            )
    return problems
