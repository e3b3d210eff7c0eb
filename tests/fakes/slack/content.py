"""What Slack accepts as a message's content: text, `blocks`, `markdown_text`, stream `chunks`, and its errors.

Used by every method that takes content (chat.postMessage, chat.update, chat.postEphemeral, the streaming
methods, response_url posts). Errors are the Web API's: `no_text`, `msg_too_long`, `markdown_text_conflict`,
`invalid_blocks_format`, and `invalid_blocks` / `invalid_chunks` with the `errors` list and
`response_metadata.messages` Slack sends. Interactive elements are checked too: buttons (`actions` blocks) and
`feedback_buttons` / `icon_button` (`context_actions` blocks), with Block Kit's field limits.
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
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ACTIONS_ELEMENTS = 5
MAX_ACTION_ID = 255
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_TASK_FIELD = 256  # a task_update's title, details and output; a plan_update's title
TASK_STATUSES = {"pending", "in_progress", "complete", "error"}
CHUNK_TYPES = {"markdown_text", "task_update", "plan_update", "blocks"}


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
    return _json_list(value, "invalid_blocks_format")


def parse_chunks(value: Any) -> list[Json] | None:
    """Stream `chunks` as a list, from a list or its JSON; None when absent."""
    return _json_list(value, "invalid_chunks")


def _json_list(value: Any, error: str) -> list[Json] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ApiError(error) from exc
    if not isinstance(value, list):
        raise ApiError(error)
    return value


def validate_chunks(chunks: list[Any]) -> None:
    """Stream chunks as chat.startStream / appendStream / stopStream take them; `invalid_chunks` otherwise.

    A markdown_text chunk over 12,000 characters is `msg_too_long`, as the `markdown_text` field is.
    """
    errors: list[str] = []
    for i, chunk in enumerate(chunks):
        where = f"[json-pointer:/chunks/{i}"
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        if kind not in CHUNK_TYPES:
            errors.append(f"unsupported type {where}/type]")
            continue
        if kind == "markdown_text":
            text = chunk.get("text")
            if not isinstance(text, str):
                errors.append(f"missing required field: text {where}]")
            elif len(text) > MAX_MARKDOWN_TOTAL:
                raise ApiError("msg_too_long")
        elif kind == "task_update":
            for field in ("id", "title", "status"):
                if not isinstance(chunk.get(field), str) or not chunk[field]:
                    errors.append(f"missing required field: {field} {where}]")
            if chunk.get("status") and chunk["status"] not in TASK_STATUSES:
                errors.append(f"must be one of {sorted(TASK_STATUSES)} {where}/status]")
            for field in ("title", "details", "output"):
                if isinstance(chunk.get(field), str) and len(chunk[field]) > MAX_TASK_FIELD:
                    errors.append(f"must be less than {MAX_TASK_FIELD + 1} characters {where}/{field}]")
        elif kind == "plan_update":
            title = chunk.get("title")
            if not isinstance(title, str) or not title:
                errors.append(f"missing required field: title {where}]")
            elif len(title) > MAX_TASK_FIELD:
                errors.append(f"must be less than {MAX_TASK_FIELD + 1} characters {where}/title]")
        else:
            blocks = chunk.get("blocks")
            if not isinstance(blocks, list):
                errors.append(f"missing required field: blocks {where}]")
            else:
                validate_blocks(blocks)
    if errors:
        raise _invalid("invalid_chunks", errors)


def _invalid(error: str, errors: list[str]) -> ApiError:
    return ApiError(
        error, extra={"errors": errors, "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]}}
    )


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
        elif kind == "actions":
            errors.extend(_elements(block, where, MAX_ACTIONS_ELEMENTS, {"button"}, strict=False))
        elif kind == "context_actions":
            allowed = {"feedback_buttons", "icon_button"}
            errors.extend(_elements(block, where, MAX_CONTEXT_ACTIONS_ELEMENTS, allowed, strict=True))
    if markdown_total > MAX_MARKDOWN_TOTAL:
        errors.append(
            f"markdown blocks exceed {MAX_MARKDOWN_TOTAL} characters in total [json-pointer:/blocks]"
        )
    if errors:
        raise _invalid("invalid_blocks", errors)


def _elements(block: Json, where: str, most: int, checked: set[str], *, strict: bool) -> list[str]:
    """Errors in an `actions` / `context_actions` block's elements; `strict`: only `checked` types allowed."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [f"must provide elements {where}/elements]"]
    errors = []
    if len(elements) > most:
        errors.append(f"no more than {most} items allowed {where}/elements]")
    for j, element in enumerate(elements):
        at = f"{where}/elements/{j}"
        kind = element.get("type") if isinstance(element, dict) else None
        if kind not in checked:
            if strict or kind is None:
                errors.append(f"unsupported type {at}/type]")
            continue
        action_id = element.get("action_id")
        if isinstance(action_id, str) and len(action_id) > MAX_ACTION_ID:
            errors.append(f"must be less than {MAX_ACTION_ID + 1} characters {at}/action_id]")
        if kind == "feedback_buttons":
            for side in ("positive_button", "negative_button"):
                if not isinstance(element.get(side), dict):
                    errors.append(f"missing required field: {side} {at}]")
                else:
                    errors.extend(_button(element[side], f"{at}/{side}", value_required=True))
        else:
            errors.extend(_button(element, at, value_required=False))
    return errors


def _button(button: Json, at: str, *, value_required: bool) -> list[str]:
    errors = []
    text = button.get("text")
    label = text.get("text") if isinstance(text, dict) else None
    if not isinstance(label, str) or not label:
        errors.append(f"missing required field: text {at}]")
    elif len(label) > MAX_BUTTON_TEXT:
        errors.append(f"must be less than {MAX_BUTTON_TEXT + 1} characters {at}/text/text]")
    value = button.get("value")
    if value_required and not isinstance(value, str):
        errors.append(f"missing required field: value {at}]")
    elif isinstance(value, str) and len(value) > MAX_BUTTON_VALUE:
        errors.append(f"must be less than {MAX_BUTTON_VALUE + 1} characters {at}/value]")
    return errors


def parse_metadata(value: Any) -> Json | None:
    """Message metadata (a dict, or its JSON as form calls send it): `event_type` and `event_payload`."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ApiError("invalid_metadata_format") from exc
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("event_type"), str)
        or not isinstance(value.get("event_payload"), dict)
    ):
        raise ApiError("invalid_metadata_format")
    return dict(value)
