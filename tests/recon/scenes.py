"""Small synthetic depth maps with known geometry, for the reconstruction tests."""

from __future__ import annotations

import math

import numpy as np

from betterdepth_engine.recon.camera import Intrinsics, intrinsics_from_focal_px


def pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    return u, v


def plane_depth(intrinsics: Intrinsics, normal, distance: float) -> np.ndarray:
    """Depth (float32) of the plane {p : n . p = distance} seen through every pixel."""
    u, v = pixel_grid(intrinsics.height, intrinsics.width)
    rays = np.stack(((u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy, np.ones_like(u)))
    return (distance / np.tensordot(np.asarray(normal, float), rays, axes=1)).astype(np.float32)


def grazing_plane(size: int, focal_px: float, angle_deg: float) -> tuple[np.ndarray, Intrinsics]:
    """A plane seen at `angle_deg` between the central viewing ray and the surface, tilted along the image
    diagonal (the direction in which the quad test sees the largest depth change)."""
    intrinsics = intrinsics_from_focal_px(size, size, focal_px)
    tilt = math.radians(90 - angle_deg)
    normal = (-math.sin(tilt) / math.sqrt(2), -math.sin(tilt) / math.sqrt(2), -math.cos(tilt))
    return plane_depth(intrinsics, normal, -2.0), intrinsics


def step_edge(height: int = 24, width: int = 32) -> np.ndarray:
    """Metric depth: a near slab (depth 1) on the left, a far wall (depth 2) on the right, split at column 13/14."""
    depth = np.full((height, width), 2.0, np.float32)
    depth[:, :14] = 1.0
    return depth


def sphere_on_wall(height: int = 48, width: int = 64) -> np.ndarray:
    """Affine-invariant disparity of a sphere in front of a slightly tilted wall with fine ripples."""
    u, v = pixel_grid(height, width)
    wall = 0.2 + 0.05 * u / width + 0.01 * np.sin(u / 2.0) * np.sin(v / 2.0)
    radius = 0.3 * min(height, width)
    r2 = ((u - width / 2) ** 2 + (v - height / 2) ** 2) / radius**2
    sphere = 0.8 + 0.2 * np.sqrt(np.clip(1 - r2, 0, 1))
    return np.where(r2 < 1, sphere, wall).astype(np.float32)
