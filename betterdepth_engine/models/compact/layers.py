"""Building blocks of the compact modules, each the plain-torch twin of a diffusers layer.

Parameter names match diffusers' exactly (a state dict loads with strict=True) and every operation runs in
diffusers' order, so outputs agree to float rounding (tests/models/test_compact.py compares them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ModelConfig(dict):
    """A component's config.json: read as `config.key` or `config.get(key)`, like diffusers' FrozenDict."""

    def __getattr__(self, key: str):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class CompactModule(nn.Module):
    """A module with a config and the `device`/`dtype` properties the refiner reads."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = ModelConfig(config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


class ResnetBlock(nn.Module):
    """diffusers' ResnetBlock2D ("default" time-embedding norm, 3x3 convolutions, SiLU)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, eps: float,
                 time_channels: int | None = None, output_scale_factor: float = 1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(time_channels, out_channels) if time_channels else None
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.output_scale_factor = output_scale_factor

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            hidden = hidden + self.time_emb_proj(F.silu(time_embedding))[:, :, None, None]
        hidden = self.conv2(F.silu(self.norm2(hidden)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return (shortcut + hidden) / self.output_scale_factor


class Downsample(nn.Module):
    """A stride-2 3x3 convolution; padding 0 means diffusers' asymmetric (right, bottom) zero pad."""

    def __init__(self, channels: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)
        self.pad_right_bottom = padding == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_right_bottom:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour 2x (or to `size`, the matching skip's size) and a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)


class Attention(nn.Module):
    """Multi-head scaled-dot-product attention over token sequences [B, N, C] (diffusers' Attention with
    its default torch-2 processor). `context`: the cross-attention tokens; None attends to itself."""

    def __init__(self, query_dim: int, heads: int, head_dim: int, context_dim: int | None = None,
                 bias: bool = False):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=bias)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        batch = x.shape[0]

        def split_heads(tokens: torch.Tensor) -> torch.Tensor:
            return tokens.view(batch, -1, self.heads, tokens.shape[-1] // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            split_heads(self.to_q(x)), split_heads(self.to_k(context)), split_heads(self.to_v(context)))
        attended = attended.transpose(1, 2).reshape(batch, -1, attended.shape[1] * attended.shape[3])
        return self.to_out[0](attended.to(x.dtype))


class SpatialSelfAttention(Attention):
    """The VAE mid-block attention: group norm, one head over all pixels, residual (diffusers' Attention with
    group_norm and residual_connection, whose q/k/v/out live on the module itself)."""

    def __init__(self, channels: int, groups: int, eps: float):
        super().__init__(channels, heads=1, head_dim=channels, bias=True)
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = self.group_norm(x.view(batch, channels, height * width)).transpose(1, 2)
        attended = super().forward(tokens).transpose(-1, -2).reshape(batch, channels, height, width)
        return attended + x


class FeedForward(nn.Module):
    """GEGLU feed-forward: Linear to 2 x 4C, value * gelu(gate), Linear back (diffusers' `ff.net`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.ModuleList([_GegluProjection(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class _GegluProjection(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class TransformerBlock(nn.Module):
    """diffusers' BasicTransformerBlock with layer norms: self-attention, cross-attention, GEGLU feed-forward."""

    def __init__(self, dim: int, heads: int, context_dim: int):
        super().__init__()
        head_dim = dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, head_dim, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """diffusers' Transformer2DModel on continuous inputs: norm, project in, transformer blocks, project out,
    residual. `linear_projection`: the projections are Linear on tokens (SD2) rather than 1x1 convolutions."""

    def __init__(self, channels: int, heads: int, context_dim: int, groups: int, layers: int,
                 linear_projection: bool):
        super().__init__()
        self.linear_projection = linear_projection
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        make = (lambda: nn.Linear(channels, channels)) if linear_projection else (lambda: nn.Conv2d(channels, channels, 1))
        self.proj_in = make()
        self.transformer_blocks = nn.ModuleList(TransformerBlock(channels, heads, context_dim) for _ in range(layers))
        self.proj_out = make()

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        hidden = self.norm(x)
        if not self.linear_projection:
            hidden = self.proj_in(hidden)
        hidden = hidden.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        if self.linear_projection:
            hidden = self.proj_in(hidden)
        for block in self.transformer_blocks:
            hidden = block(hidden, context)
        if self.linear_projection:
            hidden = self.proj_out(hidden)
        hidden = hidden.reshape(batch, height, width, channels).permute(0, 3, 1, 2).contiguous()
        if not self.linear_projection:
            hidden = self.proj_out(hidden)
        return hidden + x


def timestep_embedding(timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool, freq_shift: float) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps [B] -> [B, dim] (diffusers' get_timestep_embedding)."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / (half - freq_shift)
    angles = timesteps[:, None].float() * torch.exp(exponent)[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if flip_sin_to_cos:
        embedding = torch.cat([embedding[:, half:], embedding[:, :half]], dim=-1)
    return F.pad(embedding, (0, 1)) if dim % 2 else embedding
