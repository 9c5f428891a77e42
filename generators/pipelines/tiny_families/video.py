"""Tiny text-to-video pipelines of today's clip families, from diffusers' own test components."""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    AnimateDiffPipeline,
    AutoencoderKLCogVideoX,
    AutoencoderKLLTXVideo,
    AutoencoderKLWan,
    CogVideoXDDIMScheduler,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
    DDIMScheduler,
    FlowMatchEulerDiscreteScheduler,
    LTXPipeline,
    LTXVideoTransformer3DModel,
    MotionAdapter,
    UNet2DConditionModel,
    UniPCMultistepScheduler,
    WanPipeline,
    WanTransformer3DModel,
)

from generators.pipelines.tiny_families._parts import (
    CLIP_HIDDEN,
    T5_HIDDEN,
    clip_text,
    clip_tokenizer,
    image_vae,
    seed_all,
    t5_text,
    t5_tokenizer,
    umt5_text,
)

WAN_CHANNELS = 16
COGVIDEOX_CHANNELS = 16
LTX_CHANNELS = 128


def wan_vae() -> AutoencoderKLWan:
    """Wan 2.1's causal 3-D autoencoder at 1/8 in space and 1/4 in time, 16 channels, 3 base channels wide."""
    return AutoencoderKLWan(
        base_dim=3,
        z_dim=WAN_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


def wan_transformer(in_channels: int = WAN_CHANNELS, image_dim: int | None = None) -> WanTransformer3DModel:
    """Wan 2.1's DiT with its 1x2x2 patches; ``image_dim`` adds the image-to-video CLIP branch."""
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=WAN_CHANNELS,
        text_dim=T5_HIDDEN,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=image_dim,
        # Wan 2.1 I2V attends to the image tokens through their own key/value projections.
        added_kv_proj_dim=None if image_dim is None else 2 * 12,
    )


def wan_scheduler() -> UniPCMultistepScheduler:
    """The scheduler Wan 2.1's diffusers folders ship: UniPC on flow sigmas, shift 3 (480p)."""
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)


def write_wan(folder: Path, seed: int = 0) -> Path:
    """Wan 2.1 T2V (1.3B): UMT5 text, 16-channel latents at 1/8 space and 1/4 time; frames 4k+1."""
    seed_all(seed)
    tokenizer = t5_tokenizer()
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=umt5_text(len(tokenizer)),
        vae=wan_vae(),
        transformer=wan_transformer(),
        scheduler=wan_scheduler(),
    )
    pipe.save_pretrained(folder)
    return folder


def ltx_vae() -> AutoencoderKLLTXVideo:
    """LTX-Video 0.9's autoencoder: 4x4 patches, three 2x steps: 1/32 in space, 1/8 in time, 128 ch."""
    return AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=LTX_CHANNELS,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, False, False, False),
        upsample_residual=(False, False, False),
        upsample_factor=(1, 1, 1),
        timestep_conditioning=False,
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )


def ltx_transformer() -> LTXVideoTransformer3DModel:
    """LTX-Video's DiT: one token per 128-channel latent pixel, T5 captions."""
    return LTXVideoTransformer3DModel(
        in_channels=LTX_CHANNELS,
        out_channels=LTX_CHANNELS,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=T5_HIDDEN,
    )


def write_ltx(folder: Path, seed: int = 0) -> Path:
    """LTX-Video 0.9: T5, 128-channel latents at 1/32 space, 1/8 time, packed; frames 8k+1, sides 32k."""
    seed_all(seed)
    tokenizer = t5_tokenizer()
    pipe = LTXPipeline(
        tokenizer=tokenizer,
        text_encoder=t5_text(len(tokenizer)),
        vae=ltx_vae(),
        transformer=ltx_transformer(),
        # LTX-Video's own schedule: shifted by the token count, ending at sigma 0.1.
        scheduler=FlowMatchEulerDiscreteScheduler(
            use_dynamic_shifting=True,
            base_shift=0.95,
            max_shift=2.05,
            base_image_seq_len=1024,
            max_image_seq_len=4096,
            shift_terminal=0.1,
        ),
    )
    pipe.save_pretrained(folder)
    return folder


def cogvideox_vae(scaling_factor: float = 1.15258426) -> AutoencoderKLCogVideoX:
    """CogVideoX's autoencoder: 16 channels, 1/8 in space, 1/4 in time (frames before channels in latents)."""
    return AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=COGVIDEOX_CHANNELS,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        scaling_factor=scaling_factor,
    )


def cogvideox_transformer(
    in_channels: int = COGVIDEOX_CHANNELS, heads: int = 4, head_size: int = 8, **config: object
) -> CogVideoXTransformer3DModel:
    """CogVideoX's expert DiT, 2x2 patches, 226 text positions as the real one; sized for 64 px, 9 frames."""
    return CogVideoXTransformer3DModel(
        # heads x head size must be a multiple of 16 for the 3-D positional embedding.
        num_attention_heads=heads,
        attention_head_dim=head_size,
        in_channels=in_channels,
        out_channels=COGVIDEOX_CHANNELS,
        time_embed_dim=2,
        text_embed_dim=T5_HIDDEN,
        num_layers=1,
        sample_width=8,
        sample_height=8,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=226,
        **config,
    )


def cogvideox_scheduler() -> CogVideoXDDIMScheduler:
    """CogVideoX-2b's scheduler config: v-prediction DDIM, zero-terminal-SNR, trailing timesteps."""
    return CogVideoXDDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        snr_shift_scale=3.0,
        timestep_spacing="trailing",
    )


def write_cogvideox(folder: Path, seed: int = 0) -> Path:
    """CogVideoX-2b: T5, 16-channel latents at 1/8 space, 1/4 time; frames 8k+1 (49 on the real one)."""
    seed_all(seed)
    tokenizer = t5_tokenizer()
    pipe = CogVideoXPipeline(
        tokenizer=tokenizer,
        text_encoder=t5_text(len(tokenizer)),
        vae=cogvideox_vae(),
        transformer=cogvideox_transformer(),
        scheduler=cogvideox_scheduler(),
    )
    pipe.save_pretrained(folder)
    return folder


def write_animatediff(folder: Path, seed: int = 0) -> Path:
    """AnimateDiff v1.5: an SD 1.5 UNet with a MotionAdapter, 4 channels at 1/8; any frame count up to 32."""
    seed_all(seed)
    tokenizer = clip_tokenizer()
    widths = (8, 16)
    unet = UNet2DConditionModel(
        block_out_channels=widths,
        layers_per_block=1,
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=CLIP_HIDDEN,
        norm_num_groups=4,
    )
    adapter = MotionAdapter(
        block_out_channels=widths,
        motion_layers_per_block=1,
        motion_norm_num_groups=4,
        motion_num_attention_heads=2,
    )
    pipe = AnimateDiffPipeline(
        vae=image_vae(4),
        text_encoder=clip_text(len(tokenizer)),
        tokenizer=tokenizer,
        unet=unet,
        motion_adapter=adapter,
        scheduler=DDIMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="linear",
            clip_sample=False,
            timestep_spacing="linspace",
            steps_offset=1,
        ),
    )
    pipe.save_pretrained(folder)
    return folder
