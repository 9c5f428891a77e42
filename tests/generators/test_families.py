"""Every family memebot serves, through memebot's own path, on tiny random-weight pipelines built offline.

Each family's pipeline is built in code (``generators.pipelines.tiny_families``) with its real latent
layout, written to a folder and loaded back by the same code as downloaded weights. The same checks run
on each: the output matches the bare diffusers call with the same seed, ``--no`` changes the result
where the family takes one and is refused where it does not, a remix comes back at the picture's shape,
previews never crash, progress never passes 100%, and cancel and the time limit stop a running job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from generators.config import LimitsConfig, ModelConfig, RenderConfig, WorkerConfig
from generators.errors import BadRequest, ModelLoadError
from generators.families import FAMILIES, family_named
from generators.models import Catalog, describe_model
from generators.pipelines import DiffusersBackend, load_backend
from generators.pipelines.loading import quantization_config
from generators.pipelines.tiny_families import TINY
from generators.pool import ModelPool
from generators.presets import PRESETS
from generators.queue import InProcessQueue
from generators.requests import (
    BatchSpec,
    Cancelled,
    Failed,
    Finished,
    GenerationRequest,
    Job,
    Kind,
    Slot,
    Source,
    Step,
)
from generators.worker import TIME_REASON, GenerationWorker
from tests.helpers import TEST_SIZE, collect

IMAGES = ["tiny", "tiny-sdxl", "tiny-sd3", "tiny-flux", "tiny-pixart", "tiny-sana"]
CLIPS = ["tiny-video", "tiny-animatediff", "tiny-cogvideox", "tiny-ltx", "tiny-wan"]
ANIMATORS = ["tiny-wan-i2v", "tiny-cogvideox-i2v", "tiny-svd"]
FRAMES = 9
_LOADED: dict[str, DiffusersBackend] = {}


def backend(name: str) -> DiffusersBackend:
    """Each tiny family loaded once for the whole module, through memebot's loader."""
    if name not in _LOADED:
        _LOADED[name] = load_backend(ModelConfig(name=name, size=TEST_SIZE, steps=2, frames=FRAMES))
    return _LOADED[name]


@pytest.fixture(scope="module", autouse=True)
def _release() -> Iterator[None]:
    yield
    _LOADED.clear()


def spec_for(model: DiffusersBackend, **changes: object) -> BatchSpec:
    video = model.info.kind is Kind.VIDEO
    values: dict[str, object] = {"frames": FRAMES if video else 0, **changes}
    return BatchSpec(TEST_SIZE, TEST_SIZE, 2, **values)  # type: ignore[arg-type]


def pixels(outputs: list[list[Image.Image]]) -> np.ndarray:
    return np.stack([np.asarray(frame) for clip in outputs for frame in clip])


def run(
    model: DiffusersBackend, spec: BatchSpec, slots: list[Slot], pictures: Sequence[Image.Image] = ()
) -> list[list[Image.Image]]:
    steps: list[tuple[int, int]] = []
    out = model.generate(spec, slots, lambda i, n, latents: steps.append((i, n)), pictures)
    assert steps and all(0 < i <= n for i, n in steps), steps  # never past 100%
    assert steps[-1][0] == steps[-1][1]
    return out


@pytest.mark.parametrize("name", IMAGES + CLIPS)
def test_memebot_makes_what_the_bare_call_makes(name: str) -> None:
    model = backend(name)
    out = run(model, spec_for(model), [Slot("a hamster godzilla", "", 7)])
    video = model.info.kind is Kind.VIDEO
    assert len(out) == 1 and len(out[0]) == (FRAMES if video else 1)
    assert out[0][0].size == (TEST_SIZE, TEST_SIZE)
    kwargs: dict[str, object] = {
        "prompt": ["a hamster godzilla"],
        "num_inference_steps": 2,
        "width": TEST_SIZE,
        "height": TEST_SIZE,
        "guidance_scale": model.info.guidance,
        "generator": [torch.Generator("cpu").manual_seed(7)],
        "output_type": "np",
    }
    if video:
        kwargs["num_frames"] = FRAMES
    kwargs |= {"use_resolution_binning": False} if model.traits.binning else {}
    kwargs |= {"clean_caption": False} if model.traits.clean_caption else {}
    bare = model.pipe(**kwargs)
    expected = np.asarray(bare.frames if video else bare.images)
    got = pixels(out).astype(np.float32) / 255
    assert np.abs(got - expected.reshape(got.shape)).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("name", IMAGES + CLIPS)
