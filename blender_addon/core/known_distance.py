"""Known distance: one measured distance sets the metric scale of a photo's mesh.

A photo's depth is known only up to the depth model's affine ambiguity in disparity,
1 / depth = s * disparity + t; the engine lifts it with a chosen depth range (far/near ratio), which fixes the
ratio t / s, and an arbitrary overall scale. One measured distance determines one number. The assumption made
here: the shape is kept (every ratio of two depths, hence the far/near ratio) and the scale is solved, i.e.
every depth is multiplied by D / d (in inverse depth both s and t are divided by it): the mesh is scaled about
the camera, so every vertex stays on its pixel's ray. Solving s with t kept instead would let a single point
decide the scene's shape (one measured near the far end can push near parts behind the camera), and nothing
measured supports that change. For a shape fit, use two or more measurements (scene alignment does that).
"""

from __future__ import annotations

import numpy as np

MEASURES = ("RAY", "AXIS")  # distance to the point / to the plane through it facing the camera (focus plane)


def pixels_of_uvs(uvs: np.ndarray, width: int, height: int) -> np.ndarray:
    """N x 2 (column, row) pixel centres of per-vertex UVs (origin bottom-left, one vertex per pixel)."""
    uvs = np.asarray(uvs, np.float64)
    return np.stack((uvs[:, 0] * width - 0.5, (1.0 - uvs[:, 1]) * height - 0.5), axis=1)


def vertex_at_pixel(uvs: np.ndarray, width: int, height: int, column: float, row: float) -> int:
    """The vertex whose pixel is nearest to (column, row): the pixel's own where the mesh has it."""
    offsets = pixels_of_uvs(uvs, width, height) - (column, row)
    return int(np.argmin(np.einsum("ij,ij->i", offsets, offsets)))


def distance_factor(point: np.ndarray, distance: float, measure: str) -> float:
    """What every camera-frame coordinate is multiplied by so that `point` lies at `distance` from the camera
    (RAY: Euclidean; AXIS: along the view axis, i.e. the focus plane through the point)."""
    if measure not in MEASURES:
        raise ValueError(f"Unknown measure '{measure}'; use {' or '.join(MEASURES)}.")
    if not (np.isfinite(distance) and distance > 0):
        raise ValueError(f"The known distance must be a positive length, got {distance}.")
    point = np.asarray(point, np.float64)
    current = float(np.linalg.norm(point)) if measure == "RAY" else abs(float(point[2]))
    if not (np.isfinite(current) and current > 0):
        raise ValueError("The picked point is at the camera; pick a point on the surface.")
    return distance / current
