"""The Discord adapter: discord.py client lifecycle, and events turned into questions for the answerer.

Everything an event starts runs in a task this adapter owns (discord.py's own handler tasks are not cancelled
on close), so `aclose` stops answers cleanly and no task outlives the adapter.

The client is discord.py's AutoShardedClient: one gateway session per shard, each guild's events on shard
`(guild_id >> 22) % shard_count`, DMs on shard 0. DISCORD_SHARD_COUNT and DISCORD_SHARD_IDS split the shards
between replicas; without them, one process runs as many as Discord recommends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import discord
import yarl
from aiohttp import web
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.base import SETTLE_S, ApiObserver, NullObserver
from adapters.discord.api import (
    DEFAULT_API_BASE,
    PLATFORM,
    DiscordSetupError,
    discover_gateway,
    observing_trace,
    resolved_channel,
)
from adapters.discord.addressing import classify, forget_target, interaction_target, is_from_a_person
from adapters.discord.clicks import Clicks
from adapters.discord.commands import install_commands, sync_commands
from adapters.discord.controls import AnswerButton
from adapters.discord.interaction import InteractionSink
from adapters.discord.knowledge import DiscordKnowledge
from adapters.discord.pacing import ChannelBudgets, DiscordPacing
from adapters.discord.sink import NO_PINGS, DiscordSink, MessageSink, SinkContext
from adapters.tasks import TaskOwner
from moa.answering import Answerer
from moa.conversation import Question, ReplySink
from moa.knowledge import Librarian

log = logging.getLogger("adapters.discord")

# A Discord user id is the same person in every guild and in DMs: one rate bucket for the whole application.
USER_SCOPE = ""
SORRY = "Something went wrong on my side and I could not answer. Please try again."


class _NoVoiceWarnings(logging.Filter):
    """discord.py warns at every start that voice libraries are missing; a text bot never needs them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


_NO_VOICE_WARNINGS = _NoVoiceWarnings()


