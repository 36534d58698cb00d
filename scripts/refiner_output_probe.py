"""Probes of the shipped refiner's output on validation scenes: its correction scaled, or decoded as a difference.

    python scripts/refiner_output_probe.py OUT [--scenes 100] [--first-scene 100] [--base default|simulated:KIND]
        [--refiner default] [--steps N] [--processing-resolution PX] [--noise zero|random] [--scale S] [--difference]

--scale S multiplies the U-Net's correction to the conditioning latent (0 = the autoencoder round trip of
scripts/autoencoder_round_trip.py, 1 = the refiner). --difference returns the conditioning plus the decoded
change, D(z_conditioning + correction) - D(z_conditioning), so the decoder's own round-trip error cancels
where the U-Net changes nothing. Writes OUT/metrics.json and OUT/per_image.csv as `betterdepth eval` does
(docs/results.md section 9, "what was tried on the blurry base").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from betterdepth_engine.eval import report, runner
from betterdepth_engine.eval.datasets import SyntheticDataset
from betterdepth_engine.fileio import write_files_atomically
from betterdepth_engine.models.loading import load_base_model, load_refiner
from betterdepth_engine.pipeline import BetterDepthPipeline, RefineOptions


def with_scaled_correction(refiner, scale: float):
    """The refiner with its denoised latent moved to conditioning + scale x (its correction)."""
    denoise = refiner.denoise

    def scaled(image_latent, conditioning_latent, *arguments, **keywords):
        latent = denoise(image_latent, conditioning_latent, *arguments, **keywords)
        return conditioning_latent + scale * (latent - conditioning_latent)

    refiner.denoise = scaled
    return refiner


def with_difference_decoding(refiner):
    """The refiner returning conditioning + D(refined latent) - D(conditioning latent)."""
    refine = refiner.refine

    def refine_difference(image, conditioning, ensemble_size, *arguments, **keywords):
        members = refine(image, conditioning, ensemble_size, *arguments, **keywords)
        round_trip = refiner.decode_depth(refiner.encode(conditioning.repeat(1, 3, 1, 1)))
        change = members - round_trip.repeat_interleave(ensemble_size, dim=0)
        return (conditioning.float().repeat_interleave(ensemble_size, dim=0) + change).clamp(-1.0, 1.0)

    refiner.refine = refine_difference
    return refiner


def box_mean(x, radius):
    return torch.nn.functional.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def guided_filter(guide, source, radius, eps):
    mean_guide, mean_source = box_mean(guide, radius), box_mean(source, radius)
    covariance = box_mean(guide * source, radius) - mean_guide * mean_source
    variance = box_mean(guide * guide, radius) - mean_guide ** 2
    slope = covariance / (variance + eps)
    offset = mean_source - slope * mean_guide
    return box_mean(slope, radius) * guide + box_mean(offset, radius)


def with_filtered_correction(refiner, radius, eps):
    refine = refiner.refine

    def refine_filtered(image, conditioning, ensemble_size, *arguments, **keywords):
        members = refine(image, conditioning, ensemble_size, *arguments, **keywords)
        conditioning = conditioning.float().repeat_interleave(ensemble_size, dim=0)
        correction = guided_filter(members.float(), members.float() - conditioning, radius, eps)
        return (conditioning + correction).clamp(-1.0, 1.0)

    refiner.refine = refine_filtered
    return refiner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--first-scene", type=int, default=100, help="as in `betterdepth eval` (default: %(default)s)")
    parser.add_argument("--scene-kind", choices=("texture_copy",), help="as in `betterdepth eval`")
    parser.add_argument("--base", default="default", help="a base model, or simulated:blurry|mild|varied")
    parser.add_argument("--refiner", default="default")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the refiner's)")
    parser.add_argument("--processing-resolution", type=int, help="default: the refiner's")
    parser.add_argument("--noise", choices=("random", "zero"), help="default: the refiner's")
    parser.add_argument("--scale", type=float, default=1.0, help="factor on the correction (default: %(default)s)")
    parser.add_argument("--difference", action="store_true", help="decode the change, not the refined latent")
    parser.add_argument("--guided", help="RADIUS,EPS: guided-filter the correction, guided by the refined map")
    parser.add_argument("--guard", help="THRESHOLD,RADIUS[,MEDIAN_RADIUS]: the refiner's guard with these settings "
                                        "(align.guard_correction; default: the refiner's own)")
    args = parser.parse_args()

    device = torch.device("cpu")
    if args.base.startswith("simulated:"):
        base = runner.SimulatedBase(args.base.removeprefix("simulated:"))
    else:
        base = load_base_model(args.base, device)
    refiner = with_scaled_correction(load_refiner(args.refiner, device, torch.float32), args.scale)
    if args.difference:
        refiner = with_difference_decoding(refiner)
    if args.guided:
        radius, eps = args.guided.split(",")
        refiner = with_filtered_correction(refiner, int(radius), float(eps))
    if args.guard:
        threshold, radius, *median_radius = args.guard.split(",")
        refiner.config.guard_threshold, refiner.config.guard_radius = float(threshold), int(radius)
        refiner.config.guard_median_radius = int(median_radius[0]) if median_radius else 0
    pipeline = BetterDepthPipeline(base, refiner)
    options = RefineOptions(denoising_steps=args.steps, processing_resolution=args.processing_resolution,
                            noise=args.noise)
    dataset = SyntheticDataset(args.scenes, kind=args.scene_kind, first=args.first_scene)
    evaluations = [runner.evaluate_sample(pipeline, dataset[index], options, dataset.protocol,
                                          index=args.first_scene + index) for index in range(len(dataset))]
    summary = runner.summarize(evaluations)
    results = {"dataset": {"name": dataset.name, "samples": len(evaluations), "first_scene": args.first_scene},
               "models": {"base": pipeline.base.name, "refiner": args.refiner},
               "settings": pipeline.resolve_settings(options) | {"correction_scale": args.scale,
                                                                 "difference_decoding": args.difference,
                                                                 "guided": args.guided},
               "metrics": summary}
    args.output.mkdir(parents=True, exist_ok=True)
    write_files_atomically({
        args.output / "metrics.json": lambda path: path.write_text(json.dumps(report.json_ready(results), indent=2)
                                                                   + "\n"),
        args.output / "per_image.csv": lambda path: path.write_text(report.per_image_csv(evaluations)),
    })
    print(report.markdown_table(summary))
    print(report.markdown_table(summary, report.NORMAL_COLUMNS))


if __name__ == "__main__":
    main()
