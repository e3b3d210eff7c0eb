"""The fake Slack's response_url endpoints: `/commands/...` (slash commands) and `/actions/...` (interactions).

A response_url takes 5 posts within 30 minutes (`ttl_s`), as Slack allows; then `used_url` / `expired_url`.
`response_type: in_channel` posts a bot message to the channel; `replace_original` / `delete_original` change
the message an interaction came from (an `/actions/` URL made with `message_ts`); otherwise the post is an
ephemeral to the user who acted (recorded in the workspace's `ephemerals`). Every post is recorded in `posts`,
accepted or not.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes import slack_payloads as sp
from tests.fakes.slack.content import flag, parse_blocks
from tests.fakes.slack.state import SlackState

Json = dict[str, Any]

USES = 5


class ResponseUrls:
    """The response_urls the fake issued, and what was posted to them."""

    def __init__(self, state: SlackState, *, ttl_s: float, base_url: Callable[[], str]) -> None:
        self.state = state
        self.ttl_s = ttl_s
        self.posts: list[Json] = []  # {url, body, time} for every POST, in order
        self._base_url = base_url
        self._hooks: dict[str, Json] = {}

    def mount(self, app: web.Application) -> None:
        app.router.add_post("/commands/{team}/{hook}/{secret}", self._handle)
        app.router.add_post("/actions/{team}/{hook}/{secret}", self._handle)

    def new(
        self, channel_id: str = sp.CHANNEL_ID, user_id: str = sp.USER_ID, *, message_ts: str | None = None
    ) -> str:
        """A response_url served by the fake, tied to a channel and user: a slash command's, or, with
        `message_ts`, an interaction's on that message."""
        hook = str(len(self._hooks) + 1)
        secret = secrets.token_hex(12)
        self._hooks[hook] = {
            "channel": channel_id,
            "user": user_id,
            "message_ts": message_ts,
            "uses": 0,
            "created": self.state.clock(),
        }
        kind = "commands" if message_ts is None else "actions"
        return f"{self._base_url()}/{kind}/{self.state.team_id}/{hook}/{secret}"

    async def _handle(self, request: web.Request) -> web.Response:
        state = self.state
        hook = self._hooks.get(request.match_info["hook"])
        try:
            body: Json = (
                await request.json()
                if request.content_type == "application/json"
                else dict(await request.post())
            )
        except json.JSONDecodeError:
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        self.posts.append({"url": str(request.url), "body": body, "time": state.clock()})
        if hook is None:
            return web.json_response({"ok": False, "error": "invalid_url"}, status=404)
        if state.clock() - hook["created"] > self.ttl_s:
            return web.json_response({"ok": False, "error": "expired_url"}, status=404)
        if hook["uses"] >= USES:
            return web.json_response({"ok": False, "error": "used_url"}, status=404)
        hook["uses"] += 1
        text, blocks = body.get("text"), body.get("blocks")
        original = state.find(hook["channel"], hook["message_ts"]) if hook["message_ts"] else None
        if original is not None and flag(body.get("delete_original"), False):
            original.update(deleted=True, updated_at=state.clock())
        elif original is not None and flag(body.get("replace_original"), False):
            state.keep_version(original)
            original.update(text=str(text or ""), blocks=parse_blocks(blocks), markdown_text=None)
            original["updated_at"] = state.clock()
        elif body.get("response_type") == "in_channel" and hook["channel"] in state.channels:
            state.add_bot_message(
                hook["channel"], str(text or ""), thread_ts=body.get("thread_ts"), blocks=parse_blocks(blocks)
            )
        elif not body.get("delete_original") and not body.get("replace_original"):
            state.ephemerals.append(
                {
                    "channel": hook["channel"],
                    "user": hook["user"],
                    "ts": sp.next_ts(),
                    "text": text,
                    "blocks": blocks,
                }
            )
        return web.json_response({"ok": True})
