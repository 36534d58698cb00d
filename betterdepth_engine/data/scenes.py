"""Random scene layouts: rooms with furniture, outdoor terrain with fences and power lines, still lifes of
primitives, and relief walls. Everything is drawn from one numpy Generator, so a seed fixes the scene.

Sizes are chosen so that thin parts (chair and table legs, lamp poles, wires, fence mesh, relief grooves)
are one to a few pixels wide at typical distances: the detail a depth refiner must recover.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from betterdepth_engine.data.camera import Camera, focal_from_fov, look_at
from betterdepth_engine.data.primitives import (
    Box,
    Cylinder,
    HeightMap,
    Plane,
    ReliefPanel,
    Room,
    TERRAIN_WAVES,
    Sphere,
    Terrain,
    Torus,
    WireGrid,
)
from betterdepth_engine.data.shading import Lighting
from betterdepth_engine.data.textures import (
    BANK_SEED,
    TILE_VARIANTS,
    Material,
    hsv_to_linear_rgb,
    lettering_mask,
    random_material,
)
from betterdepth_engine.data.vectors import cross

SCENE_KINDS = ("room", "outdoor", "still_life", "relief_wall")  # what random scenes are drawn from
# Flat surfaces only, for testing that a refiner does not copy image texture into depth (not in training).
TEXTURE_COPY_PATTERNS = ("picture", "text", "checker", "tiles", "bricks")
SCENE_KIND_WEIGHTS = (0.35, 0.3, 0.2, 0.15)
HEIGHT_MAP_SIZE = 128
HEIGHT_MAP_BANK_SIZE = 24  # per relief kind
RELIEF_KINDS = ("letters", "bumps", "ridges", "tiles", "noise")
IDENTITY = np.eye(3)
MIN_THIN_PX = 0.8  # thin parts are at least this wide where they are placed


@dataclass
class Scene:
    kind: str
    camera: Camera
    lighting: Lighting
    max_depth_m: float  # surfaces beyond this count as background (invalid)
    materials: list[Material] = field(default_factory=list)
    primitives: list = field(default_factory=list)


class _Builder:
    """Collects materials and primitives while a layout function places objects."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.materials: list[Material] = []
        self.primitives: list = []
        self.camera: Camera | None = None  # once placed, thin parts are widened to stay visible

    def material(self, patterns=None) -> int:
        """A new random material, or (sometimes) an existing one, so that depth edges need not be colour edges."""
        if self.materials and self.rng.uniform() < 0.2:
            return int(self.rng.integers(len(self.materials)))
        self.materials.append(random_material(self.rng) if patterns is None else random_material(self.rng, patterns))
        return len(self.materials) - 1

    def add(self, primitive) -> None:
        self.primitives.append(primitive)

    def thin_radius(self, radius_m: float, at_m) -> float:
        """radius_m, widened where needed so that a thin part at `at_m` is at least MIN_THIN_PX wide in the
        image: thinner ones would be drawn as broken dashes (one ray per pixel, no anti-aliasing)."""
        if self.camera is None:
            return radius_m
        depth = float(np.dot(np.asarray(at_m) - self.camera.position_m, self.camera.forward))
        return max(radius_m, 0.5 * MIN_THIN_PX * abs(depth) / self.camera.focal_px)

    def rod(self, start, end, radius_m: float, material: int) -> None:
        """A thin cylinder between two points (legs, poles, wires, rails), at least MIN_THIN_PX wide mid-way."""
        middle = 0.5 * (np.asarray(start, np.float64) + np.asarray(end, np.float64))
        self.add(rod(start, end, self.thin_radius(radius_m, middle), material))


# ---------------------------------------------------------------- small geometry helpers


