"""A faithful fake Slack for offline tests: Web API, rate limits, Socket Mode, response_url, HTTP-mode signing.

It sits at the real network seam: tests point the real `slack_sdk.web.async_client.AsyncWebClient`
(`base_url=slack.api_url`) and the real Socket Mode client (via `apps.connections.open`) at it, so the SDKs'
parsing, retry handlers and our own error mapping run exactly as in production.

    async with FakeSlack(tier3_per_minute=50, window_s=6.0) as slack:   # 10x faster than real time
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        handler = AsyncSocketModeHandler(app, slack.app_token)          # app built with that client
        await handler.connect_async()
        slack.fail("chat.update", Failure.rate_limit(retry_after=2))   # the next chat.update gets a 429
        ack = await slack.push_event(event_callback(app_mention("hi")))
        assert slack.bot_messages(CHANNEL_ID)[-1]["text"] == ...

What it serves:
- `/api/{method}`: auth.test, apps.connections.open, chat.postMessage, chat.update, chat.postEphemeral,
  chat.delete, chat.getPermalink, chat.startStream / appendStream / stopStream, conversations.history /
  replies / info / members, users.info, files.info, reactions.add / remove, assistant.threads.setStatus /
  setTitle / setSuggestedPrompts, views.open. Form, query and JSON bodies; `Authorization: Bearer` (or a
  `token` field outside JSON). HTTP 200 `{"ok": false, "error"}` for API errors, as Slack does;
  `unknown_method`, `not_authed`, `invalid_auth`, `not_allowed_token_type` (bot token on
  apps.connections.open, app token elsewhere).
- Rate limits per method per workspace (sliding window, Tier 3 / Tier 4), and for chat.postMessage a token
  bucket per channel (1 per `post_interval_s`, burst `post_burst`). Over it: HTTP 429, integer `Retry-After`,
  `{"ok": false, "error": "ratelimited"}`. Rejected calls do not use up the window.
- `/socket?ticket=...`: Socket Mode. `hello` on connect, envelopes out, acks in; single-use tickets, as the
  URLs `apps.connections.open` returns are.
- `/commands/...` and `/actions/...`: response_url endpoints of commands and interactions (5 uses).
- `/files-pri/...`: file downloads, only with the bot token (else a redirect to an HTML sign-in page).

For team knowledge (see `state.py` and `methods.py`): `seed_history`, `share_file` (files of any type:
`tests.fakes.documents` makes PDFs and PNGs), `edit_message`, `delete_message` (tombstones for thread
parents), `react` / `unreact`, private channels and `members`; each returns the event body to push.
For the AI-app experience: streams (`streaming.py`: `stream(ts)`, `refuse_streaming`, `user_stops_stream`,
`stream_ttl_s`), the assistant pane (`start_assistant_thread`, `thread_status`, `titles`,
`suggested_prompts`), clicks (`block_action(...)` then `push_interactive` or `deliver_http`), modals
(`views`, trigger_ids from interactions and commands only).

Modules, one job each:
- `state.py`: the workspace (members, conversations, messages, files, reactions, ephemerals), what people
  do in it, and the queries tests use.
- `web_api.py`: `/api/{method}` plumbing: parameters, auth, injected failures (`tests.fakes.failures`), rate
  limits (`tests.fakes.ratelimit`), error answers, the `calls` record.
- `methods.py`: the Web API methods, one handler each, registered in `SlackMethods.table()`.
  To add a method: write its handler there and add one line to `table()`; nothing else changes.
- `streaming.py`: chat.startStream / appendStream / stopStream and the streams they make.
- `content.py`: what Slack accepts as text, blocks, markdown_text and stream chunks, and its errors.
- `files.py`: file downloads (`url_private`, `url_private_download`).
- `socket_mode.py`: Socket Mode connections and envelopes.
- `response_url.py`: response_url endpoints. `signing.py`: HTTP-mode signed requests.
- `server.py`: `FakeSlack`, which ties them together on one port.
"""

from tests.fakes.failures import Failure
from tests.fakes.slack.server import FakeSlack
from tests.fakes.slack.signing import sign_request
from tests.fakes.slack.socket_mode import Envelope, SocketConnection
from tests.fakes.slack.state import SlackState
from tests.fakes.slack.streaming import Stream
from tests.fakes.slack.web_api import ApiError, Call, Method

__all__ = [
    "ApiError",
    "Call",
    "Envelope",
    "Failure",
    "FakeSlack",
    "Method",
    "SlackState",
    "SocketConnection",
    "Stream",
    "sign_request",
]
