"""The AI-app message shapes, pure: stream frames and their deltas, where a full stream ends, model cards, the
buttons under answers, and "Show drafts"."""

from __future__ import annotations

import json

from adapters.slack.formatting import (
    DRAFTS_ACTION,
    FEEDBACK_ACTION,
    STOP_ACTION,
    ZWSP,
    StreamFrame,
    Task,
    answer_message,
    drafts_messages,
    model_tasks,
    open_fence,
    seal_plain,
    status_message,
    stream_cut,
    stream_split,
    streaming_message,
)
from moa.conversation import ModelStatus
from moa.events import Usage
from moa.persistence import ProposalRecord


def test_a_frame_sends_only_what_changed_since_the_shown_one() -> None:
    shown = StreamFrame("Hello", (Task("model-0", "a: drafting", "in_progress"),), "Asking 2 models…")
    now = StreamFrame(
        "Hello world",
        (Task("model-0", "a: drafting", "in_progress"), Task("model-1", "b: drafting", "in_progress")),
        "Writing…",
    )
    assert now.chunks_since(shown) == [
        {"type": "plan_update", "title": "Writing…"},
        {"type": "task_update", "id": "model-1", "title": "b: drafting", "status": "in_progress"},
        {"type": "markdown_text", "text": " world"},
    ]
    assert now.chunks_since(now) == []
    assert StreamFrame("Goodbye").chunks_since(shown) is None  # a stream cannot take back what it showed


def test_a_frame_is_sealed_as_a_whole_so_each_append_is_part_of_a_sealed_text() -> None:
    before = StreamFrame("say <!here").sealed()
    after = StreamFrame("say <!here> now").sealed()
    assert "<!" not in after.markdown and after.markdown.startswith("say @")
    assert after.chunks_since(before) is None  # the mention completed differently: not an append
    assert StreamFrame("x" * 300, (Task("t", "y" * 300, "complete"),), "p" * 300).sealed().tasks[0].title == (
        "y" * 255 + "…"
    )


def test_only_settled_text_is_streamed() -> None:
    assert stream_cut("Hello wor") == len("Hello ")
    assert stream_cut("Hello world\n") == len("Hello world\n")
    assert stream_cut("<@U0BO") == 0


def test_a_full_stream_ends_at_the_last_paragraph_then_line_then_space_that_fits() -> None:
    text = "one two\nthree four\n\nfive six seven"

    def split(start: int, most: int) -> int:
        return stream_split(text, start, most, lambda piece: len(piece) <= most)

    assert split(0, 30) == len("one two\nthree four")
    assert split(0, 15) == len("one two")
    assert split(0, 5) == len("one")
    assert split(9, 5) == 9  # never before what the message shows


def test_a_full_stream_inside_a_code_block_closes_it_and_says_how_to_reopen_it() -> None:
    text = "Intro\n\n```python\nx = 1\ny = 2\nz = 3"
    shown = len("Intro\n\n```py")  # past the paragraph break: the message ends inside the code block
    pieces: list[str] = []
    end = stream_split(text, shown, 30, lambda piece: pieces.append(piece) is None and len(piece) <= 30)
    assert text[:end] == "Intro\n\n```python\nx = 1" and pieces[-1] == text[:end] + "\n```"
    assert open_fence(text[:end]) == "```python" and open_fence("```\nx\n```") == ""


def test_each_model_has_a_card_that_says_how_it_went() -> None:
    models = (
        ModelStatus("meta-llama/Llama-3.3-70B-Instruct-Turbo", "proposer", 1, "done", 3.1, 412),
        ModelStatus("p/b", "proposer", 1, "failed", 2.0, detail="rate limited"),
        ModelStatus("p/c", "proposer", 1, "cut_off", 9.0, detail="too slow"),
        ModelStatus("p/d", "proposer", 2, "drafting"),
        ModelStatus("agg/x", "aggregator", 3, "synthesizing", detail="4 drafts"),
    )
    assert model_tasks(models) == (
        Task("model-0", "Round 1 · Llama-3.3-70B-Instruct-Turbo: done in 3.1 s, 412 tokens", "complete"),
        Task("model-1", "Round 1 · b: error: rate limited", "error"),
        Task("model-2", "Round 1 · c: cut off: too slow", "error"),
        Task("model-3", "Round 2 · d: drafting", "in_progress"),
        Task("model-4", "x: synthesizing 4 drafts", "in_progress"),
    )
    failed = ModelStatus("agg/x", "aggregator", 2, "failed", 4.0, detail="the best draft is shown instead")
    assert model_tasks((failed,))[0].title == "x: failed: the best draft is shown instead"


def test_plain_fields_are_sealed_and_cut() -> None:
    assert seal_plain("<!channel> hi") == f"@{ZWSP}channel hi"
    assert seal_plain("x" * 300, 10) == "x" * 9 + "…"


def test_interim_messages_carry_a_stop_button_and_final_ones_feedback_and_drafts() -> None:
    for message in (status_message("Asking…", "run1"), streaming_message("so far", "Writing…", stop="run1")):
        [actions] = [b for b in message.payload()["blocks"] if b["type"] == "actions"]
        assert (actions["elements"][0]["action_id"], actions["elements"][0]["value"]) == (STOP_ACTION, "run1")
    assert status_message("Asking…").blocks == []
    blocks = answer_message("The answer.", "preset · 1.0 s", "run1").payload()["blocks"]
    assert [b["type"] for b in blocks] == ["markdown", "context", "context_actions", "actions"]
    feedback = blocks[2]["elements"][0]
    assert feedback["action_id"] == FEEDBACK_ACTION
    assert (feedback["positive_button"]["value"], feedback["negative_button"]["value"]) == (
        "up:run1",
        "down:run1",
    )
    assert (blocks[3]["elements"][0]["action_id"], blocks[3]["elements"][0]["value"]) == (
        DRAFTS_ACTION,
        "run1",
    )


def test_drafts_show_model_time_tokens_and_failures_within_slacks_limits() -> None:
    long = "\n\n".join(f"Paragraph {i} " + "word " * 400 for i in range(8))  # ~16,000 characters
    proposals = [
        ProposalRecord(1, "p/a", long, 3.14, Usage(100, 412)),
        ProposalRecord(1, "p/b", "", 2.0, Usage(), error="ProviderRejected 429: rate limited"),
        ProposalRecord(1, "p/c", "", 8.0, Usage(), straggler=True),
    ]
    messages = drafts_messages("what is <!here> WAL?", proposals)
    assert len(messages) == 2
    for message in messages:
        payload = message.payload()
        assert sum(len(b["text"]) for b in payload["blocks"] if b["type"] == "markdown") <= 12_000
        assert len(payload["blocks"]) <= 50 and "<!" not in json.dumps(payload)
    shown = json.dumps([m.payload() for m in messages], ensure_ascii=False)
    assert "*a* · 3.1 s · 412 tokens" in shown
    assert "*b* · failed after 2.0 s: ProviderRejected 429: rate limited" in shown
    assert "*c* · cut off after 8.0 s (too slow)" in shown
    assert all(f"Paragraph {i} " in shown for i in range(8))
