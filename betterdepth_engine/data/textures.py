"""Procedural surface colour: materials, banked pattern tiles, and the albedo of every hit point.

A material mixes two colours by a pattern (noise, stripes, checker, tiles, bricks, painted letters, a
gradient, or nothing), modulated by dirt. Patterns are tileable grey images in a fixed bank, made once per
process and laid side by side in one atlas, so that colouring a pixel is one texture lookup whatever its
pattern. They live in world space, box-mapped onto surfaces (each pixel uses the coordinate plane most
perpendicular to its normal), scaled and turned per material: a pattern continues across neighbouring
surfaces and shows perspective like a real texture, yet its edges fall where depth is smooth. Colours are
linear RGB in [0, 1].
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from betterdepth_engine.data.vectors import sample_texture

BANK_SEED = 20240725  # the banks are fixed; scenes pick from them by seed
PATTERNS = ("plain", "noise", "stripes", "checker", "tiles", "bricks", "text", "gradient", "picture")
# What random materials draw from. "picture" (photographs as posters, for the texture-copy scenes) is left
# out so that the training scenes of every seed stay what they were before it existed.
RANDOM_PATTERNS = PATTERNS[:-1]
# Public-domain photographs bundled with scikit-image, one per banked "picture" tile.
PICTURES = ("camera", "astronaut", "coffee", "chelsea", "rocket", "page", "coins", "horse")
TILE_VARIANTS = 8  # banked tiles per pattern
TILE_SIZE = 128
NOISE_TEXTURE_SIZE = 128
NOISE_BANK_SIZE = 32
# The finest detail of each pattern, as a fraction of its tile: below a few pixels it fades (anti-aliasing).
FEATURE_SIZE = {"plain": 1.0, "noise": 1 / 16, "stripes": 1 / 8, "checker": 1 / 2, "tiles": 1 / 20,
                "bricks": 1 / 20, "text": 1 / 40, "gradient": 1.0, "picture": 1 / 8}
DIRT_PERIOD_M = 2.0  # one period of the dirt noise on surfaces


@dataclass(frozen=True)
class Material:
    color_a: np.ndarray  # linear RGB
    color_b: np.ndarray  # the pattern's second colour
    pattern: str  # one of PATTERNS
    variant: int  # which of the pattern's banked tiles
    scale_m: float  # the size of one tile on surfaces
    angle_rad: float  # rotation of the tile within the surface
    dirt: float  # multiplicative brightness variation, uncorrelated with the pattern


@dataclass(frozen=True)
class SceneTextures:
    noise: torch.Tensor  # 1 x 2 x (N + 1) x (N + 1): two channels of tileable fBm in [0, 1], wrap-padded


def hsv_to_linear_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """HSV (display space, gamma 2) -> linear RGB, so random colours are picked where people perceive them."""
    channel = np.array([5.0, 3.0, 1.0])
    k = (channel + hue * 6.0) % 6.0
    display = value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return display**2


def random_material(rng: np.random.Generator, patterns=RANDOM_PATTERNS) -> Material:
    color_a = hsv_to_linear_rgb(rng.uniform(), rng.beta(1.2, 2.0), rng.uniform(0.25, 0.95))
    # The second colour is often a shade of the first (wood grain, brick and mortar), sometimes unrelated.
    if rng.uniform() < 0.6:
        color_b = color_a * rng.uniform(0.3, 1.6)
    else:
        color_b = hsv_to_linear_rgb(rng.uniform(), rng.beta(1.2, 2.0), rng.uniform(0.2, 0.95))
    pattern = str(rng.choice(patterns))
    # Man-made patterns mostly run level; the rest at any angle.
    level = pattern in ("checker", "tiles", "bricks", "text") and rng.uniform() < 0.7
    return Material(
        color_a=np.clip(color_a, 0.0, 1.0),
        color_b=np.clip(color_b, 0.0, 1.0),
        pattern=pattern,
        variant=int(rng.integers(TILE_VARIANTS)),
        scale_m=float(np.exp(rng.uniform(np.log(0.1), np.log(3.0)))),
        angle_rad=0.0 if level else float(rng.uniform(0, np.pi)),
        dirt=float(rng.uniform(0.0, 0.5)),
    )


def fbm_texture(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """Tileable fractal noise (1/f amplitude spectrum), channels x size x size in [0, 1]."""
    frequency = np.fft.fftfreq(size)
    radius = np.sqrt(frequency[:, None] ** 2 + frequency[None, :] ** 2)
    amplitude = np.where(radius > 0, 1.0 / np.maximum(radius, 1e-9) ** 1.6, 0.0)
    spectrum = np.fft.fft2(rng.standard_normal((channels, size, size))) * amplitude
    noise = np.fft.ifft2(spectrum).real
    low = noise.min(axis=(1, 2), keepdims=True)
    high = noise.max(axis=(1, 2), keepdims=True)
    return ((noise - low) / (high - low)).astype(np.float32)


def lettering_mask(rng: np.random.Generator, rows: int, columns: int, lines: int) -> np.ndarray:
    """Random capitals and digits in `lines` rows of text, rows x columns float32, 1 on the glyphs."""
    canvas = Image.new("L", (columns, rows))
    draw = ImageDraw.Draw(canvas)
    line_height = rows / lines
    font = ImageFont.load_default(size=max(6, int(line_height * 0.8)))
    alphabet = string.ascii_uppercase + string.digits + "  "
    for line in range(lines):
        text = "".join(rng.choice(list(alphabet), size=int(columns / line_height * 1.8)))
        draw.text((rng.uniform(-line_height, 0), line * line_height), text, font=font, fill=255)
    return np.asarray(canvas, np.float32) / 255.0


def pattern_tile(pattern: str, variant: int) -> np.ndarray:
    """A tileable TILE_SIZE x TILE_SIZE pattern in [0, 1] (0: colour a, 1: colour b); rows run down."""
    rng = np.random.default_rng([BANK_SEED, PATTERNS.index(pattern), variant])
    n = TILE_SIZE
    v, u = (np.mgrid[0:n, 0:n] + 0.5) / n
    if pattern == "plain":
        tile = np.zeros((n, n))
    elif pattern == "noise":
        tile = fbm_texture(rng, n, 1)[0]
    elif pattern == "stripes":
        count, sharpness = rng.integers(1, 5), rng.uniform(1.0, 8.0)
        tile = 0.5 + 0.5 * np.tanh(sharpness * np.sin(2 * np.pi * count * u) + rng.uniform(-0.5, 0.5))
    elif pattern == "checker":
        tile = (np.floor(2 * u) + np.floor(2 * v)) % 2
    elif pattern in ("tiles", "bricks"):
        rows = int(rng.integers(1, 4)) * (2 if pattern == "bricks" else 1)
        columns = rows // 2 if pattern == "bricks" else rows
        shifted = u * max(columns, 1) + (0.5 * (np.floor(v * rows) % 2) if pattern == "bricks" else 0.0)
        grout = rng.uniform(0.02, 0.06)
        across = np.minimum(np.abs(shifted - np.round(shifted)), np.abs(v * rows - np.round(v * rows)))
        tile = (across < grout).astype(np.float64)
    elif pattern == "text":
        tile = lettering_mask(rng, n, n, lines=int(rng.integers(2, 5)))
    elif pattern == "picture":
        return picture_tile(PICTURES[variant % len(PICTURES)])
    else:  # gradient
        tile = 0.5 + 0.5 * np.sin(2 * np.pi * v)
    # A little noise in every pattern, as on real surfaces.
    roughness = rng.uniform(0.0, 0.3)
    return np.clip(tile + roughness * (fbm_texture(rng, n, 1)[0] - 0.5), 0.0, 1.0).astype(np.float32)


def picture_tile(name: str) -> np.ndarray:
    """A scikit-image sample photograph as a TILE_SIZE square grey tile in [0, 1], contrast stretched."""
    import skimage.data

    photo = np.asarray(getattr(skimage.data, name)(), np.float64)
    if photo.ndim == 3:
        photo = photo[..., :3].mean(axis=2)
    side = min(photo.shape)
    top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    square = Image.fromarray(photo[top:top + side, left:left + side].astype(np.float32))
    tile = np.asarray(square.resize((TILE_SIZE, TILE_SIZE), Image.Resampling.BILINEAR), np.float64)
    low, high = np.percentile(tile, [1, 99])
    return np.clip((tile - low) / max(high - low, 1e-6), 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _pattern_bank() -> tuple[np.ndarray, np.ndarray]:
    tiles = [pattern_tile(p, variant) for p in PATTERNS for variant in range(TILE_VARIANTS)]
    return np.concatenate([_wrap_pad(tile) for tile in tiles], axis=1), np.array([t.mean() for t in tiles], np.float32)


@functools.lru_cache(maxsize=None)
def pattern_atlas(device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every banked tile, wrap-padded and side by side (1 x 1 x (T + 1) x k(T + 1)), and each tile's mean."""
    atlas, means = _pattern_bank()
    return torch.as_tensor(atlas, device=device)[None, None], torch.as_tensor(means, device=device)


