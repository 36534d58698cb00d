"""Closest-hit ray casting of a primitive list, and shadows from an orthographic shadow map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from betterdepth_engine.data.camera import Camera, camera_rays, look_at, screen_windows
from betterdepth_engine.data.vectors import apply_rotation, as_column, concatenated_ranges, dot

SHADOW_MAP_SIZE = 160
RAY_CHUNK = 16384


@dataclass
class Hits:
    """The closest hit per pixel: t in metres along the unit ray (inf = nothing hit), its unit normal
    (3 x H x W, world space, facing the ray) and the material row (-1 = nothing hit)."""

    origins: torch.Tensor
    directions: torch.Tensor
    t: torch.Tensor
    normal: torch.Tensor
    material: torch.Tensor

    def points(self) -> torch.Tensor:
        return self.origins + self.t.nan_to_num(posinf=0.0) * self.directions


@dataclass
class Group:
    """All primitives of one class: their parameter rows (K x P) and covering boxes (None: unbounded)."""

    kind: type
    members: list
    table: np.ndarray
    boxes: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # lows, highs (M x 3) and owner (M,)


def group_by_class(primitives: list) -> list[Group]:
    by_kind: dict = {}
    for primitive in primitives:
        by_kind.setdefault(type(primitive), []).append(primitive)
    groups = []
    for kind, members in by_kind.items():
        table = np.stack([member.params() for member in members])
        groups.append(Group(kind, members, table, kind.boxes(table)))
    return groups


def cast(camera: Camera, groups: list[Group], device) -> Hits:
    """Closest hit of every pixel's ray.

    Each primitive only tests the rays in its screen windows, and all primitives of a class are intersected
    in one batched call, so the cost grows with the pixels covered rather than with the number of
    primitives (a chair is a dozen of them).
    """
    origins, directions = camera_rays(camera, device)
    height, width = camera.height, camera.width
    pixel_count = height * width
    # One extra slot at the end collects the writes of candidates that lose.
    t = torch.full((pixel_count + 1,), float("inf"), device=device)
    normal = torch.zeros((3, pixel_count + 1), device=device)
    material = torch.full((pixel_count + 1,), -1.0, device=device)
    for group in groups:
        for pixels, params, ray_origins, ray_directions in _candidates(camera, group, origins, directions):
            t_new, normal_new, material_new = group.kind.intersect(group.members, params, ray_origins, ray_directions)
            # Keep the nearest hit per pixel; t only decreases, so later winners overwrite earlier ones.
            # (A miss on a pixel nothing has hit yet also "wins"; its t stays inf, so it changes nothing.)
            t.scatter_reduce_(0, pixels, t_new, reduce="amin")
            target = torch.where(t_new <= t.index_select(0, pixels), pixels, pixel_count)
            normal.index_copy_(1, target, normal_new.expand(3, len(pixels)))
            material.index_copy_(0, target, material_new.expand(len(pixels)))
    t, normal, material = t[:-1].view(height, width), normal[:, :-1].view(3, height, width), material[:-1]
    # Shading wants the side of the surface that the ray sees (room walls are seen from inside).
    facing = torch.where(dot(normal, directions) > 0, -1.0, 1.0)
    return Hits(origins, directions, t, normal * facing, material.view(height, width).long())


def _candidates(camera: Camera, group: Group, origins, directions):
    """Chunks (pixels, per-ray params, origins, directions) of the rays that the group's primitives may hit.

    Chunks keep every temporary of an intersection in the CPU cache, which is several times faster.
    """
    pixels, owner = _window_pixels(camera, group)
    if len(pixels) == 0:
        return
    device = directions.device
    pixels, owner = torch.as_tensor(pixels, device=device), torch.as_tensor(owner, device=device)
    with_index = np.concatenate([group.table, np.arange(len(group.members))[:, None]], axis=1)
    table = torch.as_tensor(with_index.T, dtype=torch.float32, device=device).contiguous()  # P x K
    flat_origins, flat_directions = origins.reshape(3, -1), directions.reshape(3, -1)
    for start in range(0, len(pixels), RAY_CHUNK):
        chunk = pixels[start:start + RAY_CHUNK]
        params = table if len(group.members) == 1 else table.index_select(1, owner[start:start + RAY_CHUNK])
        # A pinhole's rays share one origin (3 x 1), which broadcasts.
        ray_origins = flat_origins if flat_origins.shape[1] == 1 else flat_origins.index_select(1, chunk)
        yield chunk, params, ray_origins, flat_directions.index_select(1, chunk)


def _window_pixels(camera: Camera, group: Group) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the pixels in each primitive's screen windows, and which primitive each belongs to.

    Overlapping windows of one primitive repeat pixels; both copies find the same hit, which is harmless.
    """
    if group.boxes is None:
        everything = np.arange(camera.height * camera.width)
        return np.tile(everything, len(group.members)), np.repeat(np.arange(len(group.members)), len(everything))
    lows, highs, owner = group.boxes
    row0, row1, col0, col1 = screen_windows(camera, lows, highs).T
    heights, widths = np.maximum(row1 - row0, 0), np.maximum(col1 - col0, 0)
    widths[heights == 0] = 0
    # Every window row becomes a run of pixels: first the rows, then the columns along each row.
    row_window = np.repeat(np.arange(len(lows)), heights)
    rows = concatenated_ranges(row0, heights)
    run_length = widths[row_window]
    pixels = concatenated_ranges(rows * camera.width + col0[row_window], run_length)
    return pixels, np.repeat(owner[row_window], run_length)


