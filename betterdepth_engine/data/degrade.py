"""A simulated "blurry base" model: degrade ground-truth disparity the way a feed-forward depth model errs.

This is a stand-in for a real base model (such as Depth Anything) when training or testing the refiner on
synthetic data, where no pretrained base can be used. It is not a model of any particular network: it
produces the kind of error BetterDepth's refiner is meant to fix (lost fine detail, soft and slightly
displaced edges, mild low-frequency distortion) and the affine ambiguity of relative disparity (unknown
scale and shift), so that global pre-alignment and patch masking have something real to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Degradation:
    downsample: tuple[float, float]  # range of the factor detail is averaged away by
    warp_fraction: tuple[float, float]  # range of the edge displacement, as a fraction of the image width
    gain: tuple[float, float]  # range of the smooth multiplicative error (0.05 = +-5%)
    log_uniform_downsample: bool = False  # draw the factor log-uniformly: as many sharp as blurred samples


DEGRADATIONS = {
    # Over-smoothed, as in the paper's motivation and this project's CPU probe: most detail is gone.
    "blurry": Degradation(downsample=(4.0, 12.0), warp_fraction=(0.0, 0.015), gain=(0.0, 0.08)),
    # A good base: small structures survive, edges are only slightly soft (for plug-and-play tests).
    "mild": Degradation(downsample=(2.0, 4.0), warp_fraction=(0.0, 0.005), gain=(0.0, 0.03)),
    # Anything from almost exact to over-smoothed: a refiner trained on it also sees conditioning whose edges are
    # already right (and must keep them), as a real base's are in places.
    "varied": Degradation(downsample=(1.0, 12.0), warp_fraction=(0.0, 0.015), gain=(0.0, 0.08),
                          log_uniform_downsample=True),
}


def degrade_disparity(disparity: torch.Tensor, valid_mask: torch.Tensor, generator: torch.Generator,
                      kind: str = "blurry") -> torch.Tensor:
    """A base model's affine-invariant disparity, simulated from ground truth (H x W or B x H x W).

    disparity: ground-truth disparity (larger = nearer; e.g. 1 / depth), ignored where valid_mask is False.
    Invalid pixels (sky) are treated as disparity 0, as base models see the sky as infinitely far, so the
    output is defined everywhere and the sky bleeds into nearby edges as it does in real predictions.
    For each image: normalise by its 98th percentile; average away detail by a random factor (area
    downsampling, bilinear upsampling, a Gaussian blur of a quarter of that factor); displace it by a smooth
    random warp and multiply it by a smooth random gain; finally apply a random scale (0.5-2, log-uniform) and
    shift (+-0.2). All randomness comes from `generator` (a CPU torch.Generator), so results are reproducible.
    """
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose one of {sorted(DEGRADATIONS)}")
    if disparity.dim() == 2:
        return degrade_disparity(disparity[None], valid_mask[None], generator, kind)[0]
    return torch.stack([_degrade_one(d, m, generator, DEGRADATIONS[kind]) for d, m in zip(disparity, valid_mask)])


def degrade_depth(depth: torch.Tensor, valid_mask: torch.Tensor, generator: torch.Generator,
                  kind: str = "blurry") -> torch.Tensor:
    """`degrade_disparity` of ground-truth depth (metres, H x W or B x H x W; pixels without depth are sky)."""
    valid_mask = valid_mask & (depth > 0)
    return degrade_disparity(torch.where(valid_mask, 1.0 / depth.clamp_min(1e-6), 0.0), valid_mask, generator, kind)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _degrade_one(disparity, valid_mask, generator, degradation: Degradation) -> torch.Tensor:
    height, width = disparity.shape
    filled = torch.where(valid_mask, disparity, 0.0).float()
    valid_values = filled[valid_mask]
    scale = torch.quantile(valid_values, 0.98) if valid_values.numel() else filled.new_tensor(1.0)
    image = (filled / scale.clamp(min=1e-8))[None, None]

    if degradation.log_uniform_downsample:
        factor = math.exp(_uniform(generator, *map(math.log, degradation.downsample)))
    else:
        factor = _uniform(generator, *degradation.downsample)
    small = F.interpolate(image, size=(max(1, round(height / factor)), max(1, round(width / factor))), mode="area")
    image = _gaussian_blur(F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False), factor / 4)

    warp = _uniform(generator, *degradation.warp_fraction) * 2  # grid units span 2 per image width
    offsets = _smooth_field(generator, 2, height, width, image.device) * warp
    base = torch.stack(torch.meshgrid(torch.linspace(-1, 1, width, device=image.device),
                                      torch.linspace(-1, 1, height, device=image.device), indexing="xy"), dim=-1)
    image = F.grid_sample(image, (base + offsets.permute(1, 2, 0))[None], padding_mode="border", align_corners=True)
    gain = _uniform(generator, *degradation.gain)
    image = image[0, 0] * (1 + gain * _smooth_field(generator, 1, height, width, image.device)[0])

    affine_scale = math.exp(_uniform(generator, math.log(0.5), math.log(2.0)))
    return (affine_scale * image + _uniform(generator, -0.2, 0.2)).to(disparity.dtype)


def _smooth_field(generator, channels: int, height: int, width: int, device) -> torch.Tensor:
    """Random low-frequency values in about [-1, 1]: a 4 x 4 grid of uniform values, upsampled bicubically."""
    coarse = torch.rand((1, channels, 4, 4), generator=generator).to(device) * 2 - 1
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]


def _gaussian_blur(image: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of a 1 x 1 x H x W image (edges extended)."""
    radius = max(1, math.ceil(3 * sigma_px))
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (taps / sigma_px) ** 2)
    kernel = kernel / kernel.sum()
    image = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(image, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
