"""`betterdepth estimate`: images or folders in, refined disparity (and pictures, meshes) out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "estimate refined depth for images or folders"
# Extra outputs and the file each writes, OUT/<stem><suffix> (batch checks for the same names).
FORMAT_SUFFIXES = {"png16": "_disparity.png", "exr": "_disparity.exr", "color": "_disparity_color.png",
                   "side-by-side": "_side_by_side.png"}
OUTPUT_FORMATS = tuple(FORMAT_SUFFIXES)

DESCRIPTION = """\
Estimate detailed depth for each image. A base model predicts a robust, smooth affine-invariant disparity;
the BetterDepth refiner adds fine detail from the image while keeping the base's layout.

Always written, per image (STEM = the image's file name without extension):
  OUT/STEM_disparity.npy       refined disparity, float32, H x W at the input resolution (NaN = invalid)
  OUT/STEM_base_disparity.npy  the base prediction used as conditioning, same frame and size
  OUT/STEM_meta.json           models, settings, timings, value ranges
Disparity is affine-invariant (larger = nearer, unknown scale and shift), in the base model's frame.
On request: STEM_disparity.png (16-bit, 0 = invalid), .exr, _disparity_color.png, and _side_by_side.png
(labelled panels image | base | refined | normals with a colour bar: red = near, blue = far).
Inputs with the same STEM would overwrite each other's files and are refused before anything runs.
"""

EPILOG = """\
examples:
  betterdepth estimate photo.jpg -o out
  betterdepth estimate shots/ -o out --formats color,side-by-side --ensemble-size 4
  betterdepth estimate photo.jpg -o out --base depth-anything-v2-small        (downloads once from the hub)
  betterdepth estimate photo.jpg -o out --base-dir preds/ --base-space depth (plug in any depth model)
  betterdepth estimate photo.jpg -o out --refiner marigold --strength 0.5     (training-free, Marigold weights)
"""


def _shipped_refiner_defaults() -> str:
    """'1 step at 384 px', read from the shipped refiner's config so the help cannot go stale."""
    config_path = Path(__file__).resolve().parent.parent / "weights" / "refiner" / "betterdepth_refiner.json"
    if not config_path.is_file():
        return "not installed"
    config = json.loads(config_path.read_text())
    steps = config["default_denoising_steps"]
    return f"{steps} step{'s' if steps != 1 else ''} at {config['default_processing_resolution']} px"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "estimate", help=HELP,
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE|FOLDER", help="image files or folders of images")
    add_estimate_options(parser)
    parser.set_defaults(run=run)


def add_estimate_options(parser: argparse.ArgumentParser) -> None:
    """The options of `estimate` (shared by `batch`, which writes the same files)."""
    from betterdepth_engine.refine_options import MIN_PROCESSING_RESOLUTION

    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output folder")
    models = parser.add_argument_group("models")
    models.add_argument("--base", default="default", metavar="MODEL",
                        help="base model: 'default' (shipped), an alias (depth-anything-v2-small, dpt-large, "
                             "marigold, ...), a local folder or a hub id (default: %(default)s)")
    models.add_argument("--base-dir", type=Path, metavar="DIR",
                        help="use precomputed base predictions DIR/STEM.npy|.png (16-bit)|.exr instead of a model")
    models.add_argument("--base-space", choices=("disparity", "depth"), default="disparity",
                        help="what the --base-dir files hold (default: %(default)s)")
    models.add_argument("--refiner", default="default", metavar="MODEL",
                        help="refiner: 'default', 'none' (base only), 'marigold' (training-free), a folder or "
                             "a hub id (default: %(default)s)")
    refine = parser.add_argument_group("refinement")
    refine.add_argument("--steps", type=int, metavar="N",
                        help=f"denoising steps (default: the refiner's; the shipped refiner: "
                             f"{_shipped_refiner_defaults()})")
    refine.add_argument("--ensemble-size", type=int, metavar="N",
                        help="independent samples averaged into one result; also gives an uncertainty map")
    refine.add_argument("--ensemble-reduction", choices=("mean", "median"), default="mean")
    refine.add_argument("--processing-resolution", type=int, metavar="PX",
                        help=f"long side the refiner works at, at least {MIN_PROCESSING_RESOLUTION}; 0 = the "
                             "input's (default: the refiner's)")
    refine.add_argument("--strength", type=float, metavar="S",
                        help="1 = denoise from pure noise; lower keeps more of the base (training-free: 0.3-0.7)")
    refine.add_argument("--noise", choices=("random", "zero"),
                        help="starting noise: random (a seeded sample) or zero (its mean: one deterministic "
                             "estimate, no sampling texture) (default: the refiner's; the shipped refiner: zero)")
    refine.add_argument("--no-guard", dest="guard", action="store_false",
                        help="the refiner's raw output, without its guard (the shipped refiner drops corrections "
                             "below 4 %% of the depth range other than smoothing, and clamps halos at edges; "
                             "docs/results.md section 9)")
    refine.add_argument("--far-near-ratio", type=float, default=10.0, metavar="R",
                        help="the farthest depth is this many times the nearest: assumed when converting "
                             "Marigold's depth to disparity and when lifting --mesh (as in `betterdepth mesh`) "
                             "(default: %(default)s)")
    refine.add_argument("--seed", type=int, default=0, help="random seed; equal seeds give equal results")
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--batch-size", type=int, default=1, metavar="N",
                         help="images of equal size refined together (faster on a GPU; more memory)")
    runtime.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    runtime.add_argument("--dtype", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                         help="auto = fp16 on CUDA, fp32 on CPU")
    output = parser.add_argument_group("output")
    output.add_argument("--formats", default="", metavar="LIST",
                        help=f"extra outputs, comma-separated: {', '.join(OUTPUT_FORMATS)}")
    output.add_argument("--mesh", default="", metavar="FORMATS",
                        help="also build a camera-aligned mesh: comma-separated ply, glb, obj, pcd, ply-points "
                             "(written as OUT/STEM_mesh.*; `betterdepth mesh --help` has every reconstruction "
                             "option)")
    output.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def resolve_device(device: str, dtype: str):
    """('auto'|'cpu'|'cuda[:N]', 'auto'|'fp32'|'fp16'|'bf16') -> (torch.device, torch.dtype)."""
    import torch

    from betterdepth_engine.errors import BetterDepthError

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"--device {device} was asked for, but CUDA is not available.",
                               "Install a CUDA build of torch (see README) or use --device cpu.")
    on_cuda = device.startswith("cuda")
    if dtype in ("fp16", "bf16") and not on_cuda:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"--dtype {dtype} needs a CUDA device.",
                               "Use --dtype fp32 (or auto) on the CPU.")
    chosen = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype)
    return torch.device(device), chosen or (torch.float16 if on_cuda else torch.float32)


