"""Synthetic training data generated on the fly: procedural 3-D scenes, ray-cast with exact depth.

A sample (see `SyntheticSample`):
- image: float32 3 x H x W, display (sRGB-like, gamma 2.2) values in [0, 1].
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

from betterdepth_engine.data.raycast import cast, group_by_class, sunlit_fraction
from betterdepth_engine.data.scenes import Scene, random_scene
from betterdepth_engine.data.shading import add_fog, camera_response, shade, sky
from betterdepth_engine.data.textures import albedo, scene_textures
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


def seed_for(split: str, index: int) -> int:
    """The seed of the index-th scene of a split; train and validation seed ranges are disjoint."""
    if split == "train":
        if not 0 <= index < VALIDATION_SEED_START:
            raise ValueError(f"train index {index} outside [0, {VALIDATION_SEED_START})")
        return index
    if split == "val":
        return VALIDATION_SEED_START + index
    raise ValueError(f"split must be 'train' or 'val', not {split!r}")


def generate_scene(seed: int, height: int, width: int, device="cpu", kind: str | None = None) -> SyntheticSample:
    """Build and render the scene of `seed` (layout `kind`, or one drawn from the seed)."""
    rng = np.random.default_rng(seed)
    scene = random_scene(rng, height, width, kind)
    return render(scene, rng, seed, device)


def render(scene: Scene, rng: np.random.Generator, seed: int, device="cpu") -> SyntheticSample:
    textures = scene_textures(rng, device)
    brightness, noise_std = rng.uniform(0.2, 0.4), rng.uniform(0.0, 0.02)
    hits = cast(scene.camera, group_by_class(scene.primitives), device)
    valid = hits.t <= scene.max_depth_m
    points = hits.points()
    lighting = scene.lighting
    casters = [p for p in scene.primitives if p.casts_shadow]
    sunlit = sunlit_fraction(points, hits.normal, casters, lighting.toward_sun, scene.camera.position_m, SHADOW_RANGE_M)
    color = albedo(points, hits.normal, hits.material, scene.materials, textures)
    background = sky(hits.directions, lighting, textures.noise)
    radiance = add_fog(shade(color, hits.normal, sunlit, lighting), hits.t, background, lighting, scene.max_depth_m)
    radiance = torch.where(valid, radiance, background)
    # Sensor noise comes from a CPU generator so that it is the same whichever device renders.
    noise = torch.randn((3, scene.camera.height, scene.camera.width), generator=torch.Generator().manual_seed(seed))
    image = camera_response(radiance, noise.to(device), brightness, noise_std)
    forward = torch.as_tensor(scene.camera.forward, dtype=torch.float32, device=device).view(3, 1, 1)
    depth = torch.where(valid, hits.t * dot(hits.directions, forward), 0.0)
    return SyntheticSample(image.float(), depth.float(), valid, float(scene.camera.focal_px), scene.kind)


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
        samples = [generate_scene(seed, self.height, self.width, self.device) for seed in seeds]
        return {
            "image": torch.stack([s.image for s in samples]),
            "depth": torch.stack([s.depth for s in samples]),
            "valid_mask": torch.stack([s.valid_mask for s in samples]),
            "focal_px": torch.tensor([s.focal_px for s in samples]),
            "seed": torch.tensor(seeds, dtype=torch.int64),
        }

    def __iter__(self):
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        batch_index = worker_id
        while self.num_batches is None or batch_index < self.num_batches:
            yield self.batch(batch_index)
            batch_index += workers
