"""The Mixture-of-Agents run: proposer layers in parallel, then one aggregator whose answer is streamed.

`Orchestrator.run` is an async generator of `moa.events` in the order things happen. Closing it, or cancelling
the task that iterates it, cancels every model call it started.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from moa.errors import ProviderError, ProviderRejected, ProviderTimeout, ProviderUnreachable, RateLimited
from moa.events import (
    AggregationRetrying,
    AggregationStarted,
    AnswerDelta,
    AnswerDone,
    Event,
    Message,
    ProposalDone,
    ProposalFailed,
    ProposalStarted,
    RunFailed,
    Usage,
)
from moa.failure import advice_for
from moa.presets import Preset
from moa.prompts import FALLBACK_NOTE, with_references
from moa.providers.base import Delta, Provider
from moa.providers.registry import ProviderRegistry
from moa.retry import Backoff, Retrying, call_with_retries


@dataclass(frozen=True)
class _Draft:
    index: int
    model: str
    text: str


class Orchestrator:
    def __init__(
        self,
        registry: ProviderRegistry,
        *,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._backoff = backoff
        self._clock = clock

    async def run(
        self,
        preset: Preset,
        conversation: Sequence[Message],
        *,
        system_prompt: str = "",
        sources: str = "",
    ) -> AsyncIterator[Event]:
        """`system_prompt`: the team's standing instructions, given to every model before the conversation.
        `sources`: a `moa.prompts.sources_block`, given to every proposer and to the aggregator."""
        started = self._clock()
        usage: dict[str, Usage] = {}
        errors: list[ProviderError] = []
        drafts: list[_Draft] = []
        # layers = L means L-1 proposer layers, then the aggregator (layers = 1: the aggregator alone)
        for layer in range(1, preset.layers):
            messages = with_references(
                conversation, preset.aggregator_prompt, [d.text for d in drafts], standing=system_prompt, sources=sources
            )
            layer_drafts: list[_Draft] = []
            async for event in self._layer(preset, layer, messages, errors):
                if isinstance(event, ProposalDone):
                    layer_drafts.append(_Draft(event.index, event.model, event.text))
                    usage[event.model] = usage.get(event.model, Usage()) + event.usage
                yield event
            if layer_drafts:  # a layer where every model failed leaves the previous drafts standing
                drafts = sorted(layer_drafts, key=lambda d: d.index)

        yield AggregationStarted(preset.aggregator, len(drafts), len(preset.proposers) if preset.layers > 1 else 0)
        messages = with_references(
            conversation, preset.aggregator_prompt, [d.text for d in drafts], standing=system_prompt, sources=sources
        )
        parts: list[str] = []
        aggregator_error: ProviderError | None = None
        try:
            async for delta in self._aggregate(preset, messages, parts, usage):
                yield delta
        except ProviderError as exc:
            aggregator_error = exc
            errors.append(exc)

        elapsed = self._clock() - started
        total = sum(usage.values(), Usage())
        contributors = tuple(d.model for d in drafts)
        if aggregator_error is None:
            yield AnswerDone("".join(parts), preset.aggregator, contributors, elapsed, total, usage)
        elif drafts:
            best = max(drafts, key=lambda d: len(d.text))
            text = f"{best.text.strip()}\n\n{FALLBACK_NOTE.format(model=best.model)}"
            yield AnswerDone(
                text,
                preset.aggregator,
                contributors,
                elapsed,
                total,
                usage,
                fallback=True,
                aggregator_error=aggregator_error.short,
            )
        else:
            yield RunFailed(describe_failure(errors), elapsed)

    async def _layer(
        self, preset: Preset, layer: int, messages: list[Message], errors: list[ProviderError]
    ) -> AsyncIterator[ProposalDone | ProposalFailed | ProposalStarted]:
        total = len(preset.proposers)
        layer_started = self._clock()
        tasks: dict[asyncio.Task[ProposalDone | ProposalFailed], tuple[int, str]] = {}
        for index, model in enumerate(preset.proposers):
            yield ProposalStarted(model, layer, index, total)
            task = asyncio.create_task(self._propose(preset, layer, index, model, messages, errors))
            tasks[task] = (index, model)
        pending: set[asyncio.Task[ProposalDone | ProposalFailed]] = set(tasks)
        answered = 0
        cutoff_at: float | None = None
        try:
            while pending:
                timeout = None if cutoff_at is None else max(0.0, cutoff_at - self._clock())
                done, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: tasks[t][0]):
                    result = task.result()
                    if isinstance(result, ProposalDone):
                        answered += 1
                    yield result
                if not done:  # the straggler grace ran out
                    for task in pending:
                        task.cancel()
                    await asyncio.wait(pending)
                    waited = self._clock() - layer_started
                    for task in sorted(pending, key=lambda t: tasks[t][0]):
                        index, model = tasks[task]
                        reason = f"cut off: still running {preset.straggler_grace_s:g} s after enough drafts"
                        yield ProposalFailed(model, layer, index, reason, waited, straggler=True)
                    pending = set()
                elif (
                    cutoff_at is None
                    and preset.straggler_grace_s > 0
                    and answered >= preset.min_proposers
                    and pending
                ):
                    cutoff_at = self._clock() + preset.straggler_grace_s
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _propose(
        self,
        preset: Preset,
        layer: int,
        index: int,
        model: str,
        messages: list[Message],
        errors: list[ProviderError],
    ) -> ProposalDone | ProposalFailed:
        provider, bare = self._registry.resolve(model)
        started = self._clock()
        attempts = 1

        async def attempt() -> tuple[str, Usage]:
            try:
                async with asyncio.timeout(preset.timeout_s):
                    completion = await provider.complete(
                        bare,
                        messages,
                        temperature=preset.temperature,
                        max_tokens=preset.proposer_max_tokens,
                        timeout_s=preset.timeout_s,
                    )
            except TimeoutError:
                raise ProviderTimeout(f"{model}: no answer within {preset.timeout_s:g} s", model=model) from None
            if not completion.text.strip():
                raise ProviderRejected(f"{model}: empty answer", model=model)
            return completion.text, completion.usage

        def count(next_attempt: int, _: ProviderError, __: float) -> None:
            nonlocal attempts
            attempts = next_attempt

        try:
            (text, usage), attempts = await call_with_retries(
                attempt, retries=preset.retries, backoff=self._backoff, on_retry=count
            )
        except ProviderError as exc:
            errors.append(exc)
            return ProposalFailed(model, layer, index, exc.short, self._clock() - started, attempts=attempts)
        return ProposalDone(model, layer, index, text, self._clock() - started, usage, attempts)

    async def _aggregate(
        self, preset: Preset, messages: list[Message], parts: list[str], usage: dict[str, Usage]
    ) -> AsyncIterator[AnswerDelta | AggregationRetrying]:
        """Stream the aggregator into `parts`, retrying from scratch if it fails; raises its last error.

        A stalled stream (no piece for the idle timeout) is the costly failure: the user watches a frozen answer.
        So the time spent stalled is bounded across all attempts by `stall_budget_s`, while the attempts keep
        the preset's idle timeout otherwise (a retry after a stall gets only what is left of the budget).
        """
        provider, bare = self._registry.resolve(preset.aggregator)
        stall_left = stall_budget_s(preset)
        retries: list[AggregationRetrying] = []

        def note(next_attempt: int, error: ProviderError, delay: float) -> None:
            retries.append(AggregationRetrying(preset.aggregator, next_attempt, _short_reason(error), delay))

        retrying = Retrying(
            retries=preset.retries,
            backoff=self._backoff,
            sleep=_no_wait,  # the wait happens below, after the user has been told about the retry
            on_retry=note,
            # a retry with much less patience than the preset's would only stall again
            give_up=lambda _: stall_left < preset.timeout_s / 4,
        )
        async for attempt in retrying:
            if retries:
                retry = retries.pop()
                yield retry
                await asyncio.sleep(retry.delay_s)
            restarted = bool(parts)
            parts.clear()
            idle_timeout = min(preset.timeout_s, stall_left)
            quiet_since = self._clock()
            with attempt:
                try:
                    async for delta in self._stream(provider, bare, preset, messages, idle_timeout):
                        quiet_since = self._clock()
                        if delta.usage is not None:
                            usage[preset.aggregator] = usage.get(preset.aggregator, Usage()) + delta.usage
                        if delta.text:
                            parts.append(delta.text)
                            # after a failed attempt already showed text, the first new piece replaces it all
                            yield AnswerDelta(delta.text, reset=restarted)
                            restarted = False
                except ProviderTimeout:
                    stall_left -= self._clock() - quiet_since
                    raise
                if not "".join(parts).strip():
                    raise ProviderRejected(f"{preset.aggregator}: empty answer", model=preset.aggregator)

    async def _stream(
        self, provider: Provider, model: str, preset: Preset, messages: list[Message], idle_timeout_s: float
    ) -> AsyncIterator[Delta]:
        """The provider's stream with an idle timeout: each piece must arrive within `idle_timeout_s`."""
        stream = provider.stream(
            model,
            messages,
            temperature=(
                preset.temperature if preset.aggregator_temperature is None else preset.aggregator_temperature
            ),
            max_tokens=preset.aggregator_max_tokens,
            timeout_s=idle_timeout_s,
        )
        try:
            while True:
                try:
                    async with asyncio.timeout(idle_timeout_s):
                        delta = await anext(stream)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise ProviderTimeout(
                        f"{preset.aggregator}: stalled for {idle_timeout_s:g} s", model=preset.aggregator
                    ) from None
                yield delta
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


