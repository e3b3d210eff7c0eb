"""What Discord accepts in request bodies, and its 50035 Invalid Form Body errors (with the `errors` tree) for
the rest: message content and embeds, message components (action rows of buttons and selects), application
command definitions, thread names, query parameters."""

from __future__ import annotations

import re
from typing import Any

from tests.fakes import discord_payloads as p
from tests.fakes.discord.rest import ApiError

JSON = dict[str, Any]

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_DESCRIPTION = 4096
MAX_EMBED_TOTAL = 6000
MAX_ACTION_ROWS = 5
MAX_ROW_COMPONENTS = 5
MAX_CUSTOM_ID = 100
MAX_BUTTON_LABEL = 80
FLAG_COMPONENTS_V2 = 1 << 15  # layout components (containers, sections...), checked only for custom_id
_COMMAND_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")


def _too_long(path: list[str], limit: int) -> ApiError:
    return ApiError(400, p.form_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."))


def validate_content(
    content: str, embeds: list[JSON], prefix: tuple[str, ...], *, max_content: int = MAX_CONTENT
) -> None:
    """A message's content and embeds; `prefix` is where they sit in the body (`data` in a callback)."""
    if len(content) > max_content:
        raise _too_long([*prefix, "content"], max_content)
    if len(embeds) > MAX_EMBEDS:
        raise _too_long([*prefix, "embeds"], MAX_EMBEDS)
    total = 0
    for index, embed in enumerate(embeds):
        description = str(embed.get("description") or "")
        if len(description) > MAX_EMBED_DESCRIPTION:
            raise _too_long([*prefix, "embeds", str(index), "description"], MAX_EMBED_DESCRIPTION)
        total += len(description) + len(str(embed.get("title") or ""))
        total += len(str((embed.get("footer") or {}).get("text") or ""))
        total += len(str((embed.get("author") or {}).get("name") or ""))
        total += sum(
            len(str(f.get("name", ""))) + len(str(f.get("value", ""))) for f in embed.get("fields") or []
        )
    if total > MAX_EMBED_TOTAL:
        raise ApiError(
            400,
            p.form_error(
                [*prefix, "embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
            ),
        )


def validate_command(index: int, definition: Any, seen: set[tuple[str, int]]) -> None:
    """One definition of a bulk overwrite; `seen` collects (name, type) to refuse duplicates."""
    if not isinstance(definition, dict):
        raise ApiError(
            400,
            p.form_error([str(index)], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"),
        )
    name = definition.get("name")
    command_type = int(definition.get("type", 1))
    if not isinstance(name, str) or (command_type == 1 and not _COMMAND_NAME.match(name)):
        raise ApiError(
            400,
            p.form_error([str(index), "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"),
        )
    description = definition.get("description", "")
    if command_type == 1 and not 1 <= len(description) <= 100:
        raise ApiError(
            400,
            p.form_error(
                [str(index), "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            ),
        )
    if (name, command_type) in seen:
        raise ApiError(
            400,
            p.form_error(
                [str(index), "name"],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            ),
        )
    seen.add((name, command_type))


def thread_name(body: JSON) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise ApiError(
            400, p.form_error(["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        )
    return name


def validate_components(components: Any, prefix: tuple[str, ...], *, flags: int = 0) -> None:
    """A message's `components`: up to 5 action rows of up to 5 components; buttons with a `custom_id` of at
    most 100 characters (link buttons a `url` instead), labels of at most 80; custom_ids unique."""
    where = [*prefix, "components"]
    if not isinstance(components, list):
        raise ApiError(
            400, p.form_error(where, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        )
    if flags & FLAG_COMPONENTS_V2:
        _custom_ids(components, where, set())
        return
    if len(components) > MAX_ACTION_ROWS:
        raise _too_long(where, MAX_ACTION_ROWS)
    seen: set[str] = set()
    for i, row in enumerate(components):
        at = [*where, str(i)]
        if not isinstance(row, dict) or row.get("type") != p.COMPONENT_ACTION_ROW:
            raise ApiError(
                400,
                p.form_error(
                    [*at, "type"], "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (1,).'
                ),
            )
        inner = row.get("components")
        if not isinstance(inner, list) or not 1 <= len(inner) <= MAX_ROW_COMPONENTS:
            raise ApiError(
                400,
                p.form_error(
                    [*at, "components"],
                    "BASE_TYPE_BAD_LENGTH",
                    f"Must be between 1 and {MAX_ROW_COMPONENTS} in length.",
                ),
            )
        for j, component in enumerate(inner):
            _component(component, [*at, "components", str(j)], seen)


def _component(component: Any, at: list[str], seen: set[str]) -> None:
    if not isinstance(component, dict) or not isinstance(component.get("type"), int):
        raise ApiError(400, p.form_error([*at, "type"], "BASE_TYPE_REQUIRED", "This field is required"))
    if component["type"] == p.COMPONENT_BUTTON:
        style = component.get("style")
        if style not in range(1, 7):
            raise ApiError(
                400,
                p.form_error([*at, "style"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}."),
            )
        label = component.get("label")
        if isinstance(label, str) and len(label) > MAX_BUTTON_LABEL:
            raise _too_long([*at, "label"], MAX_BUTTON_LABEL)
        if style == p.BUTTON_LINK:
            if not component.get("url"):
                raise ApiError(
                    400, p.form_error([*at, "url"], "BASE_TYPE_REQUIRED", "This field is required")
                )
            return
    _check_custom_id(component, at, seen)


# Layout and display components (components v2) carry no custom_id.
_LAYOUT_TYPES = {p.COMPONENT_ACTION_ROW, 9, 10, 11, 12, 13, 14, 17}


def _custom_ids(components: list[Any], where: list[str], seen: set[str]) -> None:
    """Every interactive component in a tree has a valid custom_id."""
    for index, component in enumerate(components):
        if not isinstance(component, dict):
            continue
        at = [*where, str(index)]
        _check_custom_id(component, at, seen)
        for key in ("components", "accessory"):
            nested = component.get(key)
            if isinstance(nested, list):
                _custom_ids(nested, [*at, key], seen)
            elif isinstance(nested, dict):
                _custom_ids([nested], [*at, key], seen)


def _check_custom_id(component: JSON, at: list[str], seen: set[str]) -> None:
    """An interactive component's custom_id: present, at most 100 characters, not used twice in a message."""
    link = component.get("type") == p.COMPONENT_BUTTON and component.get("style") in (
        p.BUTTON_LINK,
        p.BUTTON_PREMIUM,
    )
    if component.get("type") in _LAYOUT_TYPES or link:
        return
    custom_id = component.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise ApiError(400, p.form_error([*at, "custom_id"], "BASE_TYPE_REQUIRED", "This field is required"))
    if len(custom_id) > MAX_CUSTOM_ID:
        raise _too_long([*at, "custom_id"], MAX_CUSTOM_ID)
    if custom_id in seen:
        raise ApiError(
            400,
            p.form_error(
                [*at, "custom_id"],
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            ),
        )
    seen.add(custom_id)


def query_int(value: str | None, name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter in [low, high], or Discord's 50035 for it."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(
            400, p.form_error([name], "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.')
        ) from None
    if number < low:
        raise ApiError(
            400,
            p.form_error([name], "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {low}."),
        )
    if number > high:
        raise ApiError(
            400, p.form_error([name], "NUMBER_TYPE_MAX", f"int value should be less than or equal to {high}.")
        )
    return number
