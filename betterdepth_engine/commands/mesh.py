"""`betterdepth mesh`: a disparity or depth file (+ the photo) -> mesh, relief, height map and preview files."""

from __future__ import annotations

import argparse
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


def _formats(text: str) -> list[str]:
    return [item.strip().lower() for item in text.split(",") if item.strip()]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "mesh",
        help=HELP,
        description=(
            "Lift a disparity or depth map to 3D with a pinhole camera and connect the pixel grid into a mesh, "
            "cut where the depth jumps; or build a printable bas-relief solid and displacement height maps. "
            "Writes OUT/<stem>_mesh.ply|glb|obj (or <stem>_relief.*), <stem>_height.exr/.png, "
            "<stem>_mesh_preview.png and the sidecar <stem>_mesh.json."
        ),
    )
    parser.add_argument("depth_file", type=Path, metavar="DEPTH_FILE",
                        help="float32 .npy (H x W), 16-bit PNG or EXR, e.g. OUT/photo_disparity.npy")
    parser.add_argument("--image", type=Path, help="the photo, for vertex colours and its EXIF focal length")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="output folder")

    lifting = parser.add_argument_group("depth")
    lifting.add_argument("--space", choices=("disparity", "affine-depth", "depth"), default="disparity",
                         help="what DEPTH_FILE holds: affine-invariant disparity (default, larger = nearer, "
                              "what estimate writes), affine-invariant depth, or metric depth along the view axis")
    lifting.add_argument("--far-near-ratio", type=float, default=10.0,
                         help="for affine inputs: the farthest depth is this many times the nearest (default 10)")
    lifting.add_argument("--near", type=float, default=1.0,
                         help="for affine inputs: depth of the nearest point, in scene units (default 1)")
    lifting.add_argument("--invalid", choices=("drop", "backplate"), default="drop",
                         help="invalid pixels (NaN, sky): no geometry, or a plate at the far depth")
    lifting.add_argument("--sky-below", type=float,
                         help="treat pixels with normalised disparity below this (0..1) as sky, e.g. 0.02")

    camera = parser.add_argument_group("camera (default: EXIF of --image, else 55 degrees across the longer side)")
    focal = camera.add_mutually_exclusive_group()
    focal.add_argument("--focal-px", type=float, help="focal length in pixels")
    focal.add_argument("--fov-deg", type=float, help="field of view across the longer image side, in degrees")

    mesh = parser.add_argument_group("mesh")
    mesh.add_argument("--mode", choices=("mesh", "relief"), default="mesh",
                      help="mesh: camera-aligned surface; relief: closed printable bas-relief solid")
    mesh.add_argument("--format", type=_formats, default=["ply"],
                      help="comma-separated mesh formats: ply, glb, obj (default ply; '' for none)")
    mesh.add_argument("--colors", choices=("normal", "image"),
                      help="vertex colours (default: image if --image is given, else normal)")
    mesh.add_argument("--max-faces", type=int, help="decimate to at most this many faces")
    mesh.add_argument("--min-angle-deg", type=float, default=4.0,
                      help="cut triangles steeper than this viewing angle (depth jumps); 0 keeps all (default 4)")
    mesh.add_argument("--max-vertices", type=int, default=2_500_000,
                      help="above this many pixels use every n-th pixel (default 2500000)")
    mesh.add_argument("--fill-holes", type=int, default=0, metavar="PX", help="fill invalid gaps up to PX wide")
    mesh.add_argument("--smooth", type=int, default=0, metavar="N", help="edge-aware smoothing passes")

    relief = parser.add_argument_group("relief and height map")
    relief.add_argument("--relief-method", choices=("linear", "gamma", "gradient"), default="gradient",
                        help="depth compression (default gradient: keeps far detail, flattens big steps)")
    relief.add_argument("--relief-gamma", type=float, default=0.5, help="exponent for --relief-method gamma")
    relief.add_argument("--relief-gradient-power", type=float, default=0.3,
                        help="gradient method: 1 keeps slopes, smaller flattens large steps more (default 0.3)")
    relief.add_argument("--relief-width", type=float, default=100.0, help="relief width, scene units/mm (100)")
    relief.add_argument("--relief-depth", type=float, default=10.0, help="relief height above the base (10)")
    relief.add_argument("--relief-base", type=float, default=2.0, help="base plate thickness (2)")
    relief.add_argument("--heightmap", action="store_true",
                        help="also write <stem>_height.exr (float32) and <stem>_height.png (16-bit)")

    parser.add_argument("--preview", action="store_true", help="also write <stem>_mesh_preview.png")
    parser.set_defaults(run=run)
    return parser


def options_from_args(args: argparse.Namespace, focal_35mm: float | None):
    from betterdepth_engine.recon import ReconOptions, ReliefOptions

    return ReconOptions(
        mode=args.mode,
        far_near_ratio=args.far_near_ratio,
        near=args.near,
        invalid=args.invalid,
        sky_below=args.sky_below,
        focal_px=args.focal_px,
        fov_deg=args.fov_deg,
        focal_35mm=focal_35mm,
        min_angle_deg=args.min_angle_deg,
        max_vertices=args.max_vertices,
        max_faces=args.max_faces,
        colors=args.colors or "auto",
        fill_holes_px=args.fill_holes,
        smooth_iterations=args.smooth,
        relief=ReliefOptions(
            method=args.relief_method,
            gamma=args.relief_gamma,
            gradient_power=args.relief_gradient_power,
            width=args.relief_width,
            depth=args.relief_depth,
            base=args.relief_base,
        ),
    )


def run(args: argparse.Namespace) -> int:
    from betterdepth_engine.depthfile import read_depth_file
    from betterdepth_engine.images import load_image
    from betterdepth_engine.recon import reconstruct, relief_height_map, write_outputs

    values = read_depth_file(args.depth_file)
    image = load_image(args.image) if args.image is not None else None
    options = options_from_args(args, image.focal_length_35mm if image is not None else None)
    mesh = reconstruct(values, args.space, image.rgb if image is not None else None, options)
    mesh.metadata["input"] = {
        "depth_file": str(args.depth_file),
        "image": str(args.image) if args.image is not None else None,
        "notes": image.notes if image is not None else [],
    }
    height_map = relief_height_map(values, args.space, options) if args.heightmap else None
    paths = write_outputs(mesh, args.output, output_stem(args.depth_file), args.format, height_map, args.preview)
    camera = mesh.metadata["camera"]
    print(f"{len(mesh.vertices)} vertices, {len(mesh.faces)} faces; focal {camera['fx']:.1f} px ({camera['source']})")
    for path in paths:
        print(path)
    return 0
