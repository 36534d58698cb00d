"""Analytic primitives, intersected with many rays at once.

A primitive is a small frozen dataclass with numpy parameters (scenes are built identically on any device),
`material` (its row in the scene's material table) and `casts_shadow`. Its class works on all instances
at once, through the rows of `params()` (floats laid out as the class's LAYOUT, material first):
- `boxes(table) -> (lows, highs, owner)`: world axis-aligned boxes covering the instances (table: K x P
  numpy rows; owner: which instance each box covers), or None for unbounded classes. Long thin cylinders
  get several boxes along their axis, so that a diagonal wire only tests rays near it.
- `intersect(group, params, origins, directions, t_max) -> (t, normal, material)`: params is P x N (each
  ray gets its instance's row, plus the instance's index in `group` as a last row), or P x 1 when the group
  has a single instance; origins and unit directions are 3 x N, world space; t_max is the nearest hit found
  so far (N; inf if none), beyond which a hit does not matter. t is the distance to the first hit in metres
  (inf on a miss; anything beyond t_max) and normal a unit surface normal of either orientation (3 x N; the
  caster turns it toward the ray). Classes whose intersection marches (MARCHES = True) are cast last and use
  t_max to skip rays that are already blocked.

Oriented shapes work in a local frame: `rotation` is world_from_local (3x3) and `center_m` its origin.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from betterdepth_engine.data.camera import NEAR_M
from betterdepth_engine.data.vectors import concatenated_ranges, dot, normalized, sample_texture

INF = float("inf")
TORUS_MARCH_STEPS = 20
RELIEF_MARCH_LAYERS = 5
TERRAIN_MARCH_STEPS = 8
SECANT_STEPS = 2
TERRAIN_WAVES = 4
MAX_CYLINDER_PIECES = 32


def _fields(params: torch.Tensor, layout: tuple[int, ...]) -> list[torch.Tensor]:
    """Split parameter rows into the layout's fields; one-row fields become plain N-vectors."""
    return [f[0] if f.shape[0] == 1 else f for f in torch.split(params[: sum(layout)], layout)]


def _columns(table: np.ndarray, layout: tuple[int, ...]) -> list[np.ndarray]:
    """Split the leading columns of a K x P numpy table into the layout's fields (one column -> K-vector)."""
    fields = np.split(table[:, : sum(layout)], np.cumsum(layout)[:-1], axis=1)
    return [f[:, 0] if f.shape[1] == 1 else f for f in fields]


def _row(*parts) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(part, np.float64)) for part in parts])


def _rotate(matrix, vectors, transpose: bool = False):
    """matrix @ v (or matrix^T @ v) per ray; matrix is 9 x N, row-major.

    Written out per component: batched 3x3 products through reductions are far slower on CPU.
    """
    m = [[matrix[3 * j + i] if transpose else matrix[3 * i + j] for j in range(3)] for i in range(3)]
    return torch.stack([m[i][0] * vectors[0] + m[i][1] * vectors[1] + m[i][2] * vectors[2] for i in range(3)])


def _to_local(center, rotation, origins, directions):
    """World rays -> the local frame of world_from_local `rotation` (9 x N) at `center` (3 x N)."""
    return _rotate(rotation, origins - center, transpose=True), _rotate(rotation, directions, transpose=True)


def _oriented_boxes(center, rotation, half_extent):
    """World AABBs of K oriented boxes (center K x 3, rotation K x 9, half_extent K x 3)."""
    reach = np.einsum("kij,kj->ki", np.abs(rotation.reshape(-1, 3, 3)), half_extent)
    return center - reach, center + reach, np.arange(len(center))


def _slab(origins, directions, half_extent):
    """Per axis, the ray parameters where it enters and leaves an origin-centred box's slabs (3 x N each)."""
    inverse = 1.0 / directions
    t_low = (-half_extent - origins) * inverse
    t_high = (half_extent - origins) * inverse
    return torch.minimum(t_low, t_high), torch.maximum(t_low, t_high)


