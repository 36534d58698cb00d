"""Synthetic training data generated on the fly: procedural 3-D scenes, ray-cast with exact depth.

A sample (see `SyntheticSample`):
- image: float32 3 x H x W, display values (gamma 2, close to sRGB) in [0, 1].
- depth: float32 H x W, metres along the camera's +Z axis (OpenCV z, not distance along the ray);
  exactly 0 where valid_mask is False.
- valid_mask: bool H x W; False on sky and background: pixels whose ray hits nothing nearer than the
  scene's max depth.
- focal_px: pinhole focal length in pixels (square pixels, principal point at the image centre).

Seeds: `generate_scene(seed, ...)` is a pure function of (seed, height, width, kind); the same seed on the
same device type gives identical tensors. Training uses seeds 0 .. 10**9 - 1 and validation seeds
10**9 and up (`seed_for`), so the two streams never share a scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from betterdepth_engine.data.raycast import Hits, ShadowMap, View, cast, chunk_size, group_by_class, shadow_view
from betterdepth_engine.data.scenes import HEIGHT_MAP_BANK_SIZE, RELIEF_KINDS, Scene, banked_height_map, random_scene
from betterdepth_engine.data.shading import FADE_START, add_fog, camera_response, shade, sky
from betterdepth_engine.data.textures import NOISE_BANK_SIZE, albedo, banked_noise, pattern_atlas, scene_textures
from betterdepth_engine.data.vectors import dot

VALIDATION_SEED_START = 10**9
SHADOW_RANGE_M = 30.0  # the shadow map frames casters this close to the camera (farther ones may cast none)


@dataclass
class SyntheticSample:
    image: torch.Tensor  # float32 3 x H x W in [0, 1]
    depth: torch.Tensor  # float32 H x W, metres along +Z; 0 where invalid
    valid_mask: torch.Tensor  # bool H x W
    focal_px: float
    kind: str  # the scene layout: room, outdoor, still_life or relief_wall
    max_depth_m: float  # the scene's depth range: farther surfaces are background (invalid)


def seed_for(split: str, index: int) -> int:
    """The seed of the index-th scene of a split; train and validation seed ranges are disjoint."""
    if split == "train":
        if not 0 <= index < VALIDATION_SEED_START:
            raise ValueError(f"train index {index} outside [0, {VALIDATION_SEED_START})")
        return index
    if split == "val":
        return VALIDATION_SEED_START + index
    raise ValueError(f"split must be 'train' or 'val', not {split!r}")


def fill_banks() -> None:
    """Make every banked texture and relief pattern now (about a second) rather than on first use, so that
    generation speed is steady from the first scene (the dataset does this in each worker)."""
    for index in range(NOISE_BANK_SIZE):
        banked_noise(index)
    pattern_atlas(torch.device("cpu"))
    for kind in RELIEF_KINDS:
        for index in range(HEIGHT_MAP_BANK_SIZE):
            banked_height_map(kind, index)


def generate_scene(seed: int, height: int, width: int, device="cpu", kind: str | None = None) -> SyntheticSample:
    """Build and render the scene of `seed` (layout `kind`, or one drawn from the seed)."""
    return generate_scenes([seed], height, width, device, kind)[0]


def generate_scenes(seeds, height: int, width: int, device="cpu", kind: str | None = None) -> list[SyntheticSample]:
    """generate_scene for several seeds; their rays are cast together, which is cheaper per scene."""
    jobs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        jobs.append((random_scene(rng, height, width, kind), rng, seed))  # appearance continues the stream
    return _render(jobs, device)


def render_scene(scene: Scene, seed: int = 0, device="cpu") -> SyntheticSample:
    """Render a scene built by hand (textures, exposure and sensor noise are drawn from `seed`)."""
    return _render([(scene, np.random.default_rng(seed), seed)], device)[0]


def _render(jobs: list[tuple[Scene, np.random.Generator, int]], device) -> list[SyntheticSample]:
    if torch.device(device).type != "cpu":
        return _render_on(jobs, device)
    # One intra-op thread: the renderer works in cache-sized chunks that threads barely speed up, and two
    # OpenMP threads slow it down several times over as soon as another process holds a core. To use more
    # cores, render in DataLoader worker processes.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _render_on(jobs, device)
    finally:
        torch.set_num_threads(threads)


def _render_on(jobs: list[tuple[Scene, np.random.Generator, int]], device) -> list[SyntheticSample]:
    prepared, views = [], []
    for scene, rng, seed in jobs:
        groups = group_by_class(scene.primitives)
        shadow = shadow_view(groups, scene.lighting.toward_sun, scene.camera.position_m, SHADOW_RANGE_M)
        views += [View(scene.camera, groups)] + ([shadow] if shadow else [])
        brightness, noise_std = rng.uniform(0.2, 0.4), rng.uniform(0.0, 0.02)
        prepared.append((seed, scene, shadow, scene_textures(rng, device), brightness, noise_std))
    hits = iter(cast(views, device))
    samples = []
    for seed, scene, shadow, textures, brightness, noise_std in prepared:
        camera_hits = next(hits)
        shadow_map = ShadowMap(shadow.camera, next(hits).t.reshape(-1)) if shadow else None
        samples.append(_shade(seed, scene, camera_hits, shadow_map, textures, brightness, noise_std, device))
    return samples


def _shade(seed, scene: Scene, hits: Hits, shadow_map, textures, brightness, noise_std, device) -> SyntheticSample:
    camera = scene.camera
    # Shading is per pixel; chunks of pixels keep its temporaries in the CPU cache.
    pixel_count = camera.height * camera.width
    step = chunk_size(device)
    radiance = torch.cat([_radiance(scene, hits, shadow_map, textures, slice(start, start + step))
                          for start in range(0, pixel_count, step)], dim=1)
    # Sensor noise: uniform with unit variance (cheaper than Gaussian), from a CPU generator so that it is
    # the same whichever device renders.
    uniform = torch.rand((3, pixel_count), generator=torch.Generator().manual_seed(seed))
    noise = ((uniform - 0.5) * np.sqrt(12.0)).to(device)
    image = camera_response(radiance, noise, brightness, noise_std).view(3, camera.height, camera.width)
    valid = hits.t <= scene.max_depth_m
    forward = torch.as_tensor(camera.forward, dtype=torch.float32, device=device).view(3, 1, 1)
    depth = torch.where(valid, hits.t * dot(hits.directions, forward), 0.0)
    return SyntheticSample(image, depth, valid, float(camera.focal_px), scene.kind, float(scene.max_depth_m))


def _radiance(scene: Scene, hits: Hits, shadow_map: ShadowMap | None, textures, pixels: slice) -> torch.Tensor:
    """Linear radiance (3 x N) of a run of pixels: shaded surfaces in fog, the sky where nothing valid was hit."""
    t = hits.t.view(-1)[pixels]
    directions = hits.directions.reshape(3, -1)[:, pixels]
    points = hits.origins.reshape(3, -1) + t.nan_to_num(posinf=0.0) * directions
    # Shading wants the side of the surface that the ray sees (room walls are seen from inside).
    cos_view = dot(hits.normal.view(3, -1)[:, pixels], directions)
    normal = hits.normal.view(3, -1)[:, pixels] * torch.where(cos_view > 0, -1.0, 1.0)
    lighting = scene.lighting
    sunlit = torch.ones_like(t) if shadow_map is None else shadow_map.sunlit(points, normal)
    # A pixel's footprint on the surface: distance / focal, stretched where the surface is seen obliquely.
    footprint_m = t.nan_to_num(posinf=0.0) / scene.camera.focal_px / cos_view.abs().clamp(min=0.2)
    color = albedo(points, normal, hits.material.view(-1)[pixels], scene.materials, textures, footprint_m)
    surface = shade(color, normal, sunlit, lighting)
    if not bool((t > FADE_START * scene.max_depth_m).any()) and not np.isfinite(lighting.fog_distance_m):
        return surface  # no sky, fog or far-distance fade in this run of pixels (indoors, mostly)
    background = sky(directions, lighting, textures.noise)
    surface = add_fog(surface, t, background, lighting, scene.max_depth_m)
    return torch.where(t <= scene.max_depth_m, surface, background)


class SyntheticDepthDataset(IterableDataset):
    """Batches of synthetic samples for training: dicts of stacked tensors.

    Keys: image (B x 3 x H x W), depth (B x H x W), valid_mask (B x H x W), focal_px (B), seed (B).
    Batch k holds the scenes with indices start_index + k * batch_size + (0 .. batch_size - 1) of `split`,
    so a run can resume by setting start_index. With DataLoader workers (batch_size=None in the loader),
    worker w renders batches w, w + n_workers, ..., which the loader returns in the original order.
    num_batches=None iterates until the split's seeds run out (practically forever for train).
    """

    def __init__(self, split: str = "train", height: int = 256, width: int = 256, batch_size: int = 8,
                 start_index: int = 0, num_batches: int | None = None, device="cpu"):
        super().__init__()
        seed_for(split, start_index)  # validates the split
        self.split, self.height, self.width = split, height, width
        self.batch_size, self.start_index, self.num_batches, self.device = batch_size, start_index, num_batches, device

    def batch(self, batch_index: int) -> dict:
        first = self.start_index + batch_index * self.batch_size
        seeds = [seed_for(self.split, first + i) for i in range(self.batch_size)]
        samples = generate_scenes(seeds, self.height, self.width, self.device)
        return {
            "image": torch.stack([s.image for s in samples]),
            "depth": torch.stack([s.depth for s in samples]),
            "valid_mask": torch.stack([s.valid_mask for s in samples]),
            "focal_px": torch.tensor([s.focal_px for s in samples]),
            "seed": torch.tensor(seeds, dtype=torch.int64),
        }

    def __iter__(self):
        fill_banks()
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        batch_index = worker_id
        while self.num_batches is None or batch_index < self.num_batches:
            yield self.batch(batch_index)
            batch_index += workers
