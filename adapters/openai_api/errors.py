"""Errors in OpenAI's shape, and the one place where the core's refusals and failures become HTTP statuses."""

from __future__ import annotations

import math
from typing import Any

from moa.conversation import Phase, Refusal, RefusalReason, ReplyView


class ApiError(Exception):
    """Answered as `{"error": {"message", "type", "param", "code"}}` with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        kind: str | None = None,  # OpenAI's `type`
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = kind or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


_TYPES = {429: "requests"}


def unsupported(feature: str, param: str) -> ApiError:
    return ApiError(
        400,
        f"moa-bot does not support {feature}: several models write one text answer together. "
        f"Send the request without it.",
        code="unsupported_parameter",
        param=param,
    )


def refusal_error(refusal: str) -> ApiError:
    """The HTTP answer for a question the core refused (`moa.conversation.Refusal`)."""
    if not isinstance(refusal, Refusal):  # a notice rather than a refusal: never sent for API questions
        return ApiError(500, refusal)
    reason = refusal.reason
    if reason is RefusalReason.RATE_LIMITED:
        wait = math.ceil(refusal.retry_after_s or 1.0)
        return ApiError(429, str(refusal), code="rate_limit_exceeded", headers={"Retry-After": str(wait)})
    if reason is RefusalReason.TOO_LONG:
        return ApiError(400, str(refusal), code="context_length_exceeded", param="messages")
    if reason is RefusalReason.NO_QUESTION:
        return ApiError(400, "The last user message has no text to answer.", code="empty_message",
                        param="messages")
    if reason is RefusalReason.UNKNOWN_PRESET:
        return ApiError(404, str(refusal), code="model_not_found", param="model")
    if reason is RefusalReason.NOT_ALLOWED:
        return ApiError(403, str(refusal), code="not_allowed")
    code = "shutting_down" if reason is RefusalReason.RESTARTING else "unavailable"
    return ApiError(503, str(refusal), code=code)


def outcome_error(view: ReplyView) -> ApiError:
    """The HTTP answer for a run that ended without an answer: no model could answer, a shutdown interrupted
    it, or its client went away (nobody reads that one)."""
    if view.phase is Phase.INTERRUPTED:
        return ApiError(503, view.text, code="shutting_down")
    if view.phase is Phase.STOPPED:
        return ApiError(499, "The client closed the request; its run was cancelled.", code="cancelled")
    return ApiError(502, view.text, code="models_failed")
