"""`moa-bot`: run the service, ask from the terminal, list presets, check the setup."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Sequence

from adapters.console import ConsoleSink, describe_event
from bot.config import Settings, load_settings
from bot.logs import setup_logging
from bot.wiring import open_core
from moa.conversation import ConversationKey, Question
from moa.errors import ConfigError, MoaError
from moa.events import Event
from moa.presets import load_catalog


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moa-bot", description="Slack and Discord answers from a Mixture of Agents."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run every configured adapter, the scheduler and the HTTP endpoint")
    ask = sub.add_parser("ask", help="answer one question in the terminal")
    ask.add_argument("question", nargs="+", help="the question (quote it, or give several words)")
    ask.add_argument("--preset", help="preset to use (default: MOA_PRESET)")
    ask.add_argument("--thread", help="continue a stored conversation with this id")
    ask.add_argument("--show-proposals", action="store_true", help="print every draft on stderr")
    ask.add_argument("--json", action="store_true", help="print the run record as JSON instead")
    chat = sub.add_parser("chat", help="an interactive conversation in the terminal")
    chat.add_argument("--preset", help="preset to use (default: MOA_PRESET)")
    chat.add_argument("--thread", help="continue a stored conversation with this id")
    sub.add_parser("presets", help="list the presets and their models")
    sub.add_parser("doctor", help="check configuration and reachability")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(settings.log_level, settings.log_format, settings.secrets)
        if args.command == "presets":
            return _presets(settings)
        if args.command == "ask":
            return asyncio.run(_ask(settings, args))
        if args.command == "chat":
            return asyncio.run(_chat(settings, args))
        if args.command == "run":
            from bot.service import run_service

            return asyncio.run(run_service(settings))
        if args.command == "doctor":
            from bot.doctor import doctor

            return asyncio.run(doctor(settings))
    except ConfigError as exc:
        print(f"moa-bot: configuration error: {exc}", file=sys.stderr)
        return 2
    except MoaError as exc:
        print(f"moa-bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


def _presets(settings: Settings) -> int:
    catalog = load_catalog(settings.config_path)
    for name, preset in sorted(catalog.presets.items()):
        marker = " (default)" if name == settings.preset else ""
        print(f"{name}{marker}: layers={preset.layers}, aggregator={preset.aggregator}")
        for model in preset.proposers:
            print(f"    {model}")
    return 0


def _console_key(thread: str) -> ConversationKey:
    return ConversationKey("console", "local", "cli", thread)


async def _ask(settings: Settings, args: argparse.Namespace) -> int:
    thread = args.thread or uuid.uuid4().hex[:12]
    question_text = " ".join(args.question)

    def progress(_: str, event: Event) -> None:
        line = describe_event(event, show_proposals=args.show_proposals)
        if line is not None and not args.json:
            print(line, file=sys.stderr, flush=True)

    async with open_core(settings, on_event=progress) as core:
        sink = ConsoleSink(sys.stdout, sys.stderr, stream_answer=not args.json)
        question = Question(_console_key(thread), "local", question_text, args.preset)
        run_id = await core.answerer.answer(question, sink)
        if args.json and run_id is not None:
            record = await core.store.get_run(run_id)
            print(json.dumps({**(record or {}), "thread": thread}, indent=2, default=str))
    if not args.json:
        print(f"(continue this conversation with --thread {thread})", file=sys.stderr)
    return 0 if sink.final is not None and sink.final.phase.value == "done" else 1


async def _chat(settings: Settings, args: argparse.Namespace) -> int:
    thread = args.thread or uuid.uuid4().hex[:12]
    preset = args.preset
    loop = asyncio.get_running_loop()
    async with open_core(settings) as core:
        print(
            f"moa-bot chat (thread {thread}, preset {preset or settings.preset}). "
            "Commands: /preset NAME, /forget, /exit.",
            file=sys.stderr,
        )
        while True:
            try:
                line = await loop.run_in_executor(None, input, "you> ")
            except EOFError:
                print(file=sys.stderr)
                return 0
            line = line.strip()
            if not line:
                continue
            if line in ("/exit", "/quit"):
                return 0
            if line == "/forget":
                await core.answerer.answer(Question(_console_key(thread), "local", "forget"), ConsoleSink(sys.stdout, sys.stderr))
                continue
            if line.startswith("/preset"):
                name = line.removeprefix("/preset").strip()
                try:
                    core.catalog.get(name)
                    preset = name
                    print(f"Preset is now {name}.", file=sys.stderr)
                except ConfigError as exc:
                    print(exc, file=sys.stderr)
                continue
            sink = ConsoleSink(sys.stdout, sys.stderr)
            await core.answerer.answer(Question(_console_key(thread), "local", line, preset), sink)


if __name__ == "__main__":
    raise SystemExit(main())
