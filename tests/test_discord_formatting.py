"""The Discord adapter's pure parts: question text, thread names, message contents, metric routes."""

from __future__ import annotations

import yarl

from adapters.discord.api import route_of
from adapters.discord.commands import fingerprint
from adapters.discord.formatting import (
    HANDOVER_NOTE,
    MAX_CONTENT,
    answer_pieces,
    failure,
    handover,
    interim,
    question_text,
    thread_name,
    with_footer,
)
from adapters.render import close_fences
from moa.conversation import Phase, ReplyView

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
