"""Normalisation, least-squares alignment and ensembling of depth/disparity maps.

Short pure torch functions, batched over the first dimension, usable on any device. The same functions serve
inference (conditioning normalisation, ensembling), training (global pre-alignment) and evaluation.
"""

from __future__ import annotations

import torch

# Marigold's normalisation: the 2% and 98% percentiles of the valid pixels map to -1 and 1.
LOW_PERCENTILE = 0.02
HIGH_PERCENTILE = 0.98


def valid_percentiles(
    values: torch.Tensor, valid_mask: torch.Tensor, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample `low` and `high` quantiles of the valid pixels. values, valid_mask: [B, ...] -> ([B], [B])."""
    lows, highs = [], []
    for sample, mask in zip(values.flatten(1), valid_mask.flatten(1)):
        picked = sample[mask].float()
        if picked.numel() == 0:
            picked = torch.zeros(1, device=values.device)
        # torch.quantile refuses more than 16M elements; a strided subsample gives the same percentiles.
        picked = picked[:: max(1, picked.numel() // 4_000_000)]
        quantiles = torch.quantile(picked, torch.tensor([low, high], device=picked.device))
        lows.append(quantiles[0])
        highs.append(quantiles[1])
    return torch.stack(lows).to(values.dtype), torch.stack(highs).to(values.dtype)


def normalize_to_unit_range(
    values: torch.Tensor, low_value: torch.Tensor, high_value: torch.Tensor
) -> torch.Tensor:
    """Map low_value -> -1 and high_value -> 1 per sample, clipped to [-1, 1]. values: [B, ...]; bounds: [B]."""
    shape = (-1,) + (1,) * (values.dim() - 1)
    span = (high_value - low_value).clamp_min(1e-6).view(shape)
    return ((values - low_value.view(shape)) / span * 2.0 - 1.0).clamp(-1.0, 1.0)


def denormalize_from_unit_range(
    normalized: torch.Tensor, low_value: torch.Tensor, high_value: torch.Tensor
) -> torch.Tensor:
    """Inverse of `normalize_to_unit_range` (without the clipping)."""
    shape = (-1,) + (1,) * (normalized.dim() - 1)
    span = (high_value - low_value).clamp_min(1e-6).view(shape)
    return (normalized + 1.0) / 2.0 * span + low_value.view(shape)


def fit_scale_shift(
    source: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares (scale, shift) = argmin ||scale * source + shift - target||^2 over valid pixels, per sample.

    source, target, valid_mask: [B, ...] -> scale [B], shift [B]. A constant source (or fewer than two valid
    pixels) gets scale 0 and the mean target as shift, the least-squares answer with the smallest scale.
    """
    weight = valid_mask.flatten(1).to(torch.float64)
    x = source.flatten(1).to(torch.float64)
    y = target.flatten(1).to(torch.float64)
    count = weight.sum(1).clamp_min(1.0)
    mean_x = (weight * x).sum(1) / count
    mean_y = (weight * y).sum(1) / count
    # Centred sums keep the 2x2 normal equations well conditioned for values far from zero.
    dx = (x - mean_x[:, None]) * weight
    covariance = (dx * (y - mean_y[:, None])).sum(1)
    variance = (dx * (x - mean_x[:, None])).sum(1)
    degenerate = variance <= 1e-12 * count
    scale = torch.where(degenerate, torch.zeros_like(variance), covariance / variance.clamp_min(1e-300))
    shift = mean_y - scale * mean_x
    return scale.to(source.dtype), shift.to(source.dtype)


def apply_scale_shift(values: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    shape = (-1,) + (1,) * (values.dim() - 1)
    return values * scale.view(shape) + shift.view(shape)


def align_to(source: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor) -> torch.Tensor:
    """`source` moved by its least-squares scale and shift onto `target`."""
    scale, shift = fit_scale_shift(source, target, valid_mask)
    return apply_scale_shift(source, scale, shift)


def ensemble_affine_invariant(
    members: torch.Tensor, valid_mask: torch.Tensor, reduction: str = "mean", iterations: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine E affine-invariant predictions of one image into one, plus a per-pixel uncertainty.

    Each member gets the scale and shift that best fits it to the current consensus (starting from the plain
    mean or median), the aligned members are reduced again, and this repeats. The consensus stays in the
    members' common frame (the conditioning's frame for the refiner), so no renormalisation is needed.
    members: [E, H, W]; valid_mask: [H, W]. Returns (ensembled [H, W], uncertainty [H, W]): the standard
    deviation of the aligned members for "mean", their median absolute deviation for "median".
    """
    if reduction not in ("mean", "median"):
        raise ValueError(f"reduction must be 'mean' or 'median', not {reduction!r}")

    def reduce(stack: torch.Tensor) -> torch.Tensor:
        return stack.mean(0) if reduction == "mean" else stack.median(0).values

    if members.shape[0] == 1:
        return members[0], torch.zeros_like(members[0])
    masks = valid_mask.expand_as(members)
    consensus = reduce(members)
    aligned = members
    for _ in range(iterations):
        aligned = align_to(members, consensus.expand_as(members), masks)
        consensus = reduce(aligned)
    if reduction == "mean":
        uncertainty = aligned.std(0, unbiased=False)
    else:
        uncertainty = (aligned - consensus).abs().median(0).values
    return consensus, uncertainty


def guard_correction(refined: torch.Tensor, conditioning: torch.Tensor, threshold: float, radius: int,
                     median_radius: int = 0) -> torch.Tensor:
    """`refined` with its correction to `conditioning` kept from harming surfaces ([B, 1, H, W], [-1, 1] units).

    First a soft threshold: corrections smaller than `threshold` are dropped and larger ones shrunk by it, so a
    faint texture that a refiner draws on a flat area leaves the base's plane as it was. With `median_radius`
    > 0 a move towards the conditioning's median over the (2 median_radius + 1)^2 window (the base without its
    speckle; a median keeps planes, ramps and steps) is kept in full, up to `threshold`: the refiner may still
    smooth the base's own texture. Then each pixel is clamped to the conditioning's range over the
    (2 radius + 1)^2 window around it: sharpening a blurred ramp into a step stays inside that range, while the
    overshoot on either side of the step (a halo that bends the surfaces next to an edge) does not.
    `threshold` 0, `radius` < 0 and `median_radius` 0 turn those steps off.
    """
    low, high = conditioning, conditioning
    if median_radius > 0:
        window = 2 * median_radius + 1
        padded = torch.nn.functional.pad(conditioning, (median_radius,) * 4, mode="replicate")
        median = padded.unfold(2, window, 1).unfold(3, window, 1).flatten(-2).median(-1).values
        toward = (median - conditioning).clamp(-threshold, threshold)
        low, high = conditioning + toward.clamp_max(0.0), conditioning + toward.clamp_min(0.0)
    kept = torch.minimum(torch.maximum(refined, low), high)
    beyond = refined - kept
    guarded = kept + beyond.sign() * (beyond.abs() - threshold).clamp_min(0.0)
    if radius >= 0:
        window = 2 * radius + 1
        high = torch.nn.functional.max_pool2d(conditioning, window, stride=1, padding=radius)
        low = -torch.nn.functional.max_pool2d(-conditioning, window, stride=1, padding=radius)
        guarded = torch.minimum(torch.maximum(guarded, low), high)
    return guarded


def disparity_to_depth_normalized(disparity_normalized: torch.Tensor, depth_range_ratio: float) -> torch.Tensor:
    """Normalised disparity in [-1, 1] -> normalised depth in [-1, 1] (for U-Nets that denoise depth).

    Disparity -1..1 is read as the inverse of a depth from `depth_range_ratio` (far) down to 1 (near);
    that depth range is then mapped linearly to [-1, 1] (near = -1, as in Marigold). The exact inverse is
    `depth_to_disparity_normalized`.
    """
    inverse_far = 1.0 / depth_range_ratio
    disparity = inverse_far + (disparity_normalized + 1.0) / 2.0 * (1.0 - inverse_far)
    depth = 1.0 / disparity
    return (depth - 1.0) / (depth_range_ratio - 1.0) * 2.0 - 1.0


def depth_to_disparity_normalized(depth_normalized: torch.Tensor, depth_range_ratio: float) -> torch.Tensor:
    """Inverse of `disparity_to_depth_normalized`."""
    inverse_far = 1.0 / depth_range_ratio
    depth = 1.0 + (depth_normalized + 1.0) / 2.0 * (depth_range_ratio - 1.0)
    return (1.0 / depth - inverse_far) / (1.0 - inverse_far) * 2.0 - 1.0
