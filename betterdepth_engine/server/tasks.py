"""What one job does: image -> base -> refiner -> (mesh | relief) -> result files, with progress and cancel.

A job is a function of its request, its input files and the models; it reports through `JobContext` and writes
only into its own results folder: the preview as it goes (atomically replaced), every other file together at
the end (all or none).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from betterdepth_engine import __version__
from betterdepth_engine.errors import BetterDepthError

PREVIEW_SIDE = 256  # the longest side preview.png may have
# Where each stage starts in a job's fraction of work (the refine stage spreads its steps over its span).
STAGE_START = {"loading": 0.0, "base": 0.05, "refine": 0.25, "ensemble": 0.85, "reconstruct": 0.88, "write": 0.95}
STAGE_END = {"loading": 0.05, "base": 0.25, "refine": 0.85, "ensemble": 0.88, "reconstruct": 0.95, "write": 1.0}


class JobCancelled(Exception):
    """Raised inside a job at the next check after its cancellation was asked for."""


@dataclass
class JobContext:
    """What the runner gives a job."""

    job_id: str
    request: dict  # the validated JobRequest, as JSON
    input_dir: Path  # the job's uploaded image / base prediction
    results_dir: Path
    jobs_dir: Path  # other jobs' folders, for reuse_job
    models: object  # server.models.ModelCache
    report: Callable[[str, int | None, int | None], None]  # (stage, step, total): also checks for cancel


def run(context: JobContext) -> list[str]:
    """Run the job; returns the names of the files it wrote into its results folder."""
    from betterdepth_engine.images import load_image

    request = context.request
    timings: dict[str, float] = {}
    if request.get("reuse_job"):
        _check_reuse_source(context)
    image_path = _image_path(context)
    image = load_image(image_path) if image_path is not None else None
    if request.get("reuse_job"):
        estimate_files, estimate_meta, disparity = _reused_estimate(context)
        valid = np.isfinite(disparity)
    elif request.get("reuse_disparity"):
        estimate_files, estimate_meta, disparity = _kept_disparity(context, image)
        valid = np.isfinite(disparity)
    else:
        clock = time.perf_counter()
        result = _estimate(context, image)
        timings["estimate"] = time.perf_counter() - clock
        disparity, valid = result.disparity, result.valid_mask
        estimate_files = _estimate_writers(result)
        estimate_meta = {**result.metadata, "timings_s": _rounded(result.timings)}

    writers = dict(estimate_files)
    meta = {
        "engine_version": __version__,
        "task": request["task"],
        "image": _image_meta(image, image_path, request),
        "space": "affine-invariant disparity (larger = nearer), in the base model's frame; NaN = invalid",
        "estimate": estimate_meta,
        "reused_from": request.get("reuse_job"),
    }
    if request["task"] in ("mesh", "relief"):
        context.report("reconstruct", None, None)
        clock = time.perf_counter()
        writers.update(_reconstruction_writers(request, disparity, valid, image, meta))
        timings["reconstruct"] = time.perf_counter() - clock
    context.report("write", None, None)
    meta["timings_s"] = _rounded(timings)
    writers["meta.json"] = lambda path: path.write_text(json.dumps(meta, indent=2) + "\n")
    from betterdepth_engine.fileio import write_files_atomically

    paths = write_files_atomically({context.results_dir / name: write for name, write in writers.items()})
    return [path.name for path in paths]


def _image_path(context: JobContext) -> Path | None:
    """The job's image: its own input, or the image of the job it reuses (for colours and EXIF)."""
    request = context.request
    for folder in (context.input_dir, context.jobs_dir / str(request.get("reuse_job")) / "input"):
        images = sorted(folder.glob("image.*")) if folder.is_dir() else []
        if images:
            return images[0]
    source = request.get("image") or {}
    if source.get("path"):
        return Path(source["path"])
    if request.get("reuse_job"):
        previous = json.loads((context.jobs_dir / request["reuse_job"] / "results" / "meta.json").read_text())
        path = previous.get("image", {}).get("path")
        return Path(path) if path and Path(path).is_file() else None
    return None


def _image_meta(image, image_path: Path | None, request: dict) -> dict:
    source = request.get("image") or {}
    if image is None:
        return {"path": None}
    return {
        "path": source.get("path") or (str(image_path) if request.get("reuse_job") else None),
        "upload_id": source.get("upload_id"),
        "width": image.width, "height": image.height,
        "focal_length_35mm": image.focal_length_35mm, "exif_orientation": image.exif_orientation,
        "notes": image.notes,
    }


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {stage: round(seconds, 4) for stage, seconds in timings.items()}


