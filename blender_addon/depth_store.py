"""Depth kept with the .blend: an object's disparity stored as a float image, so Re-run works after the
engine dropped the job that made it (retention, restart, another computer).

Where (add-on preference *Depth Storage*, recorded on the object under `kept_depth`):
- PACKED: a float image packed into the .blend (32-bit OpenEXR inside the file);
- BESIDE: `//betterdepth/<image>.exr` beside the .blend (needs a saved .blend; otherwise packed, and the record
  says so);
- ENGINE: nothing kept; Re-run needs the engine's job or the unchanged input image.
The image has a fake user, so it stays in the file although no material shows it.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np

from .core.jobs import JobError
from .core.kept_depth import digest, from_pixels, to_pixels

STORAGE = (
    ("PACKED", "Packed in .blend", "The depth goes into the .blend: Re-run works anywhere the .blend goes"),
    ("BESIDE", "Beside .blend", "//betterdepth/<name>.exr next to the saved .blend (keeps the .blend small)"),
    ("ENGINE", "Engine only", "Keep nothing: Re-run needs the engine's job or the unchanged input image"),
)
FOLDER = "//betterdepth"


def keep(disparity: np.ndarray, name: str, storage: str, created) -> dict | None:
    """Store the disparity as the image `<name> disparity`; returns the record for the object's parameters."""
    if storage == "ENGINE":
        return None
    height, width = disparity.shape
    image = created.add(bpy.data.images.new(f"{name} disparity", width, height, alpha=True, float_buffer=True))
    image.colorspace_settings.name = "Non-Color"
    image.pixels.foreach_set(to_pixels(disparity))
    image.use_fake_user = True
    record = {"storage": storage, "image": image.name, "width": width, "height": height,
              "sha256": digest(disparity)}
    if storage == "BESIDE" and bpy.data.filepath:
        folder = Path(bpy.path.abspath(FOLDER))
        folder.mkdir(parents=True, exist_ok=True)
        file_name = f"{bpy.path.clean_name(image.name)}.exr"
        staging = folder / f".{file_name}.tmp.exr"
        image.filepath_raw, image.file_format = str(staging), "OPEN_EXR"
        image.save()
        os.replace(staging, folder / file_name)  # never a half-written file under the final name
        image.filepath_raw = record["path"] = f"{FOLDER}/{file_name}"
    else:
        if storage == "BESIDE":
            record["storage"], record["note"] = "PACKED", "the .blend was not saved yet: packed instead"
        image.pack()
    return record


def forget_file(record: dict | None) -> None:
    """Delete the file `keep` wrote beside the .blend (a build that failed after keeping the depth)."""
    if record and record.get("path"):
        Path(bpy.path.abspath(record["path"])).unlink(missing_ok=True)


def describe(record: dict | None) -> str:
    if not record:
        return "engine only"
    return f"beside the .blend ({record['path']})" if record.get("path") else "packed in the .blend"


def load(record: dict, owner: str) -> np.ndarray:
    """The kept disparity, checked against its size and digest; a clear JobError when missing or damaged."""
    where = describe(record)
    hint = "Restore it, or run the original operator on the image again."
    image = bpy.data.images.get(record["image"])
    if image is None and record.get("path") and Path(bpy.path.abspath(record["path"])).is_file():
        image = bpy.data.images.load(bpy.path.abspath(record["path"]), check_existing=True)
    width, height = image.size if image is not None else (0, 0)
    if width == 0 or height == 0:
        raise JobError("DEPTH_MISSING", f"The depth kept for '{owner}' ({where}) is missing.", hint)
    if (width, height) != (record["width"], record["height"]):
        raise JobError("DEPTH_DAMAGED", f"The depth kept for '{owner}' ({where}) is {width}x{height}, not the "
                       f"{record['width']}x{record['height']} it was stored as.", hint)
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    disparity = from_pixels(pixels, width, height)
    if digest(disparity) != record["sha256"]:
        raise JobError("DEPTH_DAMAGED", f"The depth kept for '{owner}' ({where}) was changed or damaged "
                       "(its checksum differs).", hint)
    return disparity
