"""BetterDepth's training objectives as short pure functions (method.md §2), batched over the first dimension.

Spaces: `target` is the ground-truth disparity normalised to [-1, 1]; `base` is the base model's raw
affine-invariant disparity; masks are bool. Image-space tensors are [B, 1, H, W].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from betterdepth_engine import align


def normalized_target_disparity(depth: torch.Tensor, valid_mask: torch.Tensor, sky_as_far: bool):
    """Ground-truth depth (metres) -> (disparity normalised to [-1, 1], mask of pixels the loss may use).

    With `sky_as_far`, pixels without depth (sky) count as valid disparity 0, i.e. infinitely far, so the
    silhouettes against the sky are part of what the model learns.
    """
    disparity = torch.where(valid_mask, 1.0 / depth.clamp_min(1e-6), 0.0)
    supervised = torch.ones_like(valid_mask) if sky_as_far else valid_mask
    low, high = align.valid_percentiles(disparity, supervised)
    normalized = align.normalize_to_unit_range(disparity, low, high)
    return torch.where(supervised, normalized, -1.0), supervised


def pre_align(base: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor) -> torch.Tensor:
    """Global pre-alignment: the base moved by its least-squares scale/shift onto the normalised target,
    clipped to the VAE's [-1, 1] range."""
    return align.align_to(base, target, valid_mask).clamp(-1.0, 1.0)


def self_normalized(base: torch.Tensor, valid_mask: torch.Tensor) -> torch.Tensor:
    """The base normalised by its own percentiles, as at inference (the 'no pre-alignment' ablation)."""
    low, high = align.valid_percentiles(base, valid_mask)
    return torch.where(valid_mask, align.normalize_to_unit_range(base, low, high), -1.0)


def patch_keep_mask(conditioning: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor,
                    patch_size: int, eta: float) -> torch.Tensor:
    """Local patch masking: keep a w x w patch iff ||cond_n - target_n||_2 <= w * eta (per-patch RMS <= eta).

    Returns [B, 1, H/w, W/w]. RMS is over the valid pixels of the patch; a patch with none is not kept.
    """
    squared_error = torch.where(valid_mask, (conditioning - target) ** 2, 0.0)
    error_sum = F.avg_pool2d(squared_error, patch_size) * patch_size**2
    valid_count = F.avg_pool2d(valid_mask.float(), patch_size) * patch_size**2
    rms = (error_sum / valid_count.clamp_min(1.0)).sqrt()
    return (rms <= eta) & (valid_count > 0)


def latent_valid_mask(valid_mask: torch.Tensor, factor: int) -> torch.Tensor:
    """A latent pixel is valid only if every image pixel under it is valid. [B,1,H,W] -> [B,1,H/f,W/f]."""
    return -F.max_pool2d(-valid_mask.float(), factor) > 0.5


def v_prediction_target(clean_latent: torch.Tensor, noise: torch.Tensor, alphas_cumprod_t: torch.Tensor):
    """(noisy latent z_t, target v) for ᾱ_t per sample: z_t = √ᾱ z + √(1-ᾱ) ε, v = √ᾱ ε - √(1-ᾱ) z."""
    shape = (-1,) + (1,) * (clean_latent.dim() - 1)
    signal = alphas_cumprod_t.sqrt().view(shape)
    sigma = (1.0 - alphas_cumprod_t).sqrt().view(shape)
    return signal * clean_latent + sigma * noise, signal * noise - sigma * clean_latent


def clean_latent_estimate(noisy: torch.Tensor, velocity: torch.Tensor, alphas_cumprod_t: torch.Tensor) -> torch.Tensor:
    """The clean latent a v-prediction implies: z = √ᾱ z_t - √(1-ᾱ) v (at t = 999 with zero terminal SNR: -v)."""
    shape = (-1,) + (1,) * (noisy.dim() - 1)
    return alphas_cumprod_t.sqrt().view(shape) * noisy - (1.0 - alphas_cumprod_t).sqrt().view(shape) * velocity


def gradient_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of horizontal and vertical neighbour differences between prediction and target,
    over neighbour pairs both inside `mask` ([B,1,H,W]). 0 for any prediction that equals the target plus a
    constant; bumps and ripples raise it. An empty mask gives 0 (still attached to the prediction)."""
    residual = prediction - target
    both_x = (mask[..., 1:] & mask[..., :-1]).to(residual.dtype)
    both_y = (mask[..., 1:, :] & mask[..., :-1, :]).to(residual.dtype)
    total = ((residual[..., 1:] - residual[..., :-1]).abs() * both_x).sum()
    total = total + ((residual[..., 1:, :] - residual[..., :-1, :]).abs() * both_y).sum()
    return total / (both_x.sum() + both_y.sum()).clamp_min(1.0)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the kept elements only ([B,1,h,w] mask broadcast over channels).

    An all-empty mask gives a zero loss that still depends on the prediction, so the step is a no-op
    instead of a NaN.
    """
    weight = mask.to(prediction.dtype).expand_as(prediction)
    return ((prediction - target) ** 2 * weight).sum() / weight.sum().clamp_min(1.0)


def scale_shift_invariant_loss(prediction: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor,
                               gradient_weight: float = 0.5) -> torch.Tensor:
    """MiDaS-style affine-invariant loss for the base model: per-image least squares, then mean absolute
    error, plus a multi-scale gradient-matching term that keeps edges where they belong."""
    aligned = align.align_to(prediction, target, valid_mask)
    residual = torch.where(valid_mask, aligned - target, 0.0)
    loss = residual.abs().sum() / valid_mask.sum().clamp_min(1)
    for _ in range(4):
        if gradient_weight == 0 or residual.shape[-1] < 4:
            break
        both_x = valid_mask[..., 1:] & valid_mask[..., :-1]
        both_y = valid_mask[..., 1:, :] & valid_mask[..., :-1, :]
        gradient_x = torch.where(both_x, (residual[..., 1:] - residual[..., :-1]).abs(), 0.0)
        gradient_y = torch.where(both_y, (residual[..., 1:, :] - residual[..., :-1, :]).abs(), 0.0)
        loss = loss + gradient_weight * (gradient_x.sum() + gradient_y.sum()) / valid_mask.sum().clamp_min(1)
        residual = F.avg_pool2d(residual, 2)
        valid_mask = F.avg_pool2d(valid_mask.float(), 2) > 0.99
    return loss