def _pipeline(context: JobContext):
    """The pipeline for this job's models (loaded once by the cache), or a file base for an uploaded prediction."""
    from betterdepth_engine.pipeline import BetterDepthPipeline

    params = context.request["estimate"]
    models = context.models
    context.report("loading", None, None)
    if params.get("base_prediction"):
        base = _uploaded_base(context.input_dir, params["base_prediction"]["space"])
    else:
        base = models.base(params["base"])
        if hasattr(base, "seed"):  # a diffusion base (Marigold) draws noise per call: this job's seed and range
            base.seed, base.depth_range_ratio = params["seed"], params["depth_range_ratio"]
    return BetterDepthPipeline(base, models.refiner(params["refiner"]))


def _uploaded_base(input_dir: Path, space: str):
    """A base model that returns the uploaded prediction, read and checked like `--base-dir` files."""
    from betterdepth_engine.models.file_base import FileBaseModel

    (path,) = sorted(input_dir.glob("base_prediction.*"))
    base = FileBaseModel(input_dir, space)
    base.paths_for = lambda image: [path]
    base.name = "uploaded base prediction"
    return base


def _estimate(context: JobContext, image):
    import torch

    from betterdepth_engine.pipeline import RefineOptions

    if image is None:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "The job has no image.", "Send an image path or upload.")
    params = context.request["estimate"]
    options = RefineOptions(
        denoising_steps=params["steps"], ensemble_size=params["ensemble_size"],
        processing_resolution=params["processing_resolution"], strength=params["strength"],
        ensemble_reduction=params["ensemble_reduction"], seed=params["seed"], noise=params["noise"],
        guard=params["guard"],
    )
    with context.models.lock:
        pipeline = _pipeline(context)
        context.report("base", None, None)
        prediction, base_seconds = pipeline.predict_base(image)
        _write_preview(context.results_dir, prediction.disparity, prediction.valid_mask)

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage == "refine":
                context.report("refine", done, total)
            elif stage == "ensemble":
                context.report("ensemble", None, None)

        if pipeline.refiner is not None:  # the log and the progress show a refine stage only when one runs
            context.report("refine", 0, None)
        with torch.inference_mode():
            result = pipeline.refine_batch([image], [prediction], options, on_progress)[0]
    result.timings = {"base": base_seconds, **result.timings}
    models = context.models
    result.metadata["model_files"] = {
        "base": (models.fingerprint("base", params["base"]) if not params.get("base_prediction")
                 else {"name": "uploaded base prediction", "folder": None, "sha256": None}),
        "refiner": models.fingerprint("refiner", params["refiner"]),
    }
    if pipeline.refiner is not None:
        _write_preview(context.results_dir, result.disparity)
    return result