def stall_budget_s(preset: Preset) -> float:
    """How long the aggregator may stall in total, across its attempts: one idle timeout and a half."""
    return preset.timeout_s * 1.5


async def _no_wait(_: float) -> None:
    return None


def _short_reason(error: ProviderError) -> str:
    """A few words for the placeholder while the aggregator is retried."""
    if isinstance(error, ProviderTimeout):
        return "stalled" if "stalled" in str(error) else "timed out"
    if isinstance(error, RateLimited):
        return "rate limited"
    if "stream ended" in str(error):
        return "stream cut"
    return "unavailable"


def describe_failure(errors: Sequence[ProviderError]) -> str:
    """One sentence for the people in a chat when no model produced anything: what failed, then what to do.

    The advice is worded for a chat channel; `moa.failure.readdress` words it for the operator at a terminal.
    """
    reasons: Counter[str] = Counter()
    for error in errors:
        reasons[_reason(error)] += 1
    summary = ", ".join(f"{reason} ({n} models)" if n > 1 else reason for reason, n in reasons.most_common())
    return f"No model could answer: {summary or 'unknown error'}. {advice_for(errors).chat}"


def _reason(error: ProviderError) -> str:
    if isinstance(error, RateLimited):
        return "rate limited by the provider"
    if isinstance(error, ProviderUnreachable):
        return f"cannot connect to {error.url} ({error.cause})"
    if isinstance(error, ProviderTimeout):
        return "timed out"
    if error.status in (401, 403):
        return "the provider refused the API key"
    if error.status == 404:
        return "model not found"
    if isinstance(error, ProviderRejected):
        return f"request rejected (HTTP {error.status})" if error.status else "request rejected"
    return f"provider unavailable (HTTP {error.status})" if error.status else "provider unavailable"
