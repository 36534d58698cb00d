"""Depth and disparity files: the one reader and the writers of every format the engine reads or writes.

Used by `--base-dir`, `betterdepth mesh`, evaluation (`--folder` and the benchmarks' files) and the writers of
`estimate` and `mesh`. Reading returns the values as stored, as float64 H x W, with NaN where the file marks a
pixel invalid; what the values mean (disparity, depth, units) is the caller's business.

- `.npy`: reads any int/float H x W (H x W x 1 accepted), never unpickled; writes float32. NaN = invalid.
- `.png`: reads 16-bit grayscale, the integers as stored; writes the finite range as 1..65535
  (`png16_range` gives the mapping for the metadata). **0 = invalid**, as depth sensors write it.
- `.exr`: reads the only channel, else the first of `EXR_CHANNELS` (the last part of the name, any case:
  Blender's `ViewLayer.Depth.Z` is `Z`); writes float32, one channel `Y`. NaN = invalid.

8-bit and colour PNGs are refused everywhere: 256 levels turn depth into terraces, and a colour map cannot be
inverted.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from betterdepth_engine.errors import BetterDepthError

SUFFIXES = (".npy", ".png", ".exr")  # also the order of preference when several exist for one stem
EXR_CHANNELS = ("depth", "disparity", "z", "y", "r")
EXR_WRITE_CHANNEL = "Y"
PNG16_MODES = ("I;16", "I;16B", "I;16L", "I")
HINT = "Use a float32 .npy (H x W), a 16-bit grayscale PNG (0 = invalid) or a float EXR."


class _Refused(ValueError):
    """A readable file that is not a depth map; its message says why."""


def _readable(source: bytes | Path):
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _decode_npy(source: bytes | Path) -> np.ndarray:
    values = np.load(_readable(source), allow_pickle=False)  # never unpickle: the file may come from anywhere
    if values.dtype.kind not in "fiu":
        raise _Refused(f"it holds {values.dtype} values, not numbers")
    return values.astype(np.float64)


def _decode_png(source: bytes | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(_readable(source)) as image:
        if image.mode in ("L", "1"):
            raise _Refused("it is an 8-bit PNG; 256 levels quantise depth into visible terraces")
        if image.mode not in PNG16_MODES:
            raise _Refused(f"it is a {image.mode} image, not a one-channel 16-bit depth map (colour maps cannot "
                           "be inverted)")
        values = np.asarray(image).astype(np.float64)
    values[values == 0] = np.nan
    return values


def _decode_exr(source: bytes | Path) -> np.ndarray:
    import tempfile

    import OpenEXR

    if isinstance(source, bytes):  # OpenEXR's Python API reads from a path; archives hand over bytes
        with tempfile.NamedTemporaryFile(suffix=".exr") as file:
            file.write(source)
            file.flush()
            return _decode_exr(Path(file.name))
    with OpenEXR.File(str(source), separate_channels=True) as exr:
        channels = {name: channel.pixels for name, channel in exr.channels().items()}
    if len(channels) == 1:
        return next(iter(channels.values())).astype(np.float64)
    by_short_name = {name.rsplit(".", 1)[-1].lower(): name for name in sorted(channels)}
    for wanted in EXR_CHANNELS:
        if wanted in by_short_name:
            return channels[by_short_name[wanted]].astype(np.float64)
    raise _Refused(f"none of its channels ({', '.join(sorted(channels))}) is named like depth: "
                   f"{', '.join(EXR_CHANNELS)} (any case)")


DECODERS = {".npy": _decode_npy, ".png": _decode_png, ".exr": _decode_exr}


def _bad_file(name: str, what: str) -> BetterDepthError:
    return BetterDepthError(BetterDepthError.BAD_DEPTH, f"Cannot read depth map '{name}': {what}", HINT)


def decode_depth(source: bytes | Path, suffix: str, name: str = "the depth file") -> np.ndarray:
    """The map in `source` (a file's bytes or path, format from `suffix`) as float64 H x W, NaN where invalid."""
    suffix = suffix.lower()
    if suffix not in DECODERS:
        raise _bad_file(name, f"unsupported file type '{suffix}' (use {', '.join(SUFFIXES)})")
    try:
        values = DECODERS[suffix](source)
    except _Refused as error:
        raise _bad_file(name, str(error)) from None
    except Exception as error:  # numpy, Pillow and OpenEXR each raise their own types for corrupt files
        raise _bad_file(name, f"the file is corrupt or not a depth map ({error})") from None
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim != 2:
        raise _bad_file(name, f"it holds an array of shape {values.shape}, not one value per pixel (H x W)")
    return values


def read_depth_file(path: str | os.PathLike) -> np.ndarray:
    """The depth or disparity map in a .npy, 16-bit .png or .exr file: float64 H x W, NaN where invalid."""
    path = Path(path)
    if not path.is_file():
        raise _bad_file(str(path), "no such file")
    return decode_depth(path, path.suffix, str(path))


# ------------------------------------------------------------------------------------------------- writers


def write_npy(path: str | os.PathLike, values: np.ndarray) -> None:
    """float32 H x W; NaN = invalid."""
    with open(path, "wb") as file:  # a file object: np.save would append .npy to a staging name
        np.save(file, np.asarray(values, dtype=np.float32))


def png16_range(values: np.ndarray) -> dict:
    """How `write_png16` encodes `values`: the value stored as 1 and as 65535 (0 = invalid), for the metadata."""
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return {"value_at_1": low, "value_at_65535": high, "invalid": 0}


def from_png16_range(stored: np.ndarray, value_range: dict) -> np.ndarray:
    """Values read from a `write_png16` file (1..65535, NaN) back in the units that were written."""
    low, high = value_range["value_at_1"], value_range["value_at_65535"]
    return low + (stored - 1.0) / 65534.0 * (high - low)


def write_png16(path: str | os.PathLike, values: np.ndarray) -> None:
    """16-bit grayscale PNG: the finite range mapped linearly to 1..65535 (see `png16_range`), 0 = invalid."""
    from PIL import Image

    value_range = png16_range(values)
    low, high = value_range["value_at_1"], value_range["value_at_65535"]
    finite = np.isfinite(values)
    scaled = 1.0 + (np.where(finite, values, low) - low) / max(high - low, 1e-12) * 65534.0
    Image.fromarray(np.where(finite, np.round(scaled), 0).astype(np.uint16)).save(path, format="PNG")


def write_exr(path: str | os.PathLike, values: np.ndarray) -> None:
    """A float32 EXR with one channel, `Y`; NaN stays NaN."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {EXR_WRITE_CHANNEL: np.ascontiguousarray(values, dtype=np.float32)}) as exr:
        exr.write(str(path))
