"""A list page's note about a filter value it dropped reads in the reader's language: in
English with marshmallow's own words (the allowed values), in Chinese without them (they are
not in a catalogue)."""

from __future__ import annotations

from typing import Any

from tests.support.untranslated import english_words

ZH = {"Accept-Language": "zh-CN"}


def test_a_dropped_filter_value_is_noted_in_the_readers_language(lab: Any, clients: Any) -> None:
    tech = clients.web(lab.tech)
    english = tech.get("/units?kind=flask").get_data(as_text=True)
    assert "Filter ignored: “flask” is not a valid kind (Must be one of" in english
    chinese = tech.get("/units?kind=flask", headers=ZH).get_data(as_text=True)
    assert "已忽略筛选条件：“flask”不是有效的 kind。" in chinese
    note = chinese[chinese.index("已忽略筛选条件") :].split("<", 1)[0]
    assert english_words(f"<p>{note}</p>", data=["flask", "kind"]) == []
