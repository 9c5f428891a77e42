"""Several models on one Redis: each worker takes only the jobs of the models it serves."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.metrics import Metrics
from generators.errors import BadRequest
from generators.pipelines import DiffusersBackend
from generators.requests import Job, Started
from generators.streams.heartbeat import WorkerStatus, withdraw
from generators.streams.keys import Keys
from generators.streams.submit import RedisRunner
from tests.bot.test_metrics import samples
from tests.generators.streams.cluster import BOTH, Heard, bot, images, stand_in, steps, taker, worker


async def test_each_model_s_jobs_run_on_its_own_worker_in_fair_order(
    tiny_backend: DiffusersBackend,
    tiny_video_backend: DiffusersBackend,
    client: Redis,
    keys: Keys,
    tmp_path: Path,
) -> None:
    heard, owners, models = Heard(), {}, {}
    await stand_in(client, keys, ("tiny", "tiny-video"))  # the jobs are queued before the workers start
    async with bot(client, keys, tmp_path / "bot", per_user=5, catalog=BOTH) as service:
        service.subscribe("cli", heard)
        for owner, text in [(o, "an image --n 1") for o in "abc" for _ in range(2)] + [
            (o, "a clip --video") for o in "ab" for _ in range(2)
        ]:
            record = await service.submit(service.parse(text), owner=owner, platform="cli", reply_to={})
            owners[record.id], models[record.id] = owner, record.job.request.model
        await withdraw(client, keys, "stand-in")
        runner = service.runner
        assert isinstance(runner, RedisRunner)
        await runner.refresh()
        # One line for /queue: the lanes of both models by turn, one job per lane per round.
        shown = [(owners[job.id], models[job.id]) for job in runner.queue.order()]
        one_round = [("a", "tiny"), ("b", "tiny"), ("c", "tiny"), ("a", "tiny-video"), ("b", "tiny-video")]
        assert shown == one_round * 2
        values = samples(Metrics(runner).render().decode())
        assert values['memebot_model_queue_depth{model="tiny"}'] == 6
        assert values['memebot_model_queue_depth{model="tiny-video"}'] == 4
        async with (
            worker(tiny_backend, client, keys, "img", tmp_path, batching=False) as img,
            worker(tiny_video_backend, client, keys, "vid", tmp_path, batching=False) as vid,
        ):
            await heard.until(owners)
            await runner.refresh()
            values = samples(Metrics(runner).render().decode())
        started = [job_id for job_id, event in heard.order if isinstance(event, Started)]
    for job_id in owners:
        heard.finished(job_id)
    assert (img.done, vid.done) == (6, 4)  # a worker without the model would have failed the job
    assert values['memebot_model_workers{model="tiny"}'] == 1
    assert values['memebot_model_workers{model="tiny-video"}'] == 1
    by_model = {m: [owners[j] for j in started if models[j] == m] for m in ("tiny", "tiny-video")}
    assert [set(by_model["tiny"][i : i + 3]) for i in (0, 3)] == [set("abc")] * 2  # fair, per model
    assert [set(by_model["tiny-video"][i : i + 2]) for i in (0, 2)] == [set("ab")] * 2


async def test_a_job_for_a_model_no_worker_serves_is_refused_at_once(
    tiny_backend: DiffusersBackend, client: Redis, keys: Keys, tmp_path: Path
) -> None:
    # The bot starts before any worker and would not read the heartbeats again for a minute.
    async with bot(client, keys, tmp_path / "bot", catalog=BOTH, refresh_s=60) as service:
        with pytest.raises(BadRequest, match=r"model tiny right now; .* --model \(no worker is online\)$"):
            await service.submit(service.parse("a cat"), owner="u", platform="cli", reply_to={})
        async with worker(tiny_backend, client, keys, "img", tmp_path):
            heard = Heard()
            service.subscribe("cli", heard)
            fine = await service.submit(service.parse("a cat"), owner="u", platform="cli", reply_to={})
            with pytest.raises(BadRequest) as refused:
                await service.submit(service.parse("a cat --video"), owner="u", platform="cli", reply_to={})
            assert str(refused.value) == (
                "no worker serves the model tiny-video right now; "
                "try again later or pick another with --model (served now: tiny)"
            )
            assert refused.value.flag == "--model"
            await heard.until([fine.id])
        assert await service.store.stats() == {"done": 1}  # the refused job was never written
        # A recovered job is queued all the same: it waits for a worker of its model.
        clip = Job("recovered", "u", service.parse("a clip --video"))
        await service.runner.submit(clip, force=True)
        assert await service.runner.holds(clip.id)


async def test_a_worker_of_several_models_lets_the_loaded_one_go_first_within_switch_after(
    client: Redis, keys: Keys, tmp_path: Path
) -> None:
    await stand_in(client, keys, ("tiny", "tiny-video"))
    async with bot(client, keys, tmp_path / "bot", catalog=BOTH) as service:
        names = {}
        for owner, text in (("a", "clip --video"), ("b", "b0"), ("c", "c0"), ("d", "d0")):
            record = await service.submit(service.parse(text), owner=owner, platform="cli", reply_to={})
            names[record.id] = text.split()[0]
        queue = taker(client, keys, "both", models=["tiny", "tiny-video"], switch_after=1)

        def loaded(job: Job) -> bool:
            return job.request.model == "tiny"

        taken = [names[(await queue.take(steps, images, 1, loaded))[0].id] for _ in names]
    # b0 overtakes the clip at the head once; then the clip's model is loaded (switch_after=1).
    assert taken == ["b0", "clip", "c0", "d0"]


def test_a_heartbeat_lists_the_models_and_an_older_one_still_reads() -> None:
    status = WorkerStatus("gpu0", ("tiny", "tiny-video"), "cuda:0", busy=1)
    assert status.to_fields()["models"] == "tiny,tiny-video"
    assert WorkerStatus.from_fields(status.to_fields()) == status
    older = {b"name": b"gpu1", b"model": b"sd-turbo", b"device": b"cuda:0"}
    assert WorkerStatus.from_fields(older).models == ("sd-turbo",)
