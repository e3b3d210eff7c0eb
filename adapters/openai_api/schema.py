"""OpenAI's chat-completions shapes: a request body read into a `ChatRequest`, and the bodies sent back.

Known parameters that do not change what the answer means (top_p, stop, seed, penalties, logprobs…) are
accepted and ignored, as are unknown ones; the few that would change it (tools, a JSON response format, several
choices, images or audio) are refused with a 400 that says so.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.openai_api.errors import ApiError, unsupported
from moa.conversation import RunReport
from moa.events import Message, ProposalDone, Usage

OWNER = "moa-bot"
MAX_USER_CHARS = 256  # the request's `user` names the run's channel in the run record
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_PART_NAMES = {"image_url": "images", "input_audio": "audio input", "file": "files"}


@dataclass(frozen=True)
class ChatRequest:
    model: str  # a preset's name
    history: tuple[Message, ...]  # the request's system text first (one message), then the earlier turns
    question: str  # the last message, the user's
    stream: bool = False
    include_usage: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    user: str = ""
    include_drafts: bool = False


def parse_chat_request(body: Any, models: Collection[str]) -> ChatRequest:
    """The request, or `ApiError`: 400 for a malformed body or an unsupported feature, 404 for an unknown model."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model is required: the name of a moa-bot preset (GET /v1/models lists them).",
                       code="missing_required_parameter", param="model")
    _refuse_unsupported(body)
    history, question = _conversation(body.get("messages"))
    stream = _optional(body, "stream", bool) or False
    options = _optional(body, "stream_options", dict) or {}
    moa = _optional(body, "moa", dict) or {}
    unknown = set(moa) - {"include_drafts"}
    if unknown:
        raise ApiError(400, f"moa.{sorted(unknown)[0]} is not known; the moa object takes include_drafts.",
                       code="invalid_value", param="moa")
    if model not in models:
        known = ", ".join(sorted(models))
        raise ApiError(404, f"The model {model!r} does not exist. moa-bot serves its presets as models: {known}.",
                       code="model_not_found", param="model")
    return ChatRequest(
        model=model,
        history=history,
        question=question,
        stream=stream,
        include_usage=bool(_optional(options, "include_usage", bool, "stream_options.include_usage")),
        temperature=_temperature(body),
        max_tokens=_max_tokens(body),
        user=_user(body),
        include_drafts=bool(_optional(moa, "include_drafts", bool, "moa.include_drafts")),
    )


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name in ("tools", "functions"):
        if body.get(name):
            raise unsupported("tools (function calling)", name)
    for name in ("tool_choice", "function_call"):
        if body.get(name) not in (None, "none"):
            raise unsupported("tools (function calling)", name)
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else response_format
        if kind != "text":
            raise unsupported(f"response_format {kind!r} (only text answers)", "response_format")
    n = _optional(body, "n", int)
    if n is not None and n != 1:
        if n < 1:
            raise ApiError(400, "n must be 1.", code="invalid_value", param="n")
        raise unsupported("n > 1 (one answer per request)", "n")


def _conversation(messages: Any) -> tuple[tuple[Message, ...], str]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content} objects.",
                       code="invalid_value", param="messages")
    system: list[str] = []
    turns: list[Message] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object with role and content.", code="invalid_value",
                           param=where)
        role = message.get("role")
        if role in ("tool", "function") or message.get("tool_calls") or message.get("function_call"):
            raise unsupported("tools (function calling)", where)
        if role not in _ROLES:
            raise ApiError(400, f"{where}.role must be one of system, developer, user, assistant; got {role!r}.",
                           code="invalid_value", param=f"{where}.role")
        text = _text(message.get("content"), where, may_be_null=role == "assistant")
        if _ROLES[role] == "system":
            system.append(text)
        else:
            turns.append({"role": _ROLES[role], "content": text})
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "The last message must be the user's: it is what moa-bot answers.",
                       code="invalid_value", param="messages")
    # the system text goes first, as one message, whatever its place in the request
    head: list[Message] = [{"role": "system", "content": "\n\n".join(system)}] if system else []
    return (*head, *turns[:-1]), turns[-1]["content"]


