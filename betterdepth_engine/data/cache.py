"""A fixed set of synthetic scenes rendered once and reused for every epoch of every training run.

On a 2-core CPU rendering is the slowest part of a training step, and the paper finds that a few thousand
samples nearly match its full data (method.md §4), so the default models train on a cache: a folder of
`shard_NNNN.pt` files (uint8 images, float32 depth; valid = depth > 0) plus `cache.json`. Training reads it
with `cached_batches`, which shuffles per epoch from the run's seed and can resume at any batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.fileio import atomic_path

SHARD_SIZE = 256


def write_scene_cache(folder: Path, split: str, count: int, height: int, width: int, workers: int = 2,
                      start_index: int = 0, shard_size: int = SHARD_SIZE) -> Path:
    """Render scenes start_index .. start_index + count - 1 of `split` into `folder`; resumes at missing shards."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from betterdepth_engine.data.synthetic import SyntheticDepthDataset

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    description = {"split": split, "count": count, "height": height, "width": width, "start_index": start_index,
                   "shard_size": shard_size}
    manifest = folder / "cache.json"
    if manifest.exists() and json.loads(manifest.read_text()) != description:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"'{folder}' holds a different scene cache.",
                               "Choose an empty folder, or repeat the settings it was made with.")
    manifest.write_text(json.dumps(description, indent=2) + "\n")
    shard_count = -(-count // shard_size)
    with tqdm(total=count, desc="render scenes", unit="scene") as bar:
        for shard in range(shard_count):
            path = folder / f"shard_{shard:04d}.pt"
            size = min(shard_size, count - shard * shard_size)
            if path.exists():
                bar.update(size)
                continue
            # Batches of up to 8 scenes, rendered by `workers` processes (the renderer uses one thread each).
            batch_size = math.gcd(size, 8)
            dataset = SyntheticDepthDataset(split, height, width, batch_size=batch_size,
                                            start_index=start_index + shard * shard_size, num_batches=size // batch_size)
            images, depths = [], []
            for batch in DataLoader(dataset, batch_size=None, num_workers=workers):
                images.append((batch["image"] * 255 + 0.5).clamp(0, 255).to(torch.uint8))
                depths.append(batch["depth"])
                bar.update(len(batch["depth"]))
            with atomic_path(path) as temporary:
                torch.save({"image": torch.cat(images), "depth": torch.cat(depths)}, temporary)
    return folder


def load_scene_cache(folder: Path, height: int, width: int) -> dict[str, torch.Tensor]:
    """All scenes of a cache: image uint8 [N, 3, H, W], depth float32 [N, H, W]."""
    folder = Path(folder)
    manifest = folder / "cache.json"
    if not manifest.exists():
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"'{folder}' is not a scene cache (no cache.json).",
                               "Make one with scripts/cache_synthetic.py.")
    description = json.loads(manifest.read_text())
    if (description["height"], description["width"]) != (height, width):
        raise BetterDepthError(
            BetterDepthError.BAD_INPUT,
            f"The scene cache holds {description['width']}x{description['height']} scenes, not {width}x{height}.",
            "Train at the cache's size (--height/--width) or render a cache at this size.")
    shards = [torch.load(path) for path in sorted(folder.glob("shard_*.pt"))]
    scenes = {key: torch.cat([shard[key] for shard in shards]) for key in ("image", "depth")}
    if len(scenes["depth"]) != description["count"]:
        raise BetterDepthError(BetterDepthError.BAD_INPUT,
                               f"The scene cache '{folder}' is incomplete ({len(scenes['depth'])} of "
                               f"{description['count']} scenes).", "Rerun the cache command to finish it.")
    return scenes


def cached_batches(folder: Path, height: int, width: int, batch_size: int, seed: int,
                   first_batch: int = 0) -> Iterator[dict]:
    """Endless training batches from a cache, in the keys of SyntheticDepthDataset; each epoch is a new
    permutation (from `seed` and the epoch number) with random horizontal flips, so batch k is the same
    whether a run starts at 0 or resumes at k."""
    scenes = load_scene_cache(folder, height, width)
    count = len(scenes["depth"])
    batches_per_epoch = count // batch_size
    if batches_per_epoch == 0:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"The scene cache has fewer scenes ({count}) than a batch.",
                               "Use a smaller --batch-size or a larger cache.")
    epoch, first_position = divmod(first_batch, batches_per_epoch)
    while True:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(count, generator=generator)
        flips = torch.rand(count, generator=generator) < 0.5
        for position in range(first_position, batches_per_epoch):
            picked = order[position * batch_size:(position + 1) * batch_size]
            flip = flips[picked]
            image = scenes["image"][picked].float() / 255.0
            depth = scenes["depth"][picked]
            image = torch.where(flip[:, None, None, None], image.flip(-1), image)
            depth = torch.where(flip[:, None, None], depth.flip(-1), depth)
            yield {"image": image, "depth": depth, "valid_mask": depth > 0}
        epoch, first_position = epoch + 1, 0
