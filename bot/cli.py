"""`moa-bot`: run the service, ask from the terminal, manage team knowledge, list presets, check the setup."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tomllib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from adapters.console import Console, ConsoleSink
from bot.config import Settings, load_settings
from bot.logs import setup_logging
from bot.wiring import Core, open_core, open_knowledge
from moa.answering import Answerer, StopResult
from moa.conversation import ConversationKey, Phase, Question
from moa.errors import ConfigError, MoaError
from moa.knowledge import AddReport, Audience, Passage
from moa.knowledge.model import IndexStats
from moa.knowledge.privacy import TERMINAL
from moa.presets import DEMO, load_catalog, split_model

CHAT_HELP = "Ctrl-C stops an answer; Ctrl-D, Ctrl-C or /exit at the prompt leaves. /preset NAME, /forget, /help."


def version() -> str:
    try:
        return metadata.version("moa-bot")
    except metadata.PackageNotFoundError:
        # run from a checkout that was never installed (`python -m bot.cli`): the version the checkout declares
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moa-bot", description="Slack and Discord answers from a Mixture of Agents."
    )
    parser.add_argument("--version", action="version", version=f"moa-bot {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run every configured adapter, the scheduler and the HTTP endpoint")
    ask = sub.add_parser("ask", help="answer one question in the terminal")
    ask.add_argument("question", nargs="+", help="the question (quote it, or give several words)")
    _preset_arguments(ask)
    ask.add_argument("--thread", help="continue the conversation with this id (printed by an earlier ask)")
    ask.add_argument("--show-proposals", action="store_true", help="print every draft on stderr")
    ask.add_argument("--json", action="store_true", help="print the run record as JSON instead")
    _knowledge_switch(ask)
    chat = sub.add_parser("chat", help="an interactive conversation in the terminal")
    _preset_arguments(chat)
    chat.add_argument("--thread", help="continue the conversation with this id")
    _knowledge_switch(chat)
    _knowledge_commands(sub.add_parser("knowledge", help="team knowledge: add local documents, list, search"))
    sub.add_parser("presets", help="list the presets and their models")
    sub.add_parser("doctor", help="check configuration and reachability")
    db = sub.add_parser("db", help="database tools")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    migrate = db_commands.add_parser(
        "migrate-to", help="copy the SQLite database named by MOA_DB into PostgreSQL (again: only what is new)"
    )
    migrate.add_argument("url", metavar="URL", help="the PostgreSQL database: postgresql://user:password@host/db")
    return parser


def _preset_arguments(command: argparse.ArgumentParser) -> None:
    choice = command.add_mutually_exclusive_group()
    choice.add_argument("--preset", help="preset to use (default: MOA_PRESET)")
    choice.add_argument(
        "--demo", action="store_true", help="try it offline: canned demo answers, no API key, no network"
    )


def _knowledge_switch(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--no-knowledge", action="store_true", help="answer from the models alone, without team sources"
    )


def _knowledge_commands(knowledge: argparse.ArgumentParser) -> None:
    sub = knowledge.add_subparsers(dest="knowledge_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="index files and folders (recursively); unchanged files are skipped")
    add.add_argument("paths", nargs="+", metavar="PATH")
    add.add_argument("--scope", default="", metavar="CHANNEL",
                     help="only questions in this channel (a Slack or Discord channel id) may use them")
    sub.add_parser("list", help="every indexed document")
    search = sub.add_parser("search", help="the passages a question would get, ranked, with scores")
    search.add_argument("query", nargs="+")
    search.add_argument("--limit", type=int, default=10)
    remove = sub.add_parser("remove", help="remove a source (as `list` shows it) or a local file or folder")
    remove.add_argument("source")
    sub.add_parser("stats", help="documents, chunks, size, embeddings and backfill progress per channel")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(_log_level(args.command, settings), settings.log_format, settings.secrets)
        if args.command == "presets":
            return _presets(settings)
        if args.command == "knowledge":
            return asyncio.run(_knowledge(settings, args))
        if args.command == "ask":
            return asyncio.run(_ask(_with_preset(settings, args), args))
        if args.command == "chat":
            return _chat(_with_preset(settings, args), args)
        if args.command == "run":
            from bot.service import run_service

            return asyncio.run(run_service(settings))
        if args.command == "doctor":
            from bot.doctor import doctor

            return asyncio.run(doctor(settings))
        if args.command == "db":
            from bot.db import migrate_to

            return asyncio.run(migrate_to(settings, args.url))
    except ConfigError as exc:
        print(f"moa-bot: configuration error: {exc}", file=sys.stderr)
        return 2
    except MoaError as exc:
        print(f"moa-bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


def _log_level(command: str, settings: Settings) -> str:
    # The terminal commands show their own progress on stderr, and INFO lines would break into it; the
    # service logs at the configured level, and so does any command when MOA_LOG_LEVEL is set (.env included).
    if command == "run" or os.environ.get("MOA_LOG_LEVEL", "").strip():
        return settings.log_level
    return "WARNING"


def _with_preset(settings: Settings, args: argparse.Namespace) -> Settings:
    """`--preset`/`--demo` stand in for MOA_PRESET in this command, so the API key check follows them."""
    preset = DEMO if args.demo else args.preset
    return replace(settings, preset=preset) if preset else settings


def _presets(settings: Settings) -> int:
    catalog = load_catalog(settings.config_path)
    for name, preset in sorted(catalog.presets.items()):
        notes = ["default"] if name == settings.preset else []
        if all(split_model(m, catalog.providers)[0] == DEMO for m in preset.models):
            notes.append("offline demo, no API key needed: moa-bot ask --demo QUESTION")
        marker = f" ({'; '.join(notes)})" if notes else ""
        print(f"{name}{marker}: layers={preset.layers}, aggregator={preset.aggregator}")
        for model in preset.proposers:
            print(f"    {model}")
    return 0


def _console_key(thread: str) -> ConversationKey:
    return ConversationKey(TERMINAL, "local", "cli", thread)


def _new_thread() -> str:
    return uuid.uuid4().hex[:12]


async def _ask(settings: Settings, args: argparse.Namespace) -> int:
    thread = args.thread or _new_thread()
    console = Console(
        sys.stdout,
        sys.stderr,
        live=sys.stderr.isatty(),
        show_proposals=args.show_proposals,
        stream_answer=not args.json,
    )
    async with open_core(settings, on_event=console.on_event) as core:
        key = _console_key(thread)
        if args.thread and not await core.store.has_history(key):
            console.say(f"No conversation {thread!r} yet: starting a new one with that id.")
        sink = console.sink()
        question = Question(key, "local", " ".join(args.question), knowledge=not args.no_knowledge)
        run_id = await answer_until_stopped(core.answerer, question, sink)
        if args.json and run_id is not None:
            record = await core.store.get_run(run_id)
            if record is not None:
                print(json.dumps(public_record(record, thread), indent=2, ensure_ascii=False))
    if sink.stopped:
        return 130
    answered = sink.final is not None and sink.final.phase is Phase.DONE
    if answered and not args.json:
        choice = " --demo" if args.demo else f" --preset {args.preset}" if args.preset else ""
        console.say(f'(to continue this conversation: moa-bot ask{choice} --thread {thread} "…")')
    return 0 if answered else 1


async def answer_until_stopped(answerer: Answerer, question: Question, sink: ConsoleSink) -> str | None:
    """Answer `question`, returning the run id; Ctrl-C stops this answer only (the sink says "Stopped.")."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(answerer.answer(question, sink))

    def stop() -> None:
        if sink.stopped:  # a second Ctrl-C must not cut short the recording of the first
            return
        sink.stopped = True
        # a run under way is stopped by the core (recorded as stopped); before that, there is only a task
        if not sink.run_id or answerer.stop(sink.run_id, by=question.user) is not StopResult.STOPPED:
            task.cancel()

    # where signal handlers are not supported (Windows), Ctrl-C ends the program instead
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, stop)
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not sink.stopped or (current is not None and current.cancelling()):
            raise  # cancelled from outside, not by the user's Ctrl-C
        return None
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)