class _Client(discord.AutoShardedClient):
    """A sharded discord.py client with the command tree and the answers' buttons; it hands every event to the
    adapter."""

    def __init__(self, adapter: DiscordAdapter, intents: discord.Intents, **options: Any) -> None:
        super().__init__(intents=intents, allowed_mentions=NO_PINGS, **options)
        self.adapter = adapter
        self.tree: app_commands.CommandTree[_Client] = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        # before the gateway connects, so that a click on an answer from before a restart finds its button
        self.add_dynamic_items(AnswerButton)
        # here, not in on_ready: on_ready runs again after every reconnect
        await sync_commands(self.tree, self.adapter.guild_ids)

    async def on_shard_ready(self, shard_id: int) -> None:
        self.adapter._shard_changed(shard_id, True)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self.adapter._shard_changed(shard_id, True)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self.adapter._shard_changed(shard_id, False)

    async def on_message(self, message: discord.Message) -> None:
        self.adapter._tasks.spawn(self.adapter._on_message(message), f"discord-message-{message.id}")

    # Team knowledge: each event goes to the knowledge channels' keeper, which starts what it needs in a task
    # the adapter owns. Without knowledge channels there is none (and no reaction events are asked for).

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if self.adapter.knowledge is not None:
            self.adapter.knowledge.on_edit(payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if self.adapter.knowledge is not None:
            self.adapter.knowledge.on_delete(payload)

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if self.adapter.knowledge is not None:
            self.adapter.knowledge.on_bulk_delete(payload)

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        if self.adapter.knowledge is not None:
            self.adapter.knowledge.on_thread_delete(payload)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if self.adapter.knowledge is not None:
            self.adapter.knowledge.on_reaction(payload)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        if self.adapter.knowledge is not None:
            self.adapter.knowledge.on_reaction(payload)

    async def on_guild_channel_update(
        self, before: discord.abc.GuildChannel, after: discord.abc.GuildChannel
    ) -> None:
        if self.adapter.knowledge is not None:
            self.adapter.knowledge.on_channel_update(before, after)

    async def clicked(self, interaction: discord.Interaction, action: str, run_id: str) -> None:
        # runs in discord.py's view task: hand over to a task the adapter owns
        self.adapter._tasks.spawn(
            self.adapter._clicks.handle(interaction, action, run_id), f"discord-click-{interaction.id}"
        )


class DiscordAdapter:
    """Answers `/moa`, mentions, knowledge channels and DMs on Discord. Implements `adapters.base.Adapter`."""

    name = PLATFORM

    def __init__(
        self,
        *,
        bot_token: str,
        answerer: Answerer,
        observer: ApiObserver | None = None,
        api_base: str | None = None,
        gateway_url: str | None = None,
        guild_ids: Sequence[int] = (),
        knowledge_channels: Collection[str] = frozenset(),
        librarian: Librarian | None = None,
        backfill_days: int = 365,
        message_content: bool | None = None,
        pacing: DiscordPacing = DiscordPacing(),
        guild_ready_timeout: float = 2.0,
        start_timeout_s: float = 60.0,
        http_timeout_s: float = 10.0,
        shard_count: int | None = None,
        shard_ids: Sequence[int] | None = None,
    ) -> None:
        """
        Args:
            api_base: DISCORD_API_BASE; when given, REST goes there and the gateway URL is discovered from it.
            gateway_url: DISCORD_GATEWAY_URL; overrides discovery.
            guild_ids: DISCORD_GUILD_IDS; slash commands are synced there (instantly) instead of globally.
            knowledge_channels: channel ids where every top-level message is answered without a mention (ids
                that are not Discord's, such as Slack's, are ignored).
            librarian: team knowledge; with knowledge channels, their messages and files are indexed through it
                (live and backfilled `backfill_days` back), and a ✅ on an answer verifies it.
            message_content: ask for the privileged Message Content intent; default: when knowledge channels are
                set (mentions and DMs carry their content without it).
            guild_ready_timeout: discord.py's wait for GUILD_CREATEs after READY (tests shrink it).
            shard_count: DISCORD_SHARD_COUNT, the shards of all replicas together; default: what GET /gateway/bot
                recommends (one with a gateway named by `gateway_url`).
            shard_ids: DISCORD_SHARD_IDS, this process's shards (needs `shard_count`); default: all of them.
        """
        self._token = bot_token
        self._answerer = answerer
        self._observer = observer or NullObserver()
        self._api_base = api_base.rstrip("/") if api_base else None
        self._gateway_url = gateway_url
        self.guild_ids = tuple(guild_ids)
        # MOA_KNOWLEDGE_CHANNELS may list Slack channels too; Discord's ids are numbers (snowflakes)
        self.knowledge_channels = frozenset(c for c in knowledge_channels if c.isdigit())
        self._message_content = bool(self.knowledge_channels) if message_content is None else message_content
        self._librarian = librarian if self.knowledge_channels else None
        self._backfill_days = backfill_days
        self.knowledge: DiscordKnowledge | None = None  # while started, with knowledge channels
        self.pacing = pacing
        self._guild_ready_timeout = guild_ready_timeout
        self._start_timeout_s = start_timeout_s
        self._http_timeout_s = http_timeout_s
        self._budgets = ChannelBudgets(pacing)
        self._clicks = Clicks(answerer)
        self._shard_count = shard_count
        self._shard_ids = tuple(shard_ids) if shard_ids is not None else None
        self._client: _Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._shards_up: dict[int, bool] = {}  # READY or RESUMED seen, no disconnect since
        self._tasks = TaskOwner(log)
        self._background = TaskOwner(log)  # backfills: not events, so not counted in `in_progress`
        self._saved_settings: tuple[str, yarl.URL] | None = None

    # --- the Adapter protocol -------------------------------------------------------------------------

    @property
    def intents(self) -> discord.Intents:
        """Only what the bot uses: guilds (channels and threads), guild and DM messages, and content if needed."""
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = self._message_content
        intents.guild_reactions = self._librarian is not None  # ✅ on answers, only with knowledge channels
        return intents

    async def start(self) -> None:
        if self._client is not None:
            raise RuntimeError("the Discord adapter is already started")
        self._tasks.reopen()  # a supervisor starts the adapter again after closing it
        self._background.reopen()
        gateway, recommended = self._gateway_url, None
        if gateway is None and self._api_base is not None:
            gateway, recommended = await discover_gateway(
                self._api_base, self._token, self._http_timeout_s, self._observer
            )
        # None: discord.py asks Discord (GET /gateway/bot), and takes the gateway it names too
        shard_count = self._shard_count or recommended or (1 if gateway is not None else None)
        # The only two library settings the adapter touches; restored by aclose.
        self._saved_settings = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        if self._api_base is not None:
            Route.BASE = self._api_base
        if gateway is not None:
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
        logging.getLogger("discord.client").addFilter(
            _NO_VOICE_WARNINGS
        )  # the same filter once, however often
        client = _Client(
            self,
            self.intents,
            guild_ready_timeout=self._guild_ready_timeout,
            http_trace=observing_trace(self._observer, self._api_base or DEFAULT_API_BASE),
            shard_count=shard_count,
            shard_ids=list(self._shard_ids) if self._shard_ids is not None else None,
        )
        install_commands(client.tree, self._answerer.catalog.presets, self._on_moa, self._on_forget)
        self._client = client
        if self._librarian is not None:
            self.knowledge = DiscordKnowledge(
                client,
                self._librarian,
                self.knowledge_channels,
                backfill_days=self._backfill_days,
                pacing=self.pacing,
                events=self._tasks,
                background=self._background,
            )
        try:
            await self._connect(client)
        except BaseException:
            await self.aclose()
            raise
        if self.knowledge is not None:
            self.knowledge.start()  # after READY: the channels are known

    async def _connect(self, client: _Client) -> None:
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await client.login(
                    self._token
                )  # GET /users/@me, the application, then setup_hook (command sync)
        except discord.LoginFailure as exc:
            raise DiscordSetupError(
                "DISCORD_BOT_TOKEN: Discord refused the token; copy it again from the application's Bot page"
            ) from exc
        self._runner = asyncio.create_task(client.connect(reconnect=True), name="discord-gateway")
        ready = asyncio.create_task(client.wait_until_ready(), name="discord-ready")
        done, _ = await asyncio.wait(
            {self._runner, ready}, timeout=self._start_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if ready in done:
            log.info(
                "Discord: connected as %s (%s), %d guilds, shards %s of %s",
                client.user,
                client.application_id,
                len(client.guilds),
                ",".join(str(i) for i in self.shards),
                client.shard_count,
            )
            return
        ready.cancel()
        await asyncio.gather(ready, return_exceptions=True)
        if self._runner in done:
            failure = self._runner.exception()
            if isinstance(failure, discord.PrivilegedIntentsRequired):
                raise DiscordSetupError(
                    "Discord refused the Message Content intent (4014): turn on 'Message Content Intent' on the "
                    "application's Bot page (needed for knowledge channels), or remove MOA_KNOWLEDGE_CHANNELS"
                ) from failure
            raise ConnectionError(f"the Discord gateway closed before READY: {failure!r}") from failure
        raise TimeoutError(f"no READY from the Discord gateway within {self._start_timeout_s:g} s")

    async def aclose(self) -> None:
        # answers first, while the client can still mark them interrupted
        if not self._answerer.accepting:  # stopping: what was taken last is handed over, not dropped
            await self._tasks.settle(SETTLE_S)
        await self._tasks.cancel_all()
        await self._background.cancel_all()
        self.knowledge = None
        client, self._client = self._client, None
        runner, self._runner = self._runner, None
        self._shards_up = {}
        if client is not None:
            await client.close()
        if runner is not None:
            try:
                await asyncio.wait_for(runner, 10.0)
            except (Exception, asyncio.CancelledError) as exc:  # closing: whatever ended it was logged
                if isinstance(exc, asyncio.CancelledError) and _cancelling():
                    raise
                log.debug("Discord gateway task ended with %r", exc)
        if self._saved_settings is not None:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._saved_settings
            self._saved_settings = None

    @property
    def in_progress(self) -> int:
        """Events being handled right now (questions being answered, forgets, changes to team knowledge)."""
        return len(self._tasks)

    @property
    def connected(self) -> bool:
        """True while every shard's gateway session is up: READY or RESUMED seen, no disconnect since."""
        client, runner = self._client, self._runner
        shards = self.shards
        return (
            bool(shards)
            and all(state == "ready" for state in shards.values())
            and client is not None
            and not client.is_closed()
            and runner is not None
            and not runner.done()
        )

    @property
    def shards(self) -> Mapping[int, str]:
        """This process's shards and their states ("connecting", "ready", "disconnected"), for /healthz; none
        before the client knows how many there are."""
        client = self._client
        if client is None or client.shard_count is None:
            return {}
        ids = self._shard_ids if self._shard_ids is not None else range(client.shard_count)
        states = {True: "ready", False: "disconnected"}
        return {i: states[self._shards_up[i]] if i in self._shards_up else "connecting" for i in ids}

    def mount(self, app: web.Application) -> None:
        return None  # everything arrives over the gateway

    async def reopen(self, placeholder: dict[str, str]) -> ReplySink | None:
        if placeholder.get("platform") != PLATFORM or self._client is None:
            return None
        try:
            channel_id, message_id = int(placeholder["channel"]), int(placeholder["message"])
        except (KeyError, ValueError):
            return None
        return MessageSink(self._context(), source=None, channel_id=channel_id, message_id=message_id)

    # --- events ---------------------------------------------------------------------------------------

    def _shard_changed(self, shard_id: int, up: bool) -> None:
        if up != self._shards_up.get(shard_id, False):
            log.log(logging.INFO if up else logging.WARNING, "Discord gateway %s (shard %d)",
                    "up" if up else "lost", shard_id)
        self._shards_up[shard_id] = up

    def _context(self) -> SinkContext:
        assert self._client is not None
        return SinkContext(self._client, self.pacing, self._budgets)

    async def _on_message(self, message: discord.Message) -> None:
        client = self._client
        if client is None or client.user is None or not is_from_a_person(message):
            return
        channel = await resolved_channel(client, message)
        # indexed before it is answered, so that the files shared with a question can answer it
        source = await self.knowledge.message_created(message, channel) if self.knowledge is not None else ""
        role = message.guild.self_role if message.guild is not None else None
        target = classify(
            message,
            channel,
            bot_id=client.user.id,
            bot_role_id=role.id if role is not None else None,
            knowledge_channels=self.knowledge_channels,
        )
        if target is None:
            return
        sink = MessageSink(
            self._context(),
            source=message,
            channel_id=message.channel.id,
            open_thread=target.open_thread,
            thread_name=target.thread_name,
        )
        question = Question(
            target.key,
            str(message.author.id),
            target.text,
            event_id=f"message:{message.id}",  # gateway RESUMEs replay events: the core answers each once
            parent_channel=target.parent_channel,
            user_scope=USER_SCOPE,
            is_dm=message.guild is None,
            unprompted=target.unprompted,
            source=source,
        )
        await self._answer(question, sink)

    async def _on_moa(self, interaction: discord.Interaction, question: str, preset: str | None) -> None:
        # runs in discord.py's handler task: hand over to a task this adapter owns at once
        received = time.monotonic()
        self._tasks.spawn(
            self._answer_interaction(interaction, question, preset, received),
            f"discord-interaction-{interaction.id}",
        )

    async def _answer_interaction(
        self, interaction: discord.Interaction, text: str, preset: str | None, received: float
    ) -> None:
        sink = InteractionSink(self._context(), interaction, received)
        # the answerer defers when it opens the placeholder, within milliseconds; this is the safety net for
        # a slow database, so that Discord never drops the interaction
        watchdog = asyncio.create_task(sink.defer_by(self.pacing.ack_within_s), name="discord-defer")
        try:
            target = interaction_target(interaction, text)
            question = Question(
                target.key,
                str(interaction.user.id),
                target.text,
                preset or None,
                event_id=f"interaction:{interaction.id}",
                parent_channel=target.parent_channel,
                user_scope=USER_SCOPE,
                is_dm=interaction.guild_id is None,
            )
            await self._answer(question, sink)
        finally:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)

    async def _on_forget(self, interaction: discord.Interaction) -> None:
        self._tasks.spawn(self._forget(interaction), f"discord-forget-{interaction.id}")

    async def _forget(self, interaction: discord.Interaction) -> None:
        key = forget_target(interaction)
        sink = InteractionSink(self._context(), interaction, time.monotonic())
        if key is None:
            text = "Use `/moa-forget` inside a thread with me: it forgets that thread's conversation."
            try:
                await sink.refuse(text)
            except discord.HTTPException as exc:
                log.warning("could not answer /moa-forget: %s %s", exc.status, exc.text)
            return
        question = Question(key, str(interaction.user.id), "forget", event_id=f"interaction:{interaction.id}")
        await self._answer(question, sink)

    async def _answer(self, question: Question, sink: DiscordSink) -> None:
        try:
            await self._answerer.answer(question, sink)
        except discord.HTTPException as exc:
            log.error(
                "could not answer %s: Discord said %s %s %s",
                question.event_id,
                exc.status,
                exc.code,
                exc.text,
            )
            await sink.salvage(SORRY)
        except Exception:  # a failure before the answer began: log it, tell the user if possible
            log.exception("could not answer %s", question.event_id)
            await sink.salvage(SORRY)
        finally:
            await sink.aclose()


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
