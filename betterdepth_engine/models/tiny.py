"""Tiny random-weight models with the real architectures, built offline in about a second.

They exercise every loading and inference path in tests, demos and CPU benchmarks before trained weights
exist. Their outputs are meaningless: anything made with them is labelled "untrained tiny model".
"""

from __future__ import annotations

from pathlib import Path

import torch

from betterdepth_engine.models.default_base import SmallDepthNet
from betterdepth_engine.models.refiner import DepthRefiner, RefinerConfig, trailing_ddim_scheduler

TINY_LABEL = "untrained tiny model (random weights): for tests and demos only"

# Four VAE blocks so the VAE downsamples 8x like SD's (two blocks would only downsample 2x and make tests slow).
TINY_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(8, 8, 16, 16),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=4,
    sample_size=64,
)
TINY_CROSS_ATTENTION_DIM = 16


def tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(**TINY_VAE_CONFIG)


def tiny_unet(in_channels: int = 12):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=16,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TINY_CROSS_ATTENTION_DIM,
        attention_head_dim=4,
        norm_num_groups=8,
    )


def tiny_scheduler_config() -> dict:
    """SD2's training schedule with v-prediction, as the refiner uses it."""
    return dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_tiny_refiner(folder: str | Path | None = None, seed: int = 0) -> DepthRefiner:
    """A BetterDepth refiner (12-channel U-Net) with random weights; saved to `folder` if given."""
    torch.manual_seed(seed)
    refiner = DepthRefiner(
        tiny_vae(),
        tiny_unet(in_channels=12),
        trailing_ddim_scheduler(tiny_scheduler_config(), zero_terminal_snr=True),
        torch.randn(1, 2, TINY_CROSS_ATTENTION_DIM),
        RefinerConfig(default_processing_resolution=128, description=TINY_LABEL),
    )
    if folder is not None:
        refiner.save_pretrained(folder)
    return refiner


def build_tiny_base(folder: str | Path | None = None, seed: int = 0) -> SmallDepthNet:
    """The default base architecture, tiny and random; saved to `folder` if given."""
    torch.manual_seed(seed)
    network = SmallDepthNet(channels=(8, 16), processing_resolution=64)
    if folder is not None:
        network.save_pretrained(folder)
    return network
