"""The one seam between the adapter and Slack's Web API: every call goes through `SlackApi.call`.

It adds a timeout, reports each call to the `ApiObserver` (ok / ratelimited / error) and maps slack_sdk's and
aiohttp's exceptions into one small tree, in one place:

    MoaError
     +-- SlackCallError          a Web API call failed: `method`, Slack's `error` code, HTTP `status`
                                 (0: no answer: timeout or connection), `.original` is the SDK's exception
    RetryLater (adapters.pacing)
     +-- SlackRateLimited        HTTP 429: wait `seconds` (Retry-After) and try again
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from adapters.base import ApiObserver, NullObserver
from adapters.pacing import RetryLater
from moa.errors import MoaError

log = logging.getLogger("adapters.slack")

PLATFORM = "slack"
# Errors that mean "the bot cannot post in this conversation", not "Slack is broken".
CANNOT_POST = frozenset({"not_in_channel", "channel_not_found", "is_archived", "restricted_action"})


class SlackCallError(MoaError):
    def __init__(
        self, method: str, error: str, status: int = 200, *, original: BaseException | None = None
    ) -> None:
        super().__init__(
            f"Slack {method} failed: {error}" + (f" (HTTP {status})" if status not in (0, 200) else "")
        )
        self.method = method
        self.error = error
        self.status = status
        self.original = original

    @property
    def retryable(self) -> bool:
        """Slack's side failed (5xx) or did not answer: worth one more try later."""
        return self.status == 0 or self.status >= 500


class SlackRateLimited(RetryLater):
    def __init__(self, method: str, seconds: float) -> None:
        super().__init__(seconds)
        self.method = method


def retry_after(headers: Mapping[str, Any] | None, default: float = 1.0) -> float:
    """Seconds from a Retry-After header (slack_sdk keeps header names as the server sent them)."""
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, (list, tuple)) and value else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return default
    return default


class SlackApi:
    def __init__(self, client: AsyncWebClient, observer: ApiObserver, *, timeout_s: float = 10.0) -> None:
        self.client = client
        self._observer = observer
        self._timeout_s = timeout_s

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a Web API method by its Slack name ("chat.update"); returns the response's JSON."""
        function = getattr(self.client, method.replace(".", "_"))
        try:
            # slack_sdk has its own timeout per HTTP request; this one also bounds its connection retries
            async with asyncio.timeout(self._timeout_s * 2):
                response = await function(**params)
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429:
                self._observer.api_call(PLATFORM, method, "ratelimited")
                raise SlackRateLimited(method, retry_after(exc.response.headers)) from exc
            self._observer.api_call(PLATFORM, method, "error")
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            raise SlackCallError(method, str(error or f"http_{status}"), status, original=exc) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._observer.api_call(PLATFORM, method, "error")
            raise SlackCallError(method, type(exc).__name__, 0, original=exc) from exc
        self._observer.api_call(PLATFORM, method, "ok")
        data = response.data
        return data if isinstance(data, dict) else {}


class _CountedRateLimitRetries(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's own 429 handling (wait Retry-After, try again), with each 429 counted for /metrics first."""

    def __init__(self, observer: ApiObserver, retries: int) -> None:
        super().__init__(max_retry_count=retries)
        self._observer = observer

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        limited = await super()._can_retry_async(state=state, request=request, response=response, error=error)
        if limited:
            self._observer.api_call(PLATFORM, request.url.rsplit("/", 1)[-1], "ratelimited")
        return limited


def web_client(
    bot_token: str, api_url: str, timeout_s: float, *, observer: ApiObserver | None = None, read_retries: int = 0
) -> AsyncWebClient:
    """The SDK client; slack_sdk appends method names to `base_url` as is, so it must end with a slash.

    `read_retries`: for a client that only reads (names, threads, history), slack_sdk itself waits out that many
    429s. Writes use a client without it: they spend the shared budgets, which pause for every answer on a 429
    (`adapters.pacing.send_within`), which a per-call retry cannot do.
    """
    base_url = api_url if api_url.endswith("/") else f"{api_url}/"
    handlers = [_CountedRateLimitRetries(observer or NullObserver(), read_retries)] if read_retries else []
    return AsyncWebClient(
        token=bot_token, base_url=base_url, timeout=max(1, int(timeout_s)), retry_handlers=handlers
    )


async def check_auth(bot_token: str, api_url: str, *, timeout_s: float = 10.0) -> tuple[bool, str]:
    """`auth.test` with the bot token: (ok, one line for `moa-bot doctor`)."""
    client = web_client(bot_token, api_url, timeout_s)
    api = SlackApi(client, NullObserver(), timeout_s=timeout_s)
    try:
        who = await api.call("auth.test")
    except SlackRateLimited as exc:
        return False, f"auth.test rate limited; try again in {exc.seconds:g} s"
    except SlackCallError as exc:
        fix = {
            "invalid_auth": "SLACK_BOT_TOKEN is wrong or revoked; copy the Bot User OAuth Token (xoxb-...) again",
            "not_authed": "SLACK_BOT_TOKEN is empty",
            "account_inactive": "the app was uninstalled or the workspace deactivated; reinstall the app",
            "token_revoked": "the token was revoked; reinstall the app and copy the new xoxb- token",
            "not_allowed_token_type": "SLACK_BOT_TOKEN must be the bot token (xoxb-...), not the app token",
        }.get(exc.error, f"is SLACK_API_URL ({api_url}) reachable?")
        return False, f"auth.test failed ({exc.error}): {fix}"
    return True, (
        f"auth.test ok: bot @{who.get('user', '?')} ({who.get('user_id', '?')}) in "
        f"{who.get('team', '?')} ({who.get('team_id', '?')})"
    )
