"""The Slack adapter: slack-bolt's `AsyncApp` in Socket Mode or HTTP mode, turning events into questions.

Flow of one event: in HTTP mode `inbound` checks its signature, then its shape, before anything parses it (401 and
400, logged at most once a minute); bolt drops this bot's own events; our global middleware drops other bots and
every message subtype (edits, deletions, joins…) except in knowledge channels, whose every message event is team
knowledge (`knowledge.py` indexes it); the listener decides whether the message is addressed to the bot
(`addressing.addressed`: people's new messages only) and hands it to a task this adapter owns, which turns it into
a `Question` for the core. The core decides the rest: a retried, replayed or doubly delivered event is answered
once (its event id and its team + channel + ts are recorded), `forget` and `preset:` are read from the text, and a
thread the bot joins is read once as context (through the loader the question carries). Bolt runs with `process_before_response=True`, so it
acknowledges Slack once the listener returns, and every piece of longer work (Slack look-ups, the MoA run) lives
in tasks that `aclose` cancels.

Each answer gets a `StreamingSink` (native streaming, else paced edits); clicks on its buttons go to `Clicks`, the
assistant pane's events to `AssistantPane`, and reactions (a ✅ verifies an answer) to `SlackKnowledge`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from adapters.base import SETTLE_S, ApiObserver, NullObserver
from adapters.pacing import RetryLater
from adapters.slack import inbound
from adapters.slack.api import CANNOT_POST, SlackApi, SlackCallError, web_client
from adapters.slack.directory import Directory
from adapters.slack.addressing import Incoming, addressed, is_human_message
from adapters.slack.assistant import AssistantPane, pane_thread
from adapters.slack.clicks import Clicks
from adapters.slack.documents import Documents
from adapters.slack.formatting import STREAM_CHARS
from adapters.slack.knowledge import SlackKnowledge
from adapters.slack.outbox import Outbox, SlackPacing
from adapters.slack.refusals import Refusals
from adapters.slack.sink import SlackSink
from adapters.slack.streaming import StreamingSink
from adapters.tasks import TaskOwner
from adapters.throttle import ThrottledLog
from moa.answering import Answerer
from moa.conversation import ContextLoader, ConversationKey, Question, ReplySink
from moa.errors import ConfigError
from moa.events import Message
from moa.knowledge import Librarian

log = logging.getLogger("adapters.slack")


class _OurClientWins(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN from the environment by itself and warns that the client we give it takes
    precedence; that is the intent (our client carries SLACK_API_URL), so the warning would only mislead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_bolt_log = logging.getLogger("adapters.slack.bolt")
_bolt_log.addFilter(_OurClientWins())

PLATFORM = "slack"
READ_RETRIES = 2  # 429s that slack_sdk waits out on a read before the read gives up
EVENTS_PATH = "/slack/events"
COMMAND = "/moa"


@dataclass(frozen=True)
class Identity:
    team_id: str
    user_id: str  # the bot's user (what mentions name)
    bot_id: str  # what the bot's messages carry


class SlackAdapter:
    name = PLATFORM

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str | None,
        signing_secret: str | None,
        api_url: str,
        knowledge_channels: Collection[str],
        answerer: Answerer,
        librarian: Librarian | None = None,
        backfill_days: int = 365,
        observer: ApiObserver | None = None,
        pacing: SlackPacing = SlackPacing(),
        streaming: bool = True,
        stream_chars: int = STREAM_CHARS,
        timeout_s: float = 10.0,
        ping_interval_s: float = 10.0,
        connect_timeout_s: float = 30.0,
    ) -> None:
        """`librarian`: team knowledge, fed with the knowledge channels (backfilled `backfill_days` back) and ✅
        reactions (None: nothing is indexed); `streaming`: answer with Slack's native streaming where it is
        allowed (else always by paced edits); `stream_chars`: the Markdown one streamed message holds."""
        if app_token is None and not signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET: required in HTTP mode; set it, or set SLACK_APP_TOKEN")
        self._bot_token = bot_token
        self._app_token = app_token
        self._signing_secret = signing_secret or ""
        self._api_url = api_url
        self._knowledge_channels = frozenset(knowledge_channels)
        self._answerer = answerer
        self._timeout_s = timeout_s
        self._ping_interval_s = ping_interval_s
        self._connect_timeout_s = connect_timeout_s
        observer = observer or NullObserver()
        self._client = web_client(bot_token, api_url, timeout_s)
        self._api = SlackApi(self._client, observer, timeout_s=timeout_s)
        self._outbox = Outbox(self._api, pacing, observer)
        self._streams = Refusals("native streaming", "answers there are edited in place") if streaming else None
        self._statuses = Refusals("the thread status", "no status is shown there")
        self._stream_chars = stream_chars
        self._pane = AssistantPane(self._outbox, answerer.catalog)
        self._tasks = TaskOwner(log)
        # reads (names, a thread's earlier messages) lean on slack_sdk's own 429 handling
        self._reads = web_client(bot_token, api_url, timeout_s, observer=observer, read_retries=READ_RETRIES)
        reads = SlackApi(self._reads, observer, timeout_s=timeout_s * (READ_RETRIES + 1))
        self._directory = Directory(reads)
        self._knowledge: SlackKnowledge | None = None
        self._documents: Documents | None = None
        if librarian is not None:
            self._documents = Documents(
                reads,
                self._directory,
                observer,
                bot_token=bot_token,
                api_url=api_url,
                max_file_bytes=librarian.max_file_bytes,
                timeout_s=timeout_s,
            )
            self._knowledge = SlackKnowledge(
                librarian,
                reads,
                self._documents,
                channels=self._knowledge_channels,
                backfill_days=backfill_days,
                pacing=pacing,
            )
        self._bolt = self._build_bolt()
        self._unsigned = ThrottledLog(
            log,
            f"refused an unsigned request to {EVENTS_PATH}",
            f"refused {{count}} unsigned requests to {EVENTS_PATH}",
        )
        self._malformed = ThrottledLog(
            log,
            f"refused a malformed signed request to {EVENTS_PATH}",
            f"refused {{count}} malformed signed requests to {EVENTS_PATH}",
        )
        self._handler: AsyncSocketModeHandler | None = None
        self._session: aiohttp.ClientSession | None = None
        self._identity: Identity | None = None
        self._running = False
        self._sinks: set[StreamingSink | SlackSink] = set()

    # ------------------------------------------------------------------------------------ Adapter protocol

    @property
    def streaming(self) -> bool:
        """Answers stream natively wherever Slack allows it (else they are edited in place)."""
        return self._streams is not None

    @property
    def socket_mode(self) -> bool:
        return self._app_token is not None

    @property
    def connected(self) -> bool:
        if not self._running:
            return False
        if self._handler is None:
            return True  # HTTP mode: Slack calls us
        client = self._handler.client
        session = client.current_session
        return not client.closed and not client.stale and session is not None and not session.closed

    @property
    def in_progress(self) -> int:
        """Questions being handled (looked up, answered) right now."""
        return len(self._tasks)

    @property
    def indexing(self) -> int:
        """Team-knowledge work under way: messages being indexed, ✅ being recorded, backfills."""
        return self._knowledge.pending if self._knowledge is not None else 0

    async def start(self) -> None:
        if self._running:
            return
        self._tasks.reopen()  # a supervisor starts the adapter again after closing it
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s * 2))
        self._client.session = self._reads.session = self._session
        try:
            who = await self._api.call("auth.test")
            self._identity = Identity(
                str(who.get("team_id", "")), str(who.get("user_id", "")), str(who.get("bot_id", ""))
            )
            if self._knowledge is not None and self._documents is not None:
                self._documents.connect(self._session, self._identity.user_id)
                self._knowledge.start(self._identity.team_id)  # backfills run in the background
            self._running = True  # events may arrive as soon as the socket is up
            if self._app_token is not None:
                await self._connect_socket(self._app_token)
        except BaseException:
            self._running = False
            await self._shutdown()
            raise
        log.info(
            "slack connected as %s in %s (%s mode)",
            self._identity.user_id,
            self._identity.team_id,
            "socket" if self.socket_mode else "http",
        )

    async def aclose(self) -> None:
        self._running = False
        await self._shutdown()
        self._unsigned.close()  # what was refused since the last summary
        self._malformed.close()

    def mount(self, app: web.Application) -> None:
        if not self.socket_mode:
            app.router.add_post(EVENTS_PATH, self._on_http)

    async def reopen(self, placeholder: dict[str, str]) -> ReplySink | None:
        if placeholder.get("platform") != PLATFORM:
            return None
        team, channel, ts = (
            placeholder.get("team", ""),
            placeholder.get("channel", ""),
            placeholder.get("ts", ""),
        )
        if not (team and channel and ts):
            return None
        if placeholder.get("stream"):  # the answer was a stream: end it, so that Slack shows it as a message again
            try:
                await self._outbox.stop_stream(channel, ts, [], None)
            except (SlackCallError, RetryLater) as exc:
                log.info("stream %s of an earlier run not stopped (%s); editing it", ts, exc)
        sink = SlackSink(
            self._outbox,
            team=team,
            channel=channel,
            thread_ts=placeholder.get("thread_ts") or ts,
            placeholder_ts=ts,
            on_closed=self._sinks.discard,
        )
        self._sinks.add(sink)
        return sink

    # ------------------------------------------------------------------------------------ lifecycle

    async def _connect_socket(self, app_token: str) -> None:
        handler = AsyncSocketModeHandler(
            self._bolt, app_token, web_client=self._client, ping_interval=self._ping_interval_s
        )
        self._handler = handler
        # Issue the first URL ourselves: a bad app token fails here with Slack's error instead of the SDK
        # retrying forever, and apps.connections.open (Tier 1) is called once per connection, not twice.
        opened = await self._api.call("apps.connections.open", app_token=app_token)
        handler.client.wss_uri = opened["url"]
        async with asyncio.timeout(self._connect_timeout_s):
            await handler.connect_async()  # type: ignore[no-untyped-call]

    async def _shutdown(self) -> None:
        handler, self._handler = self._handler, None
        if handler is not None:
            await handler.close_async()  # type: ignore[no-untyped-call]  # no new events from here on
        if not self._answerer.accepting:  # stopping: what was acknowledged last is handed over, not dropped
            await self._tasks.settle(SETTLE_S)
        await self._tasks.cancel_all()  # answers in flight show "interrupted" on their way out
        if self._knowledge is not None:
            await self._knowledge.aclose()  # backfills resume from their cursors next time
        for sink in list(self._sinks):
            await sink.aclose()
        session, self._session = self._session, None
        self._client.session = self._reads.session = None
        if session is not None:
            await session.close()

    def _sink(self, team: str, channel: str, thread_ts: str, asker: str, **kwargs: Any) -> StreamingSink:
        sink = StreamingSink(
            self._outbox,
            team=team,
            channel=channel,
            thread_ts=thread_ts,
            asker=asker,
            # Slack's stop control on a stream is the asker's (the stream's recipient)
            stop=lambda run_id: self._answerer.stop(run_id, by=asker),
            streams=self._streams,
            statuses=self._statuses,
            on_closed=self._sinks.discard,
            max_chars=self._stream_chars,
            **kwargs,
        )
        self._sinks.add(sink)
        return sink

    # ------------------------------------------------------------------------------------ bolt wiring

    def _build_bolt(self) -> AsyncApp:
        bolt = AsyncApp(
            client=self._client,
            name="moa-bot",
            logger=_bolt_log,
            request_verification_enabled=False,  # `_on_http` verifies every request before bolt sees it
            process_before_response=True,  # ack after our quick bookkeeping; the work runs in our own tasks
        )
        bolt.middleware(self._only_people)
        bolt.middleware(self._only_whole_pane_events)
        bolt.event("app_mention")(self._on_event)
        bolt.event("message")(self._on_event)
        bolt.event("assistant_thread_started")(self._on_assistant_thread)
        bolt.event("assistant_thread_context_changed")(self._on_assistant_thread)
        bolt.event("reaction_added")(self._on_reaction)
        bolt.event("reaction_removed")(self._on_reaction)
        bolt.command(COMMAND)(self._on_command)
        Clicks(self._answerer, self._outbox, self._tasks.spawn).register(bolt)
        return bolt

    async def _only_people(
        self, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Global middleware: other bots and message subtypes (edits, deletions, joins…) stop here, acked; except
        `message` events of knowledge channels, which the listener hands to team knowledge (`addressed` still
        takes none of them for a question)."""
        event = body.get("event") if body.get("type") == "event_callback" else None
        if (
            isinstance(event, dict)
            and event.get("type") in ("message", "app_mention")
            and not is_human_message(event)
            and not (event.get("type") == "message" and self._indexes(event.get("channel")))
        ):
            return BoltResponse(status=200, body="")
        await next()
        return None

    async def _only_whole_pane_events(
        self, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Global middleware: an assistant pane event without its thread stops here, acked (bolt's own
        middleware for these events would raise on it)."""
        event = body.get("event") if body.get("type") == "event_callback" else None
        if isinstance(event, dict) and str(event.get("type")).startswith("assistant_thread_"):
            if pane_thread(event) is None:
                return BoltResponse(status=200, body="")
        await next()
        return None

    def _indexes(self, channel: object) -> bool:
        return self._knowledge is not None and self._knowledge.watches(channel)

    async def _on_event(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        if not self._running:
            raise RuntimeError("the Slack adapter is not running")  # 500: Slack delivers it again later
        bot_user_id = self._bot_user_id(context)
        incoming = addressed(body, bot_user_id=bot_user_id, knowledge_channels=self._knowledge_channels)
        event = body.get("event") or {}
        index: Callable[[], None] | None = None
        if self._knowledge is not None and event.get("type") == "message" and self._indexes(event.get("channel")):
            team = str(body.get("team_id") or event.get("team") or "")
            if incoming is None:
                self._knowledge.message(team, event)
            else:
                index = self._knowledge.after_answer(team, event)
        if incoming is not None:
            name = f"slack-{incoming.event_id or incoming.ts}"
            if self._tasks.spawn(self._handle(incoming, bot_user_id, index), name) is None and index is not None:
                index()  # shutting down: no answer, but the message is still team knowledge

    async def _on_reaction(self, event: dict[str, Any]) -> None:
        if not self._running:
            raise RuntimeError("the Slack adapter is not running")  # 500: Slack delivers it again later
        if self._knowledge is not None:
            self._knowledge.reaction(event)

    async def _on_assistant_thread(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        if not self._running:
            raise RuntimeError("the Slack adapter is not running")  # 500: Slack delivers it again later
        if event.get("type") == "assistant_thread_context_changed":
            self._pane.context_changed(event)
            return
        team = str(body.get("team_id") or "")
        self._tasks.spawn(self._pane.started(team, event), f"slack-assistant-{body.get('event_id', '')}")

    async def _on_command(
        self, ack: Callable[..., Awaitable[Any]], command: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()  # within Slack's 3 s, before anything slow
        if not self._running:
            return
        self._tasks.spawn(
            self._handle_command(dict(command), self._bot_user_id(context)),
            f"slack-command-{command.get('trigger_id', '')}",
        )

    async def _on_http(self, request: web.Request) -> web.Response:
        """POST /slack/events: signature first (401), then the body's shape (400), then bolt dispatches it."""
        raw = await request.read()
        refused = inbound.refusal(raw, request.headers, self._signing_secret, time.time())
        if refused is not None:
            self._unsigned.record(refused)
            return web.Response(status=401, text=f"refused: {refused}")
        if not self._running:
            # Slack retries a delivery that was not acknowledged: better than dropping it while we restart
            return web.Response(status=503, text="the Slack adapter is starting")
        try:
            bolt_request = inbound.bolt_request(raw, request.content_type, request.headers, request.query_string)
        except inbound.MalformedBody as exc:
            self._malformed.record(str(exc))
            return web.Response(status=400, text=f"refused: {exc}")
        response = await self._bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    def _bot_user_id(self, context: AsyncBoltContext) -> str:
        if self._identity is not None and self._identity.user_id:
            return self._identity.user_id
        return str(context.bot_user_id or "")

    # ------------------------------------------------------------------------------------ questions

    async def _handle(self, incoming: Incoming, bot_user_id: str, index: Callable[[], None] | None = None) -> None:
        """Answer one question; then `index` it as team knowledge, when it was posted in a knowledge channel."""
        try:
            text = await self._directory.question(incoming.text, bot_user_id=bot_user_id)
            # in the assistant pane: the channel the user looks at; its threads are the bot's own, never read back
            viewing = self._pane.context(incoming.channel, incoming.thread_ts)
            question = Question(
                ConversationKey(PLATFORM, incoming.team, incoming.channel, incoming.thread_ts),
                incoming.user,
                text,
                event_id=incoming.event_id,
                # the same message arrives as `app_mention` and as `message`, with two event ids but one ts
                also_delivered_as=(incoming.message_key,),
                context=(
                    self._thread_reader(incoming, bot_user_id) if incoming.in_thread and viewing is None else None
                ),
                context_channel=viewing or "",
                is_dm=incoming.in_dm,
                # in a knowledge channel a message is answered unasked: with no team source it may get no reply
                unprompted=incoming.kind == "knowledge",
            )
            if viewing is not None:
                self._tasks.spawn(
                    self._pane.title(incoming.team, incoming.channel, incoming.thread_ts, text), "slack-title"
                )
            sink = self._sink(
                incoming.team, incoming.channel, incoming.thread_ts, incoming.user, question_ts=incoming.ts
            )
            await self._answerer.answer(question, sink)
        except (SlackCallError, RetryLater) as exc:
            log.warning("could not answer %s in %s: %s", incoming.ts, incoming.channel, exc)
        except Exception:  # one question's failure must not stop the adapter
            log.exception("could not answer %s in %s", incoming.ts, incoming.channel)
        finally:
            if index is not None:
                index()

    def _thread_reader(self, incoming: Incoming, bot_user_id: str) -> ContextLoader:
        """Reads the thread's earlier messages (the core calls it at most once per conversation)."""
        bot_id = self._identity.bot_id if self._identity else ""

        async def read() -> tuple[Message, ...]:
            return await self._directory.thread_context(
                incoming.channel, incoming.thread_ts, before_ts=incoming.ts, bot_user_id=bot_user_id, bot_id=bot_id
            )

        return read

    async def _handle_command(self, command: dict[str, Any], bot_user_id: str) -> None:
        team, channel = str(command.get("team_id", "")), str(command.get("channel_id", ""))
        user, response_url = str(command.get("user_id", "")), str(command.get("response_url", ""))
        raw = str(command.get("text") or "")
        try:
            text = await self._directory.question(raw, bot_user_id=bot_user_id)
            if not text:
                await self._outbox.respond(
                    response_url,
                    f"Ask me something after the command, e.g. `{COMMAND} what is a write-ahead log?`",
                )
                return
            # The question is posted in the channel ("… asked: …") and answered in its thread, so the
            # conversation's thread is known only once the sink opens; until then it is the channel's.
            sink = self._sink(team, channel, "", user, response_url=response_url, asked=(user, text))
            question = Question(
                ConversationKey(PLATFORM, team, channel), user, text,
                # a trigger id is unique per invocation: a replayed or redelivered /moa repeats it
                event_id=f"command:{command['trigger_id']}" if command.get("trigger_id") else "",
            )
            try:
                await self._answerer.answer(question, sink)
            except SlackCallError as exc:
                if exc.error not in CANNOT_POST:
                    raise
                await self._outbox.respond(response_url, _cannot_post(exc.error))
        except (SlackCallError, RetryLater) as exc:
            log.warning("could not answer %s in %s: %s", COMMAND, channel, exc)
            await self._outbox.respond(
                response_url, f"Sorry, Slack refused my reply ({exc}). Please try again."
            )
        except Exception:  # one question's failure must not stop the adapter
            log.exception("could not answer %s in %s", COMMAND, channel)


def _cannot_post(error: str) -> str:
    if error == "not_in_channel":
        return (
            "I can't post in this channel because I'm not a member. Invite me with `/invite @moa` and ask "
            "again, or ask me in a direct message."
        )
    if error == "is_archived":
        return (
            "This channel is archived, so I can't post in it. Ask me in another channel or a direct message."
        )
    return (
        "I can't post in this conversation (I can't see it: a private channel or someone else's direct "
        "message). Invite me with `/invite @moa`, or ask me in a direct message."
    )
