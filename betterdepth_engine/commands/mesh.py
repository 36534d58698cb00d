"""`betterdepth mesh`: a disparity or depth file (+ the photo) -> mesh, relief, height map and preview files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "turn a disparity/depth map into a mesh, a relief or a displacement map"
# Suffixes the estimate command (and common tools) add to a depth file's name; outputs use the bare stem.
DEPTH_NAME_SUFFIXES = ("_disparity", "_depth")


def output_stem(depth_path: Path) -> str:
    """'photo_disparity.npy' -> 'photo', so the mesh lands next to the estimate's files as photo_mesh.ply."""
    stem = depth_path.stem
    for suffix in DEPTH_NAME_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def add_parser(subparsers) -> argparse.ArgumentParser:
    from betterdepth_engine.options import add_options
    from betterdepth_engine.recon import MESH_FORMATS, SPACES, ReconOptions, ReliefOptions

    parser = subparsers.add_parser(
        "mesh",
        help=HELP,
        description=(
            "Lift a disparity or depth map to 3D with a pinhole camera and connect the pixel grid into a mesh, "
            "cut where the depth jumps; or build a printable bas-relief solid and displacement height maps. "
            "Writes OUT/<stem>_mesh.* (or <stem>_relief.*) with the sidecar <stem>_mesh.json (<stem>_relief.json), "
            "and with --heightmap <stem>_height.exr/.png and <stem>_height.json."
        ),
    )
    parser.add_argument("depth_file", type=Path, metavar="DEPTH_FILE",
                        help="float32 .npy (H x W), 16-bit PNG (0 = invalid) or EXR, e.g. OUT/photo_disparity.npy")
    parser.add_argument("--image", type=Path, help="the photo, for vertex colours and its EXIF focal length")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    parser.add_argument("--space", choices=SPACES, default="disparity",
                        help="what DEPTH_FILE holds: affine-invariant disparity (default, larger = nearer, "
                             "what estimate writes), affine-invariant depth, or metric depth along the view axis")
    parser.add_argument("--format", default="ply", metavar="LIST",
                        help=f"comma-separated outputs: {', '.join(MESH_FORMATS)} (pcd and ply-points: the "
                             "vertices as a point cloud with normals and colours); '' for none (default: ply)")
    parser.add_argument("--heightmap", action="store_true",
                        help="also write <stem>_height.exr (float32) and <stem>_height.png (16-bit)")
    parser.add_argument("--preview", action="store_true",
                        help="also write <stem>_mesh_preview.png (<stem>_relief_preview.png)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    add_options(parser.add_argument_group("reconstruction"), ReconOptions)
    add_options(parser.add_argument_group("relief and height map"), ReliefOptions, prefix="relief-")
    parser.set_defaults(run=run)
    return parser


def options_from_args(args: argparse.Namespace, focal_35mm: float | None):
    from betterdepth_engine.options import from_options
    from betterdepth_engine.recon import ReconOptions, ReliefOptions

    relief = from_options(ReliefOptions, args, prefix="relief-")
    return from_options(ReconOptions, args, focal_35mm=focal_35mm, relief=relief)


def run(args: argparse.Namespace) -> int:
    from betterdepth_engine.depthfile import read_depth_file
    from betterdepth_engine.fileio import check_output_folder
    from betterdepth_engine.images import load_image
    from betterdepth_engine.options import comma_list
    from betterdepth_engine.recon import MESH_FORMATS, reconstruct, relief_height_map, write_outputs

    from tqdm import tqdm

    formats = comma_list(args.format, MESH_FORMATS, "mesh format(s)")
    values = read_depth_file(args.depth_file)
    image = load_image(args.image) if args.image is not None else None
    options = options_from_args(args, image.focal_length_35mm if image is not None else None)
    check_output_folder(args.output)
    # The slow parts (decimation, a large relief's solve and check, the preview) show as the bar's stage.
    progress = tqdm(desc="mesh", disable=args.quiet, leave=False, bar_format="{desc} [{elapsed}]")

    def on_stage(stage: str) -> None:
        progress.set_description_str(f"mesh: {stage}")

    with progress:
        mesh = reconstruct(values, args.space, image.rgb if image is not None else None, options,
                           on_stage=on_stage)
        mesh.metadata["input"] = {
            "depth_file": str(args.depth_file),
            "image": str(args.image) if args.image is not None else None,
            "notes": image.notes if image is not None else [],
        }
        height_map = None
        if args.heightmap:
            on_stage("height map")
            height_map = relief_height_map(values, args.space, options)
        on_stage("write files" + (" and preview" if args.preview else ""))
        paths = write_outputs(mesh, args.output, output_stem(args.depth_file), formats, height_map, args.preview)
    if mesh.metadata.get("solid", {}).get("watertight") is False:
        print(f"betterdepth: warning: the relief solid is not watertight ({mesh.metadata['solid']}); "
              "raise --max-faces or leave it out for a printable solid.", file=sys.stderr)
    camera = mesh.metadata["camera"]
    print(f"{len(mesh.vertices)} vertices, {len(mesh.faces)} faces; focal {camera['fx']:.1f} px ({camera['source']})")
    for path in paths:
        print(path)
    return 0
