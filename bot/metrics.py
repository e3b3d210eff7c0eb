"""Prometheus metrics for /metrics, fed by the answerer's hooks and the adapters' API observer."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from moa.answering import RunSummary
from moa.events import AnswerDone, Event, ProposalDone, ProposalFailed

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """One registry per process (not the global one), so tests can build as many as they like."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "moa_runs", "Answer runs by final status", ["platform", "preset", "status"], registry=self.registry
        )
        self.run_seconds = Histogram(
            "moa_run_duration_seconds",
            "Time from accepted question to final answer",
            ["platform"],
            buckets=(1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300),
            registry=self.registry,
        )
        self.provider_calls = Counter(
            "moa_provider_calls", "Model calls by model and outcome", ["model", "outcome"], registry=self.registry
        )
        self.tokens = Counter(
            "moa_tokens", "Tokens by model and kind (prompt, completion)", ["model", "kind"], registry=self.registry
        )
        self.api_calls = Counter(
            "moa_platform_api_calls",
            "Chat platform API calls by method and outcome",
            ["platform", "method", "outcome"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "moa_platform_rate_limited", "429 answers from a chat platform", ["platform"], registry=self.registry
        )
        self.feedback = Counter(
            "moa_feedback", "👍 (up) and 👎 (down) clicks on answers", ["value"], registry=self.registry
        )
        self.in_flight = Gauge("moa_answers_in_flight", "Answers being worked on now", registry=self.registry)

    def on_event(self, run_id: str, event: Event) -> None:
        if isinstance(event, ProposalDone):
            self.provider_calls.labels(event.model, "ok").inc()
        elif isinstance(event, ProposalFailed):
            self.provider_calls.labels(event.model, "cut_off" if event.straggler else "failed").inc()
        elif isinstance(event, AnswerDone):
            self.provider_calls.labels(event.aggregator, "failed" if event.fallback else "ok").inc()
            for model, usage in event.usage_by_model.items():
                self.tokens.labels(model, "prompt").inc(usage.prompt_tokens)
                self.tokens.labels(model, "completion").inc(usage.completion_tokens)

    def on_finished(self, summary: RunSummary) -> None:
        self.runs.labels(summary.platform, summary.preset, summary.status).inc()
        self.run_seconds.labels(summary.platform).observe(summary.seconds)

    def on_feedback(self, value: str) -> None:
        self.feedback.labels(value).inc()

    def api_call(self, platform: str, method: str, outcome: str) -> None:
        self.api_calls.labels(platform, method, outcome).inc()
        if outcome == "ratelimited":
            self.rate_limited.labels(platform).inc()

    def render(self, in_flight: int) -> bytes:
        self.in_flight.set(in_flight)
        return generate_latest(self.registry)