def shadow_camera(groups: list[Group], toward_light: np.ndarray, near_m: np.ndarray, range_m: float) -> Camera | None:
    """An orthographic camera looking along the light that frames the casters within range_m of near_m."""
    boxes = [g.boxes for g in groups if g.boxes is not None]
    if not boxes:
        return None
    lows, highs = np.concatenate([b[0] for b in boxes]), np.concatenate([b[1] for b in boxes])
    close = np.linalg.norm(np.clip(near_m, lows, highs) - near_m, axis=1) < range_m
    if not close.any():
        return None
    low, high = lows[close].min(axis=0), highs[close].max(axis=0)
    rotation = look_at(np.zeros(3), -toward_light)
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
    in_light = corners @ rotation
    extent = in_light.max(axis=0) - in_light.min(axis=0)
    metres_per_px = max(extent[0], extent[1]) / (SHADOW_MAP_SIZE - 2)
    centre = 0.5 * (in_light.max(axis=0) + in_light.min(axis=0))
    centre[2] = in_light[:, 2].min() - 1.0  # image plane just in front of every framed caster
    return Camera(rotation, rotation @ centre, SHADOW_MAP_SIZE, SHADOW_MAP_SIZE, metres_per_px=metres_per_px)


def sunlit_fraction(points, normal, casters: list, toward_light: np.ndarray, camera_position_m, range_m: float):
    """Per pixel, 1 where the light reaches the surface point and 0 in shadow (soft at shadow edges).

    Renders the casters' distance from the light into a shadow map framing those within range_m of the
    camera (so it stays sharp outdoors), then compares each point's own distance, with bilinear
    percentage-closer filtering; a slope-scaled bias stops surfaces from shadowing themselves.
    """
    groups = group_by_class(casters)
    camera = shadow_camera(groups, toward_light, camera_position_m, range_m)
    if camera is None:
        return torch.ones_like(points[0])
    light_hits = cast(camera, groups, points.device)
    in_light = apply_rotation(camera.world_from_camera.T, points - as_column(camera.position_m, points))
    col = in_light[0] / camera.metres_per_px + 0.5 * camera.width - 0.5
    row = in_light[1] / camera.metres_per_px + 0.5 * camera.height - 0.5
    cos_light = dot(normal, as_column(toward_light, points)).clamp(min=0.05)
    tan_light = torch.sqrt(1 - cos_light**2) / cos_light
    bias_m = camera.metres_per_px * (1.0 + 1.5 * tan_light.clamp(max=4.0)) + 0.002
    lit = torch.zeros_like(col)
    col0, row0 = torch.floor(col), torch.floor(row)
    for d_row in (0, 1):
        for d_col in (0, 1):
            r = (row0 + d_row).clamp(0, camera.height - 1).long()
            c = (col0 + d_col).clamp(0, camera.width - 1).long()
            weight = (1 - (col - col0 - d_col).abs()) * (1 - (row - row0 - d_row).abs())
            occluder_t = light_hits.t.view(-1).index_select(0, (r * camera.width + c).view(-1)).view_as(r)
            lit = lit + weight * (in_light[2] <= occluder_t + bias_m).float()
    return lit
