"""Getting images and maps to a network's working size and back (Marigold's resize-then-pad convention:
antialiased bilinear resize of the long side, then replicate-padding at the bottom and right; the same
operations as diffusers' MarigoldImageProcessor, without importing diffusers at run time)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from betterdepth_engine.errors import BetterDepthError


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> [1, 3, H, W] float32 in [-1, 1]."""
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def resize_and_pad(tensor: torch.Tensor, processing_resolution: int, multiple: int) -> tuple[torch.Tensor, tuple]:
    """Resize so the long side is `processing_resolution` (0 keeps the size), then pad to a multiple of `multiple`.

    Refuses (BAD_IMAGE) an aspect ratio so extreme that the short side would shrink to nothing.
    Returns the tensor and the (bottom, right) padding that `unpad` removes.
    """
    height, width = tensor.shape[-2:]
    long_side = processing_resolution or max(height, width)
    short_side = min(height, width) * long_side // max(height, width)
    if short_side < 1:
        raise BetterDepthError(
            BetterDepthError.BAD_IMAGE,
            f"The image is {width}x{height}: at the {long_side} px long side the model works at, its short side "
            "would be less than one pixel (extreme aspect ratio).",
            f"Crop it to an aspect ratio of at most {long_side}:1.",
        )
    if processing_resolution > 0:
        size = (height * processing_resolution // max(height, width), width * processing_resolution // max(height, width))
        tensor = F.interpolate(tensor, size, mode="bilinear", antialias=True)
    bottom, right = -tensor.shape[-2] % multiple, -tensor.shape[-1] % multiple
    return F.pad(tensor, (0, right, 0, bottom), mode="replicate"), (bottom, right)


def unpad(tensor: torch.Tensor, padding: tuple) -> torch.Tensor:
    bottom, right = padding
    return tensor[..., : tensor.shape[-2] - bottom, : tensor.shape[-1] - right]
