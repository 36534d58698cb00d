"""Precomputed base predictions read from files: plug-and-play with any depth model run elsewhere.

For an image `photo.jpg`, the file is `<base_dir>/photo.npy`, `photo.png` or `photo.exr` (first found wins):
- `.npy`: a float (or integer) H x W array (H x W x 1 is accepted);
- `.png`: 16-bit grayscale. 8-bit PNGs are refused: 256 levels turn a depth map into terraces;
- `.exr`: the only channel, or else the first present of `depth`, `disparity`, `Z`, `Y`, `R` (case-insensitive,
  also as the last part of a layered name such as `ViewLayer.Depth.Z`).
The file must have the image's resolution after EXIF rotation. Values are affine-invariant disparity
(`space="disparity"`) or depth (`space="depth"`, converted to disparity = 1/depth), in any units.

Invalid pixels (valid_mask False) hold 0 in the returned disparity:
- disparity: NaN and +-inf are invalid; any finite value, negative included, is valid (the scale and shift
  are unknown). A 0 in a PNG is therefore a valid value, not "missing".
- depth: NaN and depth <= 0 are invalid (0 is the usual "no data" of depth PNGs); +inf is infinitely far,
  i.e. a valid disparity of 0 (sky).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import LoadedImage
from betterdepth_engine.models.base import BasePrediction

SPACES = ("disparity", "depth")
SUFFIXES = (".npy", ".png", ".exr")  # in order of preference
EXR_CHANNEL_PREFERENCE = ("depth", "disparity", "z", "y", "r")


def _bad_depth(path: Path, why: str, hint: str) -> BetterDepthError:
    return BetterDepthError(BetterDepthError.BAD_DEPTH, f"Cannot use base file '{path}': {why}", hint)


def _read_npy(path: Path) -> np.ndarray:
    values = np.load(path, allow_pickle=False)  # never unpickle: the file may come from anywhere
    if values.dtype.kind not in "fiu":
        raise _bad_depth(path, f"it holds {values.dtype} values", "Save a float32 H x W array with numpy.save.")
    return values


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(image)
        if image.mode in ("L", "P", "1"):
            raise _bad_depth(
                path,
                "it is an 8-bit PNG; 256 levels quantise depth into visible terraces",
                "Save a 16-bit grayscale PNG, or a float .npy / .exr file.",
            )
        raise _bad_depth(
            path,
            f"it is a {image.mode} PNG, not single-channel 16-bit (a coloured depth visualisation is not raw values)",
            "Save the raw prediction as a 16-bit grayscale PNG, or a float .npy / .exr file.",
        )


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as exr:
        channels = {name: channel.pixels for name, channel in exr.channels().items()}
    if len(channels) == 1:
        return next(iter(channels.values()))
    for wanted in EXR_CHANNEL_PREFERENCE:
        for name in sorted(channels):
            if name.rsplit(".", 1)[-1].lower() == wanted:
                return channels[name]
    raise _bad_depth(
        path,
        f"none of its channels ({', '.join(sorted(channels))}) is named like a depth channel",
        "Write a single channel, or name it Z, depth or disparity.",
    )


READERS = {".npy": _read_npy, ".png": _read_png, ".exr": _read_exr}


class FileBaseModel:
    """Reads `<base_dir>/<image stem>.npy|.png|.exr` holding disparity or depth and returns disparity."""

    def __init__(self, base_dir: str | os.PathLike, space: str = "disparity"):
        if space not in SPACES:
            raise BetterDepthError(
                BetterDepthError.BAD_INPUT,
                f"Unknown base file space '{space}'.",
                f"Use one of: {', '.join(SPACES)}.",
            )
        self.base_dir = Path(base_dir)
        if not self.base_dir.is_dir():
            raise BetterDepthError(
                BetterDepthError.BASE_FILE_MISSING,
                f"The folder of base predictions '{self.base_dir}' does not exist.",
                "Pass the folder holding one .npy, .png or .exr file per image, named like the image.",
            )
        self.space = space
        self.name = f"files:{self.base_dir}"

    def paths_for(self, image: LoadedImage) -> list[Path]:
        """The files tried for `image`, in order of preference."""
        return [self.base_dir / f"{image.stem}{suffix}" for suffix in SUFFIXES]

    def predict(self, image: LoadedImage) -> BasePrediction:
        if image.path is None:
            raise BetterDepthError(
                BetterDepthError.BAD_INPUT,
                "Precomputed base files are found by the image's file name, and this image has none.",
                "Pass the image as a file.",
            )
        candidates = self.paths_for(image)
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            raise BetterDepthError(
                BetterDepthError.BASE_FILE_MISSING,
                f"No base prediction for '{image.path.name}': tried {', '.join(str(c) for c in candidates)}.",
                f"Save the base model's {self.space} for this image under one of those names.",
            )
        values = self._read(path)
        if values.shape != (image.height, image.width):
            raise BetterDepthError(
                BetterDepthError.BASE_FILE_MISMATCH,
                f"Base file '{path}' is {values.shape[1]}x{values.shape[0]} (width x height), but the image "
                f"'{image.path.name}' is {image.width}x{image.height}.",
                "The file must have the image's resolution, with the image's EXIF rotation applied (as an image "
                "viewer shows it).",
            )
        disparity, valid = self._to_disparity(values)
        if not valid.any():
            raise _bad_depth(
                path,
                f"it has no valid {self.space} values",
                "NaN is invalid; in depth space so is depth <= 0. Check that the file is the right one.",
            )
        return BasePrediction(disparity=disparity, valid_mask=valid)

    def _read(self, path: Path) -> np.ndarray:
        """The file's values as a float64 H x W array."""
        try:
            values = READERS[path.suffix](path)
        except BetterDepthError:
            raise
        # numpy, Pillow and OpenEXR raise assorted types (ValueError, OSError, RuntimeError) for a broken file.
        except Exception as error:
            raise _bad_depth(path, f"it cannot be read ({error})", "Re-save the file.") from None
        if values.ndim == 3 and values.shape[2] == 1:
            values = values[:, :, 0]
        if values.ndim != 2:
            raise _bad_depth(
                path,
                f"it holds an array of shape {values.shape}, not one value per pixel",
                "Save a single-channel H x W map.",
            )
        # float64 for the conversion: 1/depth of a tiny depth must not overflow before it can be checked.
        return values.astype(np.float64)

    def _to_disparity(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.space == "disparity":
            valid = np.isfinite(values)
            disparity = np.where(valid, values, 0.0)
        else:
            valid = values > 0  # False for NaN; +inf stays valid: 1/inf = 0, infinitely far
            disparity = np.divide(1.0, values, out=np.zeros_like(values), where=valid)
        with np.errstate(over="ignore"):  # values beyond float32's range become inf, then invalid
            disparity = disparity.astype(np.float32)
        valid &= np.isfinite(disparity)
        disparity[~valid] = 0.0
        return disparity, valid
