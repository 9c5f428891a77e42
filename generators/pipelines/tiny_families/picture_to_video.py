"""Tiny image-to-video pipelines: Wan 2.1 I2V, CogVideoX I2V and Stable Video Diffusion."""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    AutoencoderKLTemporalDecoder,
    CogVideoXDPMScheduler,
    CogVideoXImageToVideoPipeline,
    EulerDiscreteScheduler,
    StableVideoDiffusionPipeline,
    UNetSpatioTemporalConditionModel,
    WanImageToVideoPipeline,
)
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    CLIPVisionModel,
    CLIPVisionModelWithProjection,
)

from generators.pipelines.tiny_families._parts import seed_all, t5_text, t5_tokenizer, umt5_text
from generators.pipelines.tiny_families.video import (
    COGVIDEOX_CHANNELS,
    WAN_CHANNELS,
    cogvideox_transformer,
    cogvideox_vae,
    wan_scheduler,
    wan_transformer,
    wan_vae,
)

_VISION_HIDDEN = 8


def _vision_config() -> CLIPVisionConfig:
    # 224 px in, as every real pipeline feeds its CLIP image encoder; 32 px patches keep it to 49 tokens.
    return CLIPVisionConfig(
        hidden_size=_VISION_HIDDEN,
        projection_dim=_VISION_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=224,
        intermediate_size=16,
        patch_size=32,
    )


def clip_image_processor() -> CLIPImageProcessorPil:
    """CLIP's image preprocessing (224 px, OpenAI mean and std) from its defaults; PIL, so no torchvision."""
    return CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})


def write_wan_i2v(folder: Path, seed: int = 0) -> Path:
    """Wan 2.1 I2V (14B 480P): Wan's T2V parts plus a CLIP image encoder; the first frame's latents and a
    4-channel mask join the 16 noise channels (36 in). Frames 4k+1."""
    seed_all(seed)
    tokenizer = t5_tokenizer()
    transformer = wan_transformer(in_channels=2 * WAN_CHANNELS + 4, image_dim=_VISION_HIDDEN)
    pipe = WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=umt5_text(len(tokenizer)),
        vae=wan_vae(),
        transformer=transformer,
        scheduler=wan_scheduler(),
        image_encoder=CLIPVisionModel(_vision_config()).eval(),
        image_processor=clip_image_processor(),
    )
    pipe.save_pretrained(folder)
    return folder


def write_cogvideox_i2v(folder: Path, seed: int = 0) -> Path:
    """CogVideoX-5b-I2V: the picture's latents join the noise (32 channels in), RoPE plus learned positions.

    The learned positional embedding fixes the size, as the real model's fixes 720x480: this one renders
    only 64x64 px (other sizes raise ValueError); frames 8k+1 as CogVideoX-2b.
    """
    seed_all(seed)
    tokenizer = t5_tokenizer()
    transformer = cogvideox_transformer(
        in_channels=2 * COGVIDEOX_CHANNELS,
        # RoPE needs a head size that is a multiple of 16.
        heads=2,
        head_size=16,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
    )
    pipe = CogVideoXImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=t5_text(len(tokenizer)),
        vae=cogvideox_vae(scaling_factor=0.7),
        transformer=transformer,
        scheduler=CogVideoXDPMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            prediction_type="v_prediction",
            rescale_betas_zero_snr=True,
            set_alpha_to_one=True,
            snr_shift_scale=1.0,
            timestep_spacing="trailing",
        ),
    )
    pipe.save_pretrained(folder)
    return folder


def _svd_unet() -> UNetSpatioTemporalConditionModel:
    return UNetSpatioTemporalConditionModel(
        # 32 groups in its norms again: 32 is the narrowest level.
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=96,
        # Noise and the picture's latents, 4 channels each.
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=_VISION_HIDDEN,
        num_attention_heads=2,
        # fps, motion bucket and noise augmentation, each embedded at 8.
        projection_class_embeddings_input_dim=3 * 8,
        addition_time_embed_dim=8,
        num_frames=14,
    )


def write_svd(folder: Path, seed: int = 0) -> Path:
    """Stable Video Diffusion (img2vid): CLIP image embedding, a spatio-temporal UNet, 4 channels at 1/8,
    a temporal decoder; no prompt; any frame count (14 by default, as the real model)."""
    seed_all(seed)
    pipe = StableVideoDiffusionPipeline(
        vae=AutoencoderKLTemporalDecoder(
            # Its group norms have 32 groups, so no level can be narrower than 32.
            block_out_channels=(32, 32, 32, 32),
            down_block_types=("DownEncoderBlock2D",) * 4,
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            layers_per_block=1,
        ),
        image_encoder=CLIPVisionModelWithProjection(_vision_config()).eval(),
        unet=_svd_unet(),
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            interpolation_type="linear",
            prediction_type="v_prediction",
            sigma_max=700.0,
            sigma_min=0.002,
            steps_offset=1,
            timestep_spacing="leading",
            timestep_type="continuous",
            use_karras_sigmas=True,
        ),
        feature_extractor=clip_image_processor(),
    )
    pipe.save_pretrained(folder)
    return folder