def _write_preview(results_dir: Path, disparity: np.ndarray, valid: np.ndarray | None = None) -> None:
    """A small colourised disparity (at most PREVIEW_SIDE a side), replaced atomically so a client never reads
    half of it."""
    from PIL import Image

    from betterdepth_engine.fileio import atomic_path
    from betterdepth_engine.visualize import colorize_disparity

    # Every step-th pixel (no NaN bleeds into its neighbours), so only the small map is masked and coloured.
    step = -(-max(disparity.shape) // PREVIEW_SIDE)
    small = disparity[::step, ::step]
    if valid is not None:
        small = np.where(valid[::step, ::step], small, np.nan)
    picture = Image.fromarray(colorize_disparity(small))
    with atomic_path(results_dir / "preview.png") as path:
        picture.save(path, format="PNG", compress_level=1)  # a preview: speed over size


def _estimate_writers(result) -> dict[str, Callable[[Path], None]]:
    writers = {
        "disparity.npy": lambda path: np.save(path, result.disparity),
        "base_disparity.npy": lambda path: np.save(path, result.base_disparity),
    }
    if result.uncertainty is not None:
        writers["uncertainty.npy"] = lambda path: np.save(path, result.uncertainty)
    return writers


def _check_reuse_source(context: JobContext) -> None:
    """The job to reuse was checked at submission; it may have been deleted while this one waited."""
    from betterdepth_engine.server.errors import ServiceError

    source = context.jobs_dir / context.request["reuse_job"] / "results"
    if not (source / "disparity.npy").is_file() or not (source / "meta.json").is_file():
        raise ServiceError("NOT_FOUND", f"Job '{context.request['reuse_job']}' was deleted before its depth could "
                           "be reused.", "Submit the job with the image again.")


def _reused_estimate(context: JobContext) -> tuple[dict, dict, np.ndarray]:
    """The earlier job's depth files (copied into this job, so it stands alone), its estimate metadata and
    its disparity."""
    import shutil

    source = context.jobs_dir / context.request["reuse_job"] / "results"
    names = [name for name in ("disparity.npy", "base_disparity.npy", "uncertainty.npy") if (source / name).is_file()]
    writers = {name: (lambda path, name=name: shutil.copyfile(source / name, path)) for name in names}
    meta = json.loads((source / "meta.json").read_text())
    return writers, meta["estimate"], np.load(source / "disparity.npy", allow_pickle=False)


def _kept_disparity(context: JobContext, image) -> tuple[dict, dict, np.ndarray]:
    """The client's kept disparity (reuse_disparity) as this job's depth: no model runs. With an image, the two
    must be the same size."""
    from betterdepth_engine.depthfile import read_depth_file

    (path,) = sorted(context.input_dir.glob("reuse_disparity.*"))
    disparity = read_depth_file(path).astype(np.float32)
    if image is not None and disparity.shape != (image.height, image.width):
        raise BetterDepthError(BetterDepthError.BASE_FILE_MISMATCH,
                               f"The kept disparity is {disparity.shape[1]}x{disparity.shape[0]} but the image is "
                               f"{image.width}x{image.height}.", "Send the image the disparity was estimated on, "
                               "or none.")
    meta = {"reused_disparity": {"upload_id": context.request["reuse_disparity"]["upload_id"],
                                 "width": disparity.shape[1], "height": disparity.shape[0]}}
    return {"disparity.npy": lambda path: np.save(path, disparity)}, meta, disparity


def recon_options(request: dict, image):
    """ReconOptions for this job: the client's mesh parameters, the task's mode, EXIF focal if none was sent."""
    from betterdepth_engine.recon import BlenderCamera, ReconOptions, ReliefOptions

    mesh = {key: value for key, value in request["mesh"].items() if key not in ("formats", "preview")}
    relief = {key: value for key, value in request["relief"].items() if key not in ("solid", "heightmap")}
    if mesh.get("blender_camera") is not None:
        mesh["blender_camera"] = BlenderCamera(**mesh["blender_camera"])
    if mesh.get("focal_35mm") is None and image is not None:
        mesh["focal_35mm"] = image.focal_length_35mm
    if mesh.get("colors") == "auto":
        mesh["colors"] = "normal"  # the client shows the photo as a texture; vertex colours show the normals
    mode = "relief" if request["task"] == "relief" else "mesh"
    return ReconOptions(mode=mode, relief=ReliefOptions(**relief), **mesh)


def _reconstruction_writers(request: dict, disparity, valid, image, meta: dict) -> dict:
    from betterdepth_engine.recon import reconstruct, relief_height_map
    from betterdepth_engine import depthfile
    from betterdepth_engine.recon.export import MESH_WRITERS, write_height_png16

    options = recon_options(request, image)
    meta["recon_options"] = _jsonable(dataclasses.asdict(options))
    rgb = image.rgb if image is not None and options.colors == "image" else None
    writers: dict[str, Callable[[Path], None]] = {}
    if request["task"] == "mesh" or request["relief"]["solid"]:
        mesh = reconstruct(disparity, "disparity", rgb, options, valid_mask=valid)
        meta["mesh"] = {**mesh.metadata, "counts": {"vertices": len(mesh.vertices), "faces": len(mesh.faces)}}
        writers["mesh.npz"] = lambda path: _save_mesh_npz(path, mesh)
        for fmt in request["mesh"]["formats"] if request["task"] == "mesh" else ():
            name = "mesh_points.ply" if fmt == "ply-points" else f"mesh.{fmt}"
            writers[name] = lambda path, write=MESH_WRITERS[fmt]: write(mesh, path)
        if request["task"] == "mesh" and request["mesh"]["preview"]:
            from betterdepth_engine.recon import render_preview
            from betterdepth_engine.recon.export import write_png

            writers["mesh_preview.png"] = lambda path: write_png(render_preview(mesh), path)
    if request["task"] == "relief" and request["relief"]["heightmap"]:
        height_map = relief_height_map(disparity, "disparity", options, valid_mask=valid)
        meta["height_map"] = height_map.metadata
        writers["height.exr"] = lambda path: depthfile.write_exr(path, height_map.height)
        writers["height.png"] = lambda path: write_height_png16(height_map.height, path)
    return writers


def _save_mesh_npz(path: Path, mesh) -> None:
    # np.savez appends .npz to names without it; the staging path keeps the suffix, so it writes in place.
    with open(path, "wb") as file:
        np.savez(file, vertices=mesh.vertices, triangles=mesh.faces, normals=mesh.normals, colors=mesh.colors,
                 uvs=mesh.uvs)


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
