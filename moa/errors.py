"""One exception tree for the product.

    MoaError
     +-- ConfigError            bad preset file, unknown provider, bad setting (message names the fix)
     +-- ProviderError          a model call failed (status, retry_after, request_id, model)
     |    +-- RateLimited       429: retry after `retry_after` seconds
     |    +-- ProviderTimeout   no answer within the call's timeout
     |    +-- ProviderUnavailable  5xx or connection failure: worth retrying
     |    |    +-- ProviderUnreachable  no connection at all (`url`, `cause`: refused, DNS, TLS, timeout)
     |    +-- ProviderRejected  4xx other than 429: retrying will not help
     +-- StorageError           the database could not be read or written (the message says why, in words)

The adapters add their own branches under `MoaError`: `adapters.pacing.RetryLater` (a platform said "later"),
`adapters.slack.api.SlackCallError`, `adapters.discord.api.DiscordSetupError` (a `ConfigError`), and so on.
SDK exceptions are mapped into this tree in one place per SDK (`moa.providers.openai_compatible.map_error`,
`adapters.slack.api.SlackApi.call`, `adapters.discord.api.write`).
"""

from __future__ import annotations


class MoaError(Exception):
    """Base of every error the product raises on purpose."""


class ConfigError(MoaError):
    """A configuration problem; the message is one line naming what and how to fix it."""


class ProviderError(MoaError):
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        model: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.status = status
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def detail(self) -> str:
        """The message without the model's name, for places that already show which model it was."""
        return str(self).removeprefix(f"{self.model}: ")

    @property
    def short(self) -> str:
        """A compact, secret-free description for footers, logs and the run record."""
        code = f" {self.status}" if self.status else ""
        return f"{type(self).__name__}{code}: {self}"


class RateLimited(ProviderError):
    retryable = True


class ProviderTimeout(ProviderError):
    retryable = True


class ProviderUnavailable(ProviderError):
    retryable = True


class ProviderUnreachable(ProviderUnavailable):
    """The server could not be reached: `url` is where it was looked for, `cause` says why, in words."""

    def __init__(self, message: str, *, url: str, cause: str, model: str = "") -> None:
        super().__init__(message, model=model)
        self.url = url
        self.cause = cause


class ProviderRejected(ProviderError):
    retryable = False


class StorageError(MoaError):
    pass
