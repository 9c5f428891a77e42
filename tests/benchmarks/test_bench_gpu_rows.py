"""The GPU benchmark's rows measure what they say: calls of the row's batch, switches undone, compiled.

On the CPU with the narrowed SD-Turbo-shaped pipeline; compile rows use dynamo's eager backend (no C
compiler), which shares the recompile budget that the GPU's inductor rows spend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.bench_gpu import (
    Plan,
    Switch,
    bare,
    compile_switch,
    full_path,
    job_size,
    load,
    memebot_row,
    pick_winners,
    recompile_limit_hits,
    switched,
    switches,
    with_switch,
)

PLAN = Plan(
    device=torch.device("cpu"),
    dtypes=(torch.float32,),
    batches=(1,),
    size=64,
    runs=1,
    quick=True,
    model_path=None,
    compile_on_cpu=True,
    compile_backend="eager",
)


@pytest.fixture(scope="module")
def pipe() -> Iterator[Any]:
    yield load(PLAN, torch.float32)
    torch._dynamo.reset()  # leave no compiled code to the tests after these


def test_jobs_fill_calls_of_exactly_the_rows_batch() -> None:
    assert [job_size(b) for b in (1, 4, 8, 9, 12, 16)] == [1, 4, 8, 9, 6, 8]


def test_the_batch_16_row_runs_calls_of_16_through_the_worker(pipe: Any, tmp_path: Path) -> None:
    run = asyncio.run(full_path(pipe, 16, PLAN.size, 1, tmp_path))
    assert run.calls == (16,)  # two jobs of 8 in one call, as the bare call's 16
    assert run.images_per_s > 0


def test_a_memebot_row_with_winners_leaves_the_original_unet_and_vae(pipe: Any, tmp_path: Path) -> None:
    unet, vae = pipe.unet, pipe.vae
    small = switches(PLAN.device, torch.float32, PLAN)[2]
    assert small.name == "tiny VAE decode"
    row = memebot_row(pipe, PLAN, 1, "float32", [compile_switch("default", "eager"), small], tmp_path)
    assert row["case"] == "memebot + compile (eager backend) + tiny VAE decode"
    assert row["images_per_s"] > 0 and row["images_per_call"] == [1]
    assert pipe.unet is unet and pipe.vae is vae
    assert type(pipe.unet).__name__ == "UNet2DConditionModel"  # not left compiled for the next rows


def test_a_failing_switch_leaves_the_pipeline_as_it_was(pipe: Any) -> None:
    unet = pipe.unet

    def breaks(p: Any) -> Any:
        p.unet = torch.nn.Identity()
        raise RuntimeError("no compiler")

    on = [compile_switch("default", "eager"), Switch("breaks", breaks)]
    with pytest.raises(RuntimeError, match="no compiler"), switched(pipe, on):
        pass
    assert pipe.unet is unet


def test_only_the_fastest_compile_mode_joins_the_winners() -> None:
    fast, slow = compile_switch("reduce-overhead"), compile_switch("default")
    plain = Switch("channels-last", lambda p: lambda: None)
    lost = Switch("fused QKV", lambda p: lambda: None)
    assert pick_winners([(slow, 2.0), (plain, 1.5), (fast, 3.0), (lost, 1.0)], 1.0) == [plain, fast]
    assert pick_winners([(slow, 0.5), (fast, 0.0)], 1.0) == []


def test_each_compile_row_gets_a_fresh_recompile_budget(pipe: Any) -> None:
    with torch._dynamo.config.patch(recompile_limit=1):
        for batch in (1, 2):  # as the fp16 then bf16 passes: another compile of the same UNet
            speed, hits = with_switch(pipe, compile_switch("default", "eager"), batch, PLAN)
            assert speed > 0 and hits == []


def test_a_spent_recompile_budget_is_reported(pipe: Any) -> None:
    """Without the reset the second compile runs uncompiled: the row must be able to say so."""
    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=1):
        with switched(pipe, [compile_switch("default", "eager")]):
            bare(pipe, 1, PLAN.size, 1)
        with recompile_limit_hits() as hits, switched(pipe, [compile_switch("default", "eager")]):
            bare(pipe, 2, PLAN.size, 1)
    torch._dynamo.reset()
    assert hits and all("recompile_limit" in hit for hit in hits)


def test_a_memebot_row_that_fails_is_a_row_not_the_end_of_the_table(pipe: Any, tmp_path: Path) -> None:
    unet = pipe.unet

    def breaks(p: Any) -> Any:
        raise RuntimeError("Triton needs Python.h")

    row = memebot_row(pipe, PLAN, 1, "float32", [Switch("compile default", breaks, compiles=True)], tmp_path)
    assert row["case"] == "memebot + compile default (failed: see the log above)"
    assert row["images_per_s"] == 0.0
    assert pipe.unet is unet