def public_record(record: dict[str, Any], thread: str) -> dict[str, Any]:
    """The run record as `ask --json` prints it: what a user can act on, none of the database's internals."""
    return {
        "run_id": record["id"],
        "thread": thread,
        "question": record["question"],
        "preset": record["preset"],
        "status": record["status"],
        "answer": record["answer"],
        "error": record["error"],
        "started_at": _iso(record["created_at"]),
        "finished_at": _iso(record["finished_at"]),
        "elapsed_s": _rounded(record["elapsed_s"]),
        "prompt_tokens": record["prompt_tokens"],
        "completion_tokens": record["completion_tokens"],
        "sources": [
            {
                "number": s["number"],
                "source": s["source"],
                "title": s["title"],
                "author": s["author"],
                "date": _iso(s["created_at"]) if s["created_at"] else None,
                "link": s["link"],
                "score": round(s["score"], 4),
                "cited": bool(s["cited"]),
            }
            for s in record.get("sources", [])
        ],
        "proposals": [
            {
                "model": p["model"],
                "layer": p["layer"],
                "text": p["text"],
                "latency_s": _rounded(p["latency_s"]),
                "prompt_tokens": p["prompt_tokens"],
                "completion_tokens": p["completion_tokens"],
                "error": p["error"],
                "cut_off": bool(p["straggler"]),
            }
            for p in record["proposals"]
        ],
    }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    """An interactive conversation.

    The prompt is read with a plain blocking `input()` while no event loop runs, so readline edits the line and
    Ctrl-C there raises KeyboardInterrupt at once; each answer then runs on the same loop (`asyncio.Runner`, which
    keeps the database and the providers' connections between answers), where Ctrl-C stops that answer only.
    """
    console = Console(sys.stdout, sys.stderr, live=sys.stderr.isatty())
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        try:
            core = runner.run(stack.enter_async_context(open_core(settings, on_event=console.on_event)))
            save_history = _line_editing(settings.db_path.parent / "chat_history")
            try:
                return _converse(runner, core, console, args.thread or _new_thread(), not args.no_knowledge)
            finally:
                if save_history is not None:
                    save_history()
        finally:
            runner.run(stack.aclose())


