"""Tiny random-weight models with the real architectures, built offline in about a second.

They exercise every loading and inference path in tests, demos and CPU benchmarks before trained weights
exist. Their outputs are meaningless: anything made with them is labelled "untrained tiny model".
"""

from __future__ import annotations

import json
import tempfile
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


def tiny_text_components(hidden_size: int = TINY_CROSS_ATTENTION_DIM):
    """A CLIP tokenizer with a 4-token vocabulary and a 1-layer CLIP text encoder (for SD/Marigold layouts)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    with tempfile.TemporaryDirectory() as folder:
        vocab, merges = Path(folder) / "vocab.json", Path(folder) / "merges.txt"
        vocab.write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3}))
        merges.write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=4, hidden_size=hidden_size, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=8, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    return tokenizer, text_encoder


def marigold_pipeline(vae, unet):
    """diffusers' MarigoldDepthPipeline around the given VAE and 8-channel U-Net (tiny text encoder)."""
    from diffusers import DDIMScheduler, MarigoldDepthPipeline

    tokenizer, text_encoder = tiny_text_components(unet.config.cross_attention_dim)
    return MarigoldDepthPipeline(
        unet=unet, vae=vae, scheduler=DDIMScheduler(**tiny_scheduler_config(), timestep_spacing="trailing"),
        text_encoder=text_encoder, tokenizer=tokenizer, prediction_type="depth", scale_invariant=True,
        shift_invariant=True, default_denoising_steps=2, default_processing_resolution=64,
    )


def build_tiny_marigold(folder: str | Path, seed: int = 0) -> Path:
    """A tiny Marigold depth checkpoint (8-channel U-Net), saved with diffusers' own save_pretrained."""
    torch.manual_seed(seed)
    marigold_pipeline(tiny_vae(), tiny_unet(in_channels=8)).save_pretrained(folder)
    return Path(folder)


def build_tiny_stable_diffusion(folder: str | Path, seed: int = 0) -> Path:
    """The parts of a Stable Diffusion 2 checkpoint that a refiner is created from (4-channel U-Net)."""
    from diffusers import DDIMScheduler

    torch.manual_seed(seed)
    folder = Path(folder)
    tokenizer, text_encoder = tiny_text_components()
    tiny_vae().save_pretrained(folder / "vae")
    tiny_unet(in_channels=4).save_pretrained(folder / "unet")
    DDIMScheduler(**tiny_scheduler_config()).save_pretrained(folder / "scheduler")
    text_encoder.save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    return folder
