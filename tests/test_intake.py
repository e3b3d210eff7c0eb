"""Reading what a message asks for: `forget`, `preset:NAME`, a question, or nothing visible."""

from __future__ import annotations

import pytest

from moa.intake import Request, read_request, visible


@pytest.mark.parametrize("text", ["forget", "Forget.", "forget this thread", "FORGET the conversation!", " forget "])
def test_forget_commands(text: str) -> None:
    assert read_request(text).kind == "forget"


@pytest.mark.parametrize("text", ["forget about it", "don't forget", "what is forget()", "preset:lite forget"])
def test_not_forget(text: str) -> None:
    assert read_request(text).kind == "ask"


def test_preset_prefix_names_the_preset() -> None:
    assert read_request("preset:lite  what is WAL?") == Request("ask", "what is WAL?", "lite")
    assert read_request("PRESET:seed hi") == Request("ask", "hi", "seed")


def test_preset_elsewhere_in_the_text_is_part_of_the_question() -> None:
    assert read_request("what is preset:lite?") == Request("ask", "what is preset:lite?")


@pytest.mark.parametrize("text", ["", "   ", "\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \u200b\n\t"])
def test_nothing_visible(text: str) -> None:
    assert not visible(text)


@pytest.mark.parametrize("text", ["a", "\u200bhi", "?", "😀"])
def test_something_visible(text: str) -> None:
    assert visible(text)