def _first_entry(t_enter: torch.Tensor, t_exit: torch.Tensor) -> torch.Tensor:
    """Entry distance of a convex interval in front of the origin, inf where the ray misses or starts inside."""
    return torch.where((t_enter <= t_exit) & (t_enter > NEAR_M), t_enter, INF)


def _sphere_interval(origins, directions, radius):
    """Interval inside an origin-centred sphere (empty intervals have t_enter > t_exit)."""
    half_b = dot(origins, directions)
    discriminant = half_b * half_b - (dot(origins, origins) - radius * radius)
    root = torch.sqrt(discriminant.clamp(min=0.0))
    empty = (discriminant < 0).float() * 1e30  # pushes t_enter past t_exit
    return -half_b - root + empty, -half_b + root


@dataclass(frozen=True)
class Plane:
    """The infinite plane normal . x = offset_m (ground)."""

    normal: np.ndarray
    offset_m: float
    material: int
    casts_shadow: bool = False
    LAYOUT: ClassVar = (1, 3, 1)
    MARCHES: ClassVar = False

    def params(self):
        return _row(self.material, self.normal, self.offset_m)

    @classmethod
    def boxes(cls, table):
        return None

    @classmethod
    def intersect(cls, group, params, origins, directions, t_max):
        material, normal, offset = _fields(params, cls.LAYOUT)
        t = (offset - dot(normal, origins)) / dot(normal, directions)
        return torch.where(t > NEAR_M, t, INF), normal.expand_as(directions), material


@dataclass(frozen=True)
class Room:
    """The inside of an axis-aligned box: walls, floor (-Y face) and ceiling, each with its own material."""

    center_m: np.ndarray
    half_extent_m: np.ndarray
    material: int  # walls
    floor_material: int
    ceiling_material: int
    open_top: bool = False  # rays leaving through the ceiling see the sky
    casts_shadow: bool = False  # the sun shines in as if through a skylight
    LAYOUT: ClassVar = (1, 1, 1, 3, 3, 1)
    MARCHES: ClassVar = False

    def params(self):
        return _row(self.material, self.floor_material, self.ceiling_material, self.center_m, self.half_extent_m,
                    self.open_top)

    @classmethod
    def boxes(cls, table):
        return None

    @classmethod
    def intersect(cls, group, params, origins, directions, t_max):
        walls, floor, ceiling, center, half, open_top = _fields(params, cls.LAYOUT)
        _, t_far = _slab(origins - center, directions, half)
        t = t_far.amin(0)  # the face the ray leaves the room through
        on_face = (t_far == t).float()
        going_up = directions[1] > 0
        on_ceiling = (on_face[1] > 0) & going_up
        on_floor = (on_face[1] > 0) & ~going_up
        t = torch.where(on_ceiling & (open_top > 0.5), INF, t)
        material = torch.where(on_floor, floor, torch.where(on_ceiling, ceiling, walls))
        return t, on_face, material


@dataclass(frozen=True)
class Sphere:
    center_m: np.ndarray
    radius_m: float
    material: int
    casts_shadow: bool = True
    LAYOUT: ClassVar = (1, 3, 1)
    MARCHES: ClassVar = False

    def params(self):
        return _row(self.material, self.center_m, self.radius_m)

    @classmethod
    def boxes(cls, table):
        _, center, radius = _columns(table, cls.LAYOUT)
        return center - radius[:, None], center + radius[:, None], np.arange(len(table))

    @classmethod
    def intersect(cls, group, params, origins, directions, t_max):
        material, center, radius = _fields(params, cls.LAYOUT)
        t_enter, t_exit = _sphere_interval(origins - center, directions, radius)
        t = _first_entry(t_enter, t_exit)
        normal = (origins + t.nan_to_num(posinf=0.0) * directions - center) / radius
        return t, normal, material


