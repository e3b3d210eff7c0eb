"""Masking secrets in text that leaves the process's memory: stored errors, messages users see, log lines.

Two kinds of secret are masked: the values configured for this deployment (API keys, bot tokens, the signing
secret), whatever path they took into the text, and anything shaped like a credential even when nobody
configured it (a provider's error body that echoes an `Authorization: Bearer …` header or another key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
MIN_SECRET_CHARS = 6  # shorter configured values would mask ordinary words

# Credentials recognisable by their shape. Group "keep" is what stays readable (the scheme or the field name).
_LABELLED = re.compile(
    r"""(?P<keep>\b(?:bearer|basic)\s+|\b(?:api[_-]?key|access[_-]?token|secret)["']?\s*[:=]\s*["']?)"""
    r"""(?P<secret>[A-Za-z0-9._~+/=-]{8,})""",
    re.IGNORECASE,
)
# The prefixes platforms and providers put on their keys: Slack xox?-/xapp-, OpenAI-style sk-, Together tgp_,
# GitHub gh?_.
_PREFIXED = re.compile(
    r"\b(?:xox[abeoprs]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}|sk-[A-Za-z0-9_-]{16,}"
    r"|tgp_v1_[A-Za-z0-9_-]{8,}|gh[pousr]_[A-Za-z0-9]{20,})"
)


class Redactor:
    """`redactor(text)` is `text` with every configured secret and credential-shaped token replaced by ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a secret that contains another is masked whole
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        text = _LABELLED.sub(lambda m: m.group("keep") + MASK, text)
        return _PREFIXED.sub(MASK, text)
