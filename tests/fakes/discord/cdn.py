"""The fake Discord's CDN: attachment files at signed URLs, as cdn.discordapp.com serves them.

An attachment's `url` (`/attachments/{channel}/{attachment}/{filename}`) and `proxy_url` (the same under
`/media/`) carry Discord's signature parameters `ex` (expiry, hex epoch seconds), `is` (issued) and `hm` (an
HMAC of the rest): no bot token is needed, but a URL whose signature is missing, altered or expired
(`url_ttl_s`, Discord: about a day) answers 404 "This content is no longer available.", as does the file of a
deleted message. A file's bytes come with its `content_type`. Every fetch is recorded in `cdn_fetches`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from tests.fakes.discord.state import DiscordState

JSON = dict[str, Any]

GONE = "This content is no longer available."


class Cdn:
    """Signs attachment URLs (`urls`, which the state uses) and serves them."""

    def __init__(self, state: DiscordState, *, base_url: Callable[[], str], url_ttl_s: float) -> None:
        self.state = state
        self.url_ttl_s = url_ttl_s
        self.cdn_fetches: list[JSON] = []  # {attachment_id, status}
        self._base_url = base_url
        self._key = secrets.token_bytes(16)

    def mount(self, app: web.Application) -> None:
        for prefix in ("", "/media"):
            app.router.add_get(prefix + "/attachments/{channel_id}/{attachment_id}/{filename}", self._serve)

    def urls(self, channel_id: int, attachment_id: int, filename: str) -> tuple[str, str]:
        """(url, proxy_url) for an attachment, signed now."""
        issued = int(time.time())
        expires = issued + int(self.url_ttl_s)
        path = f"/attachments/{channel_id}/{attachment_id}/{quote(filename)}"
        query = f"?ex={expires:x}&is={issued:x}&hm={self._sign(path, expires, issued)}&"
        base = self._base_url()
        return f"{base}{path}{query}", f"{base}/media{path}{query}"

    def _sign(self, path: str, expires: int, issued: int) -> str:
        message = f"{path}|{expires:x}|{issued:x}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def _serve(self, request: web.Request) -> web.Response:
        info = request.match_info
        attachment_id = int(info["attachment_id"]) if info["attachment_id"].isdigit() else 0
        record: JSON = {"attachment_id": attachment_id, "status": 404}
        self.cdn_fetches.append(record)
        found = self._attachment(
            int(info["channel_id"]) if info["channel_id"].isdigit() else 0, attachment_id
        )
        if found is None or found["filename"] != info["filename"] or not self._signed(request):
            return web.Response(status=404, text=GONE)
        record["status"] = 200
        return web.Response(
            body=self.state.attachment_content[attachment_id],
            headers={"Content-Type": found["content_type"] or "application/octet-stream"},
        )

    def _signed(self, request: web.Request) -> bool:
        try:
            expires, issued = int(request.query["ex"], 16), int(request.query["is"], 16)
        except (KeyError, ValueError):
            return False
        path = request.path.removeprefix("/media")
        expected = self._sign(quote(path), expires, issued)
        return hmac.compare_digest(expected, request.query.get("hm", "")) and time.time() < expires

    def _attachment(self, channel_id: int, attachment_id: int) -> JSON | None:
        """The attachment's record, if a live message in that channel carries it."""
        for message in self.state.messages(channel_id):
            for attachment in message.attachments:
                if attachment["id"] == attachment_id:
                    return attachment
        return None
