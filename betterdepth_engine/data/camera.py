"""Cameras for the synthetic renderer: ray grids and the screen window a bounding box can cover.

World space is metres with +Y up. Camera axes follow OpenCV: +x right, +y down, +z forward, so
depth along +z is what the rest of the engine calls depth. Pixel (row, col) looks through its
centre, (col + 0.5, row + 0.5), and the principal point is the image centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from betterdepth_engine.data.vectors import apply_rotation, cross, normalized

NEAR_M = 1e-3  # hits closer than this to a ray's origin are ignored (self-intersection guard)
_CORNER_IS_HIGH = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], bool)  # a box's 8 corners
_BOX_EDGES = np.array([(i, i | bit) for bit in (1, 2, 4) for i in range(8) if not i & bit])  # corner pairs


@dataclass(frozen=True)
class Camera:
    """A pinhole camera (focal_px > 0) or an orthographic one (metres_per_px > 0)."""

    world_from_camera: np.ndarray  # 3x3 rotation; columns are the camera's +x, +y, +z in world space
    position_m: np.ndarray  # (3,) ray origin (pinhole) or centre of the image plane (orthographic)
    height: int
    width: int
    focal_px: float = 0.0
    metres_per_px: float = 0.0

    @property
    def forward(self) -> np.ndarray:
        return self.world_from_camera[:, 2]


def look_at(position_m, target_m, roll_rad: float = 0.0) -> np.ndarray:
    """world_from_camera for a camera at position_m looking at target_m, +y (down) kept near world -Y."""
    forward = np.asarray(target_m, np.float64) - np.asarray(position_m, np.float64)
    forward /= np.linalg.norm(forward)
    world_up = np.array([0.0, 1.0, 0.0]) if abs(forward[1]) < 0.999 else np.array([0.0, 0.0, 1.0])
    right = cross(forward, world_up)  # with +Y up, forward x up points to the viewer's right
    right /= np.linalg.norm(right)
    down = cross(forward, right)
    cos_r, sin_r = np.cos(roll_rad), np.sin(roll_rad)
    right, down = cos_r * right + sin_r * down, -sin_r * right + cos_r * down
    return np.stack([right, down, forward], axis=1)


def focal_from_fov(width: int, horizontal_fov_rad: float) -> float:
    return 0.5 * width / np.tan(0.5 * horizontal_fov_rad)


def camera_rays(camera: Camera, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(origins, unit directions) in world space, float32: directions 3 x H x W; origins 3 x H x W for an
    orthographic camera and 3 x 1 x 1 (the shared centre, broadcastable) for a pinhole."""
    cols = torch.arange(camera.width, dtype=torch.float32, device=device) + 0.5 - 0.5 * camera.width
    rows = torch.arange(camera.height, dtype=torch.float32, device=device) + 0.5 - 0.5 * camera.height
    x = cols.view(1, -1).expand(camera.height, -1)
    y = rows.view(-1, 1).expand(-1, camera.width)
    position = torch.as_tensor(camera.position_m, dtype=torch.float32, device=device).view(3, 1, 1)
    if camera.focal_px > 0:
        directions_cam = torch.stack([x / camera.focal_px, y / camera.focal_px, torch.ones_like(x)])
        directions = normalized(apply_rotation(camera.world_from_camera, directions_cam))
        return position, directions
    offsets_cam = torch.stack([x, y, torch.zeros_like(x)]) * camera.metres_per_px
    origins = position + apply_rotation(camera.world_from_camera, offsets_cam)
    forward = torch.as_tensor(camera.forward, dtype=torch.float32, device=device).view(3, 1, 1)
    return origins, forward.expand(3, camera.height, camera.width)


def screen_windows(camera: Camera, lows_m: np.ndarray, highs_m: np.ndarray) -> np.ndarray:
    """Pixel windows (K x 4: row0, row1, col0, col1; empty when row0 >= row1) that can see K world boxes.

    Testing only the rays in its window is what keeps small, distant primitives cheap. A box that reaches
    behind a pinhole camera is first clipped to the near plane, so a long wire passing beside the camera
    still gets a window around its visible part rather than the whole image.
    """
    corners = np.where(_CORNER_IS_HIGH, highs_m[:, None, :], lows_m[:, None, :])  # K x 8 x 3
    points = (corners - camera.position_m) @ camera.world_from_camera  # camera space
    if camera.focal_px > 0:
        start, end = points[:, _BOX_EDGES[:, 0]], points[:, _BOX_EDGES[:, 1]]
        crossing = (start[..., 2] - NEAR_M) * (end[..., 2] - NEAR_M) < 0
        fraction = (NEAR_M - start[..., 2]) / np.where(crossing, end[..., 2] - start[..., 2], 1.0)
        points = np.concatenate([points, start + fraction[..., None] * (end - start)], axis=1)
        visible = np.concatenate([points[:, :8, 2] > NEAR_M, crossing], axis=1)
        depth = np.where(visible, np.maximum(points[..., 2], NEAR_M), 1.0)
        cols = camera.focal_px * points[..., 0] / depth + 0.5 * camera.width
        rows = camera.focal_px * points[..., 1] / depth + 0.5 * camera.height
    else:
        visible = np.ones(points.shape[:2], bool)
        cols = points[..., 0] / camera.metres_per_px + 0.5 * camera.width
        rows = points[..., 1] / camera.metres_per_px + 0.5 * camera.height
    low = lambda v: np.floor(np.where(visible, v, np.inf).min(1)) - 1  # noqa: E731
    high = lambda v: np.ceil(np.where(visible, v, -np.inf).max(1)) + 1  # noqa: E731
    with np.errstate(invalid="ignore"):  # boxes wholly behind the camera have no visible point
        windows = np.nan_to_num(np.stack([low(rows), high(rows), low(cols), high(cols)], axis=1), posinf=0, neginf=0)
    limits = np.array([camera.height, camera.height, camera.width, camera.width])
    return np.clip(windows, 0, limits).astype(np.int64)
