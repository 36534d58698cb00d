"""`betterdepth eval`: score the base and the refined prediction against ground truth depth."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HELP = "score base and refined depth against ground truth"
DESCRIPTION = """\
Evaluate on a dataset with ground truth depth, with Marigold's affine-invariant protocol: per image, the
prediction gets the least-squares scale and shift that fit it to the ground truth (in disparity space by
default), is clipped to the dataset's depth range and scored. One pipeline run per image scores both the
base prediction and the refined one. Detail metrics: Depth Pro's boundary F1 and iBims-1's DBE.

Written to OUT:
  metrics.json       mean metrics per variant (base, refined), settings, models, sample counts
  per_image.csv      every metric of every image and variant
  contact_sheet.png  image | base | refined | ground truth | relative error | normals, for a few samples
The table of AbsRel, delta1, boundary F1 and DBE is printed as markdown; where the camera is known
(synthetic scenes), a second one of surface-normal error and flatness. See docs/evaluation.md.
"""

EPILOG = """\
examples:
  betterdepth eval --dataset nyu --data-root data/nyuv2/nyu_labeled_extracted.tar -o eval/nyu
  betterdepth eval --dataset eth3d --data-root data/eth3d.tar --limit 50 --steps 2 -o eval/eth3d
  betterdepth eval --folder my_scans -o eval/mine       (my_scans/images/*.jpg + my_scans/depth/*.npy|png|exr)
  betterdepth eval --synthetic 32 --refiner none -o eval/synthetic-base
  betterdepth eval --synthetic 32 --base simulated:mild -o eval/synthetic-mild   (a base of known quality)
  betterdepth eval --synthetic 32 --scene-kind texture_copy -o eval/texture-copy  (flat walls, busy texture)
"""


def add_parser(subparsers) -> None:
    from betterdepth_engine.eval.datasets import BENCHMARKS

    parser = subparsers.add_parser(
        "eval", help=HELP,
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output folder")
    data = parser.add_argument_group("data (exactly one of --dataset, --folder, --synthetic)")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=tuple(BENCHMARKS), metavar="NAME",
                        help=f"a benchmark in Marigold's layout: {', '.join(BENCHMARKS)} (needs --data-root)")
    source.add_argument("--folder", type=Path, metavar="DIR",
                        help="your own data: DIR/images/<stem>.jpg|png and DIR/depth/<stem>.npy|png (mm)|exr")
    source.add_argument("--synthetic", type=int, metavar="N", help="the first N procedural validation scenes")
    data.add_argument("--first-scene", type=int, default=0, metavar="K",
                      help="with --synthetic: start at validation scene K, e.g. to report on scenes no setting was "
                           "chosen on (default: %(default)s)")
    data.add_argument("--scene-kind", choices=("texture_copy",), metavar="KIND",
                      help="with --synthetic: render every scene as this layout; texture_copy = flat walls and "
                           "floors with high-contrast pictures, text and tiles, no relief (does a refiner copy "
                           "texture into depth?)")
    data.add_argument("--data-root", type=Path, metavar="DIR",
                      help="the benchmark's folder or .tar file (as Marigold distributes it)")
    data.add_argument("--split-file", type=Path, metavar="FILE",
                      help="list samples with one of Marigold's data_split files instead of finding them by name")
    data.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N samples")
    models = parser.add_argument_group("models")
    models.add_argument("--base", default="default", metavar="MODEL",
                        help="base model, as in `betterdepth estimate`, or simulated:blurry / mild / varied: the "
                             "ground truth degraded (a base of known quality, for testing refiners) "
                             "(default: %(default)s)")
    models.add_argument("--refiner", default="default", metavar="MODEL",
                        help="refiner, as in `betterdepth estimate`; 'none' evaluates the base alone")
    refine = parser.add_argument_group("refinement")
    refine.add_argument("--steps", type=int, metavar="N", help="denoising steps (default: the refiner's)")
    refine.add_argument("--ensemble-size", type=int, metavar="N", help="samples averaged per image")
    refine.add_argument("--processing-resolution", type=int, metavar="PX",
                        help="refiner long side; 0 = native (default: the benchmark's, else the refiner's)")
    refine.add_argument("--strength", type=float, metavar="S",
                        help="1 = denoise from pure noise; lower keeps more of the base (default: the refiner's)")
    refine.add_argument("--noise", choices=("random", "zero"),
                        help="starting noise: random (a seeded sample) or zero (its mean) (default: the refiner's)")
    refine.add_argument("--no-guard", dest="guard", action="store_false",
                        help="score the refiner's raw output, without its guard (as in the paper)")
    refine.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--alignment", choices=("disparity", "depth"), default="disparity",
                         help="space of the least-squares fit: disparity for disparity predictors (default), "
                              "depth for depth predictors")
    scoring.add_argument("--contact-sheet-rows", type=int, default=4, metavar="N",
                         help="samples shown in contact_sheet.png, spread over the dataset (default: %(default)s)")
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    runtime.add_argument("--dtype", choices=("auto", "fp32", "fp16", "bf16"), default="auto")
    runtime.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def open_dataset(args):
    """The dataset the arguments name, or BetterDepthError saying what is missing."""
    from betterdepth_engine.errors import BetterDepthError
    from betterdepth_engine.eval import datasets

    if args.dataset is not None:
        if args.data_root is None:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, f"--dataset {args.dataset} needs --data-root.",
                                   "Pass the dataset's folder or .tar file with --data-root.")
        return datasets.open_benchmark(args.dataset, args.data_root, args.split_file)
    if args.scene_kind is not None and args.synthetic is None:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "--scene-kind goes with --synthetic.",
                               "For example --synthetic 32 --scene-kind texture_copy.")
    if args.first_scene and args.synthetic is None:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "--first-scene goes with --synthetic.",
                               "For example --synthetic 100 --first-scene 300.")
    if args.data_root is not None or args.split_file is not None:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "--data-root and --split-file go with --dataset.",
                               "Drop them, or name the benchmark with --dataset.")
    if args.folder is not None:
        return datasets.FolderDataset(args.folder)
    if args.synthetic < 1:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "--synthetic needs a positive number of scenes.",
                               "For example --synthetic 32.")
    if args.first_scene < 0:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "--first-scene cannot be negative.",
                               "Scenes are numbered from 0.")
    return datasets.SyntheticDataset(args.synthetic, kind=args.scene_kind, first=args.first_scene)


def spread_indices(count: int, picks: int) -> set[int]:
    """`picks` indices spread evenly over range(count), first and last included."""
    picks = min(picks, count)
    if picks <= 1:
        return set(range(picks))
    return {round(i * (count - 1) / (picks - 1)) for i in range(picks)}


def run(args) -> int:
    from PIL import Image
    from tqdm import tqdm

    from betterdepth_engine.commands.estimate import resolve_device
    from betterdepth_engine.errors import BetterDepthError
    from betterdepth_engine.eval import datasets, report, runner
    from betterdepth_engine.fileio import check_output_folder, write_files_atomically
    from betterdepth_engine.models.loading import load_base_model, load_refiner
    from betterdepth_engine.pipeline import BetterDepthPipeline, RefineOptions

    if args.limit is not None and args.limit < 1:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "--limit must be at least 1.", "Or leave it out.")
    check_output_folder(args.output)  # before hours of evaluation, not after
    dataset = open_dataset(args)
    count = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    protocol = dataset.protocol
    resolution = protocol.processing_resolution if args.processing_resolution is None else args.processing_resolution
    options = RefineOptions(denoising_steps=args.steps, ensemble_size=args.ensemble_size,
                            processing_resolution=resolution, strength=args.strength, noise=args.noise,
                            seed=args.seed, guard=args.guard)
    device, dtype = resolve_device(args.device, args.dtype)
    if args.base.startswith("simulated:"):
        base = runner.SimulatedBase(args.base.removeprefix("simulated:"), args.seed)
    else:
        base = load_base_model(args.base, device, dtype, seed=args.seed)
    pipeline = BetterDepthPipeline(base, load_refiner(args.refiner, device, dtype))

    # A simulated base is seeded by the scene's number, not its position in this run.
    scene_offset = dataset.first if isinstance(dataset, datasets.SyntheticDataset) else 0
    evaluations, sheet_rows, failures = [], [], []
    sheet_indices = spread_indices(count, args.contact_sheet_rows)
    bar = tqdm(range(count), desc=f"eval {dataset.name}", unit="image", disable=args.quiet)
    for index in bar:
        try:
            sample = dataset[index]
            evaluation = runner.evaluate_sample(pipeline, sample, options, protocol, args.alignment,
                                                scene_offset + index)
        except Exception as error:  # any failure (a MemoryError too) is this sample's alone: record it, go on
            code = error.code if isinstance(error, BetterDepthError) else type(error).__name__
            failures.append({"index": index, "code": code, "message": str(error)})
            tqdm.write(f"betterdepth: error [{code}] sample {index}: {error}", file=sys.stderr)
            continue
        evaluations.append(evaluation)
        if index in sheet_indices:
            sheet_rows.append(report.contact_row(sample, evaluation))
        bar.set_postfix({variant: f"AbsRel {values['abs_rel']:.3f}" for variant, values in evaluation.metrics.items()})
    bar.close()
    if not evaluations:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"None of the {count} sample(s) could be evaluated.",
                               "See the errors above.")

    summary = runner.summarize(evaluations)
    settings = {"alignment": args.alignment, "min_depth_m": protocol.min_depth_m,
                "max_depth_m": protocol.max_depth_m, "alignment_max_resolution": protocol.alignment_max_resolution,
                "dense_ground_truth": protocol.dense_ground_truth}
    if pipeline.refiner is not None:
        settings.update(pipeline.resolve_settings(options))
    results = {
        "dataset": {"name": dataset.name, "samples": len(evaluations), "failed": failures, "limit": args.limit}
                   | ({"first_scene": dataset.first} if isinstance(dataset, datasets.SyntheticDataset) else {}),
        "models": {"base": pipeline.base.name, "refiner": args.refiner},
        "settings": settings,
        "metrics": summary,
        "images_per_metric": runner.images_per_metric(evaluations),
    }
    sheet = report.contact_sheet(sheet_rows) if sheet_rows else None
    writers = {
        args.output / "metrics.json": lambda path: path.write_text(
            json.dumps(report.json_ready(results), indent=2) + "\n"),
        args.output / "per_image.csv": lambda path: path.write_text(report.per_image_csv(evaluations)),
    }
    if sheet is not None:
        writers[args.output / "contact_sheet.png"] = lambda path: Image.fromarray(sheet).save(path)
    write_files_atomically(writers)

    print(f"{dataset.name}: {len(evaluations)} image(s), alignment in {args.alignment} space\n")
    print(report.markdown_table(summary))
    if any(not math.isnan(values["normal_error_deg"]) for values in summary.values()):
        print("\nSurface normals (the aligned depth lifted with the true camera):\n")
        print(report.markdown_table(summary, report.NORMAL_COLUMNS))
    if failures:
        print(f"betterdepth: {len(failures)} of {count} sample(s) failed (listed in metrics.json).", file=sys.stderr)
        return 2
    return 0