def _converse(runner: asyncio.Runner, core: Core, console: Console, thread: str, knowledge: bool) -> int:
    key = _console_key(thread)
    preset: str | None = None
    continuing = runner.run(core.store.has_history(key))
    console.say(
        f"moa-bot chat · {'continuing' if continuing else 'new'} conversation {thread} · "
        f"preset {core.answerer.default_preset}"
    )
    console.say(CHAT_HELP)
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            console.say("")  # end the prompt's line
            return 0
        command, _, argument = line.partition(" ")
        if not line:
            continue
        if command in ("/exit", "/quit"):
            return 0
        if command == "/help":
            console.say(CHAT_HELP)
        elif command == "/forget":
            runner.run(core.answerer.answer(Question(key, "local", "forget"), console.sink()))
        elif command == "/preset":
            try:
                preset = core.catalog.get(argument.strip()).name
                console.say(f"Preset is now {preset}.")
            except ConfigError as exc:
                console.say(str(exc))
        else:
            question = Question(key, "local", line, preset, knowledge=knowledge)
            runner.run(answer_until_stopped(core.answerer, question, console.sink()))


def _line_editing(history: Path) -> Callable[[], None] | None:
    """Line editing, and a history kept across sessions, when the prompt is a terminal; returns the saver."""
    if not sys.stdin.isatty():
        return None
    try:
        import readline
    except ImportError:  # not in every Python build (Windows)
        return None
    readline.set_history_length(1000)
    with contextlib.suppress(OSError):
        readline.read_history_file(history)

    def save() -> None:
        with contextlib.suppress(OSError):
            readline.write_history_file(history)
            history.chmod(0o600)  # questions can be private, like the database next to them

    return save


