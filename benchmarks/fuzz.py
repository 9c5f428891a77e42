"""Fuzz the command paths: 10,000 hostile inputs each through Discord's and Reddit's, zero crashes.

The paths and the input strategy are the ones ``tests/test_fuzz.py`` runs a few hundred times in CI:
the pure functions each adapter calls between receiving text and queueing a job. Every input must come
out as a valid request, a UserError whose message fits the platform's reply, or nothing (no trigger).
A crash is anything else; each is counted (the run goes on) and the first few are printed. The exit
status is 1 when there was one.

    python benchmarks/fuzz.py [--examples 10000] [--json benchmarks/results/fuzz.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.reddit._text import message_reply
from tests.test_fuzz import (
    DISCORD_LIMIT,
    GUILDS,
    REDDIT_LIMIT,
    USERNAME,
    discord_meme_channel,
    discord_requests,
    discord_slash,
    hostile,
    meme_triggers,
    outcome,
    reddit_comment,
    reddit_starts,
    slash_options,
)

Run = Callable[[Any], str]  # one drawn input → its outcome (raises on a crash)


def _paths() -> dict[str, tuple[st.SearchStrategy[Any], Run]]:
    requests = discord_requests()
    jobs = requests.service

    def reddit_reply(message: str) -> str:
        return message_reply(message, username=USERNAME)

    return {
        "grammar + catalog": (hostile, lambda text: outcome(lambda: jobs.parse(text), DISCORD_LIMIT)),
        "discord /imagine": (
            st.tuples(hostile, slash_options, st.sampled_from(GUILDS)),
            lambda x: outcome(lambda: discord_slash(requests, *x), DISCORD_LIMIT),
        ),
        "discord meme channel": (
            st.tuples(meme_triggers, hostile, st.sampled_from(GUILDS)),
            lambda x: outcome(lambda: discord_meme_channel(requests, x[0] + x[1], x[2]), DISCORD_LIMIT),
        ),
        "reddit comment": (
            st.tuples(reddit_starts, hostile, st.booleans()),
            lambda x: outcome(lambda: reddit_comment(jobs, x[0] + x[1], x[2]), REDDIT_LIMIT, reddit_reply),
        ),
    }


def run(strategy: st.SearchStrategy[Any], path: Run, examples: int) -> dict[str, Any]:
    """Draw ``examples`` inputs and count the outcomes; a crash is recorded, not raised."""
    counts: Counter[str] = Counter()
    crashes: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def one(value: Any) -> None:
        try:
            counts[path(value)] += 1
        except Exception as error:
            counts["crash"] += 1
            crashes.append(f"{type(error).__name__}: {error} on {value!r}"[:500])

    started = time.perf_counter()
    one()
    seconds = time.perf_counter() - started
    return {
        "inputs": sum(counts.values()),
        **counts,
        "seconds": round(seconds, 1),
        "first_crashes": crashes[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=10_000, help="inputs per path")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/fuzz.json"))
    args = parser.parse_args()
    rows = {name: run(strategy, path, args.examples) for name, (strategy, path) in _paths().items()}
    columns = ("inputs", "request", "refused", "ignored", "crash", "seconds")
    print(f"{'path':<22}" + "".join(f"{c:>10}" for c in columns))
    for name, row in rows.items():
        print(f"{name:<22}" + "".join(f"{row.get(c, 0):>10}" for c in columns))
        for crash in row["first_crashes"]:
            print(f"  crash: {crash}")
    crashes = sum(row.get("crash", 0) for row in rows.values())
    print(f"crashes: {crashes}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"examples_per_path": args.examples, "rows": rows, "crashes": crashes}, indent=2)
    )
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