def rotation_y(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z_to(axis) -> np.ndarray:
    """A rotation taking local +Z onto `axis` (for cylinders and tori)."""
    z = np.asarray(axis, np.float64) / np.sqrt(np.dot(axis, axis))
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = cross(helper, z)
    x /= np.sqrt(np.dot(x, x))
    return np.stack([x, cross(z, x), z], axis=1)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def rod(start, end, radius_m: float, material: int) -> Cylinder:
    """A thin cylinder between two points (legs, poles, wires, rails)."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    length = np.linalg.norm(end - start)
    return Cylinder(0.5 * (start + end), rotation_z_to(end - start), radius_m, 0.5 * length, material)


def box_on_floor(center_xz, floor_y, size_m, angle_rad, material) -> Box:
    center = np.array([center_xz[0], floor_y + 0.5 * size_m[1], center_xz[1]])
    return Box(center, rotation_y(angle_rad), 0.5 * np.asarray(size_m, np.float64), material)


def local_point(origin, angle_rad, offset) -> np.ndarray:
    """origin + offset rotated about +Y: positions of parts within a piece of furniture."""
    return np.asarray(origin, np.float64) + rotation_y(angle_rad) @ np.asarray(offset, np.float64)


def point_in_view(rng: np.random.Generator, camera: Camera, depth_m: float, margin: float = 0.1) -> np.ndarray:
    """A world point at depth_m along the optical axis, seen at a random pixel away from the borders."""
    col = rng.uniform(margin, 1 - margin) * camera.width - 0.5 * camera.width
    row = rng.uniform(margin, 1 - margin) * camera.height - 0.5 * camera.height
    ray = np.array([col / camera.focal_px, row / camera.focal_px, 1.0]) * depth_m
    return camera.position_m + camera.world_from_camera @ ray


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def random_camera(rng, height, width, position, target, fov_deg=(35.0, 90.0)) -> Camera:
    fov = np.deg2rad(rng.uniform(*fov_deg))
    rotation = look_at(position, target, roll_rad=rng.normal(0.0, 0.03))
    return Camera(rotation, np.asarray(position, np.float64), height, width, focal_px=focal_from_fov(width, fov))


# ---------------------------------------------------------------- relief patterns


def _blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    frequency = np.fft.fftfreq(image.shape[0])[:, None] ** 2 + np.fft.fftfreq(image.shape[1])[None, :] ** 2
    return np.fft.ifft2(np.fft.fft2(image) * np.exp(-2 * (np.pi * sigma_px) ** 2 * frequency)).real


def random_height_map(rng: np.random.Generator) -> HeightMap:
    """One of the bank's carving patterns (each is made once per process, on first use)."""
    return banked_height_map(str(rng.choice(RELIEF_KINDS)), int(rng.integers(HEIGHT_MAP_BANK_SIZE)))


@functools.lru_cache(maxsize=None)
def banked_height_map(kind: str, index: int) -> HeightMap:
    """Carving patterns in [-1, 0]: lettering (engraved or raised), bumps, ridges, tiles or rough noise.

    A flat frame at height 0 borders every pattern, so the carving never reaches the panel's sides.
    """
    rng = np.random.default_rng([BANK_SEED, RELIEF_KINDS.index(kind), index])
    n = HEIGHT_MAP_SIZE
    rows, cols = np.mgrid[0:n, 0:n] / n
    if kind == "letters":
        letters = lettering_mask(rng, n, n, lines=int(rng.integers(2, 5)))
        carved = letters if rng.uniform() < 0.5 else 1.0 - letters  # engraved letters or raised ones
    elif kind == "bumps":
        carved = np.ones((n, n))
        for _ in range(int(rng.integers(3, 20))):
            r0, c0, radius = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.03, 0.15)
            carved -= np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / (2 * radius**2))
    elif kind == "ridges":
        angle, period = rng.uniform(0, np.pi), rng.uniform(0.04, 0.2)
        phase = (np.cos(angle) * cols + np.sin(angle) * rows) / period
        carved = (np.sin(2 * np.pi * phase) > rng.uniform(-0.5, 0.5)).astype(np.float64)
    elif kind == "tiles":
        count = rng.integers(2, 8)
        grout = np.minimum(np.abs((rows * count) % 1 - 0.5), np.abs((cols * count) % 1 - 0.5)) > 0.45
        carved = grout.astype(np.float64)
    else:
        carved = _blur(rng.standard_normal((n, n)), rng.uniform(1.5, 6.0))
        carved = (carved - carved.min()) / (carved.max() - carved.min())
    height = -np.clip(_blur(carved, rng.uniform(0.6, 1.5)), 0.0, 1.0)
    frame = int(n * rng.uniform(0.03, 0.1))
    height[:frame], height[-frame:], height[:, :frame], height[:, -frame:] = 0.0, 0.0, 0.0, 0.0
    d_rows, d_cols = np.gradient(height)
    return HeightMap(height.astype(np.float32), np.stack([d_cols, d_rows]).astype(np.float32))


def relief_panel(rng, center, rotation, width_m, height_m, material, mounted: bool = False) -> ReliefPanel:
    """A carved panel centred on `center`, or with its back face there when `mounted` (on a wall).

    Its pattern repeats every 0.2-1.5 m, as carved tiles, lettering or ornament would, and is carved 1-12% of
    that deep: small-scale relief whatever the panel's size.
    """
    thickness = rng.uniform(0.02, 0.15)
    tile_m = min(log_uniform(rng, 0.2, 1.5), max(width_m, height_m))
    repeats = (max(1, round(width_m / tile_m)), max(1, round(height_m / tile_m)))
    depth = min(thickness * 0.9, log_uniform(rng, 0.01, 0.12) * tile_m)
    half = np.array([0.5 * width_m, 0.5 * height_m, 0.5 * thickness])
    center = np.asarray(center, np.float64) + (rotation[:, 2] * half[2] if mounted else 0.0)
    return ReliefPanel(center, rotation, half, depth, random_height_map(rng), material, repeats)


