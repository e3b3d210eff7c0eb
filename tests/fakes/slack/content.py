"""What Slack accepts as a message's content: text, `blocks`, `markdown_text`, and its errors for the rest.

Used by every method that takes content (chat.postMessage, chat.update, chat.postEphemeral, response_url
posts); a new one (chat.startStream's chunks, say) validates with `message_content` too. Errors are the Web
API's: `no_text`, `msg_too_long`, `markdown_text_conflict`, `invalid_blocks_format`, and `invalid_blocks` with
the `errors` list and `response_metadata.messages` Slack sends.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.slack.web_api import ApiError

Json = dict[str, Any]

BLOCK_TYPES = {
    "section", "header", "markdown", "context", "divider", "rich_text", "actions",
    "image", "input", "file", "video", "table", "context_actions",
}  # fmt: skip
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELD = 2000
MAX_HEADER_TEXT = 150
MAX_MARKDOWN_TOTAL = 12000  # all `markdown` blocks (and markdown_text) of one payload together


def flag(value: Any, default: bool) -> bool:
    """Slack booleans arrive as true/false, "true"/"false" or "1"/"0"."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in {"1", "true", "yes"}


def message_content(params: Json, *, max_text_chars: int, require: bool = True) -> Json:
    """Validate text / blocks / markdown_text as Slack does; return the normalized ones given."""
    text = params.get("text")
    text = None if text is None else str(text)
    markdown_text = params.get("markdown_text")
    markdown_text = None if markdown_text is None else str(markdown_text)
    blocks = parse_blocks(params.get("blocks"))
    attachments = params.get("attachments")
    if markdown_text and (text or blocks):
        raise ApiError("markdown_text_conflict")
    if require and not (text or blocks or markdown_text or attachments):
        raise ApiError("no_text")
    if text is not None and len(text) > max_text_chars:
        raise ApiError("msg_too_long")
    if markdown_text is not None and len(markdown_text) > MAX_MARKDOWN_TOTAL:
        raise ApiError("msg_too_long")
    if blocks is not None:
        validate_blocks(blocks)
    return {"text": text, "blocks": blocks, "markdown_text": markdown_text}


def parse_blocks(value: Any) -> list[Json] | None:
    """`blocks` as a list, from a list or its JSON (form-encoded calls send a string); None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ApiError("invalid_blocks_format") from exc
    if not isinstance(value, list):
        raise ApiError("invalid_blocks_format")
    return value


def validate_blocks(blocks: list[Any]) -> None:
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    markdown_total = 0
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}"
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            errors.append(f"unsupported type {where}/type]")
            continue
        kind = block["type"]
        text_obj = block.get("text")
        body = text_obj.get("text", "") if isinstance(text_obj, dict) else text_obj
        if kind == "section":
            fields = block.get("fields") or []
            if not body and not fields:
                errors.append(f"must provide either text or fields {where}]")
            if body and len(body) > MAX_SECTION_TEXT:
                errors.append(f"must be less than {MAX_SECTION_TEXT + 1} characters {where}/text/text]")
            if len(fields) > 10:
                errors.append(f"no more than 10 items allowed {where}/fields]")
            for j, f in enumerate(fields):
                if len(f.get("text", "")) > MAX_SECTION_FIELD:
                    errors.append(f"must be less than {MAX_SECTION_FIELD + 1} characters {where}/fields/{j}]")
        elif kind == "header":
            if not body or len(body) > MAX_HEADER_TEXT:
                errors.append(f"must be less than {MAX_HEADER_TEXT + 1} characters {where}/text/text]")
        elif kind == "markdown":
            if not isinstance(body, str) or not body:
                errors.append(f"must provide text {where}/text]")
            else:
                markdown_total += len(body)
    if markdown_total > MAX_MARKDOWN_TOTAL:
        errors.append(
            f"markdown blocks exceed {MAX_MARKDOWN_TOTAL} characters in total [json-pointer:/blocks]"
        )
    if errors:
        raise ApiError(
            "invalid_blocks",
            extra={"errors": errors, "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]}},
        )
