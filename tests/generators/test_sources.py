"""Remix pictures: kept by digest, cut from result grids, and remixed by the worker on the loaded model."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny
from PIL import Image, PngImagePlugin

from bot.store import JobStatus
from generators.config import ModelConfig
from generators.errors import BadRequest
from generators.intake import BadImage, IntakeLimits
from generators.pipelines import DiffusersBackend
from generators.pipelines.loading import load_backend
from generators.requests import BatchSpec, Failed, Finished, Slot, Source
from generators.sources import SourceStore, open_source, sources_folder
from generators.worker import SOURCE_GONE_REASON
from tests.helpers import TEST_SIZE, open_service


def picture(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    """A PNG with a gradient in ``colour``: different colours give different pictures."""
    ramp = np.linspace(0, 1, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    pixels = (ramp * np.array(colour)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


RED, BLUE = picture((255, 40, 40)), picture((30, 60, 255))


async def test_a_picture_is_kept_once_under_the_digest_of_what_was_sent(tmp_path: Path) -> None:
    store = SourceStore(tmp_path / "sources", IntakeLimits(), max_side=48)
    source = await store.take(RED)
    assert source == Source(hashlib.sha256(RED).hexdigest(), width=48, height=32)
    with Image.open(store.path(source.digest)) as kept:
        assert max(kept.size) == 48  # bounded on its long side, aspect kept
        assert kept.size == (48, 32)
    assert await store.take(RED) == source
    assert len(list((tmp_path / "sources").iterdir())) == 1


async def test_a_bad_picture_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    store = SourceStore(tmp_path / "sources", IntakeLimits())
    with pytest.raises(BadImage, match="not an image"):
        await store.take(b"hello, I am text pretending to be a PNG")
    assert not (tmp_path / "sources").exists() or not list((tmp_path / "sources").iterdir())


def test_a_kept_picture_is_fitted_to_the_call_and_a_missing_one_is_none(tmp_path: Path) -> None:
    folder = sources_folder(tmp_path)
    folder.mkdir(parents=True)
    digest = hashlib.sha256(RED).hexdigest()
    (folder / f"{digest}.png").write_bytes(RED)
    fitted = open_source(folder, digest, 32, 64)
    assert fitted is not None and fitted.size == (32, 64) and fitted.mode == "RGB"
    assert open_source(folder, "0" * 64, 32, 32) is None
    with pytest.raises(ValueError):
        open_source(folder, "../../etc/passwd", 32, 32)


async def test_remix_shares_the_loaded_weights(tiny_backend: DiffusersBackend) -> None:
    remix = tiny_backend.img2img()
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert getattr(remix, name) is getattr(tiny_backend.pipe, name)
    assert tiny_backend.img2img() is remix


def test_a_remix_call_runs_steps_times_strength(tiny_backend: DiffusersBackend) -> None:
    seen: list[tuple[int, int]] = []
    spec = BatchSpec(TEST_SIZE, TEST_SIZE, steps=4, strength=0.5)
    start = Image.open(io.BytesIO(RED)).convert("RGB").resize((TEST_SIZE, TEST_SIZE))
    out = tiny_backend.generate(
        spec, [Slot("a cat", "", 1, "x")], lambda i, n, latents: seen.append((i, n)), [start]
    )
    assert seen == [(1, 2), (2, 2)]
    assert out[0][0].size == (TEST_SIZE, TEST_SIZE)


def test_a_fast_decode_model_remixes_through_its_tiny_autoencoder(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ModelConfig(name="tiny", size=TEST_SIZE, steps=2, tiny_vae="tiny", fast_decode=True)
    fast = load_backend(config)
    vae = fast.img2img().vae
    assert isinstance(vae, AutoencoderTiny) and vae is fast.tiny_vae  # it encodes the pictures too
    encoded: list[int] = []
    encode = vae.encode

    def counting(pixels: torch.Tensor, *args: object, **kwargs: object) -> object:
        encoded.append(len(pixels))
        return encode(pixels, *args, **kwargs)

    monkeypatch.setattr(vae, "encode", counting)
    spec = BatchSpec(TEST_SIZE, TEST_SIZE, steps=2, strength=0.5)
    start = Image.open(io.BytesIO(RED)).convert("RGB").resize((TEST_SIZE, TEST_SIZE))
    slots = [Slot("a cat", "", seed, "r") for seed in (1, 2)]
    out = fast.generate(spec, slots, lambda *a: None, [start, start])
    assert sum(encoded) == 2 and [frames[0].size for frames in out] == [(TEST_SIZE, TEST_SIZE)] * 2


async def test_a_remix_depends_on_its_picture_and_names_it(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        results = {}
        for name, data in (("red", RED), ("blue", BLUE), ("red again", RED)):
            source = await service.sources.take(data)
            request = service.parse("a cat --seed 5 --n 1 --strength 0.75", source=source)
            record = await service.submit(request, owner="u1", platform="cli", reply_to={})
            events = [event async for event in service.watch(record.job.id)]
            assert isinstance(events[-1], Finished), events[-1]
            results[name] = events[-1].result.primary.path
        pixels = {
            name: np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
            for name, path in results.items()
        }
        assert np.abs(pixels["red"] - pixels["blue"]).mean() > 1  # same seed, other picture: other result
        assert np.array_equal(pixels["red"], pixels["red again"])  # same seed, same picture: same result
        with Image.open(results["blue"]) as grid:
            assert isinstance(grid, PngImagePlugin.PngImageFile)
            meta = grid.text
        assert meta["source"] == f"sha256:{hashlib.sha256(BLUE).hexdigest()}"
        assert meta["strength"] == "0.75" and meta["seed"] == "5"
        assert meta["denoising_steps"] == "1"  # 2 steps × 0.75
        assert meta["size"] == "64x64" and "--ar 3:2" in meta["command"]  # the 96×64 picture's shape
        assert "--strength 0.75" in meta["command"]


async def test_a_result_tile_is_remixed_naming_its_job(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        first = await service.submit(service.parse("a cat --n 4"), owner="u1", platform="cli", reply_to={})
        assert isinstance([e async for e in service.watch(first.job.id)][-1], Finished)
        record = await service.store.get(first.job.id)
        assert record is not None and record.status is JobStatus.DONE
        tiles = {await service.sources.take_result(record, index) for index in (1, 4)}
        assert {tile.job for tile in tiles} == {first.job.id} and len(tiles) == 2
        with pytest.raises(BadRequest, match="from 1 to 4"):
            await service.sources.take_result(record, 5)
        source = next(iter(tiles))
        remix = await service.submit(
            service.parse("a dog --n 1", source=source), owner="u1", platform="cli", reply_to={}
        )
        assert isinstance([e async for e in service.watch(remix.job.id)][-1], Finished)
        with Image.open(service.sources.path(source.digest)) as tile:
            assert tile.size == (TEST_SIZE, TEST_SIZE)


async def test_a_remix_whose_picture_is_gone_fails_saying_so(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        source = await service.sources.take(RED)
        service.sources.path(source.digest).unlink()
        record = await service.submit(
            service.parse("a cat --n 1", source=source), owner="u1", platform="cli", reply_to={}
        )
        events = [event async for event in service.watch(record.job.id)]
        assert events[-1] == Failed(SOURCE_GONE_REASON)


async def test_a_clip_model_without_an_image_to_video_form_refuses_a_picture(
    tiny_backend: DiffusersBackend, tiny_video_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service([tiny_backend, tiny_video_backend], tmp_path / "jobs.db", tmp_path) as service:
        source = await service.sources.take(RED)
        with pytest.raises(BadRequest, match="tiny-video can't animate a picture"):
            service.parse("a cat --video", source=source)
        with pytest.raises(BadRequest, match="tiny-video can't animate a picture"):
            service.parse("a cat --model tiny-video", source=source)
