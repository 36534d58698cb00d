"""Scene alignment: the engine's affine-invariant disparity made metric by the depth of the scene itself.

The engine's disparity d is known up to scale and shift; a camera render has a scene behind it whose depth z
(distance along the camera axis) Blender can measure. Inverse depth is affine in d, so
    1 / z = scale * d + shift
is fitted by robust least squares (least squares, then drop residuals beyond a few MADs, repeat), and every
vertex moves along its pixel's ray to the fitted depth. Pure numpy: tested without Blender.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

OUTLIER_MADS = 3.0  # residuals beyond this many (normal-scaled) median absolute deviations are outliers
ITERATIONS = 5


class AlignmentError(ValueError):
    """Too few usable samples to fit (e.g. the camera sees no geometry)."""


@dataclass(frozen=True)
class DisparityFit:
    """1 / depth = scale * disparity + shift, and how well it fits the scene."""

    scale: float
    shift: float
    samples: int  # pixels where both the engine and the scene have a depth
    inliers: int  # those the final fit used
    median_relative_error: float  # median over all samples of |fitted depth - scene depth| / scene depth

    def to_dict(self) -> dict:
        return {**asdict(self), "model": "1/depth = scale * disparity + shift"}

    def depth(self, disparity: np.ndarray) -> np.ndarray:
        """Metric depth of a disparity; NaN where the fit puts it at or beyond infinity."""
        inverse = self.scale * np.asarray(disparity, np.float64) + self.shift
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(inverse > 0, 1.0 / inverse, np.nan)


def sample_grid(height: int, width: int, max_samples: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows and columns (integer centres) of an even grid with at most about max_samples points."""
    stride = max(1, int(np.ceil(np.sqrt(height * width / max_samples))))
    rows, columns = np.meshgrid(np.arange(stride // 2, height, stride), np.arange(stride // 2, width, stride),
                                indexing="ij")
    return rows.ravel(), columns.ravel()


def pixel_rays(rows: np.ndarray, columns: np.ndarray, intrinsics: dict) -> np.ndarray:
    """Ray directions (N x 3, OpenCV camera frame, z = 1) through pixel centres: a hit at distance t along one
    has depth t."""
    x = (np.asarray(columns, np.float64) - intrinsics["cx"]) / intrinsics["fx"]
    y = (np.asarray(rows, np.float64) - intrinsics["cy"]) / intrinsics["fy"]
    return np.stack((x, y, np.ones_like(x)), 1)


def robust_affine_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """y = scale * x + shift by robust least squares; (scale, shift, inlier mask). Both finite, >= 3 samples.

    Starts from matching quartiles (y grows with x), which a minority of wild samples cannot drag away as they
    would a first least-squares fit, then refits on the samples within OUTLIER_MADS of the line."""
    (x_low, x_high), (y_low, y_high) = np.percentile(x, [25, 75]), np.percentile(y, [25, 75])
    scale = (y_high - y_low) / (x_high - x_low) if x_high > x_low else 0.0
    shift = np.median(y - scale * x)
    inliers = np.ones(len(x), bool)
    for _ in range(ITERATIONS):
        residual = scale * x + shift - y
        spread = 1.4826 * np.median(np.abs(residual - np.median(residual[inliers])))
        keep = np.abs(residual) <= max(OUTLIER_MADS * spread, 1e-6 * np.median(np.abs(y)))
        if keep.sum() < 3:
            break
        inliers = keep
        design = np.stack((x[inliers], np.ones(inliers.sum())), 1)
        (scale, shift), *_ = np.linalg.lstsq(design, y[inliers], rcond=None)
    return float(scale), float(shift), inliers


def fit_disparity_to_depth(disparity: np.ndarray, depth: np.ndarray) -> DisparityFit:
    """Robust least-squares fit of 1 / depth = scale * disparity + shift over the samples where both are valid
    (finite, depth > 0)."""
    disparity, depth = np.asarray(disparity, np.float64).ravel(), np.asarray(depth, np.float64).ravel()
    valid = np.isfinite(disparity) & np.isfinite(depth) & (depth > 0)
    x, z = disparity[valid], depth[valid]
    if len(x) < 3 or np.ptp(x) == 0:
        raise AlignmentError(f"Only {len(x)} pixels have both a scene depth and an engine depth; at least 3 "
                             "different ones are needed.")
    scale, shift, inliers = robust_affine_fit(x, 1.0 / z)
    fitted = DisparityFit(scale, shift, len(x), int(inliers.sum()), 0.0).depth(x)
    relative = np.where(np.isfinite(fitted), np.abs(fitted - z) / z, np.inf)
    return DisparityFit(scale, shift, len(x), int(inliers.sum()), float(np.median(relative)))


def engine_lift(depth_range: dict) -> DisparityFit:
    """The engine's own disparity -> depth map of a job (meta.json `mesh.depth_range`, source far_near_ratio):
    the percentile range [input_low, input_high] spans 1/far .. 1/near in inverse depth (clamping aside)."""
    inverse_near, inverse_far = 1.0 / depth_range["near"], 1.0 / depth_range["far"]
    scale = (inverse_near - inverse_far) / (depth_range["input_high"] - depth_range["input_low"])
    return DisparityFit(scale, inverse_far - scale * depth_range["input_low"], 0, 0, 0.0)


def chain_to_reference(disparity: np.ndarray, reference: np.ndarray, reference_lift: DisparityFit) -> DisparityFit:
    """A frame's disparity -> depth in the reference frame's scale: its disparity fitted (robustly, over pixels
    valid in both) to the reference's, then the reference's lift. For sequences of a static camera."""
    x, y = np.asarray(disparity, np.float64).ravel(), np.asarray(reference, np.float64).ravel()
    valid = np.isfinite(x) & np.isfinite(y)
    if valid.sum() < 3:
        raise AlignmentError("The frame and the reference frame share fewer than 3 valid pixels.")
    scale, shift, inliers = robust_affine_fit(x[valid], y[valid])
    return DisparityFit(reference_lift.scale * scale, reference_lift.scale * shift + reference_lift.shift,
                        int(valid.sum()), int(inliers.sum()), 0.0)


def sample_image(values: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear samples of an H x W map at pixel coordinates (u right, v down; centres at integers); the nearest
    pixel where a neighbour is NaN; NaN outside."""
    height, width = values.shape
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    inside = (u >= -0.5) & (u <= width - 0.5) & (v >= -0.5) & (v <= height - 0.5)
    uc, vc = np.clip(u, 0, width - 1), np.clip(v, 0, height - 1)
    u0, v0 = np.minimum(np.floor(uc).astype(int), width - 2 if width > 1 else 0), \
        np.minimum(np.floor(vc).astype(int), height - 2 if height > 1 else 0)
    u1, v1 = np.minimum(u0 + 1, width - 1), np.minimum(v0 + 1, height - 1)
    fu, fv = uc - u0, vc - v0
    bilinear = ((values[v0, u0] * (1 - fu) + values[v0, u1] * fu) * (1 - fv)
                + (values[v1, u0] * (1 - fu) + values[v1, u1] * fu) * fv)
    nearest = values[np.rint(vc).astype(int), np.rint(uc).astype(int)]
    return np.where(inside, np.where(np.isfinite(bilinear), bilinear, nearest), np.nan)


def align_vertices(vertices: np.ndarray, intrinsics: dict, disparity: np.ndarray,
                   fit: DisparityFit) -> tuple[np.ndarray, int]:
    """Mesh vertices (N x 3, OpenCV camera frame) moved along their rays to the fitted depth of the disparity
    at their pixel. Vertices the fit cannot place (NaN disparity, or at/beyond infinity) go to the farthest
    placed depth. Returns (vertices float32, how many were placed that way)."""
    vertices = np.asarray(vertices, np.float64)
    z = vertices[:, 2]
    u = intrinsics["fx"] * vertices[:, 0] / z + intrinsics["cx"]
    v = intrinsics["fy"] * vertices[:, 1] / z + intrinsics["cy"]
    depth = fit.depth(sample_image(np.asarray(disparity, np.float64), u, v))
    unplaced = ~np.isfinite(depth)
    if unplaced.all():
        raise AlignmentError("The fitted scale puts every vertex at or beyond infinity.")
    depth[unplaced] = depth[~unplaced].max()
    return (vertices * (depth / z)[:, None]).astype(np.float32), int(unplaced.sum())
