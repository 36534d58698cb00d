"""Procedural surface colour: materials, the per-scene noise and lettering textures, and albedo per pixel.

Patterns live in world space, box-mapped onto surfaces (each pixel uses the coordinate plane most
perpendicular to its normal), so a pattern continues across neighbouring surfaces and shows perspective
like a real texture, yet its edges (stripes, checker, tiles, painted letters) fall where depth is smooth.
Colours are linear RGB in [0, 1].
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from betterdepth_engine.data.vectors import sample_texture

BANK_SEED = 20240725  # the texture banks are fixed; scenes pick from them by seed
TEXTURE_BANK_SIZE = 32
PATTERNS = ("plain", "noise", "stripes", "checker", "tiles", "bricks", "text", "gradient")
NOISE_TEXTURE_SIZE = 128
TEXT_TEXTURE_SIZE = (64, 256)  # rows, columns


@dataclass(frozen=True)
class Material:
    color_a: np.ndarray  # linear RGB
    color_b: np.ndarray  # the pattern's second colour
    pattern: str  # one of PATTERNS
    scale_m: float  # size of one pattern period (stripe pair, checker square, tile, letter line)
    angle_rad: float  # rotation of the pattern about world +Y (and of stripes within their plane)
    noise_weight: float  # how much fBm noise modulates the pattern
    dirt: float  # multiplicative brightness variation, uncorrelated with the pattern


@dataclass(frozen=True)
class SceneTextures:
    """Tileable textures shared by a scene's materials (torch, 1 x C x (N + 1) x (M + 1), wrap-padded)."""

    noise: torch.Tensor  # 2 channels of independent fBm in [0, 1]
    text: torch.Tensor  # 1 channel: 1 on painted letters


def hsv_to_linear_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """HSV (display space, gamma 2) -> linear RGB, so random colours are picked where people perceive them."""
    channel = np.array([5.0, 3.0, 1.0])
    k = (channel + hue * 6.0) % 6.0
    display = value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return display**2


def random_material(rng: np.random.Generator, patterns=PATTERNS) -> Material:
    hue = rng.uniform()
    color_a = hsv_to_linear_rgb(hue, rng.beta(1.2, 2.0), rng.uniform(0.25, 0.95))
    # The second colour is often a shade of the first (wood grain, brick and mortar), sometimes unrelated.
    if rng.uniform() < 0.6:
        color_b = color_a * rng.uniform(0.3, 1.6)
    else:
        color_b = hsv_to_linear_rgb(rng.uniform(), rng.beta(1.2, 2.0), rng.uniform(0.2, 0.95))
    return Material(
        color_a=np.clip(color_a, 0.0, 1.0),
        color_b=np.clip(color_b, 0.0, 1.0),
        pattern=str(rng.choice(patterns)),
        scale_m=float(np.exp(rng.uniform(np.log(0.05), np.log(2.0)))),
        angle_rad=float(rng.uniform(0, np.pi)),
        noise_weight=float(rng.uniform(0.0, 0.6)),
        dirt=float(rng.uniform(0.0, 0.5)),
    )


def _wrap_pad(texture: np.ndarray) -> np.ndarray:
    """Repeat the first row and column after the last, so bilinear sampling of frac(u) wraps without a seam."""
    return np.pad(texture, [(0, 0)] * (texture.ndim - 2) + [(0, 1), (0, 1)], mode="wrap")


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


@functools.lru_cache(maxsize=None)
def banked_textures(index: int) -> tuple[np.ndarray, np.ndarray]:
    """The index-th (noise, lettering) pair of a fixed bank, wrap-padded; made once per process on first use.

    Making them costs more than rendering a scene, so scenes draw from TEXTURE_BANK_SIZE of them; each scene
    still scales, rotates and colours them its own way.
    """
    rng = np.random.default_rng([BANK_SEED, index])
    noise = fbm_texture(rng, NOISE_TEXTURE_SIZE, channels=2)
    text = lettering_mask(rng, *TEXT_TEXTURE_SIZE, lines=2)[None]
    return _wrap_pad(noise), _wrap_pad(text)


def scene_textures(rng: np.random.Generator, device) -> SceneTextures:
    noise, text = banked_textures(int(rng.integers(TEXTURE_BANK_SIZE)))
    return SceneTextures(noise=torch.as_tensor(noise, device=device)[None], text=torch.as_tensor(text, device=device)[None])


