"""Tiny PixArt-Σ and Sana: the text-to-image DiTs that render only from a resolution table by default."""

from __future__ import annotations

import string
from pathlib import Path

from diffusers import (
    AutoencoderDC,
    DPMSolverMultistepScheduler,
    PixArtSigmaPipeline,
    PixArtTransformer2DModel,
    SanaPipeline,
    SanaTransformer2DModel,
)
from transformers import Gemma2Config, Gemma2Model, GemmaTokenizerFast

from generators.pipelines.tiny_families._parts import T5_HIDDEN, image_vae, seed_all, t5_text, t5_tokenizer

SANA_CHANNELS = 32
_GEMMA_HIDDEN = 8


def write_pixart_sigma(folder: Path, seed: int = 0) -> Path:
    """PixArt-Σ XL 1024: T5 text, SDXL's 4-channel autoencoder, a DiT with 2x2 patches and learned sigma.

    Its pipeline bins sizes to a 1024-px table by default; call with ``use_resolution_binning=False``
    to render 64 px natively.
    """
    seed_all(seed)
    tokenizer = t5_tokenizer()
    transformer = PixArtTransformer2DModel(
        sample_size=128,
        num_layers=2,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=3,
        caption_channels=T5_HIDDEN,
        in_channels=4,
        cross_attention_dim=24,
        out_channels=8,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        # Σ drops α's size conditioning, which sample_size 128 would otherwise switch on.
        use_additional_conditions=False,
    )
    pipe = PixArtSigmaPipeline(
        tokenizer=tokenizer,
        text_encoder=t5_text(len(tokenizer)),
        vae=image_vae(4, scaling_factor=0.13025),
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(
            beta_start=0.0001, beta_end=0.02, beta_schedule="linear", prediction_type="epsilon"
        ),
    )
    pipe.save_pretrained(folder)
    return folder


def gemma_tokenizer() -> GemmaTokenizerFast:
    """A Gemma-style BPE tokenizer with no merges: printable ASCII pieces, every other byte by fallback."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    pieces = ["▁", *(c for c in string.printable if not c.isspace())]
    vocab = {token: i for i, token in enumerate([*specials, *bytes_, *pieces])}
    return GemmaTokenizerFast(vocab=vocab, merges=[])


def dc_ae() -> AutoencoderDC:
    """DC-AE f32c32, Sana's autoencoder: six levels (1/32 of the side), 32 channels, 8 to 32 wide."""
    levels = 6
    vit = ("ResBlock",) * 3 + ("EfficientViTBlock",) * 3
    scales = ((),) * 3 + ((5,),) * 3
    widths = (8, 8, 16, 16, SANA_CHANNELS, SANA_CHANNELS)
    return AutoencoderDC(
        in_channels=3,
        latent_channels=SANA_CHANNELS,
        attention_head_dim=2,
        encoder_block_types=vit,
        decoder_block_types=vit,
        # The deepest level is as wide as the latent: its shortcut folds channels into the latent's.
        encoder_block_out_channels=widths,
        decoder_block_out_channels=widths,
        encoder_qkv_multiscales=scales,
        decoder_qkv_multiscales=scales,
        encoder_layers_per_block=(1,) * levels,
        decoder_layers_per_block=(1,) * levels,
        downsample_block_type="pixel_unshuffle",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )


def write_sana(folder: Path, seed: int = 0) -> Path:
    """Sana 1600M 1024px: Gemma 2 text, DC-AE with 32 channels at 1/32, a linear-attention DiT.

    Its pipeline bins sizes to a 1024-px table by default; call with ``use_resolution_binning=False``
    to render 64 px natively (a 2x2 latent).
    """
    seed_all(seed)
    tokenizer = gemma_tokenizer()
    text_config = Gemma2Config(
        head_dim=16,
        hidden_size=_GEMMA_HIDDEN,
        intermediate_size=64,
        max_position_embeddings=8192,
        num_attention_heads=2,
        num_hidden_layers=1,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    transformer = SanaTransformer2DModel(
        patch_size=1,
        in_channels=SANA_CHANNELS,
        out_channels=SANA_CHANNELS,
        num_layers=1,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=_GEMMA_HIDDEN,
        sample_size=32,
    )
    pipe = SanaPipeline(
        tokenizer=tokenizer,
        text_encoder=Gemma2Model(text_config).eval(),
        vae=dc_ae(),
        transformer=transformer,
        # Sana's folders ship DPM-Solver++ on flow sigmas.
        scheduler=DPMSolverMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
        ),
    )
    pipe.save_pretrained(folder)
    return folder
