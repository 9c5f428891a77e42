"""Every tiny family builds offline, loads back with from_pretrained and runs with its real latent shapes."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, LTXImageToVideoPipeline
from PIL import Image

from generators.pipelines.tiny_families import INFO, TINY, TinyInfo
from generators.pipelines.tiny_families._parts import clip_tokenizer, t5_tokenizer
from generators.pipelines.tiny_families.transformer_image import gemma_tokenizer

# Latent channels of the real models (their autoencoders' configs on the hub).
REAL_LATENT_CHANNELS = {
    "sd": 4,
    "sdxl": 4,
    "sd3": 16,
    "flux": 16,
    "flux-dev": 16,
    "pixart-sigma": 4,
    "sana": 32,
    "modelscope": 4,
    "animatediff": 4,
    "cogvideox": 16,
    "cogvideox-i2v": 16,
    "ltx": 128,
    "wan": 16,
    "wan-i2v": 16,
    "svd": 4,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: these tensors are too small to share, and the CPU is shared with other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=sorted(TINY))
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyInfo, Any]:
    """Each family built once into a temporary folder and read back as a downloaded model would be."""
    name: str = request.param
    folder = TINY[name](tmp_path_factory.mktemp(name), 0)
    pipe = DiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return INFO[name], pipe


def _call(info: TinyInfo, pipe: Any, seed: int) -> np.ndarray:
    kwargs: dict[str, Any] = {
        "num_inference_steps": 2,
        "height": info.size,
        "width": info.size,
        "generator": torch.Generator("cpu").manual_seed(seed),
        "output_type": "np",
        **info.call_kwargs,
    }
    if info.takes_picture:
        kwargs["image"] = Image.new("RGB", (info.size, info.size), (200, 40, 90))
    if info.frames is not None:
        kwargs["num_frames"] = info.frames
    if "prompt" in _parameters(pipe):
        kwargs["prompt"] = "a cat holding a sign that says ünïcode 🐱"
    out = pipe(**kwargs)
    return np.asarray(out.frames if info.kind == "video" else out.images)


def _parameters(pipe: Any) -> set[str]:
    return set(inspect.signature(pipe.__call__).parameters)


def _latent_channels(pipe: Any) -> int:
    config = pipe.vae.config
    return int(config["z_dim"] if "z_dim" in config else config["latent_channels"])


def test_every_family_has_its_info_and_a_docstring() -> None:
    assert set(INFO) == set(TINY)
    assert set(TINY) <= set(REAL_LATENT_CHANNELS)
    for name, builder in TINY.items():
        assert builder.__doc__, name
        assert INFO[name].name == name


def test_latent_channels_are_the_real_models(loaded: tuple[TinyInfo, Any]) -> None:
    info, pipe = loaded
    assert _latent_channels(pipe) == REAL_LATENT_CHANNELS[info.name]


def test_bare_call_makes_the_promised_shape_and_seeds_differ(loaded: tuple[TinyInfo, Any]) -> None:
    info, pipe = loaded
    first = _call(info, pipe, seed=1)
    expected = (
        (1, info.size, info.size, 3) if info.frames is None else (1, info.frames, info.size, info.size, 3)
    )
    assert first.shape == expected
    assert np.isfinite(first).all()
    assert not np.allclose(first, _call(info, pipe, seed=2))


PROMPT_OF_EVERYTHING = "Ünïcödé, 中文, emoji 🐱‍👤🔥, tabs\tand\nnewlines, <|endoftext|> </s> <pad> " * 20


@pytest.mark.parametrize("make", [clip_tokenizer, t5_tokenizer, gemma_tokenizer])
def test_offline_tokenizers_encode_any_prompt_within_the_length(make: Callable[[], Any]) -> None:
    tokenizer = make()
    ids = tokenizer(PROMPT_OF_EVERYTHING, max_length=48, truncation=True, padding="max_length").input_ids
    assert len(ids) == 48
    assert all(0 <= i < len(tokenizer) for i in ids)


def test_gemma_tokenizer_spells_unknown_characters_in_bytes() -> None:
    tokenizer = gemma_tokenizer()
    ids = tokenizer("猫🐱", add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == "猫🐱"


def test_ltx_image_to_video_loads_the_ltx_folder(tmp_path: Path) -> None:
    folder = TINY["ltx"](tmp_path, 0)
    pipe = LTXImageToVideoPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    info = INFO["ltx"]
    out = pipe(
        image=Image.new("RGB", (info.size, info.size), (10, 200, 30)),
        prompt="a cat",
        num_frames=info.frames,
        height=info.size,
        width=info.size,
        num_inference_steps=2,
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="np",
    )
    assert np.asarray(out.frames).shape == (1, info.frames, info.size, info.size, 3)


def test_the_seed_decides_the_weights(tmp_path: Path) -> None:
    def weights(seed: int, name: str) -> bytes:
        folder = TINY["flux"](tmp_path / name, seed)
        return (folder / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes()

    assert weights(0, "a") == weights(0, "b")
    assert weights(0, "a") != weights(1, "c")
