"""Headless batch: a folder of photos -> per photo a .blend (camera + mesh/relief/plane + material) and files.

    blender -b --python scripts/batch_reconstruct.py -- --input photos/ --output out/ [options]
    .venv-blender-4.5/bin/python scripts/batch_reconstruct.py --input photos/ --output out/ [options]

Uses the BetterDepth extension's own operators (synchronous path) with its managed engine, or an external one
(--url/--token). If the extension is not enabled in this Blender, it is installed from --extension (default:
the newest dist/betterdepth-*.zip, built by `make extension`) into a repository in the output folder.
Resumable: a photo whose outputs all exist is skipped; every file is written to a temporary name, then
renamed. One line per photo with its time, then a summary; exit code 1 and OUTPUT/batch_report.json list
every photo that failed (the others are still done).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import bpy
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
MODES = {"mesh": "create_mesh", "relief": "create_relief", "displacement": "displacement"}
# png: a picture of the result from an oblique viewpoint; exr: the float height map (displacement mode)
FORMATS = ("blend", "ply", "glb", "png", "exr")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch_reconstruct.py", description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="folder of photos")
    parser.add_argument("--output", type=Path, required=True, help="folder for the results")
    parser.add_argument("--mode", choices=sorted(MODES), default="mesh")
    parser.add_argument("--formats", default="blend", help=f"comma-separated, of {', '.join(FORMATS)}")
    parser.add_argument("--max-faces", type=int, default=0, help="decimate meshes to this many faces (0: off)")
    parser.add_argument("--fov-deg", type=float, default=0.0, help="field of view (0: EXIF, else 55 degrees)")
    parser.add_argument("--width", type=float, default=2.0, help="relief/plane width across the image (units)")
    parser.add_argument("--depth", type=float, default=0.2, help="relief/plane height of the nearest point")
    parser.add_argument("--engine-python", default="", help="the engine environment's Python (managed engine)")
    parser.add_argument("--url", default="", help="an external engine's URL (with --token)")
    parser.add_argument("--token", default="")
    parser.add_argument("--extension", type=Path, help="the extension zip to install when it is not enabled")
    args = parser.parse_args(argv)
    args.formats = [name.strip() for name in args.formats.split(",") if name.strip()]
    unknown = sorted(set(args.formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown format(s) {', '.join(unknown)}; use {', '.join(FORMATS)}")
    if "exr" in args.formats and args.mode != "displacement":
        parser.error("exr (the height map) needs --mode displacement")
    if not args.input.is_dir():
        parser.error(f"--input {args.input} is not a folder")
    return args


def script_argv() -> list[str]:
    """Blender passes the script's own arguments after `--`; plain Python passes them directly."""
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]


# -- the extension ----------------------------------------------------------------------------------------
def enabled_extension() -> str | None:
    return next((name for name in bpy.context.preferences.addons.keys() if name.endswith(".betterdepth")), None)


def ensure_extension(zip_path: Path | None, output: Path) -> str:
    """The enabled extension's module name, installing it from its zip first if needed."""
    module = enabled_extension()
    if module:
        return module
    if zip_path is None:
        built = sorted((ROOT / "dist").glob("betterdepth-*.zip"))
        if not built:
            raise SystemExit("The BetterDepth extension is not installed and no dist/betterdepth-*.zip exists: "
                             "run `make extension`, or pass --extension ZIP.")
        zip_path = built[-1]
    repo_dir = output / ".blender_extensions"
    repo_dir.mkdir(parents=True, exist_ok=True)
    bpy.context.preferences.extensions.repos.new(name="betterdepth_batch", module="betterdepth_batch",
                                                 custom_directory=str(repo_dir), source="USER")
    bpy.ops.extensions.package_install_files(repo="betterdepth_batch", filepath=str(zip_path),
                                             enable_on_install=True)
    module = enabled_extension()
    if module is None:
        raise SystemExit(f"Installing {zip_path} did not enable the extension.")
    return module


def configure_engine(module: str, args: argparse.Namespace) -> None:
    prefs = bpy.context.preferences.addons[module].preferences
    if args.url:
        prefs.engine_mode, prefs.url, prefs.token = "EXTERNAL", args.url, args.token
        return
    prefs.engine_mode = "MANAGED"
    if args.engine_python:
        prefs.engine_python = args.engine_python
    elif not prefs.engine_python and (ROOT / ".venv" / "bin" / "python").is_file():
        prefs.project_dir = str(ROOT)  # a checkout: its .venv holds the engine


