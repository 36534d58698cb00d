"""Evaluation metrics for affine-invariant depth: Marigold's protocol, Depth Pro's boundary F1, iBims-1's DBE.

Short pure numpy functions on H x W arrays. Every name says its space: `depth_m` is depth in metres along the
camera axis, `disparity` is inverse depth (larger = nearer). `valid_mask` marks the pixels that count.

Protocol (Marigold's `script/depth/eval.py`), per image:
1. `align_prediction`: least-squares scale and shift of the prediction onto the ground truth over valid pixels,
   in disparity space for disparity predictors (fit to 1/depth, floor the aligned disparity at 1e-3, invert)
   or in depth space for depth predictors.
2. `clip_to_depth_range`: clip to the dataset's depth range.
3. Pixel metrics (AbsRel, delta_k, RMSE), boundary F1 and DBE on the aligned depth; with the camera's
   intrinsics also surface normals (`normal_metrics`: angular error and flatness, the aligned depth lifted to
   3-D with recon's lifting and grid normals); the caller averages images.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from betterdepth_engine import align

# Marigold floors the aligned disparity (1/m) so that no pixel lands at infinite depth.
MIN_ALIGNED_DISPARITY = 1e-3
# Marigold clips depth to this before the metrics, whatever the dataset's range, so that ratios stay finite.
MIN_EVALUATED_DEPTH_M = 1e-6
# Depth Pro's scale-invariant boundary F1: ten ratio thresholds from 1.05 to 1.25.
BOUNDARY_THRESHOLDS = tuple(np.linspace(1.05, 1.25, 10))
# iBims-1's depth boundary error: Canny on the [0, 1]-normalised depth, chamfer distances truncated at 10 px.
DBE_CANNY_SIGMA = math.sqrt(2.0)
DBE_CANNY_THRESHOLDS = (0.15, 0.3)  # low, high; the values of iBims-1's Python toolbox
DBE_MAX_DISTANCE_PX = 10.0

ALIGNMENT_SPACES = ("disparity", "depth")
# Surface normals: shares of pixels within these angles (the usual normal-estimation thresholds).
NORMAL_THRESHOLDS_DEG = (11.25, 22.5, 30.0)
# Neighbouring ground-truth depths that a surface seen at less than this angle could not produce are a
# discontinuity (recon's mesh cut, `ReconOptions.min_angle_deg`); normals are scored this many pixels away
# from any, so that a silhouette's half-background normal is not blamed on the prediction.
DISCONTINUITY_MIN_ANGLE_DEG = 4.0
DISCONTINUITY_MARGIN_PX = 2
# Flatness: a pixel is on a ground-truth plane when every ground-truth normal in the window around it is
# within PLANAR_TOLERANCE_DEG of the window's mean normal; the prediction's roughness is the angle between its
# normal and the mean of its normals over the same window.
FLATNESS_WINDOW_PX = 9
PLANAR_TOLERANCE_DEG = 0.5
NORMAL_METRIC_NAMES = ("normal_error_deg", "normal_within_11_25", "normal_within_22_5", "normal_within_30",
                       "flatness_deg")


# ---------------------------------------------------------------------------------------------- alignment


def depth_to_disparity(depth_m: np.ndarray) -> np.ndarray:
    """1 / depth where depth > 0, else 0."""
    depth_m = np.asarray(depth_m, dtype=np.float64)
    return np.divide(1.0, depth_m, out=np.zeros_like(depth_m), where=depth_m > 0)


def fit_scale_shift(source: np.ndarray, target: np.ndarray, valid_mask: np.ndarray,
                    max_resolution: int | None = None) -> tuple[float, float]:
    """argmin ||scale * source + shift - target||^2 over valid pixels (`align.fit_scale_shift` on one image).

    With `max_resolution`, the fit uses a nearest-neighbour subsample whose long side is at most that many
    pixels (Marigold does this for ETH3D's 24-megapixel images); the result is close and much cheaper.
    """
    arrays = [torch.from_numpy(np.asarray(a, dtype=np.float64))[None, None] for a in (source, target)]
    mask = torch.from_numpy(np.asarray(valid_mask, dtype=bool))[None, None]
    if max_resolution and max(source.shape) > max_resolution:
        factor = max_resolution / max(source.shape)
        size = (max(1, round(source.shape[0] * factor)), max(1, round(source.shape[1] * factor)))
        arrays = [torch.nn.functional.interpolate(a, size=size, mode="nearest") for a in arrays]
        mask = torch.nn.functional.interpolate(mask.float(), size=size, mode="nearest") > 0.5
    scale, shift = align.fit_scale_shift(arrays[0][0], arrays[1][0], mask[0])
    return float(scale), float(shift)


def align_prediction(prediction: np.ndarray, gt_depth_m: np.ndarray, valid_mask: np.ndarray,
                     space: str = "disparity", max_resolution: int | None = None) -> np.ndarray:
    """The prediction moved onto the ground truth by least squares, returned as depth in metres.

    space="disparity": the prediction is affine-invariant disparity, fitted to 1 / gt_depth_m; the aligned
    disparity is floored at MIN_ALIGNED_DISPARITY and inverted. space="depth": the prediction is
    affine-invariant depth, fitted to gt_depth_m directly. Non-finite predictions stay NaN.
    """
    if space not in ALIGNMENT_SPACES:
        raise ValueError(f"space must be one of {ALIGNMENT_SPACES}, not {space!r}")
    prediction = np.asarray(prediction, dtype=np.float64)
    fit_mask = valid_mask & (gt_depth_m > 0) & np.isfinite(prediction)
    source = np.nan_to_num(prediction)
    if space == "depth":
        scale, shift = fit_scale_shift(source, gt_depth_m, fit_mask, max_resolution)
        aligned_depth_m = scale * prediction + shift
    else:
        scale, shift = fit_scale_shift(source, depth_to_disparity(gt_depth_m), fit_mask, max_resolution)
        aligned_disparity = np.maximum(scale * prediction + shift, MIN_ALIGNED_DISPARITY)  # NaN stays NaN
        aligned_depth_m = 1.0 / aligned_disparity
    return aligned_depth_m


def clip_to_depth_range(depth_m: np.ndarray, min_depth_m: float, max_depth_m: float) -> np.ndarray:
    """Clip to the dataset's range (and above MIN_EVALUATED_DEPTH_M, so that every ratio is finite)."""
    return np.clip(depth_m, max(min_depth_m, MIN_EVALUATED_DEPTH_M), max_depth_m)


# ---------------------------------------------------------------------------------------------- pixel metrics


def abs_rel(depth_m: np.ndarray, gt_depth_m: np.ndarray, valid_mask: np.ndarray) -> float:
    """Mean of |depth - gt| / gt over valid pixels."""
    predicted, truth = depth_m[valid_mask], gt_depth_m[valid_mask]
    return float(np.mean(np.abs(predicted - truth) / truth))


def delta_accuracy(depth_m: np.ndarray, gt_depth_m: np.ndarray, valid_mask: np.ndarray,
                   threshold: float = 1.25) -> float:
    """Share of valid pixels with max(depth / gt, gt / depth) < threshold (delta_1 = 1.25, delta_k = 1.25^k)."""
    predicted, truth = depth_m[valid_mask], gt_depth_m[valid_mask]
    return float(np.mean(np.maximum(predicted / truth, truth / predicted) < threshold))


def rmse(depth_m: np.ndarray, gt_depth_m: np.ndarray, valid_mask: np.ndarray) -> float:
    """Root mean squared depth error over valid pixels, in metres."""
    return float(np.sqrt(np.mean((depth_m[valid_mask] - gt_depth_m[valid_mask]) ** 2)))


# ---------------------------------------------------------------------------------------------- boundary F1


def occlusion_boundaries(disparity: np.ndarray, valid_mask: np.ndarray, threshold: float) -> list[np.ndarray]:
    """Foreground/background relations between 4-neighbours, one boolean map per direction.

    A pair (i, j) of neighbours is a boundary when j is nearer than i by more than the ratio `threshold`:
    disparity_j / disparity_i > threshold. Ratios make the test scale-invariant; both pixels must be valid.
    Directions: [j right of i, j left of i, j below i, j above i].
    """
    both_valid_x = valid_mask[:, 1:] & valid_mask[:, :-1]
    both_valid_y = valid_mask[1:, :] & valid_mask[:-1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return [
            both_valid_x & (disparity[:, 1:] / disparity[:, :-1] > threshold),
            both_valid_x & (disparity[:, :-1] / disparity[:, 1:] > threshold),
            both_valid_y & (disparity[1:, :] / disparity[:-1, :] > threshold),
            both_valid_y & (disparity[:-1, :] / disparity[1:, :] > threshold),
        ]


def boundary_f1_at(pred_disparity: np.ndarray, gt_disparity: np.ndarray, valid_mask: np.ndarray,
                   threshold: float) -> float:
    """F1 of the predicted occlusion boundaries against the ground truth's at one ratio threshold.

    Precision and recall count all neighbour pairs of all four directions together, as the Depth Pro paper
    writes them (its code averages the four directions instead; the two agree when every direction has
    boundaries, and pooling keeps a perfect prediction at F1 = 1 when some direction has none).
    """
    predicted = occlusion_boundaries(pred_disparity, valid_mask, threshold)
    truth = occlusion_boundaries(gt_disparity, valid_mask, threshold)
    matched = sum(np.count_nonzero(p & t) for p, t in zip(predicted, truth))
    precision = matched / max(sum(np.count_nonzero(p) for p in predicted), 1)
    recall = matched / max(sum(np.count_nonzero(t) for t in truth), 1)
    return 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)


def boundary_f1(depth_m: np.ndarray, gt_depth_m: np.ndarray, valid_mask: np.ndarray,
                thresholds=BOUNDARY_THRESHOLDS) -> float:
    """Depth Pro's scale-invariant boundary F1: F1 at each ratio threshold, weighted by the threshold.

    The weights t / sum(t) are those of apple/ml-depth-pro's `SI_boundary_F1`. NaN when the ground truth has
    no boundary even at the lowest threshold (a flat scene says nothing about edges; skip it when averaging).
    """
    pred_disparity, gt_disparity = depth_to_disparity(depth_m), depth_to_disparity(gt_depth_m)
    valid_mask = valid_mask & (gt_disparity > 0) & (pred_disparity > 0)
    if not any(b.any() for b in occlusion_boundaries(gt_disparity, valid_mask, min(thresholds))):
        return math.nan
    weights = np.asarray(thresholds) / np.sum(thresholds)
    scores = [boundary_f1_at(pred_disparity, gt_disparity, valid_mask, t) for t in thresholds]
    return float(np.dot(weights, scores))


# ---------------------------------------------------------------------------------------------- DBE (iBims-1)


def depth_edges(depth_m: np.ndarray, valid_mask: np.ndarray, depth_range_m: tuple[float, float]) -> np.ndarray:
    """Canny edges (scikit-image) of the depth normalised to [0, 1] by `depth_range_m`, inside the valid area."""
    from skimage.feature import canny

    low_m, high_m = depth_range_m
    normalized = (np.clip(depth_m, low_m, high_m) - low_m) / max(high_m - low_m, 1e-12)
    low, high = DBE_CANNY_THRESHOLDS
    return canny(np.where(valid_mask, normalized, 0.0), sigma=DBE_CANNY_SIGMA, low_threshold=low,
                 high_threshold=high, mask=valid_mask)


def depth_boundary_errors(depth_m: np.ndarray, gt_depth_m: np.ndarray, valid_mask: np.ndarray) -> tuple[float, float]:
    """iBims-1's depth boundary errors (accuracy, completeness) in pixels; lower is better.

    Edges are Canny edges of both maps, each normalised to [0, 1] with the *ground truth's* valid range (iBims
    normalises each map by its own range and uses hand-drawn ground-truth edges; with a shared range one depth
    step gives one gradient in both maps, and a far outlier in the prediction cannot flatten all its edges).
    Accuracy: mean distance from each predicted edge pixel within 10 px of a true edge to the nearest true edge.
    Completeness: distances from predicted to true edges and from true to predicted edges, each truncated at
    10 px, summed and divided by the number of edge pixels of both. No predicted edge near a true edge gives
    (10, 10); no true edge gives (NaN, NaN).
    """
    from scipy.ndimage import distance_transform_edt

    gt_values = gt_depth_m[valid_mask]
    if gt_values.size == 0:
        return math.nan, math.nan
    depth_range_m = (float(gt_values.min()), float(gt_values.max()))
    gt_edges = depth_edges(gt_depth_m, valid_mask, depth_range_m)
    if not gt_edges.any():
        return math.nan, math.nan
    predicted_edges = depth_edges(np.nan_to_num(depth_m, nan=depth_range_m[1]), valid_mask, depth_range_m)
    to_gt_edge = distance_transform_edt(~gt_edges)
    to_predicted_edge = distance_transform_edt(~predicted_edges)
    near_gt = predicted_edges & (to_gt_edge < DBE_MAX_DISTANCE_PX)
    if not near_gt.any():
        return DBE_MAX_DISTANCE_PX, DBE_MAX_DISTANCE_PX
    accuracy = float(to_gt_edge[near_gt].mean())
    truncated = (np.minimum(to_gt_edge[predicted_edges], DBE_MAX_DISTANCE_PX).sum()
                 + np.minimum(to_predicted_edge[gt_edges], DBE_MAX_DISTANCE_PX).sum())
    completeness = float(truncated / (predicted_edges.sum() + gt_edges.sum()))
    return accuracy, completeness


# ---------------------------------------------------------------------------------------------- normals


def surface_normals(depth_m: np.ndarray, intrinsics, keep_quads: np.ndarray) -> np.ndarray:
    """Unit normals (3 x H x W, OpenCV camera frame; zero where no kept quad touches a pixel) of the depth map
    lifted with `intrinsics` (`recon.camera.Intrinsics`): recon's own lifting and area-weighted grid normals."""
    from betterdepth_engine.recon import grid

    rows, columns = np.mgrid[0:depth_m.shape[0], 0:depth_m.shape[1]]
    points = intrinsics.lift(np.asarray(depth_m, np.float64), columns, rows)
    return grid.grid_normals(points, keep_quads).astype(np.float64)


def continuous_quads(gt_depth_m: np.ndarray, valid_mask: np.ndarray, focal_px: float) -> np.ndarray:
    """(H-1) x (W-1): quads of valid ground truth without a depth discontinuity (recon's mesh-cut test)."""
    from betterdepth_engine.recon import grid

    max_ratio = grid.max_depth_ratio(focal_px, DISCONTINUITY_MIN_ANGLE_DEG, math.sqrt(2.0))
    return grid.continuous_quads(np.where(valid_mask & (gt_depth_m > 0), gt_depth_m, np.nan), max_ratio)


def smooth_pixels(keep_quads: np.ndarray, margin_px: int = DISCONTINUITY_MARGIN_PX) -> np.ndarray:
    """H x W: pixels whose four quads, and every quad within `margin_px` of them, are kept."""
    from scipy.ndimage import minimum_filter

    eroded = minimum_filter(keep_quads.astype(np.uint8), size=2 * margin_px + 1, mode="constant", cval=0)
    padded = np.pad(eroded, 1)  # a pixel touches quads (r-1..r, c-1..c); outside the image counts as cut
    return (padded[:-1, :-1] & padded[:-1, 1:] & padded[1:, :-1] & padded[1:, 1:]).astype(bool)


def angles_deg(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Angles between vectors (3 x ...), in degrees (atan2 of |cross| and dot: exact near 0, unlike arccos)."""
    from betterdepth_engine.recon.grid import cross

    cross_product = cross(first, second)
    sine = np.sqrt(np.einsum("k...,k...", cross_product, cross_product))
    return np.degrees(np.arctan2(sine, np.einsum("k...,k...", first, second)))


def window_mean_normals(normals: np.ndarray, window_px: int = FLATNESS_WINDOW_PX) -> np.ndarray:
    """The normalised mean of the normals over the window around each pixel (3 x H x W)."""
    from scipy.ndimage import uniform_filter

    mean = np.stack([uniform_filter(component, window_px, mode="nearest") for component in normals])
    length = np.sqrt(np.einsum("k...,k...", mean, mean))
    return np.divide(mean, length, out=np.zeros_like(mean), where=length > 0)


def planar_pixels(gt_normals: np.ndarray, smooth: np.ndarray, window_px: int = FLATNESS_WINDOW_PX) -> np.ndarray:
    """H x W: pixels whose whole window is smooth and whose ground-truth normals there all lie within
    PLANAR_TOLERANCE_DEG of the window's mean normal (the truth is a plane there)."""
    from scipy.ndimage import maximum_filter, minimum_filter

    whole_window_smooth = minimum_filter(smooth.astype(np.uint8), window_px, mode="constant", cval=0) > 0
    deviation = np.where(smooth, angles_deg(gt_normals, window_mean_normals(gt_normals, window_px)), 180.0)
    return whole_window_smooth & (maximum_filter(deviation, window_px, mode="nearest") <= PLANAR_TOLERANCE_DEG)


def normal_metrics(depth_m: np.ndarray, gt_depth_m: np.ndarray, valid_mask: np.ndarray, intrinsics
                   ) -> dict[str, float]:
    """Normals of the aligned prediction against those of the ground truth, both lifted with the true
    `intrinsics` (`recon.camera.Intrinsics` at the ground truth's size), on pixels at least
    DISCONTINUITY_MARGIN_PX from a ground-truth discontinuity, an invalid pixel or the border:
    - normal_error_deg: mean angle between predicted and true normals; normal_within_*: share within 11.25,
      22.5 and 30 degrees;
    - flatness_deg: on ground-truth planes (`planar_pixels`), the mean angle between the predicted normal and
      the mean predicted normal over the window: 0 for any plane, whatever its tilt; ripples raise it.
    NaN where there is no such pixel (and flatness NaN where the truth has no plane).
    """
    results = dict.fromkeys(NORMAL_METRIC_NAMES, math.nan)
    keep = continuous_quads(gt_depth_m, valid_mask & np.isfinite(depth_m) & (depth_m > 0), intrinsics.focal_px)
    smooth = smooth_pixels(keep)
    if not smooth.any():
        return results
    predicted = surface_normals(np.nan_to_num(depth_m, nan=1.0), intrinsics, keep)
    truth = surface_normals(gt_depth_m, intrinsics, keep)
    errors = angles_deg(predicted, truth)[smooth]
    results["normal_error_deg"] = float(errors.mean())
    for threshold, name in zip(NORMAL_THRESHOLDS_DEG, NORMAL_METRIC_NAMES[1:4]):
        results[name] = float(np.mean(errors < threshold))
    planar = planar_pixels(truth, smooth)
    if planar.any():
        results["flatness_deg"] = float(angles_deg(predicted, window_mean_normals(predicted))[planar].mean())
    return results


# ---------------------------------------------------------------------------------------------- one image


def aligned_depth(prediction: np.ndarray, gt_depth_m: np.ndarray, valid_mask: np.ndarray, min_depth_m: float,
                  max_depth_m: float, space: str = "disparity", max_alignment_resolution: int | None = None
                  ) -> np.ndarray:
    """Steps 1 and 2 of the protocol: the prediction aligned to the ground truth and clipped to the depth range."""
    fit_mask = valid_mask & (gt_depth_m > 0) & np.isfinite(prediction)
    if not fit_mask.any():
        raise ValueError("no pixel is valid in both the prediction and the ground truth")
    depth_m = align_prediction(prediction, gt_depth_m, fit_mask, space, max_alignment_resolution)
    return clip_to_depth_range(depth_m, min_depth_m, max_depth_m)


def depth_metrics(depth_m: np.ndarray, gt_depth_m: np.ndarray, valid_mask: np.ndarray,
                  detail: bool = True, intrinsics=None) -> dict[str, float]:
    """Every metric of one aligned depth map (see `aligned_depth`) against its ground truth (same size).

    `detail=False` skips boundary F1, DBE and normals (NaN), for sparse ground truth such as KITTI's LiDAR
    points, where neighbouring valid pixels are too rare for edges to mean anything. The normal metrics need
    the ground truth's `intrinsics` (`recon.camera.Intrinsics`); without them they are NaN.
    """
    valid_mask = valid_mask & (gt_depth_m > 0) & np.isfinite(depth_m)
    results = {
        "abs_rel": abs_rel(depth_m, gt_depth_m, valid_mask),
        "delta1": delta_accuracy(depth_m, gt_depth_m, valid_mask, 1.25),
        "delta2": delta_accuracy(depth_m, gt_depth_m, valid_mask, 1.25 ** 2),
        "delta3": delta_accuracy(depth_m, gt_depth_m, valid_mask, 1.25 ** 3),
        "rmse": rmse(depth_m, gt_depth_m, valid_mask),
        "boundary_f1": math.nan,
        "dbe_accuracy": math.nan,
        "dbe_completeness": math.nan,
        **dict.fromkeys(NORMAL_METRIC_NAMES, math.nan),
    }
    if detail:
        results["boundary_f1"] = boundary_f1(depth_m, gt_depth_m, valid_mask)
        results["dbe_accuracy"], results["dbe_completeness"] = depth_boundary_errors(depth_m, gt_depth_m, valid_mask)
        if intrinsics is not None:
            results.update(normal_metrics(depth_m, gt_depth_m, valid_mask, intrinsics))
    return results
