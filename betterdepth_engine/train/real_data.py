"""Training batches from real datasets in Marigold's layouts: the paper's Hypersim + Virtual KITTI mix.

`--datasets hypersim:ROOT,vkitti:ROOT` (ROOT a folder or Marigold's tar, read by `eval.datasets`, optionally
`NAME:ROOT:SPLIT_FILE` with one of Marigold's split files) and `--dataset-weights 0.9,0.1` (Marigold's mix).
Sample k of the run is a pure function of (seed, k): its dataset drawn by the weights, an index drawn
uniformly (with replacement), a random crop window and flip. So a run resumes exactly at any batch without
state, and on several processes (accelerate) process p of n takes batches p, p + n, p + 2n, ...

Each sample is scaled (bilinear for the image, nearest for depth and validity: never a depth between two
surfaces) so that it covers height x width, then cut at a random window: Hypersim's 768 x 1024 and
Virtual KITTI's KB-cropped 352 x 1216 both become height x width batches. A batch has the synthetic
batches' keys: image (B x 3 x H x W in [0, 1]), depth (B x H x W metres, 0 invalid), valid_mask, focal_px
(NaN: unknown here), seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from betterdepth_engine.errors import BetterDepthError

# Marigold trains on Hypersim and Virtual KITTI with probability 0.9 and 0.1.
TRAINING_DATASETS = ("hypersim", "vkitti")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    root: str
    split_file: str | None = None


def parse_datasets(spec: str, weights: str) -> tuple[list[DatasetSpec], list[float]]:
    """`hypersim:ROOT[:SPLIT],vkitti:ROOT[:SPLIT]` and `0.9,0.1` -> (specs, normalised weights)."""
    specs = []
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        name, _, rest = item.partition(":")
        root, _, split_file = rest.partition(":")
        if name not in TRAINING_DATASETS or not root:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Cannot read the training dataset '{item}'.",
                                   f"Write NAME:ROOT[:SPLIT_FILE] with NAME one of {', '.join(TRAINING_DATASETS)}, "
                                   "e.g. --datasets hypersim:data/hypersim/train,vkitti:data/vkitti.")
        specs.append(DatasetSpec(name, root, split_file or None))
    values = [float(value) for value in weights.split(",") if value.strip()] if weights else [1.0] * len(specs)
    if len(values) != len(specs) or any(value < 0 for value in values) or sum(values) <= 0:
        raise BetterDepthError(BetterDepthError.BAD_INPUT,
                               f"--dataset-weights '{weights}' does not fit {len(specs)} dataset(s).",
                               "Give one non-negative weight per dataset, e.g. 0.9,0.1 (Marigold's mix).")
    return specs, [value / sum(values) for value in values]


def _cover_and_crop(sample, height: int, width: int, rng: np.random.Generator):
    """(image 3 x h x w float in [0, 1], depth h x w, valid h x w) scaled to cover (height, width), cut at a
    random window, flipped left-right with probability 1/2."""
    image = torch.from_numpy(sample.rgb).permute(2, 0, 1).float()[None] / 255.0
    depth = torch.from_numpy(np.where(sample.valid_mask, sample.depth_m, 0.0).astype(np.float32))[None, None]
    valid = torch.from_numpy(sample.valid_mask)[None, None].float()
    if depth.shape[-2:] != image.shape[-2:]:
        depth = torch.nn.functional.interpolate(depth, size=image.shape[-2:], mode="nearest")
        valid = torch.nn.functional.interpolate(valid, size=image.shape[-2:], mode="nearest")
    scale = max(height / image.shape[-2], width / image.shape[-1])
    size = (max(height, round(image.shape[-2] * scale)), max(width, round(image.shape[-1] * scale)))
    if size != tuple(image.shape[-2:]):
        image = torch.nn.functional.interpolate(image, size=size, mode="bilinear", align_corners=False)
        depth = torch.nn.functional.interpolate(depth, size=size, mode="nearest")
        valid = torch.nn.functional.interpolate(valid, size=size, mode="nearest")
    top, left = int(rng.integers(size[0] - height + 1)), int(rng.integers(size[1] - width + 1))
    window = (..., slice(top, top + height), slice(left, left + width))
    image, depth, valid = image[window][0], depth[window][0, 0], valid[window][0, 0] > 0.5
    if rng.uniform() < 0.5:
        image, depth, valid = image.flip(-1), depth.flip(-1), valid.flip(-1)
    return image.clamp(0, 1), depth, valid


class RealDepthBatches(torch.utils.data.Dataset):
    """Batch number b (any b >= 0) of the mix; map-style, so DataLoader workers can build batches."""

    def __init__(self, datasets_spec: str, weights: str, height: int, width: int, batch_size: int, seed: int):
        from betterdepth_engine.eval.datasets import open_benchmark

        specs, self.weights = parse_datasets(datasets_spec, weights)
        if not specs:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, "--datasets names no dataset.",
                                   "For example --datasets hypersim:data/hypersim/train,vkitti:data/vkitti.")
        self.datasets = [open_benchmark(spec.name, spec.root, spec.split_file) for spec in specs]
        self.height, self.width, self.batch_size, self.seed = height, width, batch_size, seed

    def __len__(self) -> int:
        return 2**62  # endless: batches are drawn with replacement

    def sample(self, number: int):
        """(image, depth, valid) of the run's sample `number`."""
        rng = np.random.default_rng([self.seed, number])
        dataset = self.datasets[int(rng.choice(len(self.datasets), p=self.weights))]
        return _cover_and_crop(dataset[int(rng.integers(len(dataset)))], self.height, self.width, rng)

    def __getitem__(self, batch_number: int) -> dict:
        numbers = range(batch_number * self.batch_size, (batch_number + 1) * self.batch_size)
        images, depths, valids = zip(*(self.sample(number) for number in numbers))
        return {"image": torch.stack(images), "depth": torch.stack(depths), "valid_mask": torch.stack(valids),
                "focal_px": torch.full((self.batch_size,), float("nan")),
                "seed": torch.tensor(list(numbers), dtype=torch.int64)}


def real_batches(settings, first_batch: int, process_index: int = 0, num_processes: int = 1):
    """Batches first_batch * n + p, (first_batch + 1) * n + p, ... of the mix, for process p of n."""
    from torch.utils.data import DataLoader

    dataset = RealDepthBatches(settings.datasets, settings.dataset_weights, settings.height, settings.width,
                               settings.batch_size, settings.seed)
    order = range((first_batch * num_processes + process_index), len(dataset), num_processes)
    if settings.data_workers == 0:
        return (dataset[number] for number in order)
    return iter(DataLoader(dataset, batch_size=None, sampler=order, num_workers=settings.data_workers,
                           persistent_workers=True))
