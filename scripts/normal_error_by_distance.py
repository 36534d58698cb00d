"""Where a refiner's normal error comes from: the mean angular error of normals, base and refined, by distance
from the nearest ground-truth discontinuity, on synthetic validation scenes (docs/results.md section 9).

    python scripts/normal_error_by_distance.py [--scenes 40] [--first-scene 100] [--base simulated:blurry]
        [--no-guard]

Prints a markdown table: per band of distance (pixels from a pixel that `eval.metrics.smooth_pixels` leaves
out), its share of the scored pixels and the mean error of the base and of the refined depth.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from betterdepth_engine.eval import metrics, runner
from betterdepth_engine.eval.datasets import SyntheticDataset
from betterdepth_engine.models.loading import load_base_model, load_refiner
from betterdepth_engine.pipeline import BetterDepthPipeline, RefineOptions

BANDS = (2, 3, 5, 8, 16, np.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--first-scene", type=int, default=100)
    parser.add_argument("--base", default="simulated:blurry", help="a base model, or simulated:KIND")
    parser.add_argument("--no-guard", dest="guard", action="store_false", help="the refiner's raw output")
    args = parser.parse_args()
    device = torch.device("cpu")
    base = (runner.SimulatedBase(args.base.removeprefix("simulated:")) if args.base.startswith("simulated:")
            else load_base_model(args.base, device))
    pipeline = BetterDepthPipeline(base, load_refiner("default", device, torch.float32))
    dataset = SyntheticDataset(args.scenes, first=args.first_scene)
    sums = {variant: np.zeros((len(BANDS) - 1, 2)) for variant in ("base", "refined")}
    for index in range(len(dataset)):
        sample = dataset[index]
        evaluation = runner.evaluate_sample(pipeline, sample, RefineOptions(guard=args.guard), dataset.protocol,
                                            index=args.first_scene + index)
        depths = evaluation.depth_m
        valid = sample.valid_mask & np.isfinite(depths["base"]) & np.isfinite(depths["refined"])
        keep = metrics.continuous_quads(sample.depth_m, valid, sample.intrinsics.focal_px)
        smooth = metrics.smooth_pixels(keep)
        truth = metrics.surface_normals(sample.depth_m, sample.intrinsics, keep)
        distance = distance_transform_edt(smooth)
        for variant, depth in depths.items():
            error = metrics.angles_deg(metrics.surface_normals(np.nan_to_num(depth, nan=1.0), sample.intrinsics, keep),
                                       truth)
            for band, (low, high) in enumerate(zip(BANDS, BANDS[1:])):
                chosen = smooth & (distance >= low) & (distance < high)
                sums[variant][band] += (error[chosen].sum(), chosen.sum())
    print(f"{args.scenes} scenes from {args.first_scene}, base {args.base}, guard {'on' if args.guard else 'off'}\n")
    print("| distance (px) | share of pixels | base (°) | refined (°) | refined - base |\n|---|---:|---:|---:|---:|")
    total = sums["base"][:, 1].sum()
    for band, (low, high) in enumerate(zip(BANDS, BANDS[1:])):
        base_mean, refined_mean = (sums[variant][band, 0] / sums[variant][band, 1] for variant in ("base", "refined"))
        print(f"| {low}-{high:g} | {sums['base'][band, 1] / total:.2f} | {base_mean:.2f} | {refined_mean:.2f} | "
              f"{refined_mean - base_mean:+.2f} |")


if __name__ == "__main__":
    main()
