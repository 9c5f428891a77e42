"""The ``tiny`` presets: real diffusers pipelines with small, seeded random weights.

They run the same code path as a downloaded model (built here, written with ``save_pretrained`` and read
back with ``from_pretrained``) in well under a second on a CPU, so the demo, the tests and CI need no
download. Their images are coloured noise, which is all random weights can draw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    DDIMScheduler,
    EulerAncestralDiscreteScheduler,
    StableDiffusionPipeline,
    TextToVideoSDPipeline,
    UNet2DConditionModel,
    UNet3DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

# CLIP's text encoder has 77 positions; the tokenizer must say so or long prompts overflow them.
MAX_TOKENS = 77
_HIDDEN = 32
_BETAS: dict[str, Any] = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def byte_vocabulary() -> list[str]:
    """GPT-2's printable stand-in for every byte, each alone and as a word end, then CLIP's specials."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    shifted = iter(range(256, 512))
    symbols = [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]
    return [*symbols, *(s + "</w>" for s in symbols), "<|startoftext|>", "<|endoftext|>"]


def build_tokenizer(folder: Path) -> CLIPTokenizer:
    """A byte-level CLIP tokenizer with no merges: every byte is a token, nothing is unknown."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = byte_vocabulary()
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_TOKENS)


def _text_encoder(vocab_size: int) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_size=_HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=MAX_TOKENS,
    )
    return CLIPTextModel(config)


def _vae() -> AutoencoderKL:
    # Four levels, like Stable Diffusion's, so latents are 1/8 of the image side as with real models.
    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )


def _unet_2d() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=_HIDDEN,
        norm_num_groups=8,
        attention_head_dim=8,
    )


def _unet_3d() -> UNet3DConditionModel:
    return UNet3DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=_HIDDEN,
        attention_head_dim=4,
        norm_num_groups=8,
    )


def tiny_autoencoder(seed: int = 0) -> AutoencoderTiny:
    """A random-weight AutoencoderTiny matching the tiny presets' latents (for previews and fast decode)."""
    torch.manual_seed(seed)
    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    )


def write_tiny_image(folder: Path, seed: int = 0) -> Path:
    """Write the ``tiny`` text-to-image pipeline to ``folder`` and return it."""
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(folder / "_vocab")
    pipe = StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=_text_encoder(len(tokenizer)),
        tokenizer=tokenizer,
        unet=_unet_2d(),
        scheduler=EulerAncestralDiscreteScheduler(**_BETAS, steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def write_tiny_video(folder: Path, seed: int = 0) -> Path:
    """Write the ``tiny-video`` text-to-video pipeline (ModelScope's architecture) to ``folder``."""
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(folder / "_vocab")
    pipe = TextToVideoSDPipeline(
        vae=_vae(),
        text_encoder=_text_encoder(len(tokenizer)),
        tokenizer=tokenizer,
        unet=_unet_3d(),
        scheduler=DDIMScheduler(**_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1),
    )
    pipe.save_pretrained(folder)
    return folder