@dataclass(frozen=True)
class Box:
    center_m: np.ndarray
    rotation: np.ndarray
    half_extent_m: np.ndarray
    material: int
    casts_shadow: bool = True
    LAYOUT: ClassVar = (1, 3, 9, 3)
    MARCHES: ClassVar = False

    def params(self):
        return _row(self.material, self.center_m, self.rotation, self.half_extent_m)

    @classmethod
    def boxes(cls, table):
        return _oriented_boxes(*_columns(table, cls.LAYOUT)[1:])

    @classmethod
    def intersect(cls, group, params, origins, directions, t_max):
        material, center, rotation, half = _fields(params, cls.LAYOUT)
        local_o, local_d = _to_local(center, rotation, origins, directions)
        t_near, t_far = _slab(local_o, local_d, half)
        t_enter = t_near.amax(0)
        face_axis = (t_near == t_enter).float()  # the slab entered last is the face the ray hits
        return _first_entry(t_enter, t_far.amin(0)), _rotate(rotation, face_axis), material


@dataclass(frozen=True)
class Cylinder:
    """A capped cylinder along the local Z axis."""

    center_m: np.ndarray
    rotation: np.ndarray
    radius_m: float
    half_length_m: float
    material: int
    casts_shadow: bool = True
    LAYOUT: ClassVar = (1, 3, 9, 1, 1)
    MARCHES: ClassVar = False

    def params(self):
        return _row(self.material, self.center_m, self.rotation, self.radius_m, self.half_length_m)

    @classmethod
    def boxes(cls, table):
        """Boxes around consecutive lengths of each axis, a few radii long (at most MAX_CYLINDER_PIECES)."""
        _, center, rotation, radius, half_length = _columns(table, cls.LAYOUT)
        counts = np.clip(half_length / (2 * radius), 1, MAX_CYLINDER_PIECES).astype(np.int64)
        owner = np.repeat(np.arange(len(table)), counts)
        piece = concatenated_ranges(np.zeros_like(counts), counts)
        axis = rotation[:, [2, 5, 8]]  # local +Z in world space
        step = 2.0 / counts[owner]
        start = center[owner] + axis[owner] * (half_length[owner] * (piece * step - 1))[:, None]
        end = start + axis[owner] * (half_length[owner] * step)[:, None]
        reach = (radius[:, None] * np.sqrt(np.clip(1 - axis**2, 0, 1)))[owner]  # the end discs' extent
        return np.minimum(start, end) - reach, np.maximum(start, end) + reach, owner

    @classmethod
    def intersect(cls, group, params, origins, directions, t_max):
        material, center, rotation, radius, half_length = _fields(params, cls.LAYOUT)
        o, d = _to_local(center, rotation, origins, directions)
        # The solid is {x^2 + y^2 <= r^2} intersected with {|z| <= L}: intersect the two ray intervals.
        a = d[0] * d[0] + d[1] * d[1] + 1e-12
        half_b = o[0] * d[0] + o[1] * d[1]
        discriminant = half_b * half_b - a * (o[0] * o[0] + o[1] * o[1] - radius * radius)
        root = torch.sqrt(discriminant.clamp(min=0.0))
        side_enter = (-half_b - root) / a + (discriminant < 0).float() * 1e30
        side_exit = (-half_b + root) / a
        cap_a, cap_b = (-half_length - o[2]) / d[2], (half_length - o[2]) / d[2]
        cap_enter = torch.minimum(cap_a, cap_b)
        t = _first_entry(torch.maximum(side_enter, cap_enter), torch.minimum(side_exit, torch.maximum(cap_a, cap_b)))
        on_side = (side_enter > cap_enter).float()
        hit = o + t.nan_to_num(posinf=0.0) * d
        normal = torch.stack([on_side * hit[0] / radius, on_side * hit[1] / radius, 1.0 - on_side])
        return t, _rotate(rotation, normal), material


