"""The catalogues: every text marked for translation has a Chinese translation with the
same placeholders (what ``cellchain translations check`` runs in CI)."""

from __future__ import annotations

from click.testing import CliRunner

from cellchain.cli_translations import translations_group
from cellchain.core.i18n import catalogue_problems, marked_texts


def test_every_marked_text_has_a_chinese_translation():
    assert marked_texts(), "no text is marked for translation"
    problems = [str(problem) for problem in catalogue_problems("zh_Hans")]
    assert problems == []


def test_the_check_command_fails_on_a_missing_translation(monkeypatch):
    from cellchain import core

    real = core.i18n.marked_texts

    def with_one_more():
        texts = dict(real())
        texts["A text nobody translated"] = core.i18n.SourceText(
            "A text nobody translated", "templates/made_up.html:1"
        )
        return texts

    monkeypatch.setattr(core.i18n, "marked_texts", with_one_more)
    result = CliRunner().invoke(translations_group, ["check"])

    assert result.exit_code != 0
    assert "no translation of 'A text nobody translated'" in result.output


def test_a_translation_that_drops_a_placeholder_is_a_problem(tmp_path, monkeypatch):
    from cellchain.core import i18n

    folder = tmp_path / "zh_Hans"
    folder.mkdir()
    (folder / "area.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Dose for %(who)s"\nmsgstr "剂量"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(i18n, "translations_folder", lambda: tmp_path)
    monkeypatch.setattr(
        i18n,
        "marked_texts",
        lambda: {"Dose for %(who)s": i18n.SourceText("Dose for %(who)s", "x.py:1")},
    )

    problems = [str(problem) for problem in i18n.catalogue_problems("zh_Hans")]

    assert any("placeholders [] are not the source's ['who']" in p for p in problems), problems