def _wrap_pad(texture: np.ndarray) -> np.ndarray:
    """Repeat the first row and column after the last, so bilinear sampling of frac(u) wraps without a seam."""
    return np.pad(texture, [(0, 0)] * (texture.ndim - 2) + [(0, 1), (0, 1)], mode="wrap")


@functools.lru_cache(maxsize=None)
def banked_noise(index: int) -> np.ndarray:
    """The index-th noise texture of a fixed bank (2 x (N + 1) x (N + 1), wrap-padded), for dirt and clouds."""
    return _wrap_pad(fbm_texture(np.random.default_rng([BANK_SEED, 100, index]), NOISE_TEXTURE_SIZE, channels=2))


def scene_textures(rng: np.random.Generator, device) -> SceneTextures:
    return SceneTextures(noise=torch.as_tensor(banked_noise(int(rng.integers(NOISE_BANK_SIZE))), device=device)[None])


def material_table(materials: list[Material], device) -> torch.Tensor:
    """One column per material (P x M float32), so per-pixel parameters are a single index_select."""
    rows = []
    for m in materials:
        tile = PATTERNS.index(m.pattern) * TILE_VARIANTS + m.variant
        rows.append([*m.color_a, *m.color_b, 1.0 / m.scale_m, np.cos(m.angle_rad), np.sin(m.angle_rad), tile,
                     1.0 / FEATURE_SIZE[m.pattern], m.dirt])
    return torch.as_tensor(np.asarray(rows, np.float32).T.copy(), device=device)


