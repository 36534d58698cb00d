"""A control for the refiner: the base's prediction sent through the refiner's autoencoder, the U-Net left out.

    python scripts/autoencoder_round_trip.py OUT [--scenes 100] [--base default|simulated:KIND] [--refiner default]
        [--processing-resolution PX] [--scene-kind texture_copy] [--first-scene K]

Runs the pipeline exactly as `betterdepth eval --synthetic SCENES` does (same normalisation, resizing and
return to the base's frame), except that the denoising loop returns the conditioning latent unchanged: what
is left is encode + decode. Whatever the refined row gains over this control is the U-Net's work; whatever
this control gains over the base is the decoder's. Writes OUT/metrics.json and OUT/per_image.csv as
`betterdepth eval` does (their "refined" variant is the round trip) and prints the markdown table.
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


def without_unet(refiner):
    """The refiner with its denoising loop replaced by the identity on the conditioning latent."""
    refiner.denoise = lambda image_latent, conditioning_latent, *unused, **unused_keywords: conditioning_latent
    return refiner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--base", default="default", help="a base model, or simulated:blurry|mild|varied")
    parser.add_argument("--refiner", default="default")
    parser.add_argument("--processing-resolution", type=int, help="default: the refiner's")
    parser.add_argument("--scene-kind", choices=("texture_copy",), help="as in `betterdepth eval`")
    parser.add_argument("--first-scene", type=int, default=0, help="as in `betterdepth eval`")
    args = parser.parse_args()

    device = torch.device("cpu")
    if args.base.startswith("simulated:"):
        base = runner.SimulatedBase(args.base.removeprefix("simulated:"))
    else:
        base = load_base_model(args.base, device)
    pipeline = BetterDepthPipeline(base, without_unet(load_refiner(args.refiner, device, torch.float32)))
    options = RefineOptions(processing_resolution=args.processing_resolution)
    dataset = SyntheticDataset(args.scenes, kind=args.scene_kind, first=args.first_scene)
    evaluations = [runner.evaluate_sample(pipeline, dataset[index], options, dataset.protocol,
                                          index=args.first_scene + index)
                   for index in range(len(dataset))]
    summary = runner.summarize(evaluations)
    results = {"dataset": {"name": dataset.name, "samples": len(evaluations)},
               "models": {"base": pipeline.base.name, "refiner": f"{args.refiner} without its U-Net"},
               "settings": pipeline.resolve_settings(options), "metrics": summary}
    args.output.mkdir(parents=True, exist_ok=True)
    write_files_atomically({  # both or neither: evaluate_default_models.sh skips an output that has metrics.json
        args.output / "metrics.json": lambda path: path.write_text(json.dumps(report.json_ready(results), indent=2)
                                                                   + "\n"),
        args.output / "per_image.csv": lambda path: path.write_text(report.per_image_csv(evaluations)),
    })
    print(report.markdown_table(summary))


if __name__ == "__main__":
    main()