def material_table(materials: list[Material], device) -> torch.Tensor:
    """One column per material (P x M float32), so per-pixel parameters are a single index_select."""
    rows = []
    for m in materials:
        one_hot = [float(m.pattern == name) for name in PATTERNS]
        rows.append([*m.color_a, *m.color_b, 1.0 / m.scale_m, np.cos(m.angle_rad), np.sin(m.angle_rad),
                     m.noise_weight, m.dirt, *one_hot])
    return torch.as_tensor(np.asarray(rows, np.float32).T.copy(), device=device)


def _sample_wrapped(texture: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of a wrap-padded texture at texture coordinates (one period = 1), C x H x W."""
    return sample_texture(texture, (u - torch.floor(u)) * 2 - 1, (v - torch.floor(v)) * 2 - 1)


def _box_mapped(points: torch.Tensor, normal: torch.Tensor, cos_a: torch.Tensor, sin_a: torch.Tensor):
    """Surface coordinates (u, v) in metres: the pixel's world point, rotated about +Y by the material angle,
    projected on the coordinate plane most perpendicular to the (equally rotated) normal. v runs down walls."""
    x = cos_a * points[0] + sin_a * points[2]
    z = -sin_a * points[0] + cos_a * points[2]
    nx = (cos_a * normal[0] + sin_a * normal[2]).abs()
    nz = (-sin_a * normal[0] + cos_a * normal[2]).abs()
    ny = normal[1].abs()
    facing_y = ((ny >= nx) & (ny >= nz)).float()
    facing_x = ((nx > ny) & (nx >= nz)).float()
    facing_z = 1.0 - facing_y - facing_x
    u = facing_y * x + facing_x * z + facing_z * x
    v = facing_y * z - (1.0 - facing_y) * points[1]
    return u, v


def albedo(points, normal, material, materials: list[Material], textures: SceneTextures, footprint_m) -> torch.Tensor:
    """Linear-RGB albedo (3 x N) of hit points (3 x N); material -1 (nothing hit) gets material 0's colour.

    footprint_m is the size of a pixel on the surface (N). Where a pattern's period covers only a few pixels
    it fades to its average: a cheap stand-in for texture filtering, without which fine stripes, tiles and
    letters would alias into moire.
    """
    table = material_table(materials, points.device)
    p = table.index_select(1, material.clamp(min=0))
    color_a, color_b, inverse_scale, cos_a, sin_a, noise_weight, dirt = p[0:3], p[3:6], p[6], p[7], p[8], p[9], p[10]
    pattern_weight = dict(zip(PATTERNS, p[11:]))
    used = {m.pattern for m in materials}
    pixel_units = footprint_m * inverse_scale  # the pixel's size in pattern units

    def visible(pattern, average: float, period: float):
        return average + (pattern - average) * (1.5 - 4.0 * pixel_units / period).clamp(0.0, 1.0)

    u, v = _box_mapped(points, normal, cos_a, sin_a)
    u, v = u * inverse_scale, v * inverse_scale
    noise = visible(_sample_wrapped(textures.noise, u * 0.25, v * 0.25), 0.5, 0.25)
    mix = noise_weight * (noise[0] - 0.5)
    if "noise" in used:
        mix = mix + pattern_weight["noise"] * noise[0]
    if "stripes" in used:
        # Stripes run at the material angle within the surface; tanh sharpens sinusoids into bands.
        across = torch.sin(2 * np.pi * (cos_a * u + sin_a * v))
        mix = mix + pattern_weight["stripes"] * visible(0.5 + 0.5 * torch.tanh(4.0 * across), 0.5, 1.0)
    if "checker" in used:
        checker = torch.remainder(torch.floor(u) + torch.floor(v), 2.0)
        mix = mix + pattern_weight["checker"] * visible(checker, 0.5, 2.0)
    if "tiles" in used or "bricks" in used:
        row_shift = 0.5 * torch.remainder(torch.floor(2 * v), 2.0) * pattern_weight["bricks"]
        tile_u = u + row_shift
        tile_v = v * (1.0 + pattern_weight["bricks"])  # bricks are half as tall as they are wide
        grout = torch.minimum((tile_u - torch.round(tile_u)).abs(), (tile_v - torch.round(tile_v)).abs()) < 0.04
        mix = mix + (pattern_weight["tiles"] + pattern_weight["bricks"]) * visible(grout.float(), 0.15, 0.25)
    if "text" in used:
        letters = _sample_wrapped(textures.text, u * 0.25, v)[0]
        mix = mix + pattern_weight["text"] * visible(letters, 0.15, 0.1)
    if "gradient" in used:
        mix = mix + pattern_weight["gradient"] * (0.5 + 0.5 * torch.sin(0.5 * v))
    mix = mix.clamp(0.0, 1.0)
    color = color_a + (color_b - color_a) * mix
    return color * (1.0 + dirt * (2.0 * noise[1] - 1.0))
