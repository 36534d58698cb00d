"""Getting images and maps to a network's working size and back (Marigold's resize-then-pad convention)."""

from __future__ import annotations

import numpy as np
import torch


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> [1, 3, H, W] float32 in [-1, 1]."""
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def resize_and_pad(tensor: torch.Tensor, processing_resolution: int, multiple: int) -> tuple[torch.Tensor, tuple]:
    """Resize so the long side is `processing_resolution` (0 keeps the size), then pad to a multiple of `multiple`."""
    from diffusers.pipelines.marigold import MarigoldImageProcessor as Resizer

    if processing_resolution > 0:
        tensor = Resizer.resize_to_max_edge(tensor, processing_resolution, "bilinear")
    return Resizer.pad_image(tensor, multiple)


def unpad(tensor: torch.Tensor, padding: tuple) -> torch.Tensor:
    from diffusers.pipelines.marigold import MarigoldImageProcessor as Resizer

    return Resizer.unpad_image(tensor, padding)
