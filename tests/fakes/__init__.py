"""Fake servers for offline tests: real client libraries talk to them on 127.0.0.1 free ports.

- `llm.py`: an OpenAI/Together-compatible chat-completions server (`FakeLLM`).
- `slack/`: Slack's Web API, Socket Mode, response_url, HTTP-mode signing (`FakeSlack`); see its `__init__`.
- `discord/`: Discord's REST API v10 and gateway (`FakeDiscord`); see its `__init__`.
- `failures.py`: `Failure`, the one way to make any of them fail (`llm.fail(model, ...)`, `slack.fail(method,
  ...)`, `discord.fail(route, ...)`), consumed one per call.
- `ratelimit.py`: the rate-limit counting Slack and Discord share; each shapes its own 429s and headers.
- `base.py`: `LoopbackServer` (start, stop, port), `Forward` and `Signal`, the glue the platform fakes use.
- `slack_payloads.py`, `discord_payloads.py`: builders of the platforms' JSON (events, interactions, objects).
- `documents.py`: small real files to share through them (a PDF with extractable text, a PNG).
"""