def test_a_negative_prompt_changes_the_result_where_the_family_takes_one(name: str) -> None:
    model = backend(name)
    assert model.info.negative in ("native", "true_cfg")
    plain = pixels(run(model, spec_for(model), [Slot("a cat", "", 3)]))
    spec = spec_for(model, true_cfg=model.info.negative == "true_cfg")
    negative = pixels(run(model, spec, [Slot("a cat", "green fur, blurry", 3)]))
    assert not np.array_equal(plain, negative)


def test_flux_takes_a_negative_prompt_only_through_true_cfg_and_counts_it_twice() -> None:
    flux = backend("tiny-flux").info
    assert flux.negative == "true_cfg"
    catalog = Catalog((flux,), image=flux.name)
    request = catalog.resolve(GenerationRequest("a cat", negative="blurry", n=1))
    assert flux.plan(request).true_cfg
    from generators.models import work_of

    assert work_of(request, flux) == 2 * work_of(GenerationRequest("a cat", n=1), flux)


def test_a_family_without_negative_prompts_refuses_no_up_front() -> None:
    svd = describe_model(ModelConfig(name="tiny-svd"))
    wan = describe_model(ModelConfig(name="tiny-wan"))
    catalog = Catalog((svd, wan), video="tiny-wan")
    picture = Source("ab" * 32, width=64, height=64)
    with pytest.raises(BadRequest, match=r"tiny-svd takes no negative prompt.*tiny-wan"):
        catalog.resolve(
            GenerationRequest("a cat", negative="x", kind=Kind.VIDEO, model="tiny-svd", source=picture)
        )


@pytest.mark.parametrize("name", ["tiny", "tiny-sdxl", "tiny-sd3", "tiny-flux"])
def test_a_remix_comes_back_at_the_pictures_shape(name: str) -> None:
    model = backend(name)
    assert model.info.remix
    picture = Image.new("RGB", (128, 64), (200, 40, 40))
    spec = BatchSpec(
        128,
        64,
        4,
        strength=0.5,
        picture=True,
        denoising=model.info.plan(
            GenerationRequest(
                "a cat", steps=4, strength=0.5, source=Source("ab" * 32, width=128, height=64), aspect=(2, 1)
            )
        ).denoising_steps,
    )
    first = run(model, spec, [Slot("a cat", "", 1)], [picture])
    assert first[0][0].size == (128, 64)
    other = run(model, spec, [Slot("a cat", "", 1)], [Image.new("RGB", (128, 64), (20, 40, 200))])
    assert not np.array_equal(pixels(first), pixels(other))  # another picture, another result


@pytest.mark.parametrize("name", ["tiny-pixart", "tiny-sana", "tiny-video", "tiny-wan"])
def test_a_model_without_the_form_refuses_a_picture_naming_those_that_can(name: str) -> None:
    infos = tuple(describe_model(ModelConfig(name=n), n) for n in ("tiny", name, "tiny-ltx"))
    catalog = Catalog(infos, image="tiny", video="tiny-ltx")
    picture = Source("ab" * 32, width=64, height=64)
    kind = infos[1].kind
    with pytest.raises(BadRequest, match=rf"{name} can't (remix|animate) a picture.*(tiny|tiny-ltx)"):
        catalog.resolve(GenerationRequest("a cat", kind=kind, model=name, source=picture))


@pytest.mark.parametrize("name", ["tiny-ltx", *ANIMATORS])
def test_a_clip_family_with_an_image_to_video_form_animates_a_picture(name: str) -> None:
    model = backend(name)
    assert model.info.takes_picture
    red = Image.new("RGB", (64, 64), (220, 30, 30))
    spec = spec_for(model, picture=True)
    first = run(model, spec, [Slot("a cat dancing", "", 5)], [red])
    assert len(first[0]) == FRAMES
    blue = run(model, spec, [Slot("a cat dancing", "", 5)], [Image.new("RGB", (64, 64), (20, 30, 220))])
    assert not np.array_equal(pixels(first), pixels(blue))