def checked_settings(args):
    """(RefineOptions, formats, mesh formats) from the options, or a BAD_INPUT error before any work."""
    from betterdepth_engine.errors import BetterDepthError
    from betterdepth_engine.options import comma_list
    from betterdepth_engine.refine_options import RefineOptions
    from betterdepth_engine.recon import MESH_FORMATS

    formats = comma_list(args.formats, OUTPUT_FORMATS, "output format(s)")
    mesh_formats = comma_list(args.mesh, MESH_FORMATS, "mesh format(s)")
    options = RefineOptions(
        denoising_steps=args.steps, ensemble_size=args.ensemble_size, processing_resolution=args.processing_resolution,
        strength=args.strength, noise=args.noise, ensemble_reduction=args.ensemble_reduction, seed=args.seed,
        guard=args.guard,
    )
    if args.batch_size < 1:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "--batch-size must be at least 1.",
                               "Use --batch-size 1 or more.")
    if not args.far_near_ratio > 1:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "--far-near-ratio must be above 1.", "Try 10.")
    return options, formats, mesh_formats


def run(args) -> int:
    from betterdepth_engine.fileio import check_output_folder
    from betterdepth_engine.images import check_unique_stems, find_images

    # Everything the user can get wrong is checked before the models load and before any image is processed.
    options, formats, mesh_formats = checked_settings(args)
    image_paths = find_images(args.inputs)
    check_unique_stems(image_paths)
    check_output_folder(args.output)
    return _estimate(args, image_paths, options, formats, mesh_formats)


