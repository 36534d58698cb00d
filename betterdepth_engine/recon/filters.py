"""Optional clean-ups of the depth grid before meshing: small-hole filling and edge-aware smoothing.

Both work in log depth, where a constant ratio (the discontinuity test) is a constant difference.
"""

from __future__ import annotations

import numpy as np


def _box_sum(mask: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)^2 window around every pixel, edges replicated (an integral image: O(1) in r)."""
    padded = np.pad(mask.astype(np.int32), radius, mode="edge")
    integral = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1), np.int32)
    integral[1:, 1:] = padded.cumsum(0).cumsum(1)
    size = 2 * radius + 1
    return integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]


def small_holes(valid: np.ndarray, max_hole_px: int) -> np.ndarray:
    """Invalid pixels inside gaps narrower than max_hole_px: a morphological closing of the valid mask.

    Edges are replicated, so a wide invalid region touching the border (sky) stays a region, not a hole.
    """
    radius = max(1, -(-max_hole_px // 2))
    area = (2 * radius + 1) ** 2
    dilated = _box_sum(valid, radius) > 0
    closed = _box_sum(dilated, radius) == area
    return closed & ~valid


def _neighbour_sum(values: np.ndarray) -> np.ndarray:
    """Sum of each pixel's 3 x 3 neighbourhood (zero outside)."""
    padded = np.pad(values, 1)
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def fill_small_holes(depth: np.ndarray, max_hole_px: int) -> np.ndarray:
    """Depth (NaN = invalid) with holes narrower than max_hole_px filled by peeling inwards from their rim.

    Each pass gives the hole pixels that touch known pixels the mean log depth of those neighbours.
    """
    known = np.isfinite(depth)
    holes = small_holes(known, max_hole_px)
    log_depth = np.where(known, np.log(np.where(known, depth, 1)), 0).astype(np.float32)
    for _ in range(max_hole_px):
        counts = _neighbour_sum(known.astype(np.float32))
        reached = holes & ~known & (counts > 0)
        if not reached.any():
            break
        log_depth[reached] = _neighbour_sum(log_depth * known)[reached] / counts[reached]
        known |= reached
    return np.where(known, np.exp(log_depth), np.nan).astype(np.float32)


def smooth_depth(depth: np.ndarray, iterations: int, max_ratio: float) -> np.ndarray:
    """Edge-aware smoothing: average log depth with the 4 neighbours that are on the same surface.

    Neighbours farther apart than max_ratio (the discontinuity test between adjacent pixels) never mix,
    so silhouettes stay sharp while noise on surfaces averages out.
    """
    log_depth = np.log(depth)  # NaN stays NaN and never counts as a neighbour
    limit = np.log1p(max_ratio)
    for _ in range(iterations):
        padded = np.pad(log_depth, 1, constant_values=np.nan)
        total = np.nan_to_num(log_depth)
        count = np.isfinite(log_depth).astype(np.float32)
        for neighbour in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
            with np.errstate(invalid="ignore"):
                same_surface = np.abs(neighbour - log_depth) <= limit
            total += np.where(same_surface, neighbour, 0)
            count += same_surface
        log_depth = np.where(np.isfinite(log_depth), total / np.maximum(count, 1), np.nan)
    return np.exp(log_depth).astype(np.float32)
