"""From a disparity or depth map (whatever space it is in) to depth along the camera axis, with its valid mask.

Spaces accepted:
- `disparity`: affine-invariant disparity (larger = nearer, unknown scale and shift), what the models predict.
- `affine-depth`: affine-invariant depth (larger = farther, unknown scale and shift).
- `depth`: metric depth along +Z (distance to the image plane, not to the camera centre), used as is.

Affine-invariant inputs need a depth range to become geometry. They are first normalised to [0, 1] over the
valid pixels between robust percentiles (t = 0 farthest, t = 1 nearest; values outside are clamped), then
    disparity: disparity_metric = 1/far + t * (1/near - 1/far),   depth = 1 / disparity_metric
    affine-depth: depth = far - t * (far - near)
with far = near * far_near_ratio. Both give depth in [near, far] exactly; disparity keeps its 1/z spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from betterdepth_engine.errors import BetterDepthError

SPACES = ("disparity", "affine-depth", "depth")
# Percentiles of the valid values that map to the ends of the depth range: a few stray pixels (a speck of
# sky, a hot pixel) must not stretch the range for the whole image.
NORMALIZE_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class DepthRange:
    """The depth interval the geometry spans, and how it was chosen (recorded in the metadata)."""

    near: float
    far: float
    source: str  # "far_near_ratio" (affine input mapped to [near, near * ratio]) or "measured" (metric input)
    input_low: float  # the input values that mapped to the ends (percentiles, or min/max for metric depth)
    input_high: float

    def to_dict(self) -> dict:
        return {
            "near": self.near,
            "far": self.far,
            "far_near_ratio": self.far / self.near,
            "source": self.source,
            "normalize_percentiles": list(NORMALIZE_PERCENTILES) if self.source == "far_near_ratio" else None,
            "input_low": self.input_low,
            "input_high": self.input_high,
        }


def _bad_depth(message: str, hint: str) -> BetterDepthError:
    return BetterDepthError(BetterDepthError.BAD_DEPTH, message, hint)


def as_depth_array(values) -> np.ndarray:
    """The input as a float32 H x W array (H x W x 1 accepted), or BAD_DEPTH saying why not."""
    values = np.asarray(values)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    if values.ndim != 2:
        raise _bad_depth(
            f"A depth or disparity map must be a 2-D array, got shape {values.shape}.",
            "Pass one channel, H x W (colour-mapped depth images cannot be inverted).",
        )
    if values.dtype.kind not in "fiu":
        raise _bad_depth(f"Depth values must be numbers, got dtype {values.dtype}.", "Save the map as float32.")
    if min(values.shape) < 2:
        raise _bad_depth(
            f"The depth map is {values.shape[1]}x{values.shape[0]} pixels; a mesh needs at least 2x2.",
            "Pass the full-resolution map.",
        )
    return values.astype(np.float32, copy=False)


def valid_pixels(values: np.ndarray, space: str, valid_mask: np.ndarray | None = None) -> np.ndarray:
    """True where the value means something: finite, inside the optional mask, and positive for metric depth.

    Zero metric depth is "no measurement" (the common sensor convention); negative metric depth is an error,
    because it means the map is in another space or camera convention, not that a few pixels are missing.
    """
    if space not in SPACES:
        raise BetterDepthError(
            BetterDepthError.BAD_INPUT, f"Unknown depth space '{space}'.", f"Use one of {', '.join(SPACES)}."
        )
    valid = np.isfinite(values)
    if valid_mask is not None:
        if valid_mask.shape != values.shape:
            raise _bad_depth(
                f"The valid mask is {valid_mask.shape}, the depth map {values.shape}.", "Pass masks of equal shape."
            )
        valid &= valid_mask.astype(bool)
    if space == "depth":
        if np.any(values[valid] < 0):
            raise _bad_depth(
                "Metric depth contains negative values.",
                "Depth is a distance along the view axis. If the file holds disparity use --space disparity; "
                "if it comes from an OpenGL/Blender camera (looking down -Z), negate it.",
            )
        valid &= values > 0
    if not valid.any():
        raise _bad_depth(
            "The depth map has no valid pixels (all NaN, infinite, masked or zero).",
            "Check that the file holds the depth or disparity of the image.",
        )
    return valid


def _normalized(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Values mapped to [0, 1] between the robust percentiles of the valid pixels (clamped outside)."""
    low, high = (float(p) for p in np.percentile(values[valid], NORMALIZE_PERCENTILES))
    if high - low <= 1e-12 * max(abs(low), abs(high), 1e-30):
        # A constant map is a fronto-parallel plane: place it at the near end.
        return np.ones_like(values), low, high
    return np.clip((values - low) / (high - low), 0.0, 1.0), low, high


def to_depth(
    values: np.ndarray, space: str, valid: np.ndarray, near: float, far_near_ratio: float
) -> tuple[np.ndarray, DepthRange]:
    """Depth along +Z (float32, NaN where invalid) and the range it spans."""
    far = near * far_near_ratio
    if space == "depth":
        depth = values
        near, far = float(depth[valid].min()), float(depth[valid].max())
        range_ = DepthRange(near, far, "measured", near, far)
    else:
        t, low, high = _normalized(values, valid)
        if space == "affine-depth":
            t = 1.0 - t  # larger affine depth = farther
            depth = far - t * (far - near)
        else:
            depth = 1.0 / (1.0 / far + t * (1.0 / near - 1.0 / far))
        range_ = DepthRange(near, far, "far_near_ratio", low, high)
    return np.where(valid, depth, np.nan).astype(np.float32), range_


def normalized_disparity(depth: np.ndarray, depth_range: DepthRange) -> np.ndarray:
    """t in [0, 1] of the module docstring, recomputed from depth: 0 at the far end, 1 at the near end."""
    inverse_far = 1.0 / depth_range.far
    if depth_range.far <= depth_range.near:
        return np.ones_like(depth)
    return (1.0 / depth - inverse_far) / (1.0 / depth_range.near - inverse_far)
