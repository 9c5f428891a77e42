"""An SD-Turbo-architecture pipeline built in code with random weights: real shapes, no download.

For benchmarks: what the bot costs at real size, on any machine, without the 5 GB download.

The configurations are those of ``stabilityai/sd-turbo`` (Stable Diffusion 2.1's UNet with 1024-wide
cross-attention, the OpenCLIP ViT-H text encoder's 23 layers, the standard SD autoencoder, an Euler
scheduler with trailing timesteps), so a pipeline call costs what the real model's does. ``quick``
keeps every block and layer type but narrows them, for a smoke run on a CPU. The tokenizer is the
tiny presets' offline byte-level one; the text encoder keeps CLIP's 49408-entry embedding table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel

from generators.families import family_named
from generators.models import ModelInfo
from generators.pipelines.backend import DiffusersBackend
from generators.pipelines.tiny import MAX_TOKENS, build_tokenizer
from generators.requests import Kind

CLIP_VOCAB = 49408


def _unet(quick: bool) -> UNet2DConditionModel:
    width = (64, 128, 256, 256) if quick else (320, 640, 1280, 1280)
    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=width,
        layers_per_block=2,
        # Stable Diffusion 2's config names head counts here: 64 channels per head.
        attention_head_dim=tuple(w // 64 for w in width),
        cross_attention_dim=128 if quick else 1024,
        use_linear_projection=True,
    )


def _text_encoder(quick: bool, bos: int, eos: int) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB,
        hidden_size=128 if quick else 1024,
        intermediate_size=512 if quick else 4096,
        num_hidden_layers=2 if quick else 23,
        num_attention_heads=2 if quick else 16,
        projection_dim=512,
        hidden_act="gelu",
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    return CLIPTextModel(config)


def _vae(quick: bool) -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(32, 32, 64, 64) if quick else (128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    )


def tiny_vae() -> AutoencoderTiny:
    """madebyollin/taesd's architecture (random weights): the fast decoder the tiny-VAE switch uses."""
    return AutoencoderTiny(
        encoder_block_out_channels=(64, 64, 64, 64),
        decoder_block_out_channels=(64, 64, 64, 64),
        num_encoder_blocks=(1, 3, 3, 3),
        num_decoder_blocks=(3, 3, 3, 1),
        latent_channels=4,
    )


def build_pipeline(*, quick: bool = False, seed: int = 0) -> StableDiffusionPipeline:
    """The pipeline on the CPU in float32; move it with ``.to(device, dtype)``."""
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="memebot-sd-turbo-") as folder:
        tokenizer = build_tokenizer(Path(folder))
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return StableDiffusionPipeline(
        vae=_vae(quick),
        text_encoder=_text_encoder(quick, bos, eos),
        tokenizer=tokenizer,
        unet=_unet(quick),
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            timestep_spacing="trailing",
            steps_offset=1,
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def backend_for(pipe: StableDiffusionPipeline, *, size: int, name: str = "sd-turbo") -> DiffusersBackend:
    """memebot's backend over ``pipe``, with sd-turbo's defaults (1 step, no guidance)."""
    device = str(pipe.device)
    dtype = str(pipe.unet.dtype).removeprefix("torch.")
    info = ModelInfo(name, "built in code", Kind.IMAGE, 1, 4, 0.0, size, 16, 8, device, dtype)
    return DiffusersBackend(pipe, info, family_named("stable-diffusion"))