@dataclass(frozen=True)
class Torus:
    """A torus around the local Z axis, found by sphere tracing its distance function (no quartic solve)."""

    center_m: np.ndarray
    rotation: np.ndarray
    major_radius_m: float
    minor_radius_m: float
    material: int
    casts_shadow: bool = True
    LAYOUT: ClassVar = (1, 3, 9, 1, 1)
    MARCHES: ClassVar = True

    def params(self):
        return _row(self.material, self.center_m, self.rotation, self.major_radius_m, self.minor_radius_m)

    @classmethod
    def boxes(cls, table):
        _, center, rotation, major, minor = _columns(table, cls.LAYOUT)
        return _oriented_boxes(center, rotation, np.stack([major + minor, major + minor, minor], axis=1))

    @classmethod
    def intersect(cls, group, params, origins, directions, t_max):
        material, center, rotation, major, minor = _fields(params, cls.LAYOUT)
        o, d = _to_local(center, rotation, origins, directions)

        def distance(points):
            ring = torch.sqrt(points[0] * points[0] + points[1] * points[1]) - major
            return torch.sqrt(ring * ring + points[2] * points[2]) - minor

        t_enter, t_exit = _sphere_interval(o, d, major + minor)
        t = t_enter.clamp(min=NEAR_M, max=1e6)
        for _ in range(TORUS_MARCH_STEPS):
            t = t + distance(o + t * d)
        hit = o + t * d
        converged = (distance(hit).abs() < 1e-3 * minor) & (t <= t_exit)
        ring_scale = major / torch.sqrt(hit[0] * hit[0] + hit[1] * hit[1] + 1e-12)
        normal = torch.stack([hit[0] * (1 - ring_scale), hit[1] * (1 - ring_scale), hit[2]])  # from the core circle
        return torch.where(converged, t, INF), _rotate(rotation, normal / minor), material


@dataclass(frozen=True)
class WireGrid:
    """A fence mesh or grille: round bars on the local z = 0 plane, drawn as an alpha-tested card.

    Depth is the card's (flat); the normal follows a round wire's profile so that shading reads as wires.
    The depth error this makes is at most the bar radius (millimetres to a couple of centimetres).
    A spacing of 0 leaves out that direction's bars (only rails, or only pickets).
    """

    center_m: np.ndarray
    rotation: np.ndarray
    half_size_m: tuple[float, float]
    spacing_m: tuple[float, float]  # between vertical bars (along local x) and between horizontal bars
    bar_radius_m: float
    material: int
    casts_shadow: bool = True
    LAYOUT: ClassVar = (1, 3, 9, 2, 2, 1)
    MARCHES: ClassVar = False

    def params(self):
        return _row(self.material, self.center_m, self.rotation, self.half_size_m, self.spacing_m, self.bar_radius_m)

    @classmethod
    def boxes(cls, table):
        _, center, rotation, half_size, _, radius = _columns(table, cls.LAYOUT)
        return _oriented_boxes(center, rotation, np.concatenate([half_size, radius[:, None]], axis=1))

    @classmethod
    def intersect(cls, group, params, origins, directions, t_max):
        material, center, rotation, half_size, spacing, radius = _fields(params, cls.LAYOUT)
        o, d = _to_local(center, rotation, origins, directions)
        t = -o[2] / d[2]
        point = o[:2] + t * d[:2]
        # Signed offset from the nearest bar centre in bar radii (|x| < 1 is on a bar; 2 where there are no bars).
        has_bars = spacing > 0
        cells = point / torch.where(has_bars, spacing, 1.0) + 0.5
        across = torch.where(has_bars, (cells - torch.floor(cells) - 0.5) * spacing / radius, 2.0)
        inside = (point[0].abs() <= half_size[0]) & (point[1].abs() <= half_size[1])
        on_bar = (across[0].abs() < 1) | (across[1].abs() < 1)
        t = torch.where(inside & on_bar & (t > NEAR_M), t, INF)
        # The nearer bar decides the profile: the normal tilts along the offset from its centre line.
        use_x = (across[0].abs() <= across[1].abs()).float()
        profile_x, profile_y = (use_x * across[0]).clamp(-1, 1), ((1 - use_x) * across[1]).clamp(-1, 1)
        facing = torch.sqrt((1 - profile_x * profile_x - profile_y * profile_y).clamp(min=0)) * -torch.sign(d[2])
        return t, _rotate(rotation, torch.stack([profile_x, profile_y, facing])), material


