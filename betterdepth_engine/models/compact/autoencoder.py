"""The refiner's autoencoder without diffusers: diffusers' AutoencoderKL (DownEncoderBlock2D/UpDecoderBlock2D,
optional mid-block attention), of which inference uses the posterior mean and the decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from betterdepth_engine.models.compact.layers import (
    CompactModule, Downsample, ResnetBlock, SpatialSelfAttention, Upsample,
)

BLOCK_EPS = 1e-6  # diffusers' Encoder/Decoder use this eps regardless of the config


def unsupported_reason(config: dict) -> str | None:
    """Why this AutoencoderKL config is not one the compact autoencoder implements, or None when it is."""
    if config.get("act_fn", "silu") != "silu":
        return f"act_fn={config['act_fn']!r}"
    if set(config["down_block_types"]) != {"DownEncoderBlock2D"} or set(config["up_block_types"]) != {"UpDecoderBlock2D"}:
        return "block types"
    return None


class _MidBlock(nn.Module):
    """resnet, (attention), resnet: diffusers' UNetMidBlock2D without a time embedding."""

    def __init__(self, channels: int, groups: int, with_attention: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(channels, channels, groups, BLOCK_EPS) for _ in range(2)])
        self.attentions = nn.ModuleList([SpatialSelfAttention(channels, groups, BLOCK_EPS)]) if with_attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x)


class _Stage(nn.Module):
    def __init__(self, resnets: list[ResnetBlock], resampler_name: str, resampler: nn.Module | None):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        if resampler is not None:
            setattr(self, resampler_name, nn.ModuleList([resampler]))


class _Encoder(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        channels, groups, layers = list(config["block_out_channels"]), config["norm_num_groups"], config["layers_per_block"]
        self.conv_in = nn.Conv2d(config["in_channels"], channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        previous = channels[0]
        for index, width in enumerate(channels):
            resnets = [ResnetBlock(previous if layer == 0 else width, width, groups, BLOCK_EPS) for layer in range(layers)]
            downsampler = Downsample(width, padding=0) if index < len(channels) - 1 else None
            self.down_blocks.append(_Stage(resnets, "downsamplers", downsampler))
            previous = width
        self.mid_block = _MidBlock(channels[-1], groups, config.get("mid_block_add_attention", True))
        self.conv_norm_out = nn.GroupNorm(groups, channels[-1], eps=BLOCK_EPS)
        self.conv_out = nn.Conv2d(channels[-1], 2 * config["latent_channels"], 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            for resnet in block.resnets:
                x = resnet(x)
            if hasattr(block, "downsamplers"):
                x = block.downsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))


class _Decoder(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        channels, groups, layers = list(config["block_out_channels"]), config["norm_num_groups"], config["layers_per_block"]
        reversed_channels = channels[::-1]
        self.conv_in = nn.Conv2d(config["latent_channels"], reversed_channels[0], 3, padding=1)
        self.mid_block = _MidBlock(reversed_channels[0], groups, config.get("mid_block_add_attention", True))
        self.up_blocks = nn.ModuleList()
        previous = reversed_channels[0]
        for index, width in enumerate(reversed_channels):
            resnets = [ResnetBlock(previous if layer == 0 else width, width, groups, BLOCK_EPS)
                       for layer in range(layers + 1)]
            upsampler = Upsample(width) if index < len(channels) - 1 else None
            self.up_blocks.append(_Stage(resnets, "upsamplers", upsampler))
            previous = width
        self.conv_norm_out = nn.GroupNorm(groups, channels[0], eps=BLOCK_EPS)
        self.conv_out = nn.Conv2d(channels[0], config["out_channels"], 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            for resnet in block.resnets:
                x = resnet(x)
            if hasattr(block, "upsamplers"):
                x = block.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class CompactAutoencoderKL(CompactModule):
    """encode: image [B, C, H, W] -> posterior mean [B, latent, H/f, W/f]; decode: latent -> image."""

    def __init__(self, config: dict):
        super().__init__(config)
        latent = config["latent_channels"]
        self.encoder = _Encoder(config)
        self.decoder = _Decoder(config)
        self.quant_conv = nn.Conv2d(2 * latent, 2 * latent, 1) if config.get("use_quant_conv", True) else None
        self.post_quant_conv = nn.Conv2d(latent, latent, 1) if config.get("use_post_quant_conv", True) else None

    def encode(self, pixels: torch.Tensor, return_dict: bool = False) -> tuple[torch.Tensor]:
        """diffusers' signature with return_dict=False, but the 1-tuple holds the posterior's mean (all that
        inference uses) rather than the distribution."""
        moments = self.encoder(pixels)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        return (moments.chunk(2, dim=1)[0],)

    def decode(self, latent: torch.Tensor, return_dict: bool = False) -> tuple[torch.Tensor]:
        if self.post_quant_conv is not None:
            latent = self.post_quant_conv(latent)
        return (self.decoder(latent),)