# -- one photo ------------------------------------------------------------------------------------------
def outputs_for(photo: Path, args: argparse.Namespace) -> dict[str, Path]:
    return {fmt: args.output / f"{photo.stem}.{fmt}" for fmt in args.formats}


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def render_oblique(path: Path, objects: list) -> None:
    """Workbench picture of the result: the source camera's view turned 20 degrees around the result's median
    point (and 10 up) and pulled back a little (reliefs and planes: from the front, above), so that the shape
    of the surface shows."""
    from mathutils import Matrix, Vector

    scene = bpy.context.scene
    points = []
    for obj in objects:
        co = np.empty(3 * len(obj.data.vertices), np.float32)
        obj.data.vertices.foreach_get("co", co)
        matrix = np.array(obj.matrix_world)
        points.append(co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3])
    pivot = Vector(np.median(np.concatenate(points), axis=0))
    source = scene.camera
    camera = bpy.data.objects.new("oblique view", source.data.copy() if source else bpy.data.cameras.new("view"))
    scene.collection.objects.link(camera)
    if source is not None:
        offset = source.matrix_world.translation - pivot
        camera.data.shift_x = camera.data.shift_y = 0.0
    else:  # a relief or plane lying on the ground: look from the front and above
        offset = Vector((0.0, -1.0, 0.8)) * max(np.ptp(np.concatenate(points), axis=0))
    side = offset.cross(Vector((0, 0, 1))).normalized()
    turn = Matrix.Rotation(math.radians(20), 3, "Z") @ Matrix.Rotation(math.radians(-10), 3, side)
    camera.location = pivot + turn @ offset * 1.4
    camera.rotation_euler = (pivot - camera.location).to_track_quat("-Z", "Y").to_euler()
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 640, 480, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    scene.view_settings.view_transform = "Standard"  # the colours exactly as the engine's normal maps
    shading = scene.display.shading
    if any(obj.modifiers for obj in objects):  # the displaced plane: its photo texture, lit
        shading.light, shading.color_type = "STUDIO", "TEXTURE"
    else:  # meshes and reliefs: their normal colours (the active colour attribute) show the shape unlit
        shading.light, shading.color_type = "FLAT", "VERTEX"
    shading.show_backface_culling = False
    scene.camera = camera
    render.image_settings.file_format = "PNG"
    render.filepath, render.use_file_extension = str(path), False
    try:
        bpy.ops.render.render(write_still=True)
    finally:
        scene.camera = source
        bpy.data.objects.remove(camera)


def save_height_map(plane, path: Path) -> None:
    """The displaced plane's float height map (packed in the .blend) as a 32-bit EXR file."""
    image = plane.modifiers["BetterDepth Displace"].texture.image.copy()
    try:
        image.filepath_raw, image.file_format = str(path), "OPEN_EXR"
        image.save()
    finally:
        bpy.data.images.remove(image)


def reconstruct_one(photo: Path, args: argparse.Namespace) -> str:
    """Build the scene for one photo and write its outputs; returns a short summary, raises on failure."""
    bpy.ops.wm.read_homefile(use_empty=True)
    operator = getattr(bpy.ops.betterdepth, MODES[args.mode])
    options = {"source": "FILE", "filepath": str(photo)}
    if args.mode == "mesh":
        options.update(max_faces=args.max_faces, fov_deg=args.fov_deg)
    else:
        options.update(width=args.width, depth=args.depth)
    operator(**options)
    results = [obj for obj in bpy.context.scene.objects if obj.type == "MESH"]
    outputs = outputs_for(photo, args)
    for fmt, path in outputs.items():
        temporary = partial_path(path)
        if fmt == "png":
            render_oblique(temporary, results)
        elif fmt == "ply":
            bpy.ops.wm.ply_export(filepath=str(temporary), export_selected_objects=False, apply_modifiers=True,
                                  export_colors="LINEAR")
        elif fmt == "glb":
            bpy.ops.export_scene.gltf(filepath=str(temporary), export_format="GLB", use_selection=False)
        elif fmt == "exr":
            save_height_map(results[0], temporary)
        if fmt != "blend":
            os.replace(temporary, path)
    if "blend" in outputs:  # last, so that the .blend's presence means every other output is done too
        temporary = partial_path(outputs["blend"])
        bpy.ops.wm.save_as_mainfile(filepath=str(temporary), copy=True, compress=True)
        os.replace(temporary, outputs["blend"])
    vertices = sum(len(obj.data.vertices) for obj in results)
    return f"{len(results)} object(s), {vertices} vertices"


def main() -> int:
    args = parse_args(script_argv())
    args.output.mkdir(parents=True, exist_ok=True)
    module = ensure_extension(args.extension, args.output)
    configure_engine(module, args)
    photos = sorted(path for path in args.input.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    print(f"BetterDepth batch: {len(photos)} photo(s) from {args.input} -> {args.output} ({args.mode})", flush=True)
    done, skipped, failed = 0, 0, {}
    started = time.perf_counter()
    for photo in photos:
        if all(path.is_file() for path in outputs_for(photo, args).values()):
            skipped += 1
            print(f"skip    {photo.name:<28}(outputs exist)", flush=True)
            continue
        clock = time.perf_counter()
        try:
            summary = reconstruct_one(photo, args)
        except (RuntimeError, OSError) as error:  # operator errors arrive as RuntimeError with their report
            failed[photo.name] = str(error).strip().removeprefix("Error: ")
            print(f"FAILED  {photo.name:<28}{time.perf_counter() - clock:6.1f} s  {failed[photo.name]}", flush=True)
            continue
        done += 1
        print(f"ok      {photo.name:<28}{time.perf_counter() - clock:6.1f} s  {summary}", flush=True)
    bpy.ops.betterdepth.engine_stop()
    report = {"done": done, "skipped": skipped, "failed": failed, "seconds": round(time.perf_counter() - started, 1)}
    report_path = args.output / "batch_report.json"
    partial_path(report_path).write_text(json.dumps(report, indent=2) + "\n")
    os.replace(partial_path(report_path), report_path)
    print(f"BetterDepth batch: {done} done, {skipped} skipped, {len(failed)} failed in {report['seconds']} s"
          + (f"; failed: {', '.join(failed)} (see {report_path})" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())  # also Blender's exit code under `blender -b --python`