@dataclass(frozen=True, eq=False)  # hashed by identity: the atlas cache keys on the maps
class HeightMap:
    """A relief pattern: heights in [-1, 0] (0 = the panel's front face) and their per-texel gradient."""

    height: np.ndarray  # N x N float32 (rows run down the panel), a flat 0-height frame around the edge
    gradient: np.ndarray  # 2 x N x N: d height / d texel along columns (u) and rows (v)


@dataclass(frozen=True, eq=False)
class ReliefPanel:
    """A box whose front face (local +Z) is carved by a height map, at most relief_depth_m deep; the map is
    repeated `repeats` times across and down the face (tiles on a wall).

    The carved surface is found like parallax occlusion mapping: march the ray through the carved layer,
    then refine the first crossing by the secant method, so the relief occludes itself. The box's silhouette
    is that of its outer envelope. All panels of a group share one texture atlas of their height maps.
    """

    center_m: np.ndarray
    rotation: np.ndarray
    half_extent_m: np.ndarray
    relief_depth_m: float
    height_map: HeightMap
    material: int
    repeats: tuple[int, int] = (1, 1)
    casts_shadow: bool = True
    LAYOUT: ClassVar = (1, 3, 9, 3, 1, 2, 1)  # the last field is the panel's index in its group (its atlas tile)
    MARCHES: ClassVar = True

    def params(self):
        return _row(self.material, self.center_m, self.rotation, self.half_extent_m, self.relief_depth_m, self.repeats)

    @classmethod
    def boxes(cls, table):
        return _oriented_boxes(*_columns(table, (1, 3, 9, 3))[1:])

    @classmethod
    def intersect(cls, group, params, origins, directions, t_max):
        material, center, rotation, half, depth, repeats, member = _fields(params, cls.LAYOUT)
        o, d = _to_local(center, rotation, origins, directions)
        t_near, t_far = _slab(o, d, half)
        t_enter = t_near.amax(0)
        normal = (t_near == t_enter).float()  # the face axis
        t = _first_entry(t_enter, t_far.amin(0))
        # Only rays entering through the front face, not already blocked, see the carving; march those alone.
        front = ((normal[2] > 0) & (d[2] < 0) & (t < t_max)).nonzero().squeeze(1)
        if len(front):
            height, gradient, tile_of_member = _atlas(tuple(panel.height_map for panel in group), origins.device)
            take = lambda x: x if x.shape[-1] == 1 else x.index_select(-1, front)  # noqa: E731
            tile = tile_of_member.index_select(0, take(member).long())
            t_carved, normal_carved = _carve(height, gradient, tile, take(o), take(d), take(half), take(depth),
                                             take(repeats), t.index_select(0, front))
            t = t.index_copy(0, front, t_carved)
            normal = normal.index_copy(1, front, normal_carved)
        return t, _rotate(rotation, normal), material


def _carve(height, gradient, tile, o, d, half, depth, repeats, t_front):
    """Where rays entering a panel's front face at t_front meet its carved surface, and the surface normal there
    (local frame); height and gradient are atlases of maps side by side, `tile` each ray's map."""
    texels, atlas_columns = height.shape[-2], height.shape[-1]
    # Map coordinate u in [0, 1) -> atlas grid coordinate: u * column_scale + column_offset.
    column_scale = 2.0 * (texels - 1) / (atlas_columns - 1)
    column_offset = tile * (2.0 * texels / (atlas_columns - 1)) - 1

    def lookup(texture, x, y):
        u = (x / (2 * half[0]) + 0.5).clamp(0, 1) * repeats[0]
        v = (0.5 - y / (2 * half[1])).clamp(0, 1) * repeats[1]
        u, v = u - torch.floor(u), v - torch.floor(v)
        return sample_texture(texture, u * column_scale + column_offset, v * 2 - 1)

    def gap(t):  # height of the ray above the carved surface
        x, y, z = o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]
        return z - (half[2] + depth * lookup(height, x, y)[0])

    # Along the ray, the carved layer spans from the front face down to `depth` below it.
    t_bottom = t_front + depth / (-d[2]).clamp(min=1e-3)
    t = _first_crossing(gap, t_front, t_bottom, RELIEF_MARCH_LAYERS)
    slope = lookup(gradient, o[0] + t * d[0], o[1] + t * d[1])
    # Surface z = depth * height(u, v): metres of z per metre of x and y (v runs along -y).
    dz_dx = depth * slope[0] * (texels - 1) * repeats[0] / (2 * half[0])
    dz_dy = -depth * slope[1] * (texels - 1) * repeats[1] / (2 * half[1])
    return t, normalized(torch.stack([-dz_dx, -dz_dy, torch.ones_like(dz_dx)]))


