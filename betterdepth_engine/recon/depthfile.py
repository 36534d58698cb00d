"""Reading a disparity or depth map from a file: .npy (float32 H x W), 16-bit PNG, or EXR.

Values are returned as stored (PNG integers are not rescaled): what they mean is the caller's `space`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.recon.lifting import as_depth_array

DEPTH_SUFFIXES = (".npy", ".png", ".exr")
# EXR channels tried in order (last component of the name, so Blender's "ViewLayer.Depth.Z" matches "Z").
EXR_DEPTH_CHANNELS = ("Z", "depth", "disparity", "Y", "V", "R")


def _bad_file(path: Path, what: str) -> BetterDepthError:
    return BetterDepthError(
        BetterDepthError.BAD_DEPTH,
        f"Cannot read depth map '{path}': {what}",
        "Use a float32 .npy (H x W), a 16-bit grayscale PNG or an EXR, e.g. OUT/<stem>_disparity.npy.",
    )


def _read_png(path: Path, notes: list[str]) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            return np.asarray(image)
        if image.mode == "L":
            notes.append("8-bit depth PNG: only 256 levels, expect terraces; prefer 16-bit or .npy")
            return np.asarray(image)
    raise _bad_file(path, f"it is a {image.mode} image, not a one-channel depth map (colour maps cannot be inverted)")


def _read_exr(path: Path, notes: list[str]) -> np.ndarray:
    import OpenEXR

    channels = OpenEXR.File(str(path), separate_channels=True).channels()
    by_short_name = {name.split(".")[-1]: name for name in channels}
    for wanted in EXR_DEPTH_CHANNELS:
        if wanted in by_short_name:
            if len(channels) > 1:
                notes.append(f"read EXR channel '{by_short_name[wanted]}'")
            return channels[by_short_name[wanted]].pixels
    if len(channels) == 1:
        return next(iter(channels.values())).pixels
    raise _bad_file(path, f"none of its channels ({', '.join(channels)}) looks like depth")


def load_depth_file(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """The map as float32 H x W and notes on conversions, or BetterDepthError(BAD_DEPTH) saying why not."""
    path = Path(path)
    if not path.is_file():
        raise _bad_file(path, "no such file")
    suffix = path.suffix.lower()
    if suffix not in DEPTH_SUFFIXES:
        raise _bad_file(path, f"unsupported file type '{suffix}'")
    notes: list[str] = []
    try:
        if suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        elif suffix == ".png":
            values = _read_png(path, notes)
        else:
            values = _read_exr(path, notes)
    except BetterDepthError:
        raise
    except Exception as error:  # numpy, Pillow and OpenEXR each raise their own types for corrupt files
        raise _bad_file(path, f"the file is corrupt or not a depth map ({error})") from None
    return as_depth_array(values), notes
