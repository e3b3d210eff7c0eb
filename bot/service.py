"""`moa-bot run`: every configured adapter, the HTTP endpoint, the scheduler and storage in one asyncio loop.

Lifecycle: write this replica's first heartbeat, start the HTTP server, start each adapter under a supervisor that
restarts it with backoff when it fails or stays disconnected, then wait for SIGTERM/SIGINT. All along, a heartbeat
every MOA_HEARTBEAT_S, and (once the adapters are up) a claim of the runs left by replicas silent for
MOA_TAKEOVER_AFTER_S, a crash of this process's predecessor included: young ones are answered again in their
placeholders, older ones marked interrupted. On a signal: stop taking questions, let answers in flight finish (up
to MOA_SHUTDOWN_GRACE_S), and edit the rest into "interrupted" (SQLite), or, where other replicas serve the
database (PostgreSQL), leave them and the questions still arriving to those; close adapters, the scheduler and the
server, retire the replica (what it leaves is taken at once) and exit 0.
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
from moa.errors import StorageError

log = logging.getLogger("bot.service")

NO_ADAPTER = (
    "moa-bot run: no adapter configured; set SLACK_BOT_TOKEN (with SLACK_APP_TOKEN for Socket Mode or "
    "SLACK_SIGNING_SECRET for HTTP mode), DISCORD_BOT_TOKEN, and/or MOA_API_KEYS for the OpenAI-compatible API"
)
DOWN_BEFORE_RESTART_S = 30.0  # the client libraries reconnect by themselves; this is the last resort
ADAPTERS_UP_WITHIN_S = 60.0  # runs are taken over once every adapter is up (to reopen their placeholders), or after this


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
                shard_count=settings.discord_shard_count,
                shard_ids=settings.discord_shard_ids,
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
    # exclusive: on SQLite, one service per database (replicas need PostgreSQL)
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
        self.replica = settings.replica_id
        self._tasks = TaskOwner(log)
        self._by_name = {adapter.name: adapter for adapter in self.adapters}

    async def run(self) -> int:
        store = self.core.store
        # before any question is taken: a run this replica owns must never look like a dead one's
        await store.heartbeat(self.replica)
        log.info("replica %s: heartbeat every %g s; runs of replicas silent for %g s are taken over",
                 self.replica, self.settings.heartbeat_s, self.settings.takeover_after_s)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        answerer = self.core.answerer
        app = build_app(
            store=store,
            adapters=self.adapters,
            metrics=self.metrics,
            in_flight=lambda: answerer.in_flight,
            accepting=lambda: answerer.accepting,
            replica=self.replica,
        )
        runner, self.port = await start_site(app, self.settings.http_host, self.settings.http_port)
        log.info("listening on http://%s:%d (healthz, metrics%s)", self.settings.http_host, self.port,
                 ", the OpenAI-compatible API under /v1" if self.settings.api_keys else "")
        self._tasks.spawn(self._beat(), "heartbeat")
        for adapter in self.adapters:
            self._tasks.spawn(self._supervise(adapter), f"supervise-{adapter.name}")
        scheduler = build_scheduler(
            store, retention_days=self.settings.retention_days, knowledge_purge=self.purge_knowledge
        )
        scheduler.start()
        if self.core.embedding is not None:
            self._tasks.spawn(self.core.embedding.run(), "knowledge-embedder")
        self._tasks.spawn(self._take_over(), "take-over")
        try:
            await self.stopping.wait()
            log.info(
                "stopping: %s; waiting up to %g s for %d answers in flight",
                "questions go to other replicas" if store.shared else "no new questions",
                self.settings.shutdown_grace_s,
                answerer.in_flight,
            )
            late = await answerer.drain(self.settings.shutdown_grace_s, hand_over=store.shared)
            if late:
                log.warning("%d answers did not finish in time and were %s", late,
                            "left to other replicas" if store.shared else "marked interrupted")
        finally:
            scheduler.shutdown(wait=False)
            await self._tasks.cancel_all()  # the heartbeat included: from here on, nothing is answered here
            await runner.cleanup()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self._retire()
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
        self.core.answerer.stop_intake(hand_over=self.core.store.shared)
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

    async def _beat(self) -> None:
        """This replica is alive: every MOA_HEARTBEAT_S for as long as it runs, draining included (what it still
        answers stays its own). A database it cannot reach is logged once, and again when it comes back."""
        failing = False
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                await self.core.store.heartbeat(self.replica)
            except StorageError as exc:
                if not failing:
                    log.warning("heartbeat failed (%s); after %g s without one, other replicas take over the "
                                "answers this one is writing", exc, self.settings.takeover_after_s)
                failing = True
                continue
            if failing:
                log.info("heartbeat written again")
            failing = False

    async def _take_over(self) -> None:
        """Every MOA_HEARTBEAT_S until stopping, once the adapters are up (they reopen placeholders): claim what
        dead or stopped replicas left."""
        deadline = time.monotonic() + ADAPTERS_UP_WITHIN_S
        # adapters report connection as a property, not an event: poll it briefly
        while not all(a.connected for a in self.adapters) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        while not self.stopping.is_set():
            try:
                await self.recover()
            except StorageError as exc:
                log.warning("could not look for answers to take over: %s", exc)
            await asyncio.sleep(self.settings.heartbeat_s)

    async def _retire(self) -> None:
        try:
            await self.core.store.retire(self.replica)
        except StorageError as exc:
            log.warning("could not retire replica %s (%s); others take over what it left after %g s", self.replica,
                        exc, self.settings.takeover_after_s)

    async def recover(self) -> str:
        """Runs left in flight by a crashed or stopped replica (this process's predecessor on SQLite): claimed,
        then answered again if young, else marked interrupted."""
        store, answerer = self.core.store, self.core.answerer
        resumed = interrupted = 0
        claimed = await store.claim_orphans(self.replica, self.settings.takeover_after_s, list(self._by_name))
        for run in claimed:
            if self.stopping.is_set():
                break  # claimed as the stop came: still owned by this replica, they are orphans once it retires
            adapter = self._by_name[run.key.platform]
            sink = await adapter.reopen(run.placeholder) if run.placeholder else None
            if sink is None:
                await store.finish_run(run.id, status="interrupted", error="interrupted before a reply was posted")
                interrupted += 1
            elif time.time() - run.created_at <= self.settings.recover_max_age_s:
                self._tasks.spawn(answerer.resume(run, sink), f"resume-{run.id}")
                resumed += 1
            else:
                await answerer.interrupt(run, sink)
                interrupted += 1
        if claimed:
            log.info("took over %d runs: %d answered again, %d marked interrupted", len(claimed), resumed,
                     interrupted)
        return f"{resumed} resumed, {interrupted} interrupted"
