"""Loading: the tiny presets run the real diffusers path; failures say what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from generators.config import ModelConfig
from generators.errors import ModelLoadError
from generators.pipelines import BatchSpec, DiffusersBackend, Slot, load_backend
from generators.pipelines.device import pick_dtype
from generators.pipelines.loading import first_line
from generators.pipelines.tiny import MAX_TOKENS, build_tokenizer
from generators.requests import Kind


def test_tiny_is_a_real_stable_diffusion_pipeline(tiny_backend: DiffusersBackend) -> None:
    assert type(tiny_backend.pipe).__name__ == "StableDiffusionPipeline"
    assert tiny_backend.info.kind is Kind.IMAGE
    assert (tiny_backend.info.device, tiny_backend.info.dtype) == ("cpu", "float32")
    assert tiny_backend.pipe.vae_scale_factor == 8  # latents are 1/8 of the image, as with real models


def test_tiny_weights_are_the_same_on_every_load(tiny_backend: DiffusersBackend) -> None:
    again = load_backend(ModelConfig(name="tiny", size=64, steps=2))
    spec, slot = BatchSpec(64, 64, 2), [Slot("same seed, same pixels", "", 3)]
    first = np.asarray(tiny_backend.generate(spec, slot, lambda *a: None)[0][0])
    second = np.asarray(again.generate(spec, slot, lambda *a: None)[0][0])
    assert np.array_equal(first, second)
    other_seed = np.asarray(
        again.generate(spec, [Slot("same seed, same pixels", "", 4)], lambda *a: None)[0][0]
    )
    assert not np.array_equal(first, other_seed)


def test_the_offline_tokenizer_covers_every_byte_and_stops_at_77(tmp_path: Path) -> None:
    tokenizer = build_tokenizer(tmp_path)
    assert tokenizer.model_max_length == MAX_TOKENS
    ids = tokenizer(
        "ünïcødé 🍝 spaghetti", padding="max_length", max_length=MAX_TOKENS, truncation=True
    ).input_ids
    assert len(ids) == MAX_TOKENS
    assert tokenizer.unk_token_id not in ids[1:20]
    long = tokenizer("x " * 500, truncation=True, max_length=tokenizer.model_max_length).input_ids
    assert len(long) == MAX_TOKENS


def test_a_very_long_prompt_does_not_overflow_the_text_encoder(tiny_backend: DiffusersBackend) -> None:
    out = tiny_backend.generate(BatchSpec(64, 64, 1), [Slot("spaghetti " * 200, "", 1)], lambda *a: None)
    assert out[0][0].size == (64, 64)


def test_tiny_video_is_modelscopes_pipeline(tiny_video_backend: DiffusersBackend) -> None:
    assert type(tiny_video_backend.pipe).__name__ == "TextToVideoSDPipeline"
    assert tiny_video_backend.info.kind is Kind.VIDEO
    steps: list[int] = []
    clips = tiny_video_backend.generate(
        BatchSpec(64, 64, 2), [Slot("a cat", "", 1)], lambda i, n, latents: steps.append(i)
    )
    assert len(clips) == 1 and len(clips[0]) == 8
    assert steps == [1, 2]


def test_previews_from_latents_and_from_the_tiny_vae(tiny_backend: DiffusersBackend) -> None:
    latents = torch.randn(2, 4, 8, 8)
    assert tiny_backend.tiny_vae is not None
    assert tiny_backend.preview(latents, 1).size == (64, 64)
    tiny_backend_without = DiffusersBackend(tiny_backend.pipe, tiny_backend.info, tiny_backend.family)
    assert tiny_backend_without.preview(latents, 0).size == (64, 64)


@pytest.mark.parametrize(
    ("config", "phrase"),
    [
        (ModelConfig(name="sd-turbo", offline=True), "stabilityai/sd-turbo"),
        (ModelConfig(name="nobody/no-such-model", offline=True), "nobody/no-such-model"),
        (ModelConfig(name="custom", path=Path("/no/such/folder")), "does not exist"),
        (ModelConfig(name="sd-turbo", path=Path("models/sd-turbo"), offline=True), "does not exist"),
    ],
)
def test_a_model_that_cannot_load_says_what_to_do(config: ModelConfig, phrase: str) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_backend(config)
    message = str(caught.value)
    assert phrase in message
    folder = str(config.path or f"models/{config.name}")
    assert "hf download" in message and f"path: {folder}" in message and "built-in tiny" in message
    assert f"--local-dir {folder}" in message  # the folder the entry names, not another
    if config.name == "sd-turbo":  # the preset's hub id, never the folder taken for one
        assert "hf download stabilityai/sd-turbo " in message
    assert "local_files_only" not in message  # the library's advice contradicts offline: true
    assert message.count("hf download") == 1
    assert "huggingface-cli" not in message  # the installed huggingface_hub no longer has it


def test_a_random_tiny_vae_on_a_real_model_is_refused_with_a_real_one_named() -> None:
    with pytest.raises(ModelLoadError, match=r"madebyollin/taesd") as caught:
        load_backend(ModelConfig(name="sd-turbo", tiny_vae="tiny", offline=True), "turbo")
    assert "turbo's pictures" in str(caught.value)


def test_an_error_that_points_at_a_hidden_traceback_gives_its_cause() -> None:
    try:
        try:
            raise ConnectionError("Name or service not known\nmore detail")
        except ConnectionError as cause:
            raise OSError(
                "We could not load it. Please check out the root cause in the stacktrace above."
            ) from cause
    except OSError as error:
        assert first_line(error) == "We could not load it: Name or service not known"
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(ValueError("plain. two sentences")) == "plain. two sentences"


def test_dtype_choice() -> None:
    assert pick_dtype("auto", torch.device("cpu")) is torch.float32
    assert pick_dtype("bfloat16", torch.device("cpu")) is torch.bfloat16


def test_switches_set_the_memory_format_fuse_attention_and_wrap_the_unet_for_compiling() -> None:
    config = ModelConfig(name="tiny", size=64, steps=1, channels_last=True, fuse_qkv=True, compile="default")
    backend = load_backend(config)
    unet = backend.pipe.unet
    assert type(unet).__name__ == "OptimizedModule"  # compiled on its first call, not here
    weight = next(p for p in unet._orig_mod.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert any(getattr(module, "fused_projections", False) for module in unet._orig_mod.modules())
    plain = load_backend(ModelConfig(name="tiny", size=64, steps=1)).pipe.unet
    assert not any(getattr(module, "fused_projections", False) for module in plain.modules())


def test_step_limits_follow_the_config_and_a_few_step_scheduler(tmp_path: Path) -> None:
    assert load_backend(ModelConfig(name="tiny", size=64, max_steps=3)).info.max_steps == 3
    assert load_backend(ModelConfig(name="tiny", size=64, max_steps=3)).info.steps == 3  # default within it
    from diffusers import LCMScheduler

    from generators.pipelines.tiny import write_tiny_image

    folder = write_tiny_image(tmp_path / "lcm")
    pipe = load_backend(ModelConfig(name="custom", path=folder)).pipe
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    pipe.save_pretrained(folder)
    info = load_backend(ModelConfig(name="custom", path=folder, size=64)).info
    assert (info.steps, info.max_steps) == (4, 8)
    with pytest.raises(ValueError, match="must not exceed max_steps"):
        ModelConfig(steps=9, max_steps=8)