# ---------------------------------------------------------------- furniture and props


def add_table(b: _Builder, center_xz, floor_y, angle) -> float:
    """A table with thin legs (boxes or cylinders); returns the top's height for props."""
    rng = b.rng
    width, depth, top_y = rng.uniform(0.6, 1.8), rng.uniform(0.45, 1.0), rng.uniform(0.45, 0.8)
    thickness, leg = rng.uniform(0.015, 0.05), rng.uniform(0.012, 0.035)
    wood = b.material()
    origin = np.array([center_xz[0], floor_y, center_xz[1]])
    b.add(Box(local_point(origin, angle, [0, top_y - thickness / 2, 0]), rotation_y(angle),
              np.array([width / 2, thickness / 2, depth / 2]), wood))
    round_legs = rng.uniform() < 0.5
    for sx in (-1, 1):
        for sz in (-1, 1):
            foot = local_point(origin, angle, [sx * (width / 2 - 2 * leg), 0, sz * (depth / 2 - 2 * leg)])
            if round_legs:
                b.rod(foot, foot + [0, top_y - thickness, 0], leg, wood)
            else:
                b.add(Box(foot + [0, (top_y - thickness) / 2, 0], rotation_y(angle),
                          np.array([leg, (top_y - thickness) / 2, leg]), wood))
    return top_y


def add_chair(b: _Builder, center_xz, floor_y, angle) -> None:
    """Seat, four thin legs and a back of slats or spindles."""
    rng = b.rng
    seat, seat_y, leg = rng.uniform(0.38, 0.5), rng.uniform(0.4, 0.5), rng.uniform(0.01, 0.025)
    back_height = rng.uniform(0.35, 0.6)
    frame = b.material()
    origin = np.array([center_xz[0], floor_y, center_xz[1]])
    b.add(Box(local_point(origin, angle, [0, seat_y, 0]), rotation_y(angle), np.array([seat / 2, 0.02, seat / 2]),
              frame))
    corners = [(sx, sz) for sx in (-1, 1) for sz in (-1, 1)]
    for sx, sz in corners:
        foot = local_point(origin, angle, [sx * (seat / 2 - leg), 0, sz * (seat / 2 - leg)])
        top = seat_y + (back_height if sz > 0 else 0.0)  # the back legs continue up as the back posts
        b.rod(foot, foot + [0, top, 0], leg, frame)
    back_z = seat / 2 - leg
    if rng.uniform() < 0.5:  # horizontal slats
        for k in range(int(rng.integers(1, 4))):
            y = seat_y + back_height * (0.4 + 0.2 * k)
            b.add(Box(local_point(origin, angle, [0, min(y, seat_y + back_height - 0.03), back_z]), rotation_y(angle),
                      np.array([seat / 2, rng.uniform(0.01, 0.04), 0.01]), frame))
    else:  # vertical spindles under a top rail
        b.add(Box(local_point(origin, angle, [0, seat_y + back_height - 0.02, back_z]), rotation_y(angle),
                  np.array([seat / 2, 0.02, 0.015]), frame))
        for x in np.linspace(-seat / 2 + 0.08, seat / 2 - 0.08, int(rng.integers(2, 7))):
            bottom = local_point(origin, angle, [x, seat_y, back_z])
            b.rod(bottom, bottom + [0, back_height, 0], leg * 0.6, frame)


def add_shelf(b: _Builder, center_xz, floor_y, angle) -> None:
    rng = b.rng
    width, depth, height = rng.uniform(0.5, 1.5), rng.uniform(0.25, 0.45), rng.uniform(0.8, 2.2)
    board = rng.uniform(0.015, 0.03)
    wood = b.material()
    origin = np.array([center_xz[0], floor_y, center_xz[1]])
    for sx in (-1, 1):
        b.add(Box(local_point(origin, angle, [sx * width / 2, height / 2, 0]), rotation_y(angle),
                  np.array([board / 2, height / 2, depth / 2]), wood))
    for y in np.linspace(board, height - board, int(rng.integers(3, 6))):
        b.add(Box(local_point(origin, angle, [0, y, 0]), rotation_y(angle),
                  np.array([width / 2, board / 2, depth / 2]), wood))
        if rng.uniform() < 0.5:
            add_prop(b, local_point(origin, angle, [rng.uniform(-0.3, 0.3) * width, y + board / 2, 0]), max_size=0.2)


