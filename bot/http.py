"""The process's HTTP server: /healthz, /metrics, and whatever routes adapters mount (Slack's /slack/events)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from aiohttp import web

from adapters.base import Adapter
from bot.metrics import CONTENT_TYPE, Metrics
from storage import Storage


@runtime_checkable
class Sharded(Protocol):
    """An adapter connected through several gateway sessions (Discord's shards)."""

    @property
    def shards(self) -> Mapping[int, str]:
        """Each of this process's shards and its state ("connecting", "ready", "disconnected")."""
        ...


def build_app(
    *,
    store: Storage,
    adapters: Sequence[Adapter],
    metrics: Metrics,
    in_flight: Callable[[], int],
    accepting: Callable[[], bool],
    replica: str = "",
) -> web.Application:
    app = web.Application(client_max_size=1024**2)

    async def healthz(_: web.Request) -> web.Response:
        # the database's state says why when it is not "ok": "not writable: the disk is full", ...
        components: dict[str, str] = {"database": await store.health()}
        healthy = components["database"] == "ok"
        shards: dict[str, dict[str, str]] = {}
        for adapter in adapters:
            up = adapter.connected
            components[adapter.name] = "connected" if up else "disconnected"
            healthy = healthy and up
            if isinstance(adapter, Sharded):
                shards[adapter.name] = {str(shard): state for shard, state in sorted(adapter.shards.items())}
        # a replica that is stopping says so, and load balancers send the next questions elsewhere
        status = ("ok" if accepting() else "draining") if healthy else "unavailable"
        body: dict[str, object] = {
            "status": status,
            "replica": replica,
            "accepting": accepting(),
            "answers_in_flight": in_flight(),
            "components": components,
        }
        if shards:
            body["shards"] = shards
        return web.json_response(body, status=200 if status == "ok" else 503, dumps=json.dumps)

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(in_flight()), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    for adapter in adapters:
        adapter.mount(app)
    return app


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app`; returns the runner (to clean up) and the bound port (useful when `port` is 0)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])


