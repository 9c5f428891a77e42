"""Tiny text-to-image pipelines of today's image families, from diffusers' own test components."""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)

from generators.pipelines.tiny_families._parts import (
    CLIP_HIDDEN,
    T5_HIDDEN,
    clip_text,
    clip_text_projected,
    clip_tokenizer,
    image_vae,
    seed_all,
    t5_text,
    t5_tokenizer,
)


def _vae16(shift_factor: float, scaling_factor: float) -> AutoencoderKL:
    """The 16-channel autoencoder of SD3 and FLUX: no quant convs, a shift and a scale."""
    return image_vae(
        16,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=shift_factor,
        scaling_factor=scaling_factor,
    )


def _sdxl_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=128,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        # Six size/crop numbers embedded at 8 each, plus the second encoder's pooled projection.
        projection_class_embeddings_input_dim=6 * 8 + CLIP_HIDDEN,
        cross_attention_dim=2 * CLIP_HIDDEN,
        norm_num_groups=8,
    )


def write_sdxl(folder: Path, seed: int = 0) -> Path:
    """SDXL 1.0 base: two CLIP encoders, a text-time UNet, a 4-channel autoencoder at 1/8 scale."""
    seed_all(seed)
    tokenizer = clip_tokenizer()
    pipe = StableDiffusionXLPipeline(
        vae=image_vae(4, scaling_factor=0.13025),
        text_encoder=clip_text(len(tokenizer)),
        text_encoder_2=clip_text_projected(len(tokenizer)),
        tokenizer=tokenizer,
        tokenizer_2=clip_tokenizer(),
        unet=_sdxl_unet(),
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            steps_offset=1,
            timestep_spacing="leading",
        ),
    )
    pipe.save_pretrained(folder)
    return folder


def write_sd3(folder: Path, seed: int = 0) -> Path:
    """Stable Diffusion 3.5 Large: two CLIP encoders and T5, an MMDiT with 2x2 patches, 16 latent channels."""
    seed_all(seed)
    tokenizer = clip_tokenizer()
    t5_tok = t5_tokenizer()
    # SD3 zero-pads the two CLIP embeddings (side by side) to T5's width, which is wider than both
    # (4096 against 768 + 1280 on the real model).
    t5_width = 3 * CLIP_HIDDEN
    transformer = SD3Transformer2DModel(
        sample_size=128,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=t5_width,
        pooled_projection_dim=2 * CLIP_HIDDEN,
        pos_embed_max_size=96,  # SD3.5 has 192 (up to 3072 px); 96 keeps the folder small
        qk_norm="rms_norm",
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        vae=_vae16(shift_factor=0.0609, scaling_factor=1.5305),
        text_encoder=clip_text_projected(len(tokenizer)),
        text_encoder_2=clip_text_projected(len(tokenizer)),
        text_encoder_3=t5_text(len(t5_tok), hidden=t5_width),
        tokenizer=tokenizer,
        tokenizer_2=clip_tokenizer(),
        tokenizer_3=t5_tok,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    pipe.save_pretrained(folder)
    return folder


def _flux(folder: Path, seed: int, guidance_embeds: bool) -> Path:
    seed_all(seed)
    tokenizer = clip_tokenizer()
    t5_tok = t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        # 16 latent channels packed in 2x2 patches: 64 numbers per token, as the real model.
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_HIDDEN,
        pooled_projection_dim=CLIP_HIDDEN,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 4, 8),
    )
    pipe = FluxPipeline(
        transformer=transformer,
        vae=_vae16(shift_factor=0.1159, scaling_factor=0.3611),
        text_encoder=clip_text(len(tokenizer)),
        text_encoder_2=t5_text(len(t5_tok)),
        tokenizer=tokenizer,
        tokenizer_2=t5_tok,
        scheduler=FlowMatchEulerDiscreteScheduler(
            shift=1.0 if not guidance_embeds else 3.0, use_dynamic_shifting=guidance_embeds
        ),
    )
    pipe.save_pretrained(folder)
    return folder


def write_flux(folder: Path, seed: int = 0) -> Path:
    """FLUX.1-schnell: CLIP + T5, 16-channel latents at 1/8 packed 2x2, no guidance embedding."""
    return _flux(folder, seed, guidance_embeds=False)


def write_flux_dev(folder: Path, seed: int = 0) -> Path:
    """FLUX.1-dev: as schnell, plus the distilled-guidance embedding and a resolution-shifted schedule."""
    return _flux(folder, seed, guidance_embeds=True)