@functools.lru_cache(maxsize=16)
def _atlas(maps: tuple[HeightMap, ...], device):
    """The distinct maps' heights side by side (1 x 1 x N x kN), their gradients (1 x 2 x N x kN), and the
    tile of each entry of `maps`. Cached: every chunk of rays of a cast uses the same atlas."""
    distinct = list(dict.fromkeys(maps))
    height = np.concatenate([m.height for m in distinct], axis=1)
    gradient = np.concatenate([m.gradient for m in distinct], axis=2)
    tile = torch.tensor([float(distinct.index(m)) for m in maps], device=device)
    return torch.as_tensor(height, device=device)[None, None], torch.as_tensor(gradient, device=device)[None], tile


@dataclass(frozen=True, eq=False)
class Terrain:
    """Ground y = base_m + sum_k amplitude_k * sin(frequency_k . (x, z) + phase_k), out to max_distance_m,
    with TERRAIN_WAVES waves. Found by marching geometrically spaced samples through the height band, then
    secant refinement."""

    base_m: float
    amplitudes_m: np.ndarray  # (TERRAIN_WAVES,)
    frequencies_rad_per_m: np.ndarray  # (TERRAIN_WAVES, 2) along world x and z
    phases_rad: np.ndarray  # (TERRAIN_WAVES,)
    max_distance_m: float
    material: int
    casts_shadow: bool = False
    LAYOUT: ClassVar = (1, 1, 1, TERRAIN_WAVES, 2 * TERRAIN_WAVES, TERRAIN_WAVES)
    MARCHES: ClassVar = True

    def params(self):
        return _row(self.material, self.base_m, self.max_distance_m, self.amplitudes_m, self.frequencies_rad_per_m,
                    self.phases_rad)

    @classmethod
    def boxes(cls, table):
        return None

    @classmethod
    def intersect(cls, group, params, origins, directions, t_max):
        material, base, max_distance, amplitude, frequency, phase = _fields(params, cls.LAYOUT)
        waves = [(amplitude[k], frequency[2 * k], frequency[2 * k + 1], phase[k]) for k in range(TERRAIN_WAVES)]
        reach = sum(a.abs() for a, _, _, _ in waves)
        dy = torch.where(directions[1].abs() < 1e-6, -1e-6, directions[1])
        t_top, t_bottom = (base + reach - origins[1]) / dy, (base - reach - origins[1]) / dy
        # The ground rises at most `steepest` metres per metre, so a ray's clearance above it shrinks by at most
        # steepest * |d_xz| - d_y per metre: no hit comes before clearance / that rate (none if it is <= 0).
        steepest = sum(a.abs() * torch.sqrt(fx * fx + fz * fz) for a, fx, fz, _ in waves)
        closing = steepest * torch.sqrt(directions[0] ** 2 + directions[2] ** 2) - directions[1]
        clearance = _terrain_gap(_along_rays(waves, origins, directions), base, origins, directions, 0.0)
        clearance = clearance.clamp(min=0.0)
        earliest = torch.where(closing > 0, clearance / closing.clamp(min=1e-9), INF)
        t_start = torch.maximum(torch.minimum(t_top, t_bottom).clamp(min=NEAR_M), earliest)
        t_end = torch.minimum(torch.minimum(torch.maximum(t_top, t_bottom), max_distance), t_max)
        t = torch.full_like(dy, INF)
        normal = torch.zeros_like(directions)
        active = (t_start < t_end).nonzero().squeeze(1)  # rays that can still meet the ground: march those
        if len(active):
            take = lambda x: x if x.shape[-1] == 1 else x.index_select(-1, active)  # noqa: E731
            waves = [tuple(take(value) for value in wave) for wave in waves]
            t_hit, normal_hit = _march_terrain(waves, take(base), take(origins), take(directions),
                                               t_start.index_select(0, active), t_end.index_select(0, active))
            t, normal = t.index_copy(0, active, t_hit), normal.index_copy(1, active, normal_hit)
        return t, normal, material