@pytest.mark.parametrize("name", IMAGES + CLIPS + ANIMATORS)
def test_previews_never_crash(name: str) -> None:
    model = backend(name)
    latents: list[torch.Tensor] = []
    spec = spec_for(model, picture=model.info.needs_picture)
    pictures = [Image.new("RGB", (64, 64))] if model.info.needs_picture else []
    model.generate(spec, [Slot("a cat", "", 1)], lambda i, n, lat: latents.append(lat), pictures)
    preview = model.preview(latents[0], 0)
    assert preview is not None and preview.size == (TEST_SIZE, TEST_SIZE)


@pytest.mark.parametrize("family", [f.name for f in FAMILIES])
def test_the_kind_and_family_are_known_from_a_folder_without_loading_it(family: str, tmp_path: Path) -> None:
    builders = {"stable-diffusion": "sd", "pixart-sigma": "pixart-sigma", "ltx-i2v": None}
    builder = builders.get(family, family)
    if builder is None or builder not in TINY:
        pytest.skip(f"{family} shares its folder with another family")
    folder = TINY[builder](tmp_path / family, 0)
    info = describe_model(ModelConfig(name="mine", path=folder))
    assert (info.family, info.kind) == (family, family_named(family).kind)


def test_every_preset_names_a_known_family_and_a_licence() -> None:
    for preset in PRESETS.values():
        family = family_named(preset.family)
        assert preset.licence, preset.name
        if family.kind is Kind.VIDEO:
            assert family.valid_frames(preset.frames), (preset.name, preset.frames)


def test_progress_counts_the_step_a_pndm_scheduler_adds(tmp_path: Path) -> None:
    from diffusers import PNDMScheduler

    model = load_backend(ModelConfig(name="tiny", size=TEST_SIZE, steps=4))
    model.pipe.scheduler = PNDMScheduler.from_config(model.pipe.scheduler.config, skip_prk_steps=True)
    steps: list[tuple[int, int]] = []
    model.generate(BatchSpec(64, 64, 4), [Slot("a cat", "", 1)], lambda i, n, lat: steps.append((i, n)))
    assert steps[-1] == (5, 5) and all(i <= n for i, n in steps)


def test_quantize_needs_its_backend_and_offload_needs_a_gpu() -> None:
    for setting, package in (("int8", "torchao"), ("nf4", "bitsandbytes")):
        with pytest.raises(ModelLoadError, match=f"needs the {package} package"):
            load_backend(ModelConfig(name="tiny-flux", size=64, quantize=setting))  # type: ignore[arg-type]
    with pytest.raises(ModelLoadError, match="offload: model needs a CUDA GPU"):
        load_backend(ModelConfig(name="tiny", size=64, offload="model"))


def test_quantisation_reaches_the_pipeline_on_its_denoiser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("generators.pipelines.loading._need", lambda package, setting: None)
    config = quantization_config(
        ModelConfig(name="tiny", quantize="nf4"), family_named("flux"), torch.bfloat16
    )
    assert config is not None and config.components_to_quantize == ["transformer"]
    assert config.quant_backend == "bitsandbytes_4bit" and config.quant_kwargs["bnb_4bit_quant_type"] == "nf4"
    unet = quantization_config(ModelConfig(name="tiny", quantize="nf4"), family_named("sdxl"), torch.float16)
    assert unet is not None and unet.components_to_quantize == ["unet"]


def test_offload_and_vae_tiling_reach_the_pipeline() -> None:
    from generators.pipelines.loading import place

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[str] = []
            self.vae = self

        def enable_model_cpu_offload(self, device: object) -> None:
            self.calls.append(f"offload {device}")

        def enable_tiling(self) -> None:
            self.calls.append("tiling")

        def enable_slicing(self) -> None:
            self.calls.append("slicing")

    pipe = Recorder()
    place(pipe, ModelConfig(offload="model", vae_tiling=True, vae_slicing=True), torch.device("cuda:1"))
    assert pipe.calls == ["offload cuda:1", "tiling", "slicing"]


def test_a_tiny_autoencoder_that_cannot_decode_the_latents_is_refused_at_load() -> None:
    with pytest.raises(ModelLoadError, match=r"4-channel latents.*16-channel ones.*taef1"):
        load_backend(ModelConfig(name="tiny-flux", size=64, tiny_vae="tiny"))


def test_speed_switches_reach_a_transformer_denoiser() -> None:
    model = load_backend(ModelConfig(name="tiny-flux", size=64, steps=1, compile="default", fuse_qkv=True))
    assert type(model.pipe.transformer).__name__ == "OptimizedModule"
    original = model.pipe.transformer._orig_mod
    assert any(getattr(m, "fused_projections", False) for m in original.modules())


