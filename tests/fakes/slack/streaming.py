"""The fake Slack's streaming methods: chat.startStream, chat.appendStream, chat.stopStream.

Rules, from Slack's method pages and what apps observe:
- A stream is a bot reply in a thread (`thread_ts` required: `invalid_arguments`). Outside an IM it needs
  `recipient_user_id` and `recipient_team_id` (`missing_recipient_user_id` / `missing_recipient_team_id`).
- Content is `markdown_text` or `chunks` (`markdown_text`, `task_update`, `plan_update`, `blocks`), never both
  in one call (`cannot_provide_both_markdown_text_and_chunks`); whichever a stream first carried it keeps
  (`streaming_mode_mismatch`); an append carries one (`markdown_text_or_chunks_required`). `markdown_text`
  and markdown chunks take 12,000 characters each (`msg_too_long`); task titles, details and outputs 256
  (`invalid_chunks`). Slack limits each call, not the whole message; `max_total_chars` adds a cap on the
  message for tests of the "answer too long" path.
- A stream lives `ttl_s` seconds from its start (Slack: about five minutes, appends do not extend it), then,
  like a stopped one, answers `message_not_in_streaming_state`; `stopped_by_user` once the user pressed
  Stop (`user_stops`). Someone else's message: `message_not_owned_by_app`; not a stream: not in streaming
  state.
- `refuse(channel=None, error=...)` makes chat.startStream fail for a channel or the whole workspace with one
  of its documented errors, so the fallback to chat.update can be tested.
- Tiers: startStream and stopStream Tier 2, appendStream Tier 4 (`SlackMethods.table`).

Every accepted call is recorded on its `Stream` (`slack.stream(ts)`): `chunks` in order (a `markdown_text`
argument recorded as a markdown_text chunk), `markdown` (the text as streamed), `tasks` (each task's latest
state), `final_blocks`, `metadata`, `state`. The message itself shows the streamed markdown as a `markdown`
block in `conversations.history` / `.replies`, followed, once stopped, by the blocks of `blocks` chunks and the
final `blocks`.

    streamer = await client.chat_stream(channel=ch, thread_ts=ts, recipient_user_id=sp.USER_ID,
                                        recipient_team_id=sp.TEAM_ID)
    await streamer.append(markdown_text="**hello**")
    await streamer.stop(blocks=[sp.feedback_buttons_block()])
    assert slack.stream(streamer.ts).markdown == "**hello**"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.fakes import slack_payloads as sp
from tests.fakes.slack.content import (
    MAX_MARKDOWN_TOTAL,
    parse_blocks,
    parse_chunks,
    parse_metadata,
    validate_blocks,
    validate_chunks,
)
from tests.fakes.slack.state import SlackState
from tests.fakes.slack.web_api import ApiError, invalid_arguments

Json = dict[str, Any]
StreamState = Literal["streaming", "stopped", "expired", "stopped_by_user"]

DISPLAY_MODES = {"timeline", "plan", "dense"}
# Documented chat.startStream errors a workspace or channel refusal may answer with.
REFUSALS = {"channel_type_not_supported", "restricted_action", "messages_tab_disabled", "not_in_channel"}


@dataclass
class Stream:
    """One streamed message and everything accepted into it."""

    channel: str
    ts: str
    thread_ts: str
    recipient_user_id: str | None
    recipient_team_id: str | None
    task_display_mode: str
    started_at: float  # the fake's clock
    mode: Literal["markdown_text", "chunks"] | None = None  # set by the first call that carried content
    state: StreamState = "streaming"
    chunks: list[Json] = field(default_factory=list)
    final_blocks: list[Json] | None = None
    metadata: Json | None = None
    stopped_at: float | None = None

    @property
    def markdown(self) -> str:
        """The markdown streamed so far, in order, as the user reads it."""
        return "".join(c["text"] for c in self.chunks if c["type"] == "markdown_text")

    @property
    def tasks(self) -> dict[str, Json]:
        """Each task card's latest state by id: title, status and output replace; details append."""
        cards: dict[str, Json] = {}
        for chunk in self.chunks:
            if chunk["type"] != "task_update":
                continue
            card = cards.setdefault(chunk["id"], {"id": chunk["id"], "details": ""})
            for key in ("title", "status", "output"):
                if key in chunk:
                    card[key] = chunk[key]
            card["details"] += chunk.get("details") or ""
        return cards

    @property
    def plan_title(self) -> str | None:
        titles = [c["title"] for c in self.chunks if c["type"] == "plan_update"]
        return titles[-1] if titles else None

    @property
    def streamed_blocks(self) -> list[Json]:
        return [b for c in self.chunks if c["type"] == "blocks" for b in c["blocks"]]


