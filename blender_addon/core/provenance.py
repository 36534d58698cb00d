"""Provenance: what made a created object, recorded on it so it can be reproduced and re-run.

Plain data from the job's request, the engine's meta.json and the input file; stored as JSON in the object's
custom property (scene_build.store_parameters), so it survives saving and reloading the .blend.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SCHEMA = 1


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record(*, task: str, source: str, source_path: str, sent_sha256: str, camera: dict | None, request: dict,
           meta: dict, engine_job: str, addon_version: str = "") -> dict:
    """The provenance of one result: engine and models, their settings, the input, camera and depth range."""
    estimate = meta.get("estimate", {})
    image = meta.get("image", {})
    mesh = meta.get("mesh", {})
    return {
        "schema": SCHEMA,
        "task": task,
        "addon_version": addon_version,
        "engine_version": meta.get("engine_version"),
        "engine_job": engine_job,
        "depth_from_job": meta.get("reused_from") or engine_job,  # the job whose models produced the depth
        "models": {"base": estimate.get("base_model"), "refiner": estimate.get("refiner"),
                   "external_depth": bool(request.get("estimate", {}).get("base_prediction"))},
        "steps": estimate.get("denoising_steps"),
        "seed": estimate.get("seed"),
        "ensemble_size": estimate.get("ensemble_size"),
        "processing_resolution": estimate.get("processing_resolution"),
        "image": {"source": source, "path": source_path, "sha256": sent_sha256,
                  "width": image.get("width"), "height": image.get("height")},
        "camera": {**(camera or {}), "intrinsics": mesh.get("camera")},
        "depth_range": mesh.get("depth_range"),
        "reconstruction": meta.get("recon_options"),
        "height_map": meta.get("height_map"),
    }
