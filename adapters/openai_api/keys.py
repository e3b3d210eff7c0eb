"""The API's bearer keys: kept as SHA-256 digests, looked up in constant time, known elsewhere by name only."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from moa.policy import UserRate


@dataclass(frozen=True)
class ApiKey:
    """A key as configured: its name (what run records, logs and metrics show; never the key), its own rate,
    when it has one (None: MOA_USER_RATE), and its scope: a channel whose team knowledge its answers may use."""

    name: str
    secret: str = field(repr=False)
    rate: UserRate | None = None
    scope: str = ""

    @classmethod
    def unnamed(cls, secret: str) -> ApiKey:
        """A key from MOA_API_KEYS: named after its digest, which says which key it was without revealing it."""
        return cls(f"key-{_digest(secret).hex()[:8]}", secret)


@dataclass(frozen=True)
class Caller:
    """Who a request's key says is asking."""

    name: str
    rate: UserRate | None = None
    scope: str = ""


class Keyring:
    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._entries = [(_digest(k.secret), Caller(k.name, k.rate, k.scope)) for k in keys]

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str) -> Caller | None:
        """The caller whose key is `token`, or None. Every key is compared, in time that does not depend on how
        much of a key matched or which key it was."""
        given = _digest(token)
        found: Caller | None = None
        for digest, caller in self._entries:
            if hmac.compare_digest(digest, given):
                found = caller
        return found


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