async def _knowledge(settings: Settings, args: argparse.Namespace) -> int:
    async with open_knowledge(settings) as knowledge:
        librarian = knowledge.librarian
        action = args.knowledge_command
        if action == "add":
            report = await librarian.add_paths([Path(p) for p in args.paths], scope=args.scope)
            _print_report(report)
            return 1 if report.skipped and not (report.added or report.replaced or report.unchanged) else 0
        if action == "list":
            documents = await librarian.documents()
            for d in documents:
                where = "deployment-wide" if d.kind == "local" and not d.channel else f"{d.platform} {d.channel}"
                print(f"{d.source}\t{d.kind}\t{d.visibility}\t{where}\t{d.chunks} chunks\t{d.title}")
            print(f"{len(documents)} documents", file=sys.stderr)
            return 0
        if action == "search":
            # what `moa-bot ask` would be given: local and public knowledge
            audience = Audience(TERMINAL, None)
            passages = await librarian.search(" ".join(args.query), audience, max(1, args.limit))
            for number, passage in enumerate(passages, start=1):
                print(_passage_lines(number, passage))
            if not passages:
                print("no passage matches (a passage must contain about a third of the question's key terms)",
                      file=sys.stderr)
            return 0 if passages else 1
        if action == "remove":
            removed = await librarian.remove(args.source)
            print(f"removed {removed} document{'s' if removed != 1 else ''}" if removed
                  else f"nothing indexed as {args.source!r} (see `moa-bot knowledge list`)")
            return 0 if removed else 1
        schema = await knowledge.store.schema_status()
        return _print_stats(await librarian.stats(), settings, schema.location, semantic=librarian.embedder is not None)


def _print_report(report: AddReport) -> None:
    for label, paths in (("added", report.added), ("replaced", report.replaced), ("removed", report.removed)):
        for path in paths:
            print(f"{label}: {path}")
    for path, reason in report.skipped:
        print(f"skipped: {path}: {reason}")
    print(
        f"{len(report.added)} added, {len(report.replaced)} replaced, {len(report.unchanged)} unchanged, "
        f"{len(report.removed)} removed, {len(report.skipped)} skipped",
        file=sys.stderr,
    )


def _passage_lines(number: int, passage: Passage) -> str:
    date = datetime.fromtimestamp(passage.created_at, UTC).strftime("%Y-%m-%d") if passage.created_at else ""
    where = passage.link if passage.kind == "local" else f"{passage.platform} #{passage.channel}"
    about = " · ".join(part for part in (passage.author, date, where) if part)
    text = " ".join(passage.text.split())
    snippet = text if len(text) <= 240 else text[:239] + "…"
    return f"{number}. [{passage.score:.3g}] {passage.title} ({about}) {passage.source}\n   {snippet}"


def _print_stats(stats: IndexStats, settings: Settings, location: str, *, semantic: bool) -> int:
    kinds = ", ".join(f"{n} {kind}" for kind, n in stats.documents.items()) or "none"
    print(f"documents: {sum(stats.documents.values())} ({kinds})")
    print(f"chunks: {stats.chunks} ({stats.chars / 1e6:.2f} M characters)")
    print(f"database: {stats.database_bytes / 1e6:.1f} MB ({location})")
    if semantic:
        print(f"embeddings ({settings.embedding_model}): {stats.embedded} chunks, {stats.pending_embeddings} waiting")
    elif settings.embedding_model:
        print("embeddings: off (semantic search needs SQLite; on PostgreSQL, full-text search only)")
    else:
        print("embeddings: off (set MOA_EMBEDDING_MODEL for semantic search)")
    for c in stats.cursors:
        oldest = datetime.fromtimestamp(c.oldest, UTC).strftime("%Y-%m-%d") if c.oldest else "-"
        state = "done" if c.done else "in progress"
        print(f"backfill {c.platform} {c.workspace} {c.channel}: {state}, {c.messages} messages, back to {oldest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
