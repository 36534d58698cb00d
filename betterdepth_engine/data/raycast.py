"""Closest-hit ray casting of primitives seen by several cameras at once, and shadows from shadow maps.

A `View` is a camera and the primitive groups it sees: a scene's camera sees all of them, its sun's
shadow-map camera only the shadow casters. `cast` handles any number of views (of any number of scenes)
in one pass: for each primitive class it gathers the rays of every view that may hit one of its
primitives and intersects them in cache-sized chunks, so the per-call cost of torch is paid per class and
chunk, not per primitive, view or scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from betterdepth_engine.data.camera import Camera, camera_rays, look_at, screen_windows
from betterdepth_engine.data.vectors import apply_rotation, as_column, concatenated_ranges, dot

SHADOW_MAP_SIZE = 128
CPU_CHUNK = 16384  # rays or pixels processed per call on a CPU: keeps every temporary in the cache
GPU_CHUNK = 1 << 20  # on a GPU, bigger calls are what keep it busy


def chunk_size(device) -> int:
    return CPU_CHUNK if torch.device(device).type == "cpu" else GPU_CHUNK


@dataclass
class Hits:
    """The closest hit per pixel of a view: t in metres along the unit ray (inf = nothing hit), its unit
    normal (3 x H x W, world space, either orientation) and the material row (-1 = nothing hit)."""

    origins: torch.Tensor  # 3 x H x W, or 3 x 1 x 1 for a pinhole camera
    directions: torch.Tensor
    t: torch.Tensor
    normal: torch.Tensor
    material: torch.Tensor


@dataclass
class Group:
    """Primitives of one class: their parameter rows (K x P) and covering boxes (None: unbounded)."""

    kind: type
    members: list
    table: np.ndarray
    boxes: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # lows, highs (M x 3) and owner (M,)

    def subset(self, keep: np.ndarray) -> Group | None:
        """The members where keep is True (None if none are)."""
        if not keep.any():
            return None
        table = self.table[keep]
        return Group(self.kind, [m for m, k in zip(self.members, keep) if k], table, self.kind.boxes(table))


@dataclass
class View:
    camera: Camera
    groups: list[Group]


def group_by_class(primitives: list) -> list[Group]:
    by_kind: dict = {}
    for primitive in primitives:
        by_kind.setdefault(type(primitive), []).append(primitive)
    groups = []
    for kind, members in by_kind.items():
        table = np.stack([member.params() for member in members])
        groups.append(Group(kind, members, table, kind.boxes(table)))
    return groups


def cast(views: list[View], device) -> list[Hits]:
    """The closest hit of every pixel's ray, for every view.

    Each primitive only tests the rays in its screen windows, and all primitives of a class are intersected
    in batched calls, so the cost grows with the pixels covered rather than with the number of primitives
    (a chair is a dozen of them).
    """
    rays = [camera_rays(view.camera, device) for view in views]
    sizes = [view.camera.height * view.camera.width for view in views]
    offsets = np.cumsum([0] + sizes)
    # Per-ray origins: a pinhole camera's single origin is repeated for its rays.
    origins = torch.cat([o.expand_as(d).reshape(3, -1) for o, d in rays], dim=1)
    directions = torch.cat([d.reshape(3, -1) for _, d in rays], dim=1)
    total = int(offsets[-1])
    # One extra slot at the end collects the writes of candidates that lose.
    t = torch.full((total + 1,), float("inf"), device=device)
    normal = torch.zeros((3, total + 1), device=device)
    material = torch.full((total + 1,), -1.0, device=device)
    for kind, members, table, pixels, owner in _candidates_by_class(views, offsets):
        table = torch.as_tensor(table.T, dtype=torch.float32, device=device).contiguous()  # P x K
        pixels, owner = torch.as_tensor(pixels, device=device), torch.as_tensor(owner, device=device)
        step = chunk_size(device)
        for start in range(0, len(pixels), step):
            chunk = pixels[start:start + step]
            params = table if len(members) == 1 else table.index_select(1, owner[start:start + step])
            t_new, normal_new, material_new = kind.intersect(
                members, params, origins.index_select(1, chunk), directions.index_select(1, chunk),
                t.index_select(0, chunk),
            )
            # Keep the nearest hit per pixel; t only decreases, so later winners overwrite earlier ones.
            # (A miss on a pixel nothing has hit yet also "wins"; its t stays inf, so it changes nothing.)
            t.scatter_reduce_(0, chunk, t_new, reduce="amin")
            losers = (t_new > t.index_select(0, chunk)).long()
            target = chunk + (total - chunk) * losers  # losers write to the spare slot (cheaper than where)
            normal.index_copy_(1, target, normal_new.expand(3, len(chunk)))
            material.index_copy_(0, target, material_new.expand(len(chunk)))
    normal = normal[:, :-1]
    hits = []
    for view, (view_origins, view_directions), start, stop in zip(views, rays, offsets[:-1], offsets[1:]):
        shape = (view.camera.height, view.camera.width)
        hits.append(Hits(view_origins, view_directions, t[start:stop].view(shape),
                         normal[:, start:stop].view(3, *shape), material[start:stop].view(shape).long()))
    return hits


def _candidates_by_class(views: list[View], offsets):
    """Per primitive class: (kind, members, table with an index column, pixels, owner).

    pixels are the flat indices (into all views' pixels) of the rays each member's windows cover, and
    owner the member each ray belongs to. Members seen by several views appear once per view.
    """
    by_kind: dict = {}
    for view, offset in zip(views, offsets):
        for group in view.groups:
            by_kind.setdefault(group.kind, []).append((view.camera, offset, group))
    # Marching classes go last: by then most of their rays know a nearer hit, and they skip those.
    for kind, entries in sorted(by_kind.items(), key=lambda item: item[0].MARCHES):
        members, tables, pixels, owner = [], [], [], []
        for camera, offset, group in entries:
            view_pixels, view_owner = _window_pixels(camera, group)
            pixels.append(view_pixels + offset)
            owner.append(view_owner + len(members))
            tables.append(group.table)
            members += group.members
        pixels = np.concatenate(pixels)
        if len(pixels):
            table = np.concatenate(tables)
            table = np.concatenate([table, np.arange(len(table))[:, None]], axis=1)
            yield kind, members, table, pixels, np.concatenate(owner)


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


def shadow_view(groups: list[Group], toward_light: np.ndarray, near_m: np.ndarray, range_m: float) -> View | None:
    """An orthographic camera looking along the light, framing the shadow casters within range_m of near_m
    (so that the map stays sharp outdoors), and the casters; None if there are none."""
    casters = [c for c in (g.subset(np.array([m.casts_shadow for m in g.members])) for g in groups) if c]
    boxes = [g.boxes for g in casters if g.boxes is not None]
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
    camera = Camera(rotation, rotation @ centre, SHADOW_MAP_SIZE, SHADOW_MAP_SIZE, metres_per_px=metres_per_px)
    return View(camera, casters)


@dataclass
class ShadowMap:
    """Distance from an orthographic light camera's image plane to the nearest caster, per texel (inf: none)."""

    camera: Camera
    distance_m: torch.Tensor  # flat, H * W

    def sunlit(self, points: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """1 where the light reaches a surface point, 0 in shadow, soft at shadow edges (points: 3 x N).

        Compares each point's own distance from the image plane with the map's, over the 4 nearest texels
        weighted bilinearly (percentage-closer filtering); a slope-scaled bias stops self-shadowing.
        """
        camera = self.camera
        in_light = apply_rotation(camera.world_from_camera.T, points - as_column(camera.position_m, points))
        col = in_light[0] / camera.metres_per_px + (0.5 * camera.width - 0.5)
        row = in_light[1] / camera.metres_per_px + (0.5 * camera.height - 0.5)
        cos_light = dot(normal, as_column(camera.forward, normal)).abs().clamp(min=0.05)
        tan_light = torch.sqrt(1 - cos_light * cos_light) / cos_light
        distance_m = in_light[2] - camera.metres_per_px * (1.0 + 1.5 * tan_light.clamp(max=4.0)) - 0.002
        col0, row0 = torch.floor(col), torch.floor(row)
        col_weight, row_weight = col - col0, row - row0
        lit = torch.zeros_like(col)
        for d_row, w_row in ((0, 1 - row_weight), (1, row_weight)):
            texel_row = (row0 + d_row).clamp(0, camera.height - 1) * camera.width
            for d_col, w_col in ((0, 1 - col_weight), (1, col_weight)):
                texel = (texel_row + (col0 + d_col).clamp(0, camera.width - 1)).long()
                occluder = self.distance_m.index_select(0, texel)
                lit = lit + (w_row * w_col) * (distance_m <= occluder).float()
        return lit