def worker_for(model: DiffusersBackend, tmp_path: Path, **config: object) -> GenerationWorker:
    settings = WorkerConfig(results_dir=tmp_path / "results", per_user_queue=20, global_queue=100)
    return GenerationWorker(
        ModelPool.serving(model),
        InProcessQueue(per_user=20, total=100),
        config=settings.model_copy(update=config),
        limits=LimitsConfig(),
        render=RenderConfig(),
    )


def job_for(model: DiffusersBackend, job_id: str) -> Job:
    request = GenerationRequest("a cat", n=1, seed=1, kind=model.info.kind, model=model.info.name)
    return Job(job_id, "someone", request)


@pytest.mark.parametrize("name", IMAGES + CLIPS)
async def test_cancel_stops_a_running_job_on_every_family(name: str, tmp_path: Path) -> None:
    model = backend(name)
    worker = worker_for(model, tmp_path)
    job = job_for(model, "c")
    async with worker:
        worker.submit(job)
        seen: list[object] = []
        async with asyncio.timeout(120):
            while True:
                _, event = await worker.events.get()
                seen.append(event)
                if isinstance(event, Step):
                    worker.cancel("c")
                if isinstance(event, Cancelled | Finished | Failed):
                    break
    assert isinstance(seen[-1], Cancelled), seen


@pytest.mark.parametrize("name", IMAGES + CLIPS)
async def test_the_time_limit_stops_a_running_job_on_every_family(name: str, tmp_path: Path) -> None:
    model = backend(name)
    worker = worker_for(model, tmp_path, max_job_s=1e-9)
    async with worker:
        worker.submit(job_for(model, "slow"))
        events = (await collect(worker.events, {"slow"}, limit_s=120))["slow"]
    assert events[-1] == Failed(TIME_REASON.format(limit=1e-9))


async def test_a_batch_of_flux_jobs_shares_one_call_and_matches_each_alone(tmp_path: Path) -> None:
    model = backend("tiny-flux")
    calls: list[int] = []
    original: Callable[..., list[list[Image.Image]]] = model.generate

    def counting(spec: BatchSpec, slots: list[Slot], *args: object) -> list[list[Image.Image]]:
        calls.append(len(slots))
        return original(spec, slots, *args)

    model.generate = counting  # type: ignore[method-assign]
    try:
        worker = worker_for(model, tmp_path)
        for job_id, seed in (("a", 1), ("b", 2)):
            request = GenerationRequest("a cat", n=2, seed=seed, model=model.info.name)
            worker.submit(Job(job_id, job_id, request))
        async with worker:
            events = await collect(worker.events, {"a", "b"}, limit_s=120)
    finally:
        del model.generate
    assert calls == [4]
    finished = [e for e in events["b"] if isinstance(e, Finished)]
    alone = run(model, spec_for(model), [Slot("a cat", "", 3)])  # job b's second image, seed 2 + 1
    assert finished and finished[0].result.seeds == (2, 3)
    assert alone[0][0].size == (TEST_SIZE, TEST_SIZE)


def test_an_unlisted_pipeline_runs_through_the_generic_path(tmp_path: Path) -> None:
    import json

    folder = TINY["sd"](tmp_path / "pag", 0)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPAGPipeline"  # a diffusers pipeline no family row lists
    (folder / "model_index.json").write_text(json.dumps(index))
    described = describe_model(ModelConfig(name="pag", path=folder))
    assert (described.family, described.kind, described.remix) == ("generic-image", Kind.IMAGE, False)
    model = load_backend(ModelConfig(name="pag", path=folder, size=64, steps=2))
    assert model.info.family == "generic-image" and model.info.remix  # diffusers maps its img2img form
    out = run(model, spec_for(model), [Slot("a cat", "blurry", 1)])
    assert out[0][0].size == (64, 64)


def test_a_pipeline_memebot_cannot_drive_is_refused_at_load_naming_what_it_lacks(tmp_path: Path) -> None:
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    unet = UNet2DModel(
        sample_size=8,
        block_out_channels=(8, 8),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "ddpm")
    with pytest.raises(
        ModelLoadError, match=r"DDPMPipeline can't be driven by memebot: its call takes no width"
    ):
        load_backend(ModelConfig(name="ddpm", path=tmp_path / "ddpm"))