def _box_mapped(points: torch.Tensor, normal: torch.Tensor):
    """Surface coordinates (u, v) in metres: the point projected on the world coordinate plane most
    perpendicular to the normal (v runs down walls)."""
    nx, ny, nz = normal[0].abs(), normal[1].abs(), normal[2].abs()
    facing_y = ((ny >= nx) & (ny >= nz)).float()
    facing_x = ((nx > ny) & (nx >= nz)).float()
    u = points[0] + facing_x * (points[2] - points[0])
    v = facing_y * points[2] - (1.0 - facing_y) * points[1]
    return u, v


def albedo(points, normal, material, materials: list[Material], textures: SceneTextures, footprint_m) -> torch.Tensor:
    """Linear-RGB albedo (3 x N) of hit points (3 x N); material -1 (nothing hit) gets material 0's colour.

    footprint_m is the size of a pixel on the surface (N). Where a pattern's finest detail covers only a few
    pixels it fades to the pattern's mean: a cheap stand-in for texture filtering, without which fine stripes,
    tiles and letters would alias into moire.
    """
    p = material_table(materials, points.device).index_select(1, material.clamp(min=0))
    color_a, color_b, inverse_scale, cos_a, sin_a, tile, inverse_feature, dirt = (
        p[0:3], p[3:6], p[6], p[7], p[8], p[9], p[10], p[11])
    atlas, means = pattern_atlas(points.device)
    u_m, v_m = _box_mapped(points, normal)
    # The tile's coordinates, turned by the material angle and wrapped into [0, 1).
    u = (cos_a * u_m - sin_a * v_m) * inverse_scale
    v = (sin_a * u_m + cos_a * v_m) * inverse_scale
    u, v = u - torch.floor(u), v - torch.floor(v)
    tile_columns = TILE_SIZE + 1
    column = (tile * tile_columns + u * TILE_SIZE) * (2.0 / (atlas.shape[-1] - 1)) - 1
    mix = sample_texture(atlas, column, v * 2 - 1)[0]
    mean = means.index_select(0, tile.long())
    mix = mean + (mix - mean) * _visibility(footprint_m * inverse_scale * inverse_feature)
    color = color_a + (color_b - color_a) * mix
    dirt_u, dirt_v = u_m * (1 / DIRT_PERIOD_M), v_m * (1 / DIRT_PERIOD_M)
    dirt_u, dirt_v = dirt_u - torch.floor(dirt_u), dirt_v - torch.floor(dirt_v)
    grime = sample_texture(textures.noise[:, 1:], dirt_u * 2 - 1, dirt_v * 2 - 1)[0]
    grime = 0.5 + (grime - 0.5) * _visibility(footprint_m * (16 / DIRT_PERIOD_M))
    return color * (1.0 + dirt * (2.0 * grime - 1.0))


def _visibility(pixel_over_detail: torch.Tensor) -> torch.Tensor:
    """How much of a detail to show: 1 where it spans 8 pixels or more, fading to 0 at about 2.7 pixels."""
    return (1.5 - 4.0 * pixel_over_detail).clamp(0.0, 1.0)