def settings_from_args(args, options, formats, mesh_formats) -> dict:
    """Everything the per-image work needs, as plain data (Ray sends it to its workers)."""
    return {
        "base": args.base, "base_dir": args.base_dir, "base_space": args.base_space, "refiner": args.refiner,
        "device": args.device, "dtype": args.dtype, "far_near_ratio": args.far_near_ratio, "seed": args.seed,
        "options": options, "batch_size": args.batch_size,
        "formats": formats, "mesh_formats": mesh_formats, "output": args.output,
    }


def build_pipeline(settings: dict):
    """The base model and refiner the settings name, loaded once."""
    from betterdepth_engine.models.loading import load_base_model, load_refiner
    from betterdepth_engine.pipeline import BetterDepthPipeline

    device, dtype = resolve_device(settings["device"], settings["dtype"])
    return BetterDepthPipeline(
        load_base_model(settings["base"], device, dtype, settings["base_dir"], settings["base_space"],
                        settings["far_near_ratio"], settings["seed"]),
        load_refiner(settings["refiner"], device, dtype),
    )


def estimate_group(pipeline, paths: list[Path], options, out_dir: Path, formats, mesh_formats,
                   far_near_ratio: float, on_progress=None) -> dict[Path, Exception]:
    """Estimate and write one group of images (equal sizes refined together): the per-image work of
    `estimate` and `batch`. Returns the failures by path; any failure is its image's alone."""
    import torch

    from betterdepth_engine.images import load_image

    failures: dict[Path, Exception] = {}
    loaded = []  # (path, image, base prediction, base seconds)
    for path in paths:
        try:
            image = load_image(path)
            loaded.append((path, image, *pipeline.predict_base(image)))
        except Exception as error:  # a MemoryError included: this image fails, the others go on
            failures[path] = error
    for group in _group_by_size(loaded):
        try:
            with torch.inference_mode():
                results = pipeline.refine_batch([image for _, image, *_ in group],
                                                [prediction for *_, prediction, _ in group], options, on_progress)
        except Exception as error:
            failures.update((path, error) for path, *_ in group)
            continue
        for (path, image, _, base_seconds), result in zip(group, results):
            result.timings = {"base": base_seconds, **result.timings}
            try:
                write_result(out_dir, image, result, formats)
                if mesh_formats:
                    write_mesh(out_dir, image, result, mesh_formats, far_near_ratio)
            except Exception as error:
                failures[path] = error
    return failures


def _estimate(args, image_paths: list[Path], options, formats, mesh_formats) -> int:
    from tqdm import tqdm

    from betterdepth_engine.errors import BetterDepthError

    pipeline = build_pipeline(settings_from_args(args, options, formats, mesh_formats))
    if pipeline.refiner is not None and "untrained" in pipeline.refiner.config.description:
        print(f"betterdepth: note: the refiner is an {pipeline.refiner.config.description}", file=sys.stderr)
    failures: list[str] = []
    images_bar = tqdm(total=len(image_paths), desc="images", unit="image",
                      disable=args.quiet or len(image_paths) == 1)
    for first in range(0, len(image_paths), args.batch_size):
        paths = image_paths[first:first + args.batch_size]
        steps_bar = tqdm(desc=", ".join(path.name for path in paths), unit="step", leave=False, disable=args.quiet)

        def on_progress(stage: str, done: int, total: int) -> None:
            # The bar counts denoising steps; the other stages show as its label.
            if stage == "refine":
                steps_bar.total = total
                steps_bar.n = done
            steps_bar.set_postfix_str(stage)

        errors = estimate_group(pipeline, paths, options, args.output, formats, mesh_formats, args.far_near_ratio,
                                on_progress)
        steps_bar.close()
        for path, error in errors.items():
            code = error.code if isinstance(error, BetterDepthError) else type(error).__name__
            failures.append(f"{path}: [{code}] {error}")
            tqdm.write(f"betterdepth: error [{code}] {path.name}: {error}", file=sys.stderr)
        images_bar.update(len(paths))
    images_bar.close()
    if failures:
        print(f"betterdepth: {len(failures)} of {len(image_paths)} image(s) failed; nothing was written for them.",
              file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"betterdepth: wrote results for {len(image_paths)} image(s) to {args.output}", file=sys.stderr)
    return 0