def add_lamp(b: _Builder, center_xz, floor_y) -> None:
    rng = b.rng
    height, pole = rng.uniform(1.2, 1.9), rng.uniform(0.006, 0.015)
    metal = b.material()
    base = np.array([center_xz[0], floor_y, center_xz[1]])
    b.add(Cylinder(base + [0, 0.015, 0], rotation_z_to([0, 1, 0]), rng.uniform(0.1, 0.2), 0.015, metal))
    b.rod(base, base + [0, height, 0], pole, metal)
    shade = b.material()
    if rng.uniform() < 0.5:
        b.add(Sphere(base + [0, height + 0.12, 0], rng.uniform(0.1, 0.2), shade))
    else:
        radius, half_height = rng.uniform(0.12, 0.25), rng.uniform(0.08, 0.15)
        b.add(Cylinder(base + [0, height, 0], rotation_z_to([0, 1, 0]), radius, half_height, shade))


def add_prop(b: _Builder, bottom, max_size: float) -> None:
    """A small object standing on a surface at `bottom`: ball, box, can, ring or a thin stick."""
    rng = b.rng
    size = rng.uniform(0.3, 1.0) * max_size
    bottom = np.asarray(bottom, np.float64)
    material = b.material()
    kind = rng.choice(["sphere", "box", "cylinder", "torus", "stick"])
    if kind == "sphere":
        b.add(Sphere(bottom + [0, size / 2, 0], size / 2, material))
    elif kind == "box":
        half = size * rng.uniform(0.2, 0.5, 3)
        b.add(Box(bottom + [0, half[1], 0], rotation_y(rng.uniform(0, np.pi)), half, material))
    elif kind == "cylinder":
        radius = size * rng.uniform(0.1, 0.4)
        b.add(Cylinder(bottom + [0, size / 2, 0], rotation_z_to([0, 1, 0]), radius, size / 2, material))
    elif kind == "torus":
        minor = size * rng.uniform(0.06, 0.15)
        b.add(Torus(bottom + [0, size / 2, 0], rotation_z_to(rng.normal(size=3)), size / 2 - minor, minor, material))
    else:
        tip = bottom + [rng.normal(0, 0.3) * size, size * 1.5, rng.normal(0, 0.3) * size]
        b.rod(bottom, tip, rng.uniform(0.003, 0.008), material)


def add_random_solid(b: _Builder, center, size_m: float) -> None:
    """A primitive of any kind and orientation, for still lifes and outdoor clutter."""
    rng = b.rng
    material = b.material()
    kind = rng.choice(["sphere", "box", "cylinder", "torus", "rod", "grid", "relief"],
                      p=[0.2, 0.2, 0.15, 0.15, 0.1, 0.1, 0.1])
    center = np.asarray(center, np.float64)
    if kind == "sphere":
        b.add(Sphere(center, size_m / 2, material))
    elif kind == "box":
        b.add(Box(center, random_rotation(rng), size_m * rng.uniform(0.1, 0.6, 3), material))
    elif kind == "cylinder":
        radius, half_length = size_m * rng.uniform(0.05, 0.3), size_m * rng.uniform(0.2, 0.6)
        b.add(Cylinder(center, random_rotation(rng), radius, half_length, material))
    elif kind == "torus":
        minor = size_m * rng.uniform(0.04, 0.15)
        b.add(Torus(center, random_rotation(rng), size_m / 2 - minor, minor, material))
    elif kind == "rod":
        direction = rng.normal(size=3)
        direction *= size_m / np.linalg.norm(direction)
        b.rod(center - direction, center + direction, size_m * rng.uniform(0.005, 0.03), material)
    elif kind == "grid":
        spacing = size_m * rng.uniform(0.05, 0.2)
        radius = b.thin_radius(spacing * rng.uniform(0.05, 0.2), center)
        spacings = (spacing, spacing * rng.choice([0, 1, 1]))  # a third are pickets only
        b.add(WireGrid(center, random_rotation(rng), (size_m / 2, size_m / 2), spacings, min(radius, 0.3 * spacing),
                       material))
    else:
        b.add(relief_panel(rng, center, random_rotation(rng), size_m, size_m * rng.uniform(0.4, 1.0), material))


