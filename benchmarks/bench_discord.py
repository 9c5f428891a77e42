"""Discord responsiveness while the GPU worker is busy, measured at a fake Discord on 127.0.0.1.

- acknowledgement latency (p50/p99/max) of 100 concurrent /imagine, with the worker idle (baseline) and
  while it generates 256 px grids (goal: p99 <= 100 ms);
- gateway heartbeat regularity during generation: the largest gap between heartbeats over the
  interval, and heartbeats more than one interval late. This is the timing half of the burst test in
  ``tests/bot/discord/test_bot.py``: the test checks that every request is answered, this measures how
  regular the gateway stays while that happens.

    python benchmarks/bench_discord.py [--json benchmarks/results/discord.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.discord import build_bot
from bot.settings import DiscordConfig
from generators.config import ModelConfig
from generators.pipelines import load_backend
from tests.fakes.discord import FakeDiscord, run_client
from tests.helpers import open_service

CONCURRENT = 100


async def burst(fake: FakeDiscord, label: str) -> dict[str, Any]:
    """Fire CONCURRENT /imagine at once; acknowledgement latency in ms at the fake."""
    users = [fake.add_user(f"{label}{i}") for i in range(CONCURRENT)]
    interactions = await asyncio.gather(
        *(fake.slash_command("imagine", {"prompt": f"cat {i}", "n": 9}, user=u) for i, u in enumerate(users))
    )
    answers = await asyncio.gather(*(ix.acknowledgement(timeout=10) for ix in interactions))
    latencies = sorted(a.latency * 1000 for a in answers)
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(0.99 * (len(latencies) - 1))],
        "max": latencies[-1],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/discord.json"))
    args = parser.parse_args()
    backend = await asyncio.to_thread(load_backend, ModelConfig(name="tiny"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # The fake shares this event loop: its spec validation is left out of what is measured.
        async with FakeDiscord(heartbeat_interval=0.5, validate=False) as fake:
            config = DiscordConfig(
                enabled=True,
                api_base_url=fake.api_base,
                gateway_url=fake.gateway_url,
                user_rate=1000,
                server_rate=1000,
            )
            async with open_service(
                backend, folder / "jobs.db", folder, start_worker=False, per_user=1000
            ) as service:
                bot = build_bot(service, config, guild_ready_timeout=0.05)
                async with run_client(bot, fake):
                    idle = await burst(fake, "idle")
                    service.runner.worker.start()
                    await asyncio.sleep(1.0)  # the first batches are denoising now
                    busy = await burst(fake, "busy")
                    await asyncio.sleep(3.0)  # more heartbeats while the worker keeps going
                    gap = fake.max_heartbeat_gap()
                    late = fake.late_heartbeats(slack=fake.heartbeat_interval)
                    await bot.delivery.close(grace=0)
    rows = [
        {
            "case": f"ack {k} (ms), {CONCURRENT} concurrent /imagine",
            "busy": round(busy[k], 1),
            "idle": round(idle[k], 1),
        }
        for k in ("p50", "p99", "max")
    ]
    met = busy["p99"] <= 100
    print(f"{'case':<45} {'busy':>8} {'idle':>8}")
    for r in rows:
        print(f"{r['case']:<45} {r['busy']:>8.1f} {r['idle']:>8.1f}")
    print(f"goal p99 <= 100 ms while busy: {'met' if met else 'NOT met'}")
    interval = fake.heartbeat_interval
    print(f"heartbeat interval {interval:.2f} s; largest gap {gap:.3f} s; late heartbeats: {len(late)}")
    result = {"rows": rows, "p99_goal_met": met, "heartbeat_gap_s": gap, "late_heartbeats": len(late)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