def _group_by_size(loaded: list) -> list[list]:
    """Images of equal size, in input order of their first member: each group is one refiner batch."""
    groups: dict[tuple[int, int], list] = {}
    for item in loaded:
        groups.setdefault(item[1].rgb.shape[:2], []).append(item)
    return list(groups.values())


def write_result(out_dir: Path, image, result, formats: list[str]) -> list[Path]:
    """Write one image's result files, all or none."""
    from PIL import Image

    from betterdepth_engine import depthfile, visualize
    from betterdepth_engine.fileio import write_files_atomically

    stem = out_dir / image.stem
    metadata = {
        "image": str(image.path),
        "width": image.width,
        "height": image.height,
        "space": "affine-invariant disparity (larger = nearer), in the base model's frame; NaN = invalid",
        **result.metadata,
        "timings_s": {stage: round(seconds, 4) for stage, seconds in result.timings.items()},
    }
    writers = {
        f"{stem}_disparity.npy": lambda path: depthfile.write_npy(path, result.disparity),
        f"{stem}_base_disparity.npy": lambda path: depthfile.write_npy(path, result.base_disparity),
    }
    if result.uncertainty is not None:
        writers[f"{stem}_uncertainty.npy"] = lambda path: depthfile.write_npy(path, result.uncertainty)
    if "png16" in formats:
        metadata["png16"] = depthfile.png16_range(result.disparity)
        writers[f"{stem}{FORMAT_SUFFIXES['png16']}"] = lambda path: depthfile.write_png16(path, result.disparity)
    if "exr" in formats:
        writers[f"{stem}{FORMAT_SUFFIXES['exr']}"] = lambda path: depthfile.write_exr(path, result.disparity)
    if "color" in formats:
        colored = visualize.colorize_disparity(result.disparity)
        writers[f"{stem}{FORMAT_SUFFIXES['color']}"] = lambda path: Image.fromarray(colored).save(path, format="PNG")
    if "side-by-side" in formats:
        from betterdepth_engine.recon import ReconOptions, normal_map

        normals = normal_map(result.disparity, "disparity", ReconOptions(focal_35mm=image.focal_length_35mm),
                             valid_mask=result.valid_mask)
        picture = visualize.side_by_side(image, result.base_disparity, result.disparity, normals)
        writers[f"{stem}{FORMAT_SUFFIXES['side-by-side']}"] = (
            lambda path: Image.fromarray(picture).save(path, format="PNG"))
    writers[f"{stem}_meta.json"] = lambda path: path.write_text(json.dumps(metadata, indent=2) + "\n")
    return write_files_atomically(writers)


def write_mesh(out_dir: Path, image, result, formats: tuple[str, ...], far_near_ratio: float = 10.0) -> list[Path]:
    """The refined disparity as a camera-aligned, normal-coloured mesh (focal from EXIF, else the default FoV)."""
    from betterdepth_engine.recon import ReconOptions, reconstruct, write_outputs

    options = ReconOptions(focal_35mm=image.focal_length_35mm, colors="normal", far_near_ratio=far_near_ratio)
    mesh = reconstruct(result.disparity, "disparity", image.rgb, options, valid_mask=result.valid_mask)
    return write_outputs(mesh, out_dir, image.stem, formats=formats)

