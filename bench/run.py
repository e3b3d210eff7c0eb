"""Run the benchmarks, print one table, write `bench/results/<name>.json` (`--quick`: `bench/results/quick/`).

python3 -m bench            # everything, about 11 minutes
python3 -m bench --quick    # fewer runs and levels, about 3 minutes
python3 -m bench --only overhead,storage,api
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from bench import api, concurrency, knowledge, overhead, platforms, replicas, storage_growth, stragglers
from bench.common import FakeLLMProcess, machine, write_result

NAMES = ("overhead", "stragglers", "concurrency", "storage", "platforms", "api", "knowledge", "replicas")

Row = tuple[str, str, str, str, str]  # benchmark, case, measured, target, verdict


def _ok(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "MISSED")


def rows_overhead(r: dict[str, Any]) -> Iterator[Row]:
    for row in r["rows"]:
        o, floor = row["overhead_ms"], row["naive_overhead_ms"]
        own = row["moa_minus_naive_ms"]
        yield (
            "1 overhead",
            f"layers={row['layers']} proposers={row['proposers']} (path {row['critical_path_ms']:.0f} ms)",
            f"mean {o['mean']} / p50 {o['p50']} / p95 {o['p95']} ms ({row['overhead_pct_p95']}%); "
            f"naive p50 {floor['p50']} ms; moa - naive p50 {own['p50']} ms",
            "< 20 ms, < 2%",
            _ok(row["met"]),
        )


def rows_stragglers(r: dict[str, Any]) -> Iterator[Row]:
    n, m = r["naive_s"], r["moa_lite_s"]
    yield (
        "2 stragglers",
        f"{r['trials']} trials, time x{r['time_scale']:g}",
        f"naive p50 {n['p50']} / p95 {n['p95']} s; lite p50 {m['p50']} / p95 {m['p95']} s "
        f"(p95 ratio {r['p95_ratio']})",
        "p95 <= 0.6x naive",
        _ok(r["met"]),
    )


def rows_concurrency(r: dict[str, Any]) -> Iterator[Row]:
    for row in r["rows"]:
        o = row["overhead_ms"]
        inproc = row["provider"] == "in-process"
        at_500 = row["n"] == 500 and not inproc
        case = f"{row['n']} in flight" + (" (core only, no HTTP)" if inproc else "")
        bound = ">= " if row["overhead_is_lower_bound"] else ""
        cpu = row["cpu_ms_per_answer"]
        yield (
            "5 concurrency",
            case,
            f"{row['throughput_per_s']} answers/s; overhead p50 {bound}{o['p50']} / p99 {bound}{o['p99']} ms"
            + (f" ({row['answers_unfinished']} of {row['answers_measured']} unfinished)" if bound else "")
            + f"; CPU {'n/a' if cpu is None else cpu} ms/answer; SQLite write p99 "
            f"{row['sqlite_write_ms'].get('p99')} ms",
            "p99 < 50 ms (at 500)" if at_500 else "",
            _ok(o["p99"] < 50 and not bound) if at_500 else "-",
        )
        yield (
            "5 memory",
            case,
            f"RSS base {row['base_rss_mb']} MB, peak {row['peak_rss_mb']} MB: "
            f"{row['rss_kb_per_in_flight']} KB per answer in flight",
            "< 200 KB (at 500)" if at_500 else "",
            _ok(row["rss_kb_per_in_flight"] < 200) if at_500 else "-",
        )
    if r.get("sdk_cost"):
        yield from rows_sdk_cost(r["sdk_cost"])


def rows_sdk_cost(cost: dict[str, Any]) -> Iterator[Row]:
    c, t = cost["complete_cpu_ms"], cost["stream_cpu_ms_per_token"]
    pool = cost.get("complete_cpu_ms_by_concurrency", {})
    yield (
        "5 diagnosis",
        "CPU per model call, this process",
        f"call: together {c['together_sdk']} ms vs aiohttp {c['aiohttp_json']} ms; streamed token: together "
        f"{t['together_sdk']} ms vs aiohttp {t['aiohttp_json']} ms; call with 100 / 500 in flight: "
        f"{pool.get('100_at_once')} / {pool.get('500_at_once')} ms",
        "",
        "-",
    )


def rows_storage(r: dict[str, Any]) -> Iterator[Row]:
    for row in r["rows"]:
        b, nb = row["load_ms_budget"], row["load_ms_no_budget"]
        yield (
            "6 storage",
            f"history of {row['turns']} turns",
            f"load p50 {b['p50']} / p95 {b['p95']} ms ({row['messages_budget']} msgs in budget); "
            f"without budget p50 {nb['p50']} ms ({row['messages_no_budget']} msgs)",
            "< 5 ms at 1,000" if row["turns"] == 1000 else "",
            _ok(row["met"]) if row["turns"] == 1000 else "-",
        )
    yield (
        "6 storage",
        "database size",
        f"{r['db_mb_per_1000_answers']} MB per 1,000 answers ({r['text_mb_per_1000_answers']} MB of text); "
        f"{r['insert_ms_per_answer']} ms of writes per answer",
        "",
        "-",
    )


def rows_platforms(r: dict[str, Any]) -> Iterator[Row]:
    for platform in ("slack", "discord"):
        for row in r[platform]:
            name = platform.capitalize() + (" streaming" if row.get("path") == "streaming" else "")
            scale = f", time x{row['time_scale']:g}" if row["time_scale"] != 1 else ", real pacing"
            p, e = row["placeholder_ms"], row["edits_per_answer"]
            for path, calls in row.get("calls_per_answer", {}).items():
                if calls["answers"]:
                    yield (
                        "4 API calls",
                        f"{name}, {row['answers']} at once{scale}: {int(calls['answers'])} {path}",
                        f"{calls['total']} calls per answer: "
                        + ", ".join(f"{m} {n}" for m, n in calls.items() if m not in ("answers", "total")),
                        "",
                        "-",
                    )
            if row["answers"] == 1:
                t = row["token_visible_ms"]
                bound = row["edit_interval_s"] * 1000
                yield (
                    "3 token visible",
                    f"{name}, 1 answer{scale}",
                    f"token -> visible p50 {t.get('p50')} / p95 {t.get('p95')} / max {t.get('max')} ms",
                    f"<= edit interval ({bound:.0f} ms)",
                    _ok(t.get("max", 1e9) <= bound * 1.05),
                )
                continue
            yield (
                "3 first output",
                f"{name}, {row['answers']} questions at once",
                f"placeholder p50 {p.get('p50')} / p99 {p.get('p99')} ms",
                "p99 < 300 ms at 50" if row["answers"] == 50 else "",
                _ok(p.get("p99", 1e9) < 300) if row["answers"] == 50 else "-",
            )
            yield (
                "4 pacing",
                f"{name}, {row['answers']} answers at once{scale}",
                f"edits/answer mean {e.get('mean')} (max {e.get('max')}); 429s {row['http_429']}; "
                f"complete {row['complete_pct']}%; final shown p95 {row['final_visible_s'].get('p95')} s",
                "0 429s, 100% complete",
                _ok(row["http_429"] == 0 and row["complete_pct"] == 100),
            )


def rows_api(r: dict[str, Any]) -> Iterator[Row]:
    ft = r["first_token"]
    core, through_api = ft["core_ms"], ft["api_ms"]
    yield (
        "7 API",
        f"first content token, 1 at a time ({ft['pairs']} pairs)",
        f"API p50 {through_api['p50']} / p95 {through_api['p95']} ms; core p50 {core['p50']} / p95 "
        f"{core['p95']} ms; the API adds p50 {ft['api_added_ms']['p50']} / p95 {ft['api_added_ms']['p95']} ms "
        f"(HTTP round trip alone: p50 {ft['http_round_trip_floor_ms']['p50']} / p95 "
        f"{ft['http_round_trip_floor_ms']['p95']} ms); server CPU per answer: API {ft['cpu_ms_per_answer']['api']} / "
        f"core {ft['cpu_ms_per_answer']['core']} ms",
        "API adds < 5 ms p95",
        _ok(ft["met"]),
    )
    for via in ("api", "core"):
        t = r["throughput"][via]
        yield (
            "7 API",
            f"{t['clients']} streaming clients, {'through the API' if via == 'api' else 'core only'}",
            f"{t['answers_per_s']} answers/s; first token p50 {t['first_token_ms'].get('p50')} / p95 "
            f"{t['first_token_ms'].get('p95')} ms; {t['server_cpu_ms_per_answer']} ms server CPU/answer; errors {t['errors']}",
            "",
            "-",
        )
def rows_knowledge(r: dict[str, Any]) -> Iterator[Row]:
    for row in r["rows"]:
        yield (
            "8 knowledge",
            f"ingest {row['messages']:,} messages",
            f"backfill {row['backfill_per_s']} messages/s (pages of 200); database {row['db_mb']} MB",
            "",
            "-",
        )
    yield ("8 knowledge", "ingest, live", f"{r['live_per_s']} messages/s, one per transaction", "", "-")
    met = r["met"]
    chunks = f"{r['chunks_searched']:,} chunks"
    for kind, goal, key in (("bm25", 30, "bm25_p95_under_30_ms"), ("hybrid", 60, "hybrid_p95_under_60_ms")):
        s = r[f"search_ms_{kind}"]
        yield ("8 knowledge", f"search, {kind}, {chunks}", f"p50 {s['p50']} / p95 {s['p95']} ms",
               f"p95 < {goal} ms", _ok(met[key]))
    yield ("8 knowledge", f"recall@5, {r['facts']} questions", f"bm25 {r['recall_at_5_bm25']}, hybrid "
           f"{r['recall_at_5_hybrid']}", ">= 0.9 (bm25)", _ok(met["recall_at_5_bm25_at_least_0.9"]))


def rows_replicas(r: dict[str, Any]) -> Iterator[Row]:
    for row in r["rows"]:
        o, db = row["overhead_ms"], row["database_cpu_ms_per_answer"]
        yield (
            "9 replicas",
            f"{row['backend']}, {row['replicas']} replica{'s' if row['replicas'] > 1 else ''}, {row['clients']} in flight",
            f"{row['answers_per_s']} answers/s; overhead p50 {o.get('p50')} / p99 {o.get('p99')} ms; CPU per answer "
            f"{row['replica_cpu_ms_per_answer']} ms (replicas)" + ("" if db is None else f" + {db} ms (PostgreSQL)")
            + f"; errors {row['errors']}",
            "",
            "-",
        )
    t = r["takeover"]
    yield (
        "9 replicas",
        f"takeover after SIGKILL (heartbeat {t['heartbeat_s']:g} s, takeover after {t['takeover_after_s']:g} s)",
        f"first write in the placeholder mean {t['first_write_s'].get('mean')} / max {t['first_write_s'].get('max')} "
        f"s; answer complete mean {t['complete_s'].get('mean')} s ({t['trials']} trials)",
        "",
        "-",
    )


ROWS: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "overhead": rows_overhead,
    "stragglers": rows_stragglers,
    "concurrency": rows_concurrency,
    "storage": rows_storage,
    "platforms": rows_platforms,
    "api": rows_api,
    "knowledge": rows_knowledge,
    "replicas": rows_replicas,
}


def print_table(rows: list[Row]) -> None:
    headers = ("benchmark", "case", "measured", "target", "")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and levels (about 3 minutes)")
    parser.add_argument(
        "--only", default=",".join(NAMES), help=f"comma-separated subset of {', '.join(NAMES)}"
    )
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(chosen) - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    meta = {"date": datetime.date.today().isoformat(), "mode": "quick" if args.quick else "full", **machine()}
    print(
        f"moa-bot benchmarks, {meta['date']}, {meta['mode']} run: Python {meta['python']}, "
        f"{meta['cores']} cores, {meta['cpu']}, commit {meta['commit']}",
        file=sys.stderr,
    )
    runs: dict[str, Callable[[FakeLLMProcess], Awaitable[dict[str, Any]]]] = {
        "overhead": lambda llm: overhead.run(llm, quick=args.quick),
        "stragglers": lambda llm: stragglers.run(llm, quick=args.quick),
        "concurrency": lambda llm: concurrency.run(llm, quick=args.quick),
        "storage": lambda llm: storage_growth.run(quick=args.quick),
        "platforms": lambda llm: platforms.run(llm, quick=args.quick),
        "api": lambda llm: api.run(llm, quick=args.quick),
        "knowledge": lambda llm: knowledge.run(quick=args.quick),
        "replicas": lambda llm: replicas.run(llm, quick=args.quick),
    }
    table: list[Row] = []
    started = time.monotonic()
    async with FakeLLMProcess() as llm:
        for name in NAMES:
            if name not in chosen:
                continue
            t0 = time.monotonic()
            print(f"running {name}...", file=sys.stderr, flush=True)
            result = await runs[name](llm)
            result["seconds"] = round(time.monotonic() - t0, 1)
            result["meta"] = meta
            path = write_result(name, result, quick=args.quick)
            print(f"  {name}: {result['seconds']} s -> {path.relative_to(path.parents[2])}", file=sys.stderr)
            table.extend(ROWS[name](result))
    print()
    print_table(table)
    print(f"\n{len(table)} rows in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


def cli() -> None:
    raise SystemExit(asyncio.run(main()))
