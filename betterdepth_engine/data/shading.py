"""Lighting: a sun (directional, with cast shadows) plus hemisphere ambient, a procedural sky, fog, and the
camera's response (auto exposure, tone curve, sensor noise). Radiance is linear RGB; the output display values
use gamma 2."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from betterdepth_engine.data.vectors import as_column, dot, sample_texture

FADE_START = 0.8  # surfaces fade into the sky from this fraction of a scene's max depth


@dataclass(frozen=True)
class Lighting:
    toward_sun: np.ndarray  # unit vector from the scene toward the sun, world space
    sun_rgb: np.ndarray  # irradiance of a surface facing the sun
    sky_rgb: np.ndarray  # ambient from above; also the sky's zenith colour
    horizon_rgb: np.ndarray  # the sky near the horizon; also the fog colour
    ground_rgb: np.ndarray  # ambient bounced up from below
    fog_distance_m: float  # distance at which fog hides 63% of a surface (inf: clear air)
    cloud_cover: float  # 0 clear .. 1 overcast


def shade(albedo, normal, sunlit, lighting: Lighting) -> torch.Tensor:
    """Lambertian radiance: albedo * (sun * max(n.l, 0) * sunlit + hemisphere ambient)."""
    facing_sun = dot(normal, as_column(lighting.toward_sun, normal)).clamp(min=0.0)
    up = 0.5 + 0.5 * normal[1]
    ambient = as_column(lighting.sky_rgb, normal) * up + as_column(lighting.ground_rgb, normal) * (1.0 - up)
    return albedo * (as_column(lighting.sun_rgb, normal) * (facing_sun * sunlit) + ambient)


def sky(directions, lighting: Lighting, noise: torch.Tensor) -> torch.Tensor:
    """Sky radiance seen along unit directions: horizon-to-zenith gradient, sun glow, clouds from `noise`."""
    elevation = directions[1].clamp(min=0.0)
    zenith_blend = torch.sqrt(elevation)
    horizon, zenith = as_column(lighting.horizon_rgb, directions), as_column(lighting.sky_rgb, directions)
    color = horizon + (zenith - horizon) * zenith_blend
    toward_sun = dot(directions, as_column(lighting.toward_sun, directions)).clamp(min=0.0)
    color = color + as_column(lighting.sun_rgb, directions) * (0.05 * toward_sun**8 + 0.5 * toward_sun**256)
    # Clouds: noise on a flat cloud layer, projected along the ray; they thin out toward the horizon.
    height = elevation + 0.05
    wrap = lambda c: torch.remainder(c * 0.15 + 1, 2) - 1  # noqa: E731  (the noise tiles)
    density = sample_texture(noise[:, :1], wrap(directions[0] / height), wrap(directions[2] / height))[0]
    cover = ((density - 1 + lighting.cloud_cover) * 3).clamp(0, 1) * torch.sqrt(elevation).clamp(max=1)
    cloud_rgb = as_column(lighting.sky_rgb + lighting.sun_rgb * 0.25, directions)
    return color + (cloud_rgb - color) * cover


def add_fog(radiance, distance_m, background, lighting: Lighting, max_depth_m: float) -> torch.Tensor:
    """Blend toward the sky with distance; surfaces also fade out between FADE_START * max_depth_m and
    max_depth_m, so the far limit (beyond which pixels are invalid) shows as haze rather than a cut."""
    clear = ((max_depth_m - distance_m) / ((1 - FADE_START) * max_depth_m)).clamp(0.0, 1.0)
    if np.isfinite(lighting.fog_distance_m):
        clear = clear * torch.exp(-distance_m / lighting.fog_distance_m)
    return background + (radiance - background) * clear


def camera_response(radiance, unit_noise, brightness: float, noise_std: float) -> torch.Tensor:
    """Linear radiance (3 x ...) -> display values in [0, 1]: exposure to a target mean luminance, a filmic
    shoulder, gamma 2 (close to sRGB, and a cheap square root), then sensor noise of standard deviation
    noise_std (unit_noise: zero mean, unit variance, the radiance's shape)."""
    luminance = (0.2126 * radiance[0] + 0.7152 * radiance[1] + 0.0722 * radiance[2]).mean()
    exposed = radiance * (brightness / luminance.clamp(min=1e-4))
    toned = exposed * 1.6 / (1.0 + exposed)  # keeps bright sunlit areas from clipping flat
    display = torch.sqrt(toned.clamp(0.0, 1.0))
    return (display + noise_std * unit_noise).clamp(0.0, 1.0)
