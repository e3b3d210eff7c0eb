"""The Discord adapter's pure parts: question text, thread names, message contents, metric routes."""

from __future__ import annotations

import uuid
from dataclasses import replace

import yarl

from adapters.discord.api import route_of
from adapters.discord.commands import fingerprint
from adapters.discord.controls import CUSTOM_ID, NO_CONTROLS, Controls, on_answer, while_writing
from adapters.discord.formatting import (
    DRAFTS_CUT,
    HANDOVER_NOTE,
    MAX_CONTENT,
    answer_pieces,
    draft_pieces,
    failure,
    handover,
    interim,
    model_line,
    question_text,
    thread_name,
    with_footer,
)
from adapters.render import close_fences
from moa.answering import Drafts
from moa.conversation import ModelStatus, Phase, ReplyView
from moa.events import Usage
from moa.persistence import ProposalRecord

BOT = 111111111111111111


def test_question_text_strips_the_bot_and_names_others() -> None:
    content = f"<@{BOT}> what did <@222> say? <@!{BOT}> and <@&9> <@333>"
    assert question_text(content, BOT, {222: "bob"}, bot_role_id=9) == "what did @bob say? and <@333>"
    assert question_text(f"<@!{BOT}>", BOT, {}) == ""


def test_thread_names_are_1_to_100_characters() -> None:
    assert thread_name("\n\n  What   is\tWAL?  \nmore", "x") == "What is WAL?"
    assert thread_name("   ", "Question from alice") == "Question from alice"
    assert thread_name("", "") == "Question"
    long = thread_name("word " * 40, "x")
    assert len(long) <= 100 and long.endswith("word…")
    unbroken = thread_name("x" * 300, "y")
    assert len(unbroken) == 100 and unbroken.endswith("…")


def test_views_become_contents_within_discords_limit() -> None:
    assert interim(ReplyView(Phase.WORKING, "Asking 4 models…")) == "⏳ Asking 4 models…"
    assert interim(ReplyView(Phase.STREAMING, "Writing…", "")) == "⏳ Writing…"
    streaming = interim(ReplyView(Phase.STREAMING, "Writing…", "```py\n" + "x = 1\n" * 500))
    assert len(streaming) <= MAX_CONTENT and close_fences(streaming) == streaming

    done = ReplyView(Phase.DONE, "Done", "para one\n\n" + "word " * 800, "lite · a → b · 2.0 s")
    pieces = answer_pieces(done)
    footed = with_footer(pieces[-1], done.footer)
    assert len(pieces) >= 3 and all(len(p) <= MAX_CONTENT for p in (*pieces, footed))
    assert footed.endswith("\n-# lite · a → b · 2.0 s") and "-# " not in pieces[0]
    assert failure(ReplyView(Phase.FAILED, "Failed", "Models are down.")) == "⚠️ Models are down."
    assert answer_pieces(ReplyView(Phase.DONE, "Done", "", "f"))[0].startswith("_(the models returned")

    marked = handover(ReplyView(Phase.STREAMING, "Writing…", "y" * 3000))
    assert len(marked) <= MAX_CONTENT and marked.endswith(HANDOVER_NOTE)


def test_each_model_gets_a_compact_progress_line() -> None:
    assert model_line(ModelStatus("meta-llama/Llama-3.3-70B", "proposer", 1, "drafting")) == "⏳ Llama-3.3-70B · drafting"
    done = ModelStatus("Qwen/Qwen2.5-72B", "proposer", 1, "done", 2.44, 312)
    assert model_line(done) == "✓ Qwen2.5-72B · 2.4 s · 312 tokens"
    failed = ModelStatus("local:mistral_small", "proposer", 1, "failed", 3.1, detail="rate limited")
    assert model_line(failed) == "✗ mistral\\_small · failed (rate limited) · 3.1 s"
    cut = ModelStatus("deepseek-ai/DeepSeek-V3", "proposer", 1, "cut_off", 5.0, detail="too slow")
    assert model_line(cut) == "✂ DeepSeek-V3 · cut off (too slow) · 5.0 s"
    synthesizing = ModelStatus("agg/x", "aggregator", 2, "synthesizing", detail="3 drafts")
    assert model_line(synthesizing) == "⏳ x · synthesizing (3 drafts)"


def test_progress_shows_the_latest_round_and_fits_one_message() -> None:
    models = (
        ModelStatus("p/a", "proposer", 1, "done", 1.0, 10),
        ModelStatus("p/a", "proposer", 2, "drafting"),
        ModelStatus("p/b", "proposer", 2, "done", 2.0, 20),
    )
    shown = interim(ReplyView(Phase.WORKING, "Round 2 of 2: 1/2 drafts in…", models=models))
    assert shown == "⏳ Round 2 of 2: 1/2 drafts in…\n-# ⏳ a · drafting\n-# ✓ b · 2.0 s · 20 tokens"

    many = tuple(ModelStatus(f"org/model-{i}-" + "x" * 60, "proposer", 1, "drafting") for i in range(40))
    crowded = interim(ReplyView(Phase.WORKING, "Asking 40 models…", models=many))
    assert len(crowded) <= MAX_CONTENT
    lines = crowded.split("\n")
    shown_models = len(lines) - 2
    assert lines[-1] == f"-# … and {40 - shown_models} more" and shown_models > 10