def _along_rays(waves, origins, directions):
    """Per wave: amplitude, phase at the ray origin, and phase change per metre along the ray, so that the
    ground under the point at t is base + sum a * sin(phase + t * rate): two ops per wave per evaluation."""
    return [(a, fx * origins[0] + fz * origins[2] + p, fx * directions[0] + fz * directions[2])
            for a, fx, fz, p in waves]


def _terrain_gap(profile, base, origins, directions, t):
    """Height above the sum-of-sines ground of the points at distance t along the rays."""
    ground = sum(a * torch.sin(phase + t * rate) for a, phase, rate in profile)
    return origins[1] + t * directions[1] - base - ground


def _march_terrain(waves, base, origins, directions, t_start, t_end):
    """First hits of rays with the ground between t_start and t_end, and the normals there."""
    profile = _along_rays(waves, origins, directions)
    t = _first_crossing(lambda t_: _terrain_gap(profile, base, origins, directions, t_), t_start, t_end,
                        TERRAIN_MARCH_STEPS, geometric=True)
    t_hit = t.nan_to_num(posinf=0.0)
    slope_x, slope_z = torch.zeros_like(t), torch.zeros_like(t)
    for (_, fx, fz, _), (a, phase, rate) in zip(waves, profile):
        wave = a * torch.cos(phase + t_hit * rate)
        slope_x, slope_z = slope_x + fx * wave, slope_z + fz * wave
    return t, normalized(torch.stack([-slope_x, torch.ones_like(t), -slope_z]))


def _first_crossing(gap, t_start, t_end, steps: int, geometric: bool = False):
    """First t in [t_start, t_end] where gap(t) turns <= 0 (inf if none), by sampling then secant steps.

    gap(t) is the height of the ray above a surface; samples are uniform, or geometric (denser near the
    origin, for long rays over terrain).
    """
    fractions = torch.linspace(0.0, 1.0, steps + 1, device=t_start.device).view(-1, 1)
    if geometric:
        t_samples = t_start * (t_end / t_start) ** fractions
    else:
        t_samples = t_start + (t_end - t_start) * fractions
    gaps = torch.stack([gap(t) for t in t_samples])
    # Index of the first sample at or below the surface (steps + 1 if none), without argmax, which is slow on CPU.
    order = torch.arange(steps + 1, dtype=torch.float32, device=t_start.device).view(-1, 1)
    first = (order + (gaps > 0).float() * (steps + 1)).amin(0)
    after = first.clamp(1, steps).long()[None]
    t_low, t_high = t_samples.gather(0, after - 1)[0], t_samples.gather(0, after)[0]
    gap_low, gap_high = gaps.gather(0, after - 1)[0], gaps.gather(0, after)[0]
    for _ in range(SECANT_STEPS):
        t_mid = _secant(t_low, t_high, gap_low, gap_high)
        gap_mid = gap(t_mid)
        above = (gap_mid > 0).float()  # the crossing lies beyond t_mid: move the low end up
        t_low, gap_low = torch.lerp(t_low, t_mid, above), torch.lerp(gap_low, gap_mid, above)
        t_high, gap_high = torch.lerp(t_mid, t_high, above), torch.lerp(gap_mid, gap_high, above)
    t = torch.where(first == 0, t_start, _secant(t_low, t_high, gap_low, gap_high))
    return torch.where(first <= steps, t, INF)


def _secant(t_low, t_high, gap_low, gap_high):
    """Where the line through (t_low, gap_low > 0) and (t_high, gap_high <= 0) crosses zero."""
    return t_low + (t_high - t_low) * gap_low / (gap_low - gap_high).clamp(min=1e-12)
