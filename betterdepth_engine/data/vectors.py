"""Small array helpers; torch ones work on 3 x ... vector fields (component first).

They avoid torch calls that are very slow on CPU for this layout: norm(dim=0), all/any(dim=0) and
stacking along a new last dimension each cost 10-100x an elementwise op here.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def as_column(values, like: torch.Tensor) -> torch.Tensor:
    """A 3-vector as a 3 x 1 (x 1 ...) tensor that broadcasts against `like` (3 x ...)."""
    return torch.as_tensor(np.asarray(values, np.float32), device=like.device).view(3, *[1] * (like.dim() - 1))


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def normalized(vectors: torch.Tensor) -> torch.Tensor:
    return vectors * torch.rsqrt(dot(vectors, vectors).clamp(min=1e-24))


def sample_texture(texture: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of a 1 x C x H x W texture at grid_sample coordinates x, y in [-1, 1] (align_corners;
    any equal shapes) -> C x shape. The grid is a strided view: building it interleaved costs more than the lookup."""
    grid = torch.stack([x.reshape(-1), y.reshape(-1)]).T[None, :, None, :]
    return F.grid_sample(texture, grid, align_corners=True).view(texture.shape[1], *x.shape)


def concatenated_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """concatenate([arange(s, s + n) for s, n in zip(starts, lengths)]) without a Python loop."""
    run_start = np.cumsum(lengths) - lengths
    return np.arange(lengths.sum()) + np.repeat(starts - run_start, lengths)


def apply_rotation(matrix: np.ndarray, vectors: torch.Tensor) -> torch.Tensor:
    """A fixed 3x3 numpy matrix times every vector of a 3 x ... field (einsum is several times slower here)."""
    m = np.asarray(matrix, np.float64)
    return torch.stack([float(m[i, 0]) * vectors[0] + float(m[i, 1]) * vectors[1] + float(m[i, 2]) * vectors[2]
                        for i in range(3)])


def cross(a, b) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross costs ~50x more for one pair)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])
