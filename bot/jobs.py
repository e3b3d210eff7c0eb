"""Background jobs on APScheduler's AsyncIOScheduler: retention, database upkeep, a recovery sweep, and the
purge of knowledge channels no longer configured. (The service's heartbeat and takeover of runs run in a loop of
their own, every few seconds: see `bot.service`.)"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from storage import Storage

log = logging.getLogger("bot.jobs")


def _guarded(name: str, job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """A failing run of a job is logged and the job stays scheduled."""

    async def run() -> None:
        try:
            result = await job()
            log.info("job %s done%s", name, "" if result is None else f": {result}")
        except Exception:
            log.exception("job %s failed; it will run again at its next time", name)

    run.__name__ = name
    return run


def build_scheduler(
    store: Storage,
    *,
    retention_days: float,
    sweep: Callable[[], Awaitable[object]] | None = None,
    knowledge_purge: Callable[[], Awaitable[object]] | None = None,
    purge_every_s: float = 86400.0,
    maintain_every_s: float = 3600.0,
    sweep_every_s: float = 300.0,
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300})
    soon = datetime.now() + timedelta(seconds=60)

    async def purge() -> str:
        removed = await store.purge(older_than_days=retention_days)
        return f"{removed} conversations older than {retention_days:g} days removed"

    scheduler.add_job(_guarded("retention", purge), "interval", seconds=purge_every_s, next_run_time=soon,
                      id="retention")
    scheduler.add_job(_guarded("database-maintenance", store.maintain), "interval", seconds=maintain_every_s,
                      id="database-maintenance")
    if sweep is not None:
        scheduler.add_job(_guarded("recovery-sweep", sweep), "interval", seconds=sweep_every_s, id="recovery-sweep")
    if knowledge_purge is not None:
        scheduler.add_job(_guarded("knowledge-purge", knowledge_purge), "interval", seconds=purge_every_s,
                          next_run_time=soon, id="knowledge-purge")
    return scheduler