class Streams:
    """The streams of one workspace and the three methods' handlers (registered in `SlackMethods.table`)."""

    def __init__(
        self,
        state: SlackState,
        *,
        ttl_s: float,
        max_total_chars: int | None,
        resolve: Callable[[Any], Json],
        echo: Callable[[Json], None],
    ) -> None:
        self.state = state
        self.ttl_s = ttl_s
        self.max_total_chars = max_total_chars
        self.streams: list[Stream] = []  # in start order
        self._resolve = resolve
        self._echo = echo
        self._refusals: dict[str | None, str] = {}  # channel id (None: the workspace) -> error

    # ---------------------------------------------------------------- test controls and queries

    def refuse(self, channel: str | None = None, error: str = "channel_type_not_supported") -> None:
        """chat.startStream answers `error` in `channel` (None: anywhere in the workspace)."""
        if error not in REFUSALS:
            raise ValueError(
                f"chat.startStream documents no refusal {error!r}; use one of {sorted(REFUSALS)}"
            )
        self._refusals[channel] = error

    def allow(self, channel: str | None = None) -> None:
        """Undo `refuse` for a channel (None: the workspace-wide refusal)."""
        self._refusals.pop(channel, None)

    def stream(self, ts: str) -> Stream:
        """The stream whose message has this ts (its state brought up to the fake's clock)."""
        for found in self.streams:
            if found.ts == ts:
                self._expire(found)
                return found
        raise KeyError(f"no stream with ts {ts}")

    def user_stops(self, ts: str) -> None:
        """The user pressed Stop on a stream: Slack ends it and refuses further appends (`stopped_by_user`)."""
        found = self.stream(ts)
        if found.state == "streaming":
            found.state, found.stopped_at = "stopped_by_user", self.state.clock()

    # ---------------------------------------------------------------- chat.startStream

    def start(self, params: Json) -> Json:
        refusal = self._refusals.get(str(params.get("channel") or ""), self._refusals.get(None))
        if refusal is not None:
            raise ApiError(refusal)
        channel = self._resolve(params.get("channel"))
        thread_ts = str(params.get("thread_ts") or "")
        if not thread_ts:
            raise invalid_arguments("missing required field: thread_ts")
        recipient = params.get("recipient_user_id") or None
        team = params.get("recipient_team_id") or None
        if not channel.get("is_im"):
            if recipient is None:
                raise ApiError("missing_recipient_user_id")
            if team is None:
                raise ApiError("missing_recipient_team_id")
        if recipient is not None and recipient not in self.state.users:
            raise ApiError("user_not_found")
        mode = str(params.get("task_display_mode") or "timeline")
        if mode not in DISPLAY_MODES:
            raise invalid_arguments(
                f"must be one of {sorted(DISPLAY_MODES)} [json-pointer:/task_display_mode]"
            )
        chunks, kind = self._content(params, required=False)
        self._check_total("", chunks)
        rec = self.state.add_bot_message(channel["id"], "", thread_ts=thread_ts)
        found = Stream(
            channel=channel["id"],
            ts=rec["ts"],
            thread_ts=thread_ts,
            recipient_user_id=recipient,
            recipient_team_id=team,
            task_display_mode=mode,
            started_at=self.state.clock(),
        )
        self.streams.append(found)
        self._accept(found, chunks, kind)
        self._echo(
            sp.bot_message(
                "",
                channel=channel["id"],
                bot_id=self.state.bot_id,
                user=self.state.bot_user_id,
                app_id=self.state.api_app_id,
                ts=rec["ts"],
                thread_ts=thread_ts,
                channel_type=self.state.channel_type(channel["id"]),
            )
        )
        return {"channel": channel["id"], "ts": rec["ts"]}

    # ---------------------------------------------------------------- chat.appendStream

    def append(self, params: Json) -> Json:
        found = self._live(params)
        chunks, kind = self._content(params, required=True)
        self._check_mode(found, kind)
        self._accept(found, chunks, kind)
        return {"channel": found.channel, "ts": found.ts}

    # ---------------------------------------------------------------- chat.stopStream

    def stop(self, params: Json) -> Json:
        found = self._live(params)
        chunks, kind = self._content(params, required=False)
        self._check_mode(found, kind)
        blocks = parse_blocks(params.get("blocks"))
        if blocks is not None:
            validate_blocks(blocks)
        metadata = parse_metadata(params.get("metadata"))
        self._accept(found, chunks, kind)
        found.state, found.stopped_at = "stopped", self.state.clock()
        found.final_blocks, found.metadata = blocks, metadata
        rec = self.state.message(found.channel, found.ts)
        shown = [{"type": "markdown", "text": found.markdown}] if found.markdown else []
        rec["blocks"] = shown + found.streamed_blocks + (blocks or []) or None
        rec["metadata"] = metadata
        return {"channel": found.channel, "ts": found.ts, "message": self.state.api_message(rec)}

    # ---------------------------------------------------------------- shared

    def _live(self, params: Json) -> Stream:
        """The stream named by channel and ts, or Slack's error for why it takes nothing more."""
        channel = self._resolve(params.get("channel"))
        ts = str(params.get("ts") or "")
        rec = self.state.find(channel["id"], ts)
        if rec is None or rec["deleted"]:
            raise ApiError("message_not_found")
        if rec["bot_id"] != self.state.bot_id:
            raise ApiError("message_not_owned_by_app")
        found = next((s for s in self.streams if s.channel == channel["id"] and s.ts == ts), None)
        if found is None:
            raise ApiError("message_not_in_streaming_state")
        self._expire(found)
        if found.state == "stopped_by_user":
            raise ApiError("stopped_by_user")
        if found.state != "streaming":
            raise ApiError("message_not_in_streaming_state")
        return found

    def _expire(self, found: Stream) -> None:
        if found.state == "streaming" and self.state.clock() - found.started_at > self.ttl_s:
            found.state, found.stopped_at = "expired", found.started_at + self.ttl_s

    def _content(self, params: Json, *, required: bool) -> tuple[list[Json], str | None]:
        """The call's content as chunks, and which way it came ("markdown_text", "chunks", or None)."""
        markdown = params.get("markdown_text")
        chunks = parse_chunks(params.get("chunks"))
        if markdown is not None and chunks:
            raise ApiError("cannot_provide_both_markdown_text_and_chunks")
        if markdown is not None:
            text = str(markdown)
            if len(text) > MAX_MARKDOWN_TOTAL:
                raise ApiError("msg_too_long")
            return [{"type": "markdown_text", "text": text}], "markdown_text"
        if chunks:
            validate_chunks(chunks)
            return [dict(c) for c in chunks], "chunks"
        if required:
            raise ApiError("markdown_text_or_chunks_required")
        return [], None

    @staticmethod
    def _check_mode(found: Stream, kind: str | None) -> None:
        if kind is not None and found.mode is not None and kind != found.mode:
            raise ApiError("streaming_mode_mismatch")

    def _check_total(self, streamed: str, chunks: list[Json]) -> None:
        added = sum(len(c["text"]) for c in chunks if c["type"] == "markdown_text")
        if self.max_total_chars is not None and len(streamed) + added > self.max_total_chars:
            raise ApiError("msg_too_long")

    def _accept(self, found: Stream, chunks: list[Json], kind: str | None) -> None:
        self._check_total(found.markdown, chunks)
        if kind == "markdown_text" or kind == "chunks":
            found.mode = found.mode or kind
        found.chunks.extend(chunks)
        rec = self.state.message(found.channel, found.ts)
        rec["markdown_text"] = found.markdown or None
        rec["updated_at"] = self.state.clock()