def add_fence(b: _Builder, start, direction, ground_height, length_m: float) -> None:
    """Posts along a line with wire rails or mesh panels between them."""
    rng = b.rng
    post_gap, height = rng.uniform(1.0, 3.0), rng.uniform(0.8, 2.0)
    post = rng.uniform(0.02, 0.06)
    posts, wire = b.material(), b.material()
    direction = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    count = max(2, int(length_m / post_gap))
    feet = [np.asarray(start, np.float64) + k * post_gap * direction for k in range(count)]
    feet = [np.array([f[0], ground_height(f[0], f[2]), f[2]]) for f in feet]
    angle = np.arctan2(-direction[2], direction[0])  # rotation_y(angle) turns local +X along the fence
    square_posts = rng.uniform() < 0.5
    for foot in feet:
        if square_posts:
            b.add(Box(foot + [0, height / 2, 0], rotation_y(angle), np.array([post, height / 2, post]), posts))
        else:
            b.rod(foot, foot + [0, height, 0], post, posts)
    mesh = rng.uniform() < 0.5
    for a, c in zip(feet[:-1], feet[1:]):
        if mesh:
            spacing = rng.uniform(0.04, 0.2)
            center = 0.5 * (a + c) + [0, height / 2, 0]
            radius = min(b.thin_radius(rng.uniform(0.002, 0.006), center), 0.3 * spacing)
            half_size = (post_gap / 2 - post, height / 2)
            b.add(WireGrid(center, rotation_y(angle), half_size, (spacing, spacing), radius, wire))
        else:
            for y in np.linspace(0.25, 0.95, int(rng.integers(2, 5))) * height:
                b.rod(a + [0, y, 0], c + [0, y, 0], rng.uniform(0.003, 0.012), wire)


def add_power_line(b: _Builder, start, direction, ground_height, rng_span=(15.0, 35.0)) -> None:
    """Two or three poles with sagging wires between them (each wire as a few straight pieces)."""
    rng = b.rng
    pole_height, span = rng.uniform(6, 10), rng.uniform(*rng_span)
    pole, wire = b.material(), b.material()
    direction = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    side = cross(direction, [0, 1, 0])
    feet = [np.asarray(start, np.float64) + k * span * direction for k in range(int(rng.integers(2, 4)))]
    feet = [np.array([f[0], ground_height(f[0], f[2]), f[2]]) for f in feet]
    arm_half = rng.uniform(0.6, 1.2)
    for foot in feet:
        b.rod(foot, foot + [0, pole_height, 0], rng.uniform(0.1, 0.15), pole)
        arm = foot + [0, pole_height - 0.3, 0]
        b.rod(arm - arm_half * side, arm + arm_half * side, 0.05, pole)
    for offset in np.linspace(-arm_half * 0.9, arm_half * 0.9, int(rng.integers(2, 4))):
        sag = rng.uniform(0.3, 1.0)
        for a, c in zip(feet[:-1], feet[1:]):
            ends = [a + [0, pole_height - 0.25, 0] + offset * side, c + [0, pole_height - 0.25, 0] + offset * side]
            pieces = 4
            points = [ends[0] + (ends[1] - ends[0]) * k / pieces - [0, sag * 4 * (k / pieces) * (1 - k / pieces), 0]
                      for k in range(pieces + 1)]
            for p, q in zip(points[:-1], points[1:]):
                b.rod(p, q, rng.uniform(0.008, 0.02), wire)


def add_tree(b: _Builder, foot) -> None:
    rng = b.rng
    height, trunk = rng.uniform(2.5, 8.0), rng.uniform(0.08, 0.3)
    bark, leaves = b.material(), b.material(patterns=("noise",))
    foot = np.asarray(foot, np.float64)
    b.rod(foot, foot + [0, height, 0], trunk, bark)
    for _ in range(int(rng.integers(1, 5))):
        crown = foot + [rng.normal(0, 0.4), height * rng.uniform(0.75, 1.0), rng.normal(0, 0.4)]
        b.add(Sphere(crown, height * rng.uniform(0.12, 0.25), leaves))
    for _ in range(int(rng.integers(0, 4))):  # bare branches
        start = foot + [0, height * rng.uniform(0.4, 0.8), 0]
        b.rod(start, start + rng.normal(0, 1, 3) * [1, 0.3, 1] + [0, 0.5, 0], trunk * 0.25, bark)


# ---------------------------------------------------------------- lighting


def random_lighting(rng: np.random.Generator, outdoor: bool) -> Lighting:
    elevation = np.deg2rad(rng.uniform(15, 75) if outdoor else rng.uniform(30, 80))
    azimuth = rng.uniform(0, 2 * np.pi)
    toward_sun = np.array([np.cos(elevation) * np.cos(azimuth), np.sin(elevation), np.cos(elevation) * np.sin(azimuth)])
    warmth = rng.uniform(-0.15, 0.25)
    sun = rng.uniform(2.0, 4.0) if outdoor else rng.uniform(0.8, 2.5)
    sky_level = rng.uniform(0.25, 0.6)
    sky_rgb = hsv_to_linear_rgb(rng.uniform(0.55, 0.65), rng.uniform(0.1, 0.5), 1.0) * sky_level
    return Lighting(
        toward_sun=toward_sun,
        sun_rgb=sun * np.array([1.0 + warmth, 1.0, 1.0 - warmth]),
        sky_rgb=sky_rgb,
        horizon_rgb=hsv_to_linear_rgb(rng.uniform(0.05, 0.6), rng.uniform(0.0, 0.2), 1.0) * sky_level * 1.5,
        ground_rgb=hsv_to_linear_rgb(rng.uniform(0.05, 0.35), rng.uniform(0.1, 0.4), 1.0) * rng.uniform(0.05, 0.2),
        fog_distance_m=log_uniform(rng, 40.0, 400.0) if outdoor and rng.uniform() < 0.7 else float("inf"),
        cloud_cover=rng.uniform(0.0, 0.8),
    )


