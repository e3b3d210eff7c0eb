"""HTTP mode: requests signed as Slack signs them, POSTed to an app's `/slack/events`.

`sign_request` makes the headers (`X-Slack-Request-Timestamp`, `v0=` HMAC-SHA256 `X-Slack-Signature`, and
`X-Slack-Retry-Num`/`-Reason` on redelivery); `post_signed` sends a body to an app on this machine with
Slack's 3 s patience. `FakeSlack.deliver_http` ties them to the workspace (events are stored first).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlsplit

import aiohttp


def sign_request(
    body: bytes | str,
    signing_secret: str,
    timestamp: int | str | None = None,
    *,
    content_type: str | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> dict[str, str]:
    """Headers Slack sends with an HTTP-mode request: timestamp, `v0=` HMAC-SHA256 signature, content type.

    `content_type` defaults from the body: JSON for `{...}` (events), form-encoded otherwise (commands).
    `retry_num`/`retry_reason` add `X-Slack-Retry-Num`/`-Reason`, as Slack does on redelivery.
    """
    raw = body.encode() if isinstance(body, str) else body
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    digest = hmac.new(signing_secret.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    if content_type is None:
        is_json = raw.lstrip().startswith(b"{")
        content_type = "application/json" if is_json else "application/x-www-form-urlencoded"
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
    return headers


async def post_signed(url: str, body: str, headers: dict[str, str], *, timeout_s: float) -> tuple[int, str]:
    """POST a signed body to an app on this machine; (status, body text). TimeoutError after `timeout_s`."""
    if urlsplit(url).hostname not in {"127.0.0.1", "localhost"}:
        raise ValueError(f"refusing to POST test payloads off this machine: {url}")
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
        session.post(url, data=body.encode(), headers=headers) as resp,
    ):
        return resp.status, await resp.text()
