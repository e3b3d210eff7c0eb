"""`FakeSlack`: the workspace (`state.py`) with its Web API, Socket Mode, file downloads and response_url
endpoints on one port.

Tests reach every part through the fake: its workspace queries directly (it is a `SlackState`), the parts'
records and controls through forwarded attributes (`slack.calls` is `slack.api.calls`). What spans parts is
here: `push_event` stores the message before sending its envelope, `push_slash_command` gives the command a
response_url this fake serves, `block_action` builds a click on a stored message (with a response_url and a
trigger_id the fake honours) and `push_interactive` sends it, `deliver_http` stores an event and POSTs it
signed (interaction payloads form-encoded as `payload=`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from tests.fakes import slack_payloads as sp
from tests.fakes.base import Forward, LoopbackServer
from tests.fakes.slack.files import FileDownloads
from tests.fakes.slack.methods import SlackMethods
from tests.fakes.slack.response_url import ResponseUrls
from tests.fakes.slack.signing import post_signed, sign_request
from tests.fakes.slack.socket_mode import Envelope, SocketMode
from tests.fakes.slack.state import SlackState
from tests.fakes.slack.streaming import Stream
from tests.fakes.slack.web_api import WebApi

# Interaction payloads: Socket Mode sends them as `interactive` envelopes, HTTP mode as a form's `payload`.
INTERACTIVE_TYPES = {"block_actions", "view_submission", "view_closed", "shortcut", "message_action"}


class FakeSlack(SlackState, LoopbackServer):
    """A Slack workspace, its Web API and Socket Mode server on 127.0.0.1 (a free port).

    Time knobs: `window_s` is Slack's 60 s rate-limit minute; shrink it to speed tests up (the per-channel
    post interval follows it unless given). `stream_ttl_s` is how long a stream lives (Slack: about five
    minutes), `trigger_ttl_s` how long a trigger_id opens a modal (3 s), `status_ttl_s` how long an assistant
    thread status shows without a reply (two minutes). `clock` lets a test drive time itself.
    """

    # Web API (web_api.py): records, controls, knobs.
    calls = Forward("api")
    rate_limited = Forward("api")
    calls_to = Forward("api")
    fail = Forward("api")
    set_latency = Forward("api")
    reset_limits = Forward("api")
    bot_token = Forward("api")
    app_token = Forward("api")
    tier_limits = Forward("api")
    window_s = Forward("api")
    post_burst = Forward("api")
    post_interval_s = Forward("api")
    min_retry_after = Forward("api")
    latency_s = Forward("api")
    # Web API methods (methods.py): knobs.
    max_text_chars = Forward("methods")
    replies_max_limit = Forward("methods")
    trigger_ttl_s = Forward("methods")
    status_ttl_s = Forward("methods")
    agent_app = Forward("methods")
    emoji = Forward("methods")
    statuses = Forward("methods")
    titles = Forward("methods")
    suggested_prompts = Forward("methods")
    views = Forward("methods")
    thread_status = Forward("methods")
    issue_trigger = Forward("methods")
    # File downloads (files.py).
    downloads = Forward("file_downloads")
    # Socket Mode (socket_mode.py).
    envelopes = Forward("socket")
    acks = Forward("socket")
    connections = Forward("socket")
    live_connections = Forward("socket")
    wait_connected = Forward("socket")
    wait_disconnected = Forward("socket")
    push_envelope = Forward("socket")
    disconnect_all = Forward("socket")
    send_disconnect = Forward("socket")
    connect_wait_s = Forward("socket")
    echo_bot_events = Forward("socket")
    # response_url endpoints (response_url.py).
    response_url_ttl_s = Forward("response_urls")

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-1-fake-bot-token",
        app_token: str = "xapp-1-A0FAKEAPP-1-fake-app-token",
        tier3_per_minute: int = 50,
        tier4_per_minute: int = 100,
        window_s: float = 60.0,
        post_burst: int = 3,
        post_interval_s: float | None = None,
        min_retry_after: int = 1,
        max_text_chars: int = 4000,
        replies_max_limit: int = 1000,
        echo_bot_events: bool = False,
        latency_s: float = 0.0,
        connect_wait_s: float = 5.0,
        response_url_ttl_s: float = 1800.0,
        stream_ttl_s: float = 300.0,
        stream_max_total_chars: int | None = None,
        trigger_ttl_s: float = 3.0,
        status_ttl_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        port: int = 0,
    ) -> None:
        SlackState.__init__(self, clock=clock)
        self.requested_port = port  # 0: any free port; a fixed one lets a test restart "the same" Slack
        self.socket = SocketMode(
            app_id=self.api_app_id,
            connect_wait_s=connect_wait_s,
            echo_bot_events=echo_bot_events,
            clock=clock,
        )
        self.response_urls = ResponseUrls(self, ttl_s=response_url_ttl_s, base_url=lambda: self.base_url)
        self.methods = SlackMethods(
            self,
            max_text_chars=max_text_chars,
            replies_max_limit=replies_max_limit,
            stream_ttl_s=stream_ttl_s,
            stream_max_total_chars=stream_max_total_chars,
            trigger_ttl_s=trigger_ttl_s,
            status_ttl_s=status_ttl_s,
            echo=self.socket.echo,
            open_socket=lambda: self.socket.open_url(self.base_url),
        )
        self.files_base = lambda: self.base_url
        self.file_downloads = FileDownloads(self, token=lambda: self.api.bot_token)
        self.api = WebApi(
            self.methods.table(),
            bot_token=bot_token,
            app_token=app_token,
            tier3_per_minute=tier3_per_minute,
            tier4_per_minute=tier4_per_minute,
            window_s=window_s,
            post_burst=post_burst,
            post_interval_s=window_s / 60.0 if post_interval_s is None else post_interval_s,
            min_retry_after=min_retry_after,
            latency_s=latency_s,
            clock=clock,
        )

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind a free port on 127.0.0.1 and serve."""
        app = web.Application()
        self.api.mount(app)
        self.socket.mount(app)
        self.response_urls.mount(app)
        self.file_downloads.mount(app)
        await self._serve(app, port=self.requested_port)

    async def aclose(self) -> None:
        """Close sockets, stop serving, cancel envelopes nobody acked."""
        self.api.stopping.set()
        await self.socket.aclose()
        await self._stop_serving()
        self.socket.cancel_unacked()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL, for `AsyncWebClient(base_url=...)` and `SLACK_API_URL`."""
        return f"{self.base_url}/api/"

    # ---------------------------------------------------------------- events and commands

    def push_event(
        self,
        payload: Mapping[str, Any],
        retry_attempt: int = 0,
        retry_reason: str | None = None,
        *,
        store: bool = True,
        connection: int | None = None,
    ) -> Envelope:
        """Deliver an `event_callback` body as an `events_api` envelope; `await` it for the ack.

        A retry (`retry_attempt` > 0) defaults to reason "timeout", like Slack's redelivery of an un-acked
        envelope. `store` first records the message the event refers to (see `store_event`). `connection`: the
        id of the Socket Mode connection to send it on (default: the newest).
        """
        if store:
            self.store_event(payload)
        return self.socket.push_event(payload, retry_attempt, retry_reason, connection)

    def push_slash_command(self, form: Mapping[str, str]) -> Envelope:
        """Deliver slash command fields as a `slash_commands` envelope; `await` it for the ack.

        A response_url that does not point at this fake (builders default to hooks.slack.com) is replaced by
        one it serves, so `respond()` calls are recorded in `response_url_posts`.
        """
        fields = dict(form)
        url = fields.get("response_url", "")
        if not url.startswith(self.base_url):
            fields["response_url"] = self.new_response_url(
                fields.get("channel_id", sp.CHANNEL_ID), fields.get("user_id", sp.USER_ID)
            )
        self._honour_trigger(fields)
        return self.socket.push_envelope("slash_commands", fields, accepts_response_payload=True)

    # ---------------------------------------------------------------- interactivity

    def block_action(
        self,
        channel: str,
        ts: str,
        action_id: str,
        *,
        value: str | None = None,
        user: str = sp.USER_ID,
        ephemeral: bool = False,
    ) -> dict[str, Any]:
        """A `block_actions` payload for a click on the element `action_id` of a stored message.

        The element is looked up in the message's blocks (ValueError if it has none by that id): a button's
        action carries its value; for `feedback_buttons` pass `value` (one of its two buttons' values).
        `ephemeral` looks in `ephemerals` instead (Slack then sends no `message`). The payload's response_url
        (which can replace or delete the message) and trigger_id (for views.open) are served by this fake.
        Send it with `push_interactive` (Socket Mode) or `deliver_http` (HTTP mode).
        """
        if ephemeral:
            rec = next((e for e in self.ephemerals if e["channel"] == channel and e["ts"] == ts), None)
            if rec is None:
                raise KeyError(f"no ephemeral {ts} in {channel}")
            blocks, message, thread_ts = rec.get("blocks") or [], None, rec.get("thread_ts")
        else:
            stored = self.message(channel, ts)
            message = self.api_message(stored)
            blocks, thread_ts = message.get("blocks") or [], stored["thread_ts"]
        block_id, element = _find_element(blocks, action_id)
        if element["type"] == "feedback_buttons":
            choices = {element["positive_button"]["value"], element["negative_button"]["value"]}
            if value not in choices:
                raise ValueError(f"feedback_buttons {action_id!r}: value must be one of {sorted(choices)}")
        payload = sp.block_actions(
            [sp.block_action(element, block_id, value=value)],
            channel=channel,
            channel_name=self.channels[channel].get("name", "directmessage"),
            message_ts=ts,
            message=message,
            user=user,
            user_name=self.users[user]["name"],
            thread_ts=thread_ts,
            is_ephemeral=ephemeral,
            response_url=self.response_urls.new(channel, user, message_ts=ts),
        )
        self._honour_trigger(payload)
        return payload

    def push_interactive(self, payload: Mapping[str, Any]) -> Envelope:
        """Deliver an interaction payload (`block_action(...)`) as an `interactive` envelope; `await` it for
        the ack."""
        self._honour_trigger(payload)
        return self.socket.push_envelope("interactive", payload)

    def _honour_trigger(self, payload: Mapping[str, Any]) -> None:
        """Let views.open take the trigger_id Slack issued with this interaction or command."""
        trigger_id = payload.get("trigger_id")
        if trigger_id:
            self.issue_trigger(str(trigger_id))

    # ---------------------------------------------------------------- streams

    @property
    def streams(self) -> list[Stream]:
        """Every stream started, in order (see `streaming.Stream`)."""
        return self.methods.streams.streams

    def stream(self, ts: str) -> Stream:
        """The stream whose message has this ts: its chunks, markdown, tasks, final blocks and state."""
        return self.methods.streams.stream(ts)

    def refuse_streaming(self, channel: str | None = None, error: str = "channel_type_not_supported") -> None:
        """chat.startStream fails with `error` in `channel`, or anywhere (None), until `allow_streaming`."""
        self.methods.streams.refuse(channel, error)

    def allow_streaming(self, channel: str | None = None) -> None:
        self.methods.streams.allow(channel)

    def user_stops_stream(self, ts: str) -> None:
        """The user pressed Stop on a streaming message: later appends get `stopped_by_user`."""
        self.methods.streams.user_stops(ts)

    # ---------------------------------------------------------------- response_url

    @property
    def response_url_posts(self) -> list[dict[str, Any]]:
        """Every POST to a response_url: {url, body, time}, in order."""
        return self.response_urls.posts

    def new_response_url(self, channel_id: str = sp.CHANNEL_ID, user_id: str = sp.USER_ID) -> str:
        """A response_url served by the fake, tied to the channel and user of a slash command."""
        return self.response_urls.new(channel_id, user_id)

    def slash_command_form(self, text: str, **fields: Any) -> dict[str, str]:
        """`slash_command(...)` fields with a response_url served by this fake (for HTTP-mode tests)."""
        form = sp.slash_command(text, **fields)
        form["response_url"] = self.new_response_url(form["channel_id"], form["user_id"])
        return form

    # ---------------------------------------------------------------- HTTP mode

    @staticmethod
    def signed_request(
        body: bytes | str,
        signing_secret: str,
        timestamp: int | str | None = None,
        *,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> dict[str, str]:
        """Headers for POSTing `body` to an app's `/slack/events` as Slack would (see `sign_request`)."""
        return sign_request(body, signing_secret, timestamp, retry_num=retry_num, retry_reason=retry_reason)

    async def deliver_http(
        self,
        url: str,
        payload: Mapping[str, Any] | str | bytes,
        signing_secret: str,
        *,
        timestamp: int | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timeout_s: float = 3.0,
    ) -> tuple[int, str]:
        """POST a signed event (dict -> JSON), slash command (dict with "command" -> form) or interaction
        payload (`block_action(...)` -> form `payload=`) to an app.

        Returns (status, body text). Slack gives an app 3 s (`timeout_s`) before it counts a failure and
        retries; a slower answer raises TimeoutError here. Event payloads are stored first, as in `push_event`.
        """
        if isinstance(payload, Mapping):
            self._honour_trigger(payload)
            if "command" in payload:
                body = sp.form_body({k: str(v) for k, v in payload.items()})
            elif payload.get("type") in INTERACTIVE_TYPES:
                body = sp.interactive_form_body(payload)
            else:
                self.store_event(payload)
                body = json.dumps(payload)
        else:
            body = payload.decode() if isinstance(payload, bytes) else payload
        headers = sign_request(
            body, signing_secret, timestamp, retry_num=retry_num, retry_reason=retry_reason
        )
        return await post_signed(url, body, headers, timeout_s=timeout_s)


def _find_element(blocks: list[dict[str, Any]], action_id: str) -> tuple[str, dict[str, Any]]:
    """(block_id, element) of the interactive element `action_id` in a message's blocks."""
    for index, block in enumerate(blocks):
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return str(block.get("block_id") or f"block{index}"), element
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("action_id") == action_id:
            return str(block.get("block_id") or f"block{index}"), accessory
    raise ValueError(f"the message has no interactive element with action_id {action_id!r}")
