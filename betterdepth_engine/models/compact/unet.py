"""The refiner's conditional U-Net without diffusers: diffusers' UNet2DConditionModel for the configurations
`unsupported_reason` accepts (SD2-style: down/up blocks with or without cross-attention, a cross-attention mid
block, positional time embedding). Anything else loads through diffusers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from betterdepth_engine.models.compact.layers import (
    CompactModule, Downsample, ResnetBlock, SpatialTransformer, Upsample, timestep_embedding,
)

DOWN_BLOCKS = {"DownBlock2D": False, "CrossAttnDownBlock2D": True}  # type -> has cross-attention
UP_BLOCKS = {"UpBlock2D": False, "CrossAttnUpBlock2D": True}
# Config keys whose value must be exactly this (diffusers' defaults) for the compact U-Net to be the same model.
REQUIRED = {
    "act_fn": "silu", "addition_embed_type": None, "attention_type": "default", "center_input_sample": False,
    "class_embed_type": None, "class_embeddings_concat": False, "conv_in_kernel": 3, "conv_out_kernel": 3,
    "cross_attention_norm": None, "dual_cross_attention": False, "encoder_hid_dim": None,
    "encoder_hid_dim_type": None, "mid_block_only_cross_attention": None, "mid_block_type": "UNetMidBlock2DCrossAttn",
    "num_class_embeds": None, "only_cross_attention": False, "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default", "reverse_transformer_layers_per_block": None, "time_cond_proj_dim": None,
    "time_embedding_act_fn": None, "time_embedding_dim": None, "time_embedding_type": "positional",
    "timestep_post_act": None,
}


def unsupported_reason(config: dict) -> str | None:
    """Why this U-Net config is not one the compact U-Net implements, or None when it is."""
    for key, value in REQUIRED.items():
        if config.get(key, value) != value:
            return f"{key}={config[key]!r}"
    if not set(config["down_block_types"]) <= set(DOWN_BLOCKS) or not set(config["up_block_types"]) <= set(UP_BLOCKS):
        return "block types"
    for key in ("layers_per_block", "cross_attention_dim", "transformer_layers_per_block", "norm_num_groups"):
        if not isinstance(config.get(key), int):
            return f"{key} is not one integer"
    return None


def _per_block(value, count: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


class _Block(nn.Module):
    """A down or up block: resnets, each followed by a spatial transformer in cross-attention blocks, and an
    optional resampler (`downsamplers` / `upsamplers`, named as in diffusers)."""

    def __init__(self, resnets: list[ResnetBlock], transformers: list[SpatialTransformer] | None,
                 resampler_name: str | None, resampler: nn.Module | None):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(transformers) if transformers else None
        if resampler is not None:
            setattr(self, resampler_name, nn.ModuleList([resampler]))

    def layers(self):
        return zip(self.resnets, self.attentions or [None] * len(self.resnets))


class CompactUNet(CompactModule):
    """[B, in_channels, h, w] noisy input, timestep, prompt tokens -> [B, out_channels, h, w]."""

    def __init__(self, config: dict):
        super().__init__(config)
        channels = list(config["block_out_channels"])
        count = len(channels)
        heads = _per_block(config.get("num_attention_heads") or config["attention_head_dim"], count)
        layers, groups, eps = config["layers_per_block"], config["norm_num_groups"], config["norm_eps"]
        context, depth = config["cross_attention_dim"], config["transformer_layers_per_block"]
        linear, time_channels = config["use_linear_projection"], 4 * channels[0]
        scale = config.get("resnet_out_scale_factor", 1.0)

        def resnet(in_channels: int, out_channels: int, output_scale_factor: float = scale) -> ResnetBlock:
            return ResnetBlock(in_channels, out_channels, groups, eps, time_channels, output_scale_factor)

        def transformer(width: int, block_heads: int) -> SpatialTransformer:
            return SpatialTransformer(width, block_heads, context, groups, depth, linear)

        self.conv_in = nn.Conv2d(config["in_channels"], channels[0], 3, padding=1)
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(channels[0], time_channels)
        self.time_embedding.linear_2 = nn.Linear(time_channels, time_channels)

        self.down_blocks = nn.ModuleList()
        previous = channels[0]
        for index, block_type in enumerate(config["down_block_types"]):
            width, final = channels[index], index == count - 1
            resnets = [resnet(previous if layer == 0 else width, width) for layer in range(layers)]
            transformers = [transformer(width, heads[index]) for _ in range(layers)] if DOWN_BLOCKS[block_type] else None
            downsampler = None if final else Downsample(width, config["downsample_padding"])
            self.down_blocks.append(_Block(resnets, transformers, "downsamplers", downsampler))
            previous = width

        mid_scale = config.get("mid_block_scale_factor", 1.0)
        self.mid_block = _Block([resnet(channels[-1], channels[-1], mid_scale), resnet(channels[-1], channels[-1], mid_scale)],
                                [transformer(channels[-1], heads[-1])], None, None)

        self.up_blocks = nn.ModuleList()
        reversed_channels, reversed_heads = channels[::-1], heads[::-1]
        previous = reversed_channels[0]
        for index, block_type in enumerate(config["up_block_types"]):
            width, final = reversed_channels[index], index == count - 1
            skip_in = reversed_channels[min(index + 1, count - 1)]
            resnets = [resnet((previous if layer == 0 else width) + (skip_in if layer == layers else width), width)
                       for layer in range(layers + 1)]
            transformers = ([transformer(width, reversed_heads[index]) for _ in range(layers + 1)]
                            if UP_BLOCKS[block_type] else None)
            self.up_blocks.append(_Block(resnets, transformers, "upsamplers", None if final else Upsample(width)))
            previous = width

        self.conv_norm_out = nn.GroupNorm(groups, channels[0], eps=eps)
        self.conv_out = nn.Conv2d(channels[0], config["out_channels"], 3, padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, encoder_hidden_states: torch.Tensor,
                return_dict: bool = False) -> tuple[torch.Tensor]:
        """diffusers' call signature with return_dict=False: returns a 1-tuple."""
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
        time_features = timestep_embedding(timesteps, self.conv_in.out_channels, self.config["flip_sin_to_cos"],
                                           self.config["freq_shift"]).to(sample.dtype)
        time = self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(time_features)))
        context = encoder_hidden_states

        hidden = self.conv_in(sample)
        skips = [hidden]
        for block in self.down_blocks:
            for resnet, transformer in block.layers():
                hidden = resnet(hidden, time)
                if transformer is not None:
                    hidden = transformer(hidden, context)
                skips.append(hidden)
            if hasattr(block, "downsamplers"):
                hidden = block.downsamplers[0](hidden)
                skips.append(hidden)

        hidden = self.mid_block.resnets[0](hidden, time)
        hidden = self.mid_block.resnets[1](self.mid_block.attentions[0](hidden, context), time)

        for block in self.up_blocks:
            for resnet, transformer in block.layers():
                hidden = resnet(torch.cat([hidden, skips.pop()], dim=1), time)
                if transformer is not None:
                    hidden = transformer(hidden, context)
            if hasattr(block, "upsamplers"):
                # To the next skip's size, so inputs that are not a multiple of 2**blocks round-trip exactly.
                hidden = block.upsamplers[0](hidden, skips[-1].shape[-2:])

        return (self.conv_out(F.silu(self.conv_norm_out(hidden))),)
