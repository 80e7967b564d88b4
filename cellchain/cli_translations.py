"""``cellchain translations``: check the catalogues, and list what is left to translate.

CI runs ``cellchain translations check``: it fails on a text marked in the code with no
translation, a translation whose placeholders differ from its source, a translation of a
text the code no longer has, or one text translated two ways (``core.i18n``).
"""

from __future__ import annotations

import click
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from cellchain.core.i18n import LANGUAGES, SOURCE_LANGUAGE, catalogue_problems, marked_texts

_TRANSLATED = [code for code in LANGUAGES if code != SOURCE_LANGUAGE]


@click.group("translations")
def translations_group() -> None:
    """The catalogues of the languages other than English (translations/<language>/)."""


@translations_group.command("check")
@click.option("--language", type=click.Choice(_TRANSLATED), multiple=True)
def translations_check(language: tuple[str, ...]) -> None:
    """Fail unless every marked text is translated, with the same placeholders."""
    failed = False
    for code in language or _TRANSLATED:
        problems = catalogue_problems(code)
        for problem in problems:
            click.echo(f"{code}: {problem}", err=True)
        failed = failed or bool(problems)
        click.echo(f"{code}: {len(problems)} problem(s)")
    if failed:
        raise click.ClickException("the catalogues are not complete")


@translations_group.command("missing")
@click.option("--language", type=click.Choice(_TRANSLATED), default="zh_Hans", show_default=True)
@click.option("--under", default="", help="Only texts first marked in files under this path.")
def translations_missing(language: str, under: str) -> None:
    """Print, as .po entries to fill in, the marked texts that have no translation yet."""
    from cellchain.core.i18n import merged_catalogue

    catalogue, _problems = merged_catalogue(language)
    missing = Catalog(locale=language)
    for text in marked_texts().values():
        if not text.where.startswith(under):
            continue
        entry = catalogue.get(text.message)
        if entry is None or not entry.string:
            path, _, line = text.where.rpartition(":")
            missing.add(text.message, "", locations=[(path, int(line))])
    stream = click.get_binary_stream("stdout")
    write_po(stream, missing, omit_header=True, width=100)