def _text(content: Any, where: str, *, may_be_null: bool) -> str:
    """A message's text: a string, or a list of parts of which only text parts are supported."""
    if isinstance(content, str):
        return content
    if content is None and may_be_null:
        return ""
    if not isinstance(content, list):
        raise ApiError(400, f"{where}.content must be a string or a list of text parts.", code="invalid_value",
                       param=f"{where}.content")
    texts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind is not None and kind != "text":
            raise unsupported(f"{_PART_NAMES.get(kind, repr(kind) + ' parts')} (text only)", f"{where}.content")
        text = part.get("text") if isinstance(part, dict) else None
        if not isinstance(text, str):
            raise ApiError(400, f"{where}.content parts must be {{\"type\": \"text\", \"text\": \"...\"}}.",
                           code="invalid_value", param=f"{where}.content")
        texts.append(text)
    return "\n".join(texts)


def _optional(body: dict[str, Any], name: str, kind: type, label: str | None = None) -> Any:
    """`body[name]` when it is present, not null, and a `kind`; None when absent or null; else a 400."""
    value = body.get(name)
    if value is None:
        return None
    accepted, wanted = _KINDS[kind]
    # JSON's true is a Python int: it is no number here, and 1 is no boolean
    if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
        label = label or name
        raise ApiError(400, f"{label} must be {wanted}.", code="invalid_type", param=label)
    return value


_KINDS: dict[type, tuple[type | tuple[type, ...], str]] = {
    bool: (bool, "true or false"),
    int: (int, "a whole number"),
    float: ((int, float), "a number"),
    str: (str, "a string"),
    dict: (dict, "an object"),
}


def _user(body: dict[str, Any]) -> str:
    user = _optional(body, "user", str) or ""
    if len(user) > MAX_USER_CHARS:
        raise ApiError(400, f"user must be at most {MAX_USER_CHARS} characters.", code="invalid_value", param="user")
    return str(user)


def _temperature(body: dict[str, Any]) -> float | None:
    value = _optional(body, "temperature", float)
    if value is not None and not 0 <= value <= 2:
        raise ApiError(400, "temperature must be between 0 and 2.", code="invalid_value", param="temperature")
    return None if value is None else float(value)


def _max_tokens(body: dict[str, Any]) -> int | None:
    """max_completion_tokens, or the older max_tokens: either limits the aggregator's answer."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = _optional(body, name, int)
        if value is not None:
            if value < 1:
                raise ApiError(400, f"{name} must be 1 or more.", code="invalid_value", param=name)
            return int(value)
    return None


# --- responses --------------------------------------------------------------------------------------------


def models_body(names: Sequence[str], created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_body(name, created) for name in names]}


def model_body(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": OWNER}


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total,
    }


def moa_body(report: RunReport, *, run_id: str, include_drafts: bool) -> dict[str, Any]:
    """The `moa` object: what every model did in the run."""
    done = report.done
    proposers: list[dict[str, Any]] = []
    for call in report.proposals:
        entry: dict[str, Any] = {"model": call.model, "layer": call.layer, "seconds": round(call.latency_s, 3),
                                 "attempts": call.attempts}
        if isinstance(call, ProposalDone):
            entry.update(status="ok", usage=usage_body(call.usage))
            if include_drafts:
                entry["draft"] = call.text
        else:
            entry.update(status="cut_off" if call.straggler else "failed", usage=usage_body(Usage()),
                         error=call.error)
        proposers.append(entry)
    return {
        "run_id": run_id,
        "seconds": round(done.elapsed_s, 3),
        "fallback": done.fallback,
        "proposers": proposers,
        "aggregator": {
            "model": done.aggregator,
            "seconds": round(report.aggregator_s, 3),
            "first_token_seconds": None if report.first_token_s is None else round(report.first_token_s, 3),
            "usage": usage_body(report.aggregator_usage),
            "error": done.aggregator_error or None,
        },
        "usage_by_model": {model: usage_body(usage) for model, usage in done.usage_by_model.items()},
    }


@dataclass(frozen=True)
class Completion:
    """What every body of one completion shares."""

    id: str
    created: int
    model: str

    def whole(self, text: str, usage: Usage, moa: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._head("chat.completion"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": "stop"}],
            "usage": usage_body(usage),
            "moa": moa,
        }

    def chunk(self, delta: dict[str, str], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._head("chat.completion.chunk"), "choices": [choice], **extra}

    def usage_chunk(self, usage: Usage, **extra: Any) -> dict[str, Any]:
        """The chunk `stream_options.include_usage` asks for: no choices, the run's usage."""
        return {**self._head("chat.completion.chunk"), "choices": [], "usage": usage_body(usage), **extra}

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": None}
