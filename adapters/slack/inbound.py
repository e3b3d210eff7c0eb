"""HTTP mode's front door: is a POST to /slack/events from Slack, and is its body one Slack would send?

The signature is checked on the raw bytes before anything parses them, so junk from anyone who can reach the
endpoint costs one HMAC and a 401. Slack signs `v0:{X-Slack-Request-Timestamp}:{raw body}` with the app's signing
secret (HMAC-SHA256, sent as `X-Slack-Signature: v0=<hex>`) and a timestamp more than 5 minutes off is refused,
which bounds replays to that window. slack_sdk's `SignatureVerifier` computes the same digest but raises on a
non-numeric timestamp or a body that is not UTF-8, and answers only yes or no; `refusal` says why, for the log.

Only a request that passes both becomes bolt's request (`bolt_request`): bolt reads ids out of bodies without
checking their types, and takes a command whose text says "payload" for an empty form, so it never sees raw text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt.request.async_request import AsyncBoltRequest

from moa.errors import MoaError

MAX_AGE_S = 300
_MAX_TIMESTAMP_DIGITS = 12  # int() of thousands of digits raises; Slack's are 10


class MalformedBody(MoaError):
    """A signed body that is not one of the shapes Slack sends; the message says what is wrong with it."""


def refusal(body: bytes, headers: Mapping[str, str], signing_secret: str, now: float) -> str | None:
    """Why this request is not from Slack (missing, bad or stale signature), or None when it is.

    `headers` must look names up case-insensitively, as aiohttp's do.
    """
    timestamp = headers.get("X-Slack-Request-Timestamp")
    signature = headers.get("X-Slack-Signature")
    if not timestamp or not signature:
        return "missing signature"
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        return "bad timestamp"
    if abs(now - int(timestamp)) > MAX_AGE_S:
        return "stale timestamp"
    digest = hmac.new(signing_secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    if not hmac.compare_digest(f"v0={digest.hexdigest()}".encode(), signature.encode(errors="replace")):
        return "bad signature"
    return None


def bolt_request(
    body: bytes, content_type: str, headers: Mapping[str, str], query: str
) -> AsyncBoltRequest:
    """The signed request as bolt's; raises `MalformedBody` when its body is not one Slack sends."""
    parsed = parse_body(body, content_type)
    try:
        # bolt parses the text again; the JSON of what was parsed reads back as it is, whatever the content type
        return AsyncBoltRequest(body=json.dumps(parsed), query=query, headers=dict(headers))
    except (AttributeError, TypeError, KeyError, IndexError):  # an id field of an unexpected type
        raise MalformedBody("ids of unexpected types") from None


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The request as bolt reads it: an Events API JSON object, or a form's fields (slash commands), or a form's
    `payload` JSON (interactivity). Raises `MalformedBody` for anything else."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise MalformedBody("not UTF-8") from None
    if content_type == "application/json":
        event = _typed_object(text, "body")
        if event["type"] == "event_callback":
            inner = event.get("event")
            if not isinstance(inner, dict) or not isinstance(inner.get("type"), str):
                raise MalformedBody("an event_callback without an event")
        return event
    if content_type == "application/x-www-form-urlencoded":
        fields = dict(parse_qsl(text, keep_blank_values=True))
        if "payload" in fields:
            return _typed_object(fields["payload"], "payload")
        if "command" in fields or "ssl_check" in fields:
            return fields
        raise MalformedBody("a form without command or payload")
    raise MalformedBody(f"content type {content_type or 'missing'}")


def _typed_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
        raise MalformedBody(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedBody(f"{what} is not a JSON object")
    if not isinstance(value.get("type"), str):
        raise MalformedBody(f"{what} has no type")
    return value