# ---------------------------------------------------------------- scene kinds


def room_scene(rng, height, width) -> Scene:
    size = np.array([rng.uniform(3, 8), rng.uniform(2.4, 3.5), rng.uniform(3, 10)])  # x, y, z extent
    b = _Builder(rng)
    open_top = rng.uniform() < 0.2
    walls = b.material(("plain", "noise", "stripes", "bricks", "text"))
    floor = b.material(("plain", "noise", "checker", "tiles", "stripes"))
    ceiling = b.material(("plain", "noise", "tiles"))
    b.add(Room(np.array([0, size[1] / 2, 0]), size / 2, walls, floor, ceiling, open_top=open_top))
    position = np.array([rng.uniform(-0.4, 0.4) * size[0], rng.uniform(0.9, 1.9), -size[2] / 2 + rng.uniform(0.3, 1.2)])
    target = np.array([rng.uniform(-0.4, 0.4) * size[0], rng.uniform(0.0, 1.4), rng.uniform(0.0, 0.5) * size[2]])
    camera = random_camera(rng, height, width, position, target, fov_deg=(45.0, 90.0))
    b.camera = camera

    def free_spot():
        return rng.uniform(-0.4, 0.4) * size[0], rng.uniform(-0.35, 0.45) * size[2]

    for _ in range(int(rng.integers(3, 9))):
        spot, angle = free_spot(), rng.uniform(0, 2 * np.pi)
        kind = rng.choice(["table", "chair", "shelf", "lamp", "prop"], p=[0.25, 0.35, 0.15, 0.1, 0.15])
        if kind == "table":
            top = add_table(b, spot, 0.0, angle)
            for _ in range(int(rng.integers(0, 4))):
                add_prop(b, [spot[0] + rng.uniform(-0.2, 0.2), top, spot[1] + rng.uniform(-0.2, 0.2)], max_size=0.3)
        elif kind == "chair":
            add_chair(b, spot, 0.0, angle)
        elif kind == "shelf":
            add_shelf(b, spot, 0.0, angle)
        elif kind == "lamp":
            add_lamp(b, spot, 0.0)
        else:
            add_prop(b, [spot[0], 0.0, spot[1]], max_size=0.6)
    for _ in range(int(rng.integers(0, 3))):  # relief panels and grilles on the walls
        wall_x = rng.choice([-1, 1]) * size[0] / 2
        center = np.array([wall_x, rng.uniform(0.8, 2.0), rng.uniform(-0.3, 0.4) * size[2]])
        rotation = rotation_y(np.pi / 2 * np.sign(-wall_x))  # local +Z faces into the room
        panel_w, panel_h = rng.uniform(0.4, 2.0), rng.uniform(0.3, 1.2)
        if rng.uniform() < 0.6:
            b.add(relief_panel(rng, center, rotation, panel_w, panel_h, b.material(), mounted=True))
        else:
            spacing = rng.uniform(0.03, 0.15)
            radius = min(b.thin_radius(rng.uniform(0.004, 0.012), center), 0.3 * spacing)
            b.add(WireGrid(center + rotation[:, 2] * rng.uniform(0.03, 0.2), rotation, (panel_w / 2, panel_h / 2),
                           (spacing, spacing * rng.choice([0, 1])), radius, b.material()))
    for _ in range(int(rng.integers(0, 3))):  # cables across the room
        a = np.array([rng.uniform(-0.5, 0.5) * size[0], size[1] - 0.05, rng.uniform(-0.3, 0.5) * size[2]])
        c = np.array([rng.uniform(-0.5, 0.5) * size[0], rng.uniform(0.5, size[1]), rng.uniform(-0.3, 0.5) * size[2]])
        b.rod(a, c, rng.uniform(0.003, 0.01), b.material())
    return Scene("room", camera, random_lighting(rng, outdoor=open_top), max_depth_m=30.0,
                 materials=b.materials, primitives=b.primitives)