def proposal(model: str, text: str = "", *, layer: int = 1, error: str = "", straggler: bool = False) -> ProposalRecord:
    return ProposalRecord(layer, model, text, 1.25, Usage(100, 42), error, straggler)


def test_drafts_name_each_model_with_its_time_and_tokens() -> None:
    drafts = Drafts(
        "r1",
        "What   is\nWAL?",
        (
            proposal("org/a", "```py\nprint(1)"),  # an unclosed code block stays inside its draft
            proposal("org/b", error="HTTP 429: rate limited " + "x" * 300),
            proposal("org/c", straggler=True, error="cut off"),
        ),
    )
    (text,) = draft_pieces(drafts)
    assert text.split("\n\n") == [
        "**Drafts for:** What is WAL?",
        "**1. a** · 1.2 s · 42 tokens",
        "```py\nprint(1)\n```",
        "**2. b** · ✗ failed after 1.2 s: HTTP 429: rate limited " + "x" * 126 + "…",
        "**3. c** · ✂ cut off after 1.2 s (too slow)",
    ]
    rounds = draft_pieces(Drafts("r", "q", (proposal("a", "one"), proposal("a", "two", layer=2))))[0]
    assert "**1. a** · round 1 · " in rounds and "**2. a** · round 2 · " in rounds
    assert "one model alone" in draft_pieces(Drafts("r", "q", ()))[0]


def test_long_drafts_are_split_into_a_few_messages() -> None:
    long = "\n\n".join("sentence " * 50 for _ in range(10))  # about 4,500 characters
    pieces = draft_pieces(Drafts("r", "q", tuple(proposal(f"m{i}", long) for i in range(2))))
    assert 4 <= len(pieces) <= 6 and all(len(piece) <= MAX_CONTENT for piece in pieces)
    many = draft_pieces(Drafts("r", "q", tuple(proposal(f"m{i}", long) for i in range(8))))
    assert len(many) == 6 and many[-1] == DRAFTS_CUT


def test_answer_buttons_offer_drafts_only_when_there_were_drafts() -> None:
    drafted = (ModelStatus("p/a", "proposer", 1, "done", 1.0, 5), ModelStatus("agg/x", "aggregator", 2, "done"))
    done = ReplyView(Phase.DONE, "Done", "answer", "f", run_id="r1", models=drafted)
    assert on_answer(done) == Controls("r1", ("up", "down", "drafts"))
    assert on_answer(replace(done, models=drafted[1:])) == Controls("r1", ("up", "down"))  # one model alone
    assert on_answer(replace(done, run_id="")) == while_writing(replace(done, run_id="")) == NO_CONTROLS
    assert while_writing(ReplyView(Phase.WORKING, "Asking…", run_id="r1")) == Controls("r1", ("stop",))
    custom_ids = [f"moa:{action}:{uuid.uuid4().hex}" for action in ("stop", "up", "down", "drafts")]
    assert all(CUSTOM_ID.fullmatch(c) and len(c) <= 100 for c in custom_ids)


def test_metric_routes_hide_ids_and_tokens() -> None:
    base = "/api/v10"
    url = yarl.URL("http://x/api/v10/webhooks/123456789012345678/aW50ZXJhY3Rpb24abc/messages/@original")
    assert route_of("patch", url, base) == "PATCH /webhooks/{id}/{token}/messages/@original"
    url = yarl.URL("http://x/api/v10/interactions/123456789012345678/tok/callback?with_response=1")
    assert route_of("POST", url, base) == "POST /interactions/{id}/{token}/callback"
    url = yarl.URL("http://x/api/v10/channels/123456789012345678/messages/223456789012345678")
    assert route_of("PATCH", url, base) == "PATCH /channels/{id}/messages/{id}"
    assert route_of("GET", yarl.URL("ws://x/gateway?v=10"), base) is None


def test_command_fingerprint_ignores_what_discord_adds() -> None:
    local = [
        {
            "name": "moa",
            "type": 1,
            "description": "Ask",
            "options": [
                {"name": "question", "type": 3, "description": "q", "required": True},
            ],
            "nsfw": False,
            "contexts": None,
        }
    ]
    remote = [
        {
            "id": "1",
            "application_id": "2",
            "version": "3",
            "name": "moa",
            "type": 1,
            "description": "Ask",
            "name_localizations": {},
            "options": [
                {
                    "name": "question",
                    "type": 3,
                    "description": "q",
                    "required": True,
                    "choices": [],
                    "min_length": None,
                    "max_length": None,
                    "autocomplete": False,
                    "options": [],
                },
            ],
        }
    ]
    assert fingerprint(local) == fingerprint(remote)
    changed = [{**local[0], "description": "Ask the mixture"}]
    assert fingerprint(changed) != fingerprint(remote)
