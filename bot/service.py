"""`moa-bot run`: every configured adapter, the HTTP endpoint, the scheduler and storage in one asyncio loop.

Lifecycle: start the HTTP server, start each adapter under a supervisor that restarts it with backoff when it
fails or stays disconnected, recover runs a crash left in flight, then wait for SIGTERM/SIGINT. On a signal: stop
taking questions, let answers in flight finish (up to MOA_SHUTDOWN_GRACE_S), edit the rest into "interrupted",
close adapters, the scheduler, the server and the database, and exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import sys
import time
from collections.abc import Sequence

from adapters.base import Adapter
from adapters.tasks import TaskOwner
from bot.config import Settings
from bot.http import build_app, start_site
from bot.jobs import build_scheduler
from bot.metrics import Metrics
from bot.wiring import Core, knowledge_channels, open_core

log = logging.getLogger("bot.service")

NO_ADAPTER = (
    "moa-bot run: no adapter configured; set SLACK_BOT_TOKEN (with SLACK_APP_TOKEN for Socket Mode or "
    "SLACK_SIGNING_SECRET for HTTP mode), DISCORD_BOT_TOKEN, and/or MOA_API_KEYS for the OpenAI-compatible API"
)
DOWN_BEFORE_RESTART_S = 30.0  # the client libraries reconnect by themselves; this is the last resort


def build_adapters(settings: Settings, core: Core, metrics: Metrics) -> list[Adapter]:
    adapters: list[Adapter] = []
    if settings.slack_bot_token:
        from adapters.slack import SlackAdapter

        adapters.append(
            SlackAdapter(
                bot_token=settings.slack_bot_token,
                app_token=settings.slack_app_token,
                signing_secret=settings.slack_signing_secret,
                api_url=settings.slack_api_url,
                knowledge_channels=knowledge_channels(settings, core.catalog, "slack"),
                answerer=core.answerer,
                librarian=core.librarian,
                backfill_days=settings.knowledge_backfill_days,
                observer=metrics,
                streaming=settings.slack_streaming,
            )
        )
    if settings.discord_bot_token:
        from adapters.discord import DiscordAdapter

        adapters.append(
            DiscordAdapter(
                bot_token=settings.discord_bot_token,
                answerer=core.answerer,
                observer=metrics,
                # with DISCORD_API_BASE set, the gateway is discovered from it (GET /gateway/bot)
                api_base=settings.discord_api_base if settings.discord_api_base_set else None,
                gateway_url=settings.discord_gateway_url,
                guild_ids=settings.discord_guild_ids,
                knowledge_channels=knowledge_channels(settings, core.catalog, "discord"),
                librarian=core.librarian,
                backfill_days=settings.knowledge_backfill_days,
            )
        )
    if settings.api_keys:
        from adapters.openai_api.app import OpenAIAdapter

        adapters.append(OpenAIAdapter(keys=settings.api_keys, answerer=core.answerer))
    return adapters


async def run_service(settings: Settings) -> int:
    if not settings.slack_bot_token and not settings.discord_bot_token and not settings.api_keys:
        print(NO_ADAPTER, file=sys.stderr)
        return 2
    metrics = Metrics()
    # exclusive: a second service on this database would answer the first one's runs again as a crash's leftovers
    async with open_core(
        settings,
        on_event=metrics.on_event,
        on_finished=metrics.on_finished,
        on_feedback=metrics.on_feedback,
        exclusive=True,
    ) as core:
        service = Service(settings, core, build_adapters(settings, core, metrics), metrics)
        return await service.run()


class Service:
    def __init__(self, settings: Settings, core: Core, adapters: Sequence[Adapter], metrics: Metrics) -> None:
        self.settings = settings
        self.core = core
        self.adapters = list(adapters)
        self.metrics = metrics
        self.stopping = asyncio.Event()
        self.port: int | None = None
        self._tasks = TaskOwner(log)
        self._by_name = {adapter.name: adapter for adapter in self.adapters}

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        answerer = self.core.answerer
        app = build_app(
            store=self.core.store,
            adapters=self.adapters,
            metrics=self.metrics,
            in_flight=lambda: answerer.in_flight,
            accepting=lambda: answerer.accepting,
        )
        runner, self.port = await start_site(app, self.settings.http_host, self.settings.http_port)
        log.info("listening on http://%s:%d (healthz, metrics%s)", self.settings.http_host, self.port,
                 ", the OpenAI-compatible API under /v1" if self.settings.api_keys else "")
        for adapter in self.adapters:
            self._tasks.spawn(self._supervise(adapter), f"supervise-{adapter.name}")
        scheduler = build_scheduler(
            self.core.store,
            retention_days=self.settings.retention_days,
            sweep=lambda: self.recover(resume=False),
            knowledge_purge=self.purge_knowledge,
        )
        scheduler.start()
        if self.core.embedding is not None:
            self._tasks.spawn(self.core.embedding.run(), "knowledge-embedder")
        self._tasks.spawn(self._recover_at_start(), "recover-at-start")
        try:
            await self.stopping.wait()
            log.info(
                "stopping: no new questions; waiting up to %g s for %d answers in flight",
                self.settings.shutdown_grace_s,
                answerer.in_flight,
            )
            interrupted = await answerer.drain(self.settings.shutdown_grace_s)
            if interrupted:
                log.warning("%d answers did not finish in time and were marked interrupted", interrupted)
        finally:
            scheduler.shutdown(wait=False)
            await self._tasks.cancel_all()
            await runner.cleanup()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("stopped")
        return 0

    async def purge_knowledge(self) -> str:
        """Knowledge channels taken out of MOA_KNOWLEDGE_CHANNELS (and the file's `knowledge = true`) leave the
        index."""
        settings, catalog = self.settings, self.core.catalog
        configured = knowledge_channels(settings, catalog, "slack") | knowledge_channels(settings, catalog, "discord")
        removed = await self.core.librarian.purge_unconfigured(configured)
        return f"{removed} documents of channels no longer in MOA_KNOWLEDGE_CHANNELS removed"

    def stop(self) -> None:
        self.core.answerer.stop_intake()
        self.stopping.set()

    async def _supervise(self, adapter: Adapter) -> None:
        delay = 1.0
        while True:
            try:
                await adapter.start()
                log.info("%s adapter connected", adapter.name)
                delay = 1.0
                down_since: float | None = None
                while True:
                    await asyncio.sleep(1.0)
                    if adapter.connected:
                        down_since = None
                    elif down_since is None:
                        down_since = time.monotonic()
                    elif time.monotonic() - down_since > DOWN_BEFORE_RESTART_S:
                        raise ConnectionError(f"disconnected for more than {DOWN_BEFORE_RESTART_S:g} s")
            except asyncio.CancelledError:
                await self._close(adapter)
                raise
            except Exception as exc:  # noqa: BLE001 - one adapter's failure must not stop the other
                log.error("%s adapter failed (%s: %s); restarting in %.0f s", adapter.name, type(exc).__name__,
                          exc, delay)
            await self._close(adapter)
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, 60.0)

    @staticmethod
    async def _close(adapter: Adapter) -> None:
        try:
            await adapter.aclose()
        except Exception:
            log.warning("closing the %s adapter failed", adapter.name, exc_info=True)

    async def _recover_at_start(self) -> None:
        deadline = time.monotonic() + 60.0
        # adapters report connection as a property, not an event: poll it briefly
        while not all(a.connected for a in self.adapters) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await self.recover(resume=True)

    async def recover(self, *, resume: bool) -> str:
        """Runs left in flight by a crash: answered again if young (and `resume`), else marked interrupted."""
        store, answerer = self.core.store, self.core.answerer
        resumed = interrupted = 0
        for run in await store.unfinished_runs():
            adapter = self._by_name.get(run.key.platform)
            if adapter is None or answerer.is_active(run.id):
                continue  # another front end's run (a terminal `ask`), or one this process is answering
            sink = await adapter.reopen(run.placeholder) if run.placeholder else None
            if sink is None:
                await store.finish_run(run.id, status="interrupted", error="interrupted before a reply was posted")
                interrupted += 1
            elif resume and time.time() - run.created_at <= self.settings.recover_max_age_s:
                self._tasks.spawn(answerer.resume(run, sink), f"resume-{run.id}")
                resumed += 1
            else:
                await answerer.interrupt(run, sink)
                interrupted += 1
        if resumed or interrupted:
            log.info("recovery: %d runs answered again, %d marked interrupted", resumed, interrupted)
        return f"{resumed} resumed, {interrupted} interrupted"
