"""Offline tokenizers, text encoders and autoencoders shared by the tiny family builders."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
    UMT5Config,
    UMT5EncoderModel,
)

from generators.pipelines.tiny import MAX_TOKENS, build_tokenizer

CLIP_HIDDEN = 32
T5_HIDDEN = 32


def seed_all(seed: int) -> None:
    """Seed torch's global generator, which module constructors draw their random weights from."""
    torch.manual_seed(seed)


def clip_tokenizer() -> CLIPTokenizer:
    """tiny's byte-level CLIP tokenizer, built in a scratch folder so no vocabulary files stay behind."""
    with tempfile.TemporaryDirectory() as scratch:
        return build_tokenizer(Path(scratch))


def _clip_config(vocab_size: int, hidden: int) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=vocab_size,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_size=hidden,
        intermediate_size=37,
        projection_dim=hidden,
        num_attention_heads=4,
        num_hidden_layers=2,
        hidden_act="gelu",
        max_position_embeddings=MAX_TOKENS,
    )


def clip_text(vocab_size: int, hidden: int = CLIP_HIDDEN) -> CLIPTextModel:
    """A two-layer CLIP text encoder (SDXL reads its penultimate layer, so two is the least that works)."""
    return CLIPTextModel(_clip_config(vocab_size, hidden))


def clip_text_projected(vocab_size: int, hidden: int = CLIP_HIDDEN) -> CLIPTextModelWithProjection:
    """The same encoder with the text projection SDXL's and SD3's second encoders have."""
    return CLIPTextModelWithProjection(_clip_config(vocab_size, hidden))


def t5_pieces() -> list[tuple[str, float]]:
    """A character-level Unigram vocabulary: every printable ASCII character, alone and after a word start."""
    chars = [c for c in string.printable if not c.isspace()]
    # Word-initial pieces score higher so "▁a" beats "▁" + "a"; anything else falls back to <unk>.
    return [
        ("<pad>", 0.0),
        ("</s>", 0.0),
        ("<unk>", 0.0),
        ("▁", -3.0),
        *((f"▁{c}", -1.0) for c in chars),
        *((c, -2.0) for c in chars),
    ]


def t5_tokenizer() -> T5TokenizerFast:
    """A T5/UMT5-style tokenizer from a character list: no download, and no prompt can make it fail."""
    return T5TokenizerFast(vocab=t5_pieces(), extra_ids=0)


def _t5_config(config_class: type[T5Config] | type[UMT5Config], vocab_size: int, hidden: int) -> T5Config:
    return config_class(
        vocab_size=vocab_size,
        d_model=hidden,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        is_encoder_decoder=False,
        pad_token_id=0,
        eos_token_id=1,
    )


def t5_text(vocab_size: int, hidden: int = T5_HIDDEN) -> T5EncoderModel:
    """A two-layer T5 encoder, the shape of hf-internal-testing/tiny-random-t5 that diffusers tests use."""
    return T5EncoderModel(_t5_config(T5Config, vocab_size, hidden)).eval()


def umt5_text(vocab_size: int, hidden: int = T5_HIDDEN) -> UMT5EncoderModel:
    """The same size of UMT5 encoder, Wan's text encoder."""
    return UMT5EncoderModel(_t5_config(UMT5Config, vocab_size, hidden)).eval()


def image_vae(latent_channels: int, **config: object) -> AutoencoderKL:
    """A four-level AutoencoderKL: latents 1/8 of the image side, as every SD/SDXL/SD3/FLUX autoencoder."""
    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=latent_channels,
        norm_num_groups=4,
        layers_per_block=1,
        **config,
    )
