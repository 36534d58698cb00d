"""`betterdepth batch`: `estimate` over many images on Ray (a local runtime by default, a cluster by address)."""

from __future__ import annotations

import argparse
import sys
import time

HELP = "estimate many images on Ray (local by default, a cluster with --ray-address); resumable"
DESCRIPTION = """\
The same work and the same output files as `betterdepth estimate` (identical arrays for the same seed), for
files, folders (recursively) and .txt files listing one image path per line, run on Ray Data: each worker
loads the models once. Without --ray-address a local Ray runtime starts on this machine; `--ray-address auto`
joins the cluster started here with `ray start`, `ray://HOST:10001` a remote one (INPUT and OUT must then be on
storage every node sees). Images whose outputs are complete are skipped, so a rerun resumes; every image's
outcome is appended to OUT/_batch/manifest.jsonl as it arrives. Exit code 0 only if every image succeeded.
"""
EPILOG = """\
examples:
  betterdepth batch shots/ -o out                              (a local Ray runtime, one worker)
  betterdepth batch plates.txt -o /shared/out --ray-address ray://head:10001 --workers 8 --gpus-per-worker 1
  betterdepth batch shots/ -o out --workers 0                  (no Ray: a plain loop, for debugging)
"""


def add_parser(subparsers) -> None:
    from betterdepth_engine.commands.estimate import add_estimate_options

    parser = subparsers.add_parser("batch", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive), .txt lists")
    add_estimate_options(parser)
    ray = parser.add_argument_group("scale-out")
    ray.add_argument("--ray-address", metavar="ADDRESS",
                     help="join this Ray cluster ('auto', ray://HOST:10001, HOST:6379); default: a local runtime")
    ray.add_argument("--workers", type=int, metavar="N",
                     help="Ray workers, each with its own copy of the models (default: one per GPU, else 1); "
                          "0 = no Ray, a plain loop in this process")
    ray.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                     help="GPUs each worker reserves (default: 1 if the cluster has GPUs, else 0)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from tqdm import tqdm

    from betterdepth_engine import batch
    from betterdepth_engine.commands.estimate import checked_settings, settings_from_args
    from betterdepth_engine.errors import BetterDepthError
    from betterdepth_engine.fileio import check_output_folder
    from betterdepth_engine.images import check_unique_stems

    options, formats, mesh_formats = checked_settings(args)
    if args.workers is not None and args.workers < 0:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"--workers must be 0 or more, got {args.workers}.",
                               "Use 0 for a plain loop, or the number of Ray workers.")
    if args.gpus_per_worker is not None and args.gpus_per_worker < 0:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "--gpus-per-worker cannot be negative.", "Use 0 or 1.")
    paths = batch.collect_inputs(args.inputs)
    check_unique_stems(paths)  # one output folder: equal stems would overwrite each other
    check_output_folder(args.output)
    settings = settings_from_args(args, options, formats, mesh_formats)

    todo = [path for path in paths if not batch.is_complete(args.output, path, settings)]
    counts = {"ok": 0, "failed": 0, "skipped": len(paths) - len(todo)}
    start = time.perf_counter()
    if todo:
        if args.workers == 0:
            rows = batch.run_in_process(todo, settings)
        else:
            ray = batch.connect_ray(args.ray_address)
            gpus = ray.cluster_resources().get("GPU", 0)
            gpus_per_worker = args.gpus_per_worker if args.gpus_per_worker is not None else (1 if gpus else 0)
            workers = args.workers or max(1, int(gpus // gpus_per_worker) if gpus_per_worker else 1)
            rows = batch.run_on_ray(todo, settings, workers, gpus_per_worker)
        bar = tqdm(total=len(todo), desc="images", unit="image", disable=args.quiet)
        with batch.open_manifest(args.output) as manifest:
            for row in rows:
                batch.write_manifest_line(manifest, row)
                counts[row["status"]] += 1
                bar.update(1)
                if row["status"] == "failed":
                    tqdm.write(f"betterdepth: error [{row['code']}] {row['path']}: {row['message']}", file=sys.stderr)
        bar.close()
    batch.print_summary(counts, time.perf_counter() - start)
    return 2 if counts["failed"] else 0
