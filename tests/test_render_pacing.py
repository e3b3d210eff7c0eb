"""Shared adapter pieces: Markdown splitting and edit pacing."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.pacing import PacedMessage, RateBudget, RetryLater
from adapters.render import STILL_WRITING, close_fences, preview, split_markdown


def fences_balanced(piece: str) -> bool:
    return close_fences(piece) == piece


def test_short_text_is_one_piece() -> None:
    assert split_markdown("hello\n\nworld", 100) == ["hello\n\nworld"]


def test_split_prefers_paragraphs_and_keeps_everything() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 30 for i in range(12)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    pieces = split_markdown(text, 400)
    assert all(len(p) <= 400 for p in pieces)
    assert "\n\n".join(pieces) == text
    assert all(p.startswith("Paragraph") for p in pieces)


def test_code_block_is_closed_and_reopened() -> None:
    code = "```python\n" + "\n".join(f"print({i})  # line" for i in range(200)) + "\n```"
    text = f"Intro.\n\n{code}\n\nOutro."
    pieces = split_markdown(text, 500)
    assert len(pieces) > 3
    for piece in pieces:
        assert len(piece) <= 500 and fences_balanced(piece)
    code_pieces = [p for p in pieces if "print(" in p]
    assert all("```python\n" in p for p in code_pieces)
    joined = "\n".join(pieces)
    assert all(f"print({i})  # line" in joined for i in range(200))


def test_overlong_line_is_cut_at_spaces() -> None:
    text = "word " * 500
    pieces = split_markdown(text, 100)
    assert all(len(p) <= 100 for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_unclosed_fence_is_closed() -> None:
    assert close_fences("```py\nx = 1") == "```py\nx = 1\n```"
    assert close_fences("```py\nx\n```\ntext") == "```py\nx\n```\ntext"
    assert split_markdown("```\nopen", 100) == ["```\nopen\n```"]


def test_preview_marks_long_text() -> None:
    short = preview("```\ncode", 100)
    assert short == "```\ncode\n```"
    long = preview("para\n\n" + "x " * 3000, 1000)
    assert len(long) <= 1000 and long.endswith(STILL_WRITING)


LIST_WITH_CODE = (
    "1. Install it:\n\n   ```bash\n"
    + "".join(f"   step {i} --flag\n" for i in range(60))
    + "   ```\n2. Done."
)


def test_code_block_indented_in_a_list_item_is_closed_and_reopened() -> None:
    pieces = split_markdown(LIST_WITH_CODE, 200)
    code_pieces = [p for p in pieces if "step " in p]
    assert len(code_pieces) > 2
    for piece in code_pieces:
        assert len(piece) <= 200 and fences_balanced(piece)
        body = piece[piece.index("   ```bash\n") :]  # the list item's text may come first
        assert body.split("\n")[-1] == "   ```" or "\n   ```\n\n2. Done." in body
    joined = "\n".join(pieces)
    assert all(f"   step {i} --flag" in joined for i in range(60))


def test_indented_fences_are_closed_with_their_indentation_and_marker() -> None:
    assert close_fences("- item\n\n    ~~~~py\n    x = 1") == "- item\n\n    ~~~~py\n    x = 1\n    ~~~~"
    assert close_fences("  ```\n  a\n  ```\n") == "  ```\n  a\n  ```\n"
    assert preview("1. a\n\n   ```sh\n   ls", 100) == "1. a\n\n   ```sh\n   ls\n   ```"
    shown = preview(LIST_WITH_CODE, 300)
    assert len(shown) <= 300 and fences_balanced(shown.removesuffix(STILL_WRITING))


def test_inline_code_with_three_backticks_is_no_fence() -> None:
    assert close_fences("```x``` is inline\n\nmore") == "```x``` is inline\n\nmore"


def test_an_absurdly_long_fence_opener_still_splits() -> None:
    text = "```" + "x" * 300 + "\n" + "code line\n" * 50 + "```"
    pieces = split_markdown(text, 100)
    assert all(len(p) <= 100 and fences_balanced(p) for p in pieces)
    assert "\n".join(pieces).count("code line") == 50


async def test_paced_message_coalesces_and_never_drops_the_final() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    paced = PacedMessage(send, min_interval=0.1)
    for i in range(50):
        paced.submit(f"v{i}")
        await asyncio.sleep(0.005)
    await paced.finish("final")
    assert sent[-1] == "final"
    assert 2 <= len(sent) <= 6  # 0.25 s of updates at one edit per 0.1 s, plus the final


async def test_budget_is_shared_and_finals_come_first() -> None:
    budget = RateBudget(10, 1.0, burst=1)  # ten edits a second across every message
    sends: list[float] = []

    async def send(_: str) -> None:
        sends.append(time.monotonic())

    messages = [PacedMessage(send, min_interval=0.0, budgets=[budget]) for _ in range(5)]
    started = time.monotonic()
    for _ in range(10):
        for m in messages:
            m.submit("x")
        await asyncio.sleep(0.05)
    await asyncio.gather(*(m.finish("done") for m in messages))
    elapsed = time.monotonic() - started
    assert len(sends) <= 1 + 10 * elapsed + 1
    assert budget.spent == len(sends)


async def test_retry_later_pauses_and_retries_the_final() -> None:
    calls: list[float] = []

    async def send(_: str) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RetryLater(0.2)

    budget = RateBudget(100, 1.0)
    paced = PacedMessage(send, min_interval=0.0, budgets=[budget])
    await paced.finish("final")
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.19


async def test_final_failure_other_than_429_is_raised() -> None:
    async def send(_: str) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await PacedMessage(send, min_interval=0.0).finish("final")
