"""The built-in `demo` provider: try moa-bot with no API key and no network.

Nothing here calls a language model, and every text it writes says so. The proposers `demo:alpha`, `demo:beta`
and `demo:gamma` finish their drafts at different moments and `demo:omega` streams its synthesis word by word, so
a first run shows what a real one looks like: the models finishing one by one, the answer streaming in, the
footer, and a thread remembering earlier questions.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence

from moa.errors import ProviderRejected
from moa.events import Message, Usage
from moa.providers.base import Completion, Delta

# seconds before a model's draft (or its first streamed word), and what its draft would focus on
_MODELS: dict[str, tuple[float, str]] = {
    "alpha": (0.3, "a short definition"),
    "beta": (0.5, "a worked example"),
    "gamma": (0.7, "the pitfalls"),
    "omega": (0.2, "one answer built from the drafts"),
}
WORD_DELAY_S = 0.02  # about 50 words a second: a fast model's pace, slow enough to see the answer stream
_DRAFT_LABEL = re.compile(r"\[demo draft by (\w+)")


class DemoProvider:
    def __init__(self, name: str = "demo") -> None:
        self.name = name

    async def complete(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> Completion:
        delay, focus = self._model(model)
        await asyncio.sleep(delay)
        text = _truncate(
            f"[demo draft by {model}: no language model was called] A real proposer would answer "
            f"“{_question(messages)}” here, focusing on {focus}.",
            max_tokens,
        )
        return Completion(text, _usage(messages, text))

    async def stream(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> AsyncIterator[Delta]:
        delay, _ = self._model(model)
        await asyncio.sleep(delay)
        text = _truncate(_synthesis(messages), max_tokens)
        for word in re.findall(r"\S+\s*|\s+", text):
            yield Delta(word)
            await asyncio.sleep(WORD_DELAY_S)
        yield Delta("", _usage(messages, text))

    async def list_models(self, timeout_s: float) -> list[str]:
        return list(_MODELS)

    async def embed(self, model: str, texts: Sequence[str], *, timeout_s: float) -> list[list[float]]:
        raise ProviderRejected(
            f"{model}: the demo provider has no embedding models; set MOA_EMBEDDING_MODEL to a real provider's",
            model=model,
            status=404,
        )

    async def aclose(self) -> None:
        return None

    def _model(self, model: str) -> tuple[float, str]:
        try:
            return _MODELS[model]
        except KeyError:
            known = ", ".join(f"{self.name}:{m}" for m in _MODELS)
            raise ProviderRejected(
                f"{model}: HTTP 404: no such demo model; the demo models are {known}", model=model, status=404
            ) from None


def _question(messages: Sequence[Message]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "").strip()


def _synthesis(messages: Sequence[Message]) -> str:
    system = " ".join(m["content"] for m in messages if m["role"] == "system")
    drafters = _DRAFT_LABEL.findall(system)
    earlier = sum(m["role"] == "user" for m in messages) - 1
    if drafters:
        how = (
            f"In a real run, {len(drafters)} models ({', '.join(drafters)}) would each draft an answer in "
            "parallel, and one model would read every draft and write this answer from the best of them."
        )
    else:
        how = "In a real run, a model would answer here directly."
    remembered = (
        f" This conversation has {earlier} earlier question{'s' if earlier > 1 else ''}, and the models would "
        "see them too: that is what `--thread` keeps."
        if earlier > 0
        else ""
    )
    return (
        "**This is a demo answer: no language model was called.**\n\n"
        f"You asked: “{_question(messages)}”\n\n"
        f"{how}{remembered}\n\n"
        "To ask real models, set TOGETHER_API_KEY and run the same command without `--demo`."
    )


def _truncate(text: str, max_tokens: int) -> str:
    words = text.split(" ")
    return text if len(words) <= max_tokens else " ".join(words[:max_tokens])


def _usage(messages: Sequence[Message], text: str) -> Usage:
    # a word is about a token: good enough for the footer and `--json` to show where the counts go
    return Usage(sum(len(m["content"].split()) for m in messages), len(text.split()))