def _ground(b: _Builder, rng, max_depth_m):
    """A flat ground plane or rolling terrain; returns (primitive, height function of x and z in numpy)."""
    ground_material = b.material(("noise", "plain", "stripes", "tiles"))
    if rng.uniform() < 0.5:
        return Plane(np.array([0.0, 1.0, 0.0]), 0.0, ground_material), lambda x, z: 0.0
    count = TERRAIN_WAVES
    amplitudes = np.array([log_uniform(rng, 0.5, 8.0) / 2**k for k in range(count)])
    wavelengths = np.array([rng.uniform(30, 120) / 2**k for k in range(count)])
    angles = rng.uniform(0, 2 * np.pi, count)
    frequencies = (2 * np.pi / wavelengths)[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    phases = rng.uniform(0, 2 * np.pi, count)
    terrain = Terrain(0.0, amplitudes, frequencies, phases, max_depth_m, ground_material)

    def height(x, z):
        return float(np.sum(amplitudes * np.sin(frequencies[:, 0] * x + frequencies[:, 1] * z + phases)))

    return terrain, height


def outdoor_scene(rng, height, width) -> Scene:
    max_depth = rng.uniform(60.0, 150.0)
    b = _Builder(rng)
    ground, ground_height = _ground(b, rng, max_depth)
    b.add(ground)
    heading = rng.uniform(0, 2 * np.pi)
    forward = np.array([np.cos(heading), 0.0, np.sin(heading)])
    eye_height = log_uniform(rng, 1.0, 8.0)
    position = np.array([0.0, ground_height(0.0, 0.0) + eye_height, 0.0])
    target = position + forward * 10 + [0, rng.uniform(-4.0, 1.0) - 0.2 * eye_height, 0]
    camera = random_camera(rng, height, width, position, target)
    b.camera = camera

    def on_ground(distance_m, spread):
        """A ground point about distance_m ahead, spread sideways by up to `spread` of the distance."""
        side = cross(forward, [0, 1, 0])
        p = position + forward * distance_m + side * rng.uniform(-spread, spread) * distance_m
        return np.array([p[0], ground_height(p[0], p[2]), p[2]])

    for _ in range(int(rng.integers(0, 3))):
        start = on_ground(log_uniform(rng, 2.0, 25.0), 0.8)
        add_fence(b, start, rng.normal(size=3) * [1, 0, 1], ground_height, rng.uniform(5, 30))
    if rng.uniform() < 0.4:
        add_power_line(b, on_ground(rng.uniform(8, 40), 0.6), rng.normal(size=3) * [1, 0, 1], ground_height)
    for _ in range(int(rng.integers(0, 8))):
        add_tree(b, on_ground(log_uniform(rng, 6.0, 80.0), 1.0))
    for _ in range(int(rng.integers(0, 4))):  # buildings with carved facades
        size = np.array([rng.uniform(4, 20), rng.uniform(3, 15), rng.uniform(4, 20)])
        clearance = 0.5 * np.hypot(size[0], size[2]) + 2.0  # keeps the camera out of it
        foot = on_ground(log_uniform(rng, 10.0, 90.0) + clearance, 1.0)
        angle = rng.uniform(0, 2 * np.pi)
        b.add(box_on_floor((foot[0], foot[2]), foot[1] - 1.0, size + [0, 1.0, 0], angle, b.material()))
        facade = rotation_y(angle)
        front = foot + [0, size[1] / 2, 0] + facade[:, 2] * (size[2] / 2)
        b.add(relief_panel(rng, front, facade, size[0] * 0.9, size[1] * 0.8, b.material(("plain", "noise", "bricks"))))
    for _ in range(int(rng.integers(3, 15))):  # clutter at all distances
        distance = log_uniform(rng, 1.5, 60.0)
        size = distance * log_uniform(rng, 0.03, 0.3)
        foot = on_ground(distance, 0.7)
        lift = size / 2 if rng.uniform() < 0.85 else rng.uniform(0.5, 3.0) * size  # a few float
        add_random_solid(b, foot + [0, lift, 0], size)
    return Scene("outdoor", camera, random_lighting(rng, outdoor=True), max_depth, b.materials, b.primitives)


def still_life_scene(rng, height, width) -> Scene:
    b = _Builder(rng)
    if rng.uniform() < 0.5:  # a studio backdrop or open air
        size = np.array([rng.uniform(6, 20), rng.uniform(4, 10), rng.uniform(6, 20)])
        backdrop, floor = b.material(), b.material()
        b.add(Room(np.array([0, size[1] / 2, 0]), size / 2, backdrop, floor, backdrop))
        floor_y, eye = 0.0, np.array([0.0, rng.uniform(0.5, 2.0), -size[2] / 2 + 0.5])
    else:
        b.add(Plane(np.array([0.0, 1.0, 0.0]), 0.0, b.material()))
        floor_y, eye = 0.0, np.array([0.0, rng.uniform(0.5, 3.0), 0.0])
    target = eye + [rng.uniform(-1, 1), rng.uniform(-1.5, 0.2), rng.uniform(2, 4)]
    camera = random_camera(rng, height, width, eye, target)
    b.camera = camera
    for _ in range(int(rng.integers(6, 20))):
        depth = log_uniform(rng, 0.6, 15.0)
        center = point_in_view(rng, camera, depth)
        size = depth * log_uniform(rng, 0.05, 0.5)
        center[1] = max(center[1], floor_y + size / 2)
        add_random_solid(b, center, size)
    lighting = random_lighting(rng, outdoor=rng.uniform() < 0.5)
    return Scene("still_life", camera, lighting, 40.0, b.materials, b.primitives)


def relief_wall_scene(rng, height, width) -> Scene:
    """A large carved wall seen close up and at an angle, with a few objects in front of it."""
    b = _Builder(rng)
    b.add(Plane(np.array([0.0, 1.0, 0.0]), 0.0, b.material()))
    distance = log_uniform(rng, 0.6, 4.0)
    wall_size = distance * rng.uniform(1.2, 3.0)
    wall_center = np.array([0.0, max(wall_size / 2, rng.uniform(0.5, 2.0)), 0.0])
    b.add(relief_panel(rng, wall_center, IDENTITY, wall_size, wall_size, b.material()))
    b.add(Box(wall_center - [0, 0, 0.3], IDENTITY, np.array([wall_size, wall_size, 0.25]), b.material()))
    yaw, pitch = rng.uniform(-0.9, 0.9), rng.uniform(-0.5, 0.5)
    eye = wall_center + distance * np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    eye[1] = max(eye[1], 0.2)
    target = wall_center + rng.uniform(-0.2, 0.2, 3) * wall_size * [1, 1, 0]
    camera = random_camera(rng, height, width, eye, target, fov_deg=(35.0, 75.0))
    b.camera = camera
    for _ in range(int(rng.integers(0, 5))):
        depth = distance * rng.uniform(0.3, 0.9)
        add_random_solid(b, point_in_view(rng, camera, depth), depth * log_uniform(rng, 0.05, 0.3))
    return Scene("relief_wall", camera, random_lighting(rng, outdoor=True), 40.0, b.materials, b.primitives)


def high_contrast_material(rng: np.random.Generator) -> Material:
    """Dark against bright (about 1:20 in linear light) in a pattern with sharp edges: pictures, text, tiles.

    Tiles are large (1.5-4 m; text 4-8 m, murals) so that their detail stays sharp at room distances instead of fading
    to its mean (the renderer's stand-in for texture filtering)."""
    pattern = str(rng.choice(TEXTURE_COPY_PATTERNS))
    dark = hsv_to_linear_rgb(rng.uniform(), rng.uniform(0.0, 0.6), rng.uniform(0.1, 0.25))
    bright = hsv_to_linear_rgb(rng.uniform(), rng.uniform(0.0, 0.3), rng.uniform(0.8, 1.0))
    dark, bright = (dark, bright) if rng.uniform() < 0.5 else (bright, dark)
    return Material(color_a=dark, color_b=bright, pattern=pattern, variant=int(rng.integers(TILE_VARIANTS)),
                    scale_m=log_uniform(rng, *((4.0, 8.0) if pattern == "text" else (1.5, 4.0))), angle_rad=0.0 if rng.uniform() < 0.8 else rng.uniform(0, np.pi),
                    dirt=0.0)


def texture_copy_scene(rng, height, width) -> Scene:
    """An empty room: flat walls, floor and ceiling covered in high-contrast pictures, text and tiles, and no
    relief at all, so that every depth change a model predicts inside a face is copied texture."""
    size = np.array([rng.uniform(3, 8), rng.uniform(2.4, 3.5), rng.uniform(3, 10)])
    materials = [high_contrast_material(rng) for _ in range(3)]
    room = Room(np.array([0, size[1] / 2, 0]), size / 2, 0, 1, 2)
    position = np.array([rng.uniform(-0.4, 0.4) * size[0], rng.uniform(0.9, 1.9), -size[2] / 2 + rng.uniform(0.3, 1.2)])
    target = np.array([rng.uniform(-0.5, 0.5) * size[0], rng.uniform(0.0, 2.0), rng.uniform(-0.2, 0.5) * size[2]])
    camera = random_camera(rng, height, width, position, target, fov_deg=(45.0, 90.0))
    return Scene("texture_copy", camera, random_lighting(rng, outdoor=False), max_depth_m=30.0,
                 materials=materials, primitives=[room])


LAYOUTS = {"room": room_scene, "outdoor": outdoor_scene, "still_life": still_life_scene,
           "relief_wall": relief_wall_scene, "texture_copy": texture_copy_scene}


def random_scene(rng: np.random.Generator, height: int, width: int, kind: str | None = None) -> Scene:
    kind = kind or str(rng.choice(SCENE_KINDS, p=SCENE_KIND_WEIGHTS))
    return LAYOUTS[kind](rng, height, width)
