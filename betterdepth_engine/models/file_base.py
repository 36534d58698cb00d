"""Precomputed base predictions read from files: plug-and-play with any depth model run elsewhere.

For an image `photo.jpg`, the file is `<base_dir>/photo.npy`, `photo.png` or `photo.exr` (first found wins),
read by `betterdepth_engine.depthfile` (formats, EXR channel order and invalid pixels are documented there:
NaN in .npy/.exr and 0 in a 16-bit PNG are invalid; 8-bit PNGs are refused).
The file must have the image's resolution after EXIF rotation. Values are affine-invariant disparity
(`space="disparity"`) or depth (`space="depth"`, converted to disparity = 1/depth), in any units.

Invalid pixels (valid_mask False) hold 0 in the returned disparity:
- disparity: what the file marks invalid and +-inf; any other value, negative included, is valid (the scale
  and shift are unknown).
- depth: what the file marks invalid and depth <= 0; +inf is infinitely far, i.e. a valid disparity of 0 (sky).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from betterdepth_engine import depthfile
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import LoadedImage
from betterdepth_engine.models.base import BasePrediction

SPACES = ("disparity", "depth")


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
        return [self.base_dir / f"{image.stem}{suffix}" for suffix in depthfile.SUFFIXES]

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
        values = depthfile.read_depth_file(path)
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
            raise BetterDepthError(
                BetterDepthError.BAD_DEPTH, f"Cannot use base file '{path}': it has no valid {self.space} values.",
                "NaN (0 in a 16-bit PNG) is invalid; in depth space so is depth <= 0. Check that the file is the "
                "right one.",
            )
        return BasePrediction(disparity=disparity, valid_mask=valid)

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
