"""What Discord accepts in request bodies, and its 50035 Invalid Form Body errors (with the `errors` tree) for
the rest: message content and embeds, application command definitions, thread names."""

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
