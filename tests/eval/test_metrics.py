"""Evaluation metrics on hand-computed cases."""

import math

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from betterdepth_engine.eval import metrics


def scene_depth_m(height=60, width=80):
    """A wall at 4 m, a box at 2 m on the right, a post at 1 m: occlusion boundaries in every direction."""
    depth = np.full((height, width), 4.0)
    depth[:, width // 2:] = 2.0
    depth[20:40, 10:20] = 1.0
    return depth


def all_valid(depth):
    return np.ones(depth.shape, dtype=bool)


def test_perfect_prediction_scores_perfectly():
    gt = scene_depth_m()
    scores = metrics.depth_metrics(gt.copy(), gt, all_valid(gt))
    assert scores["abs_rel"] == 0 and scores["rmse"] == 0
    assert scores["delta1"] == scores["delta2"] == scores["delta3"] == 1
    assert scores["boundary_f1"] == 1
    assert scores["dbe_accuracy"] == 0 and scores["dbe_completeness"] == 0


def test_affine_disparity_is_perfect_after_disparity_alignment():
    gt = scene_depth_m()
    depth = metrics.aligned_depth(3.0 / gt + 0.5, gt, all_valid(gt), 1e-3, 10.0, space="disparity")
    np.testing.assert_allclose(depth, gt, rtol=1e-9)
    assert metrics.depth_metrics(depth, gt, all_valid(gt))["boundary_f1"] == 1


def test_affine_depth_is_perfect_after_depth_alignment():
    gt = scene_depth_m()
    depth = metrics.aligned_depth(0.25 * gt - 3.0, gt, all_valid(gt), 1e-3, 10.0, space="depth")
    np.testing.assert_allclose(depth, gt, rtol=1e-9)


def test_alignment_uses_only_valid_pixels_and_keeps_nan_out():
    gt = scene_depth_m()
    valid = all_valid(gt)
    valid[:5] = False
    prediction = 2.0 / gt
    prediction[:5] = 1e6  # garbage where the ground truth is invalid must not move the fit
    prediction[10, 10] = np.nan
    depth = metrics.aligned_depth(prediction, gt, valid, 1e-3, 10.0)
    np.testing.assert_allclose(depth[valid & np.isfinite(prediction)], gt[valid & np.isfinite(prediction)])
    assert np.isnan(depth[10, 10])


def test_aligned_disparity_is_floored_and_depth_clipped_to_the_range():
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    # The fit (exact on three pixels) sends the fourth, unfitted pixel to a negative disparity.
    prediction = 1.0 / gt
    prediction[1, 1] = -5.0
    fitted = all_valid(gt)
    fitted[1, 1] = False
    aligned = metrics.align_prediction(prediction, gt, fitted)
    assert aligned[1, 1] == pytest.approx(1.0 / metrics.MIN_ALIGNED_DISPARITY)
    clipped = metrics.clip_to_depth_range(aligned, 1e-3, 10.0)
    assert clipped.max() == 10.0


@pytest.mark.parametrize("factor, expected_abs_rel, expected_deltas", [
    (1.1, 0.1, (1.0, 1.0, 1.0)),
    (1.3, 0.3, (0.0, 1.0, 1.0)),
    (0.55, 0.45, (0.0, 0.0, 1.0)),  # ratio 1 / 0.55 = 1.82: above 1.25^2 = 1.56, below 1.25^3 = 1.95
])
def test_known_constant_relative_error(factor, expected_abs_rel, expected_deltas):
    gt = scene_depth_m()
    valid = all_valid(gt)
    depth = gt * factor
    assert metrics.abs_rel(depth, gt, valid) == pytest.approx(expected_abs_rel)
    deltas = tuple(metrics.delta_accuracy(depth, gt, valid, 1.25 ** k) for k in (1, 2, 3))
    assert deltas == expected_deltas


def test_rmse_of_a_constant_offset():
    gt = scene_depth_m()
    assert metrics.rmse(gt + 0.25, gt, all_valid(gt)) == pytest.approx(0.25)


def test_metrics_ignore_invalid_pixels():
    gt = scene_depth_m()
    valid = all_valid(gt)
    valid[:, :10] = False
    depth = gt.copy()
    depth[:, :10] = 100.0
    assert metrics.abs_rel(depth, gt, valid) == 0 and metrics.delta_accuracy(depth, gt, valid) == 1


def test_blurred_step_loses_boundary_f1():
    gt = scene_depth_m()
    valid = all_valid(gt)
    blurred = 1.0 / uniform_filter(1.0 / gt, size=9)  # a soft ramp: no neighbour ratio above 1.05 left
    assert metrics.boundary_f1(gt, gt, valid) == 1
    assert metrics.boundary_f1(blurred, gt, valid) < 0.3


def test_boundary_f1_is_scale_invariant_and_direction_aware():
    gt = np.full((30, 40), 4.0)
    gt[:, 20:] = 2.0
    valid = all_valid(gt)
    assert metrics.boundary_f1(7.0 * gt, gt, valid) == 1
    # Swapping near and far keeps the edge where it is but flips the occlusion: nothing matches.
    assert metrics.boundary_f1(6.0 - gt, gt, valid) == 0


def test_boundary_f1_counts_only_pairs_of_valid_pixels():
    gt = scene_depth_m()
    valid = all_valid(gt)
    valid[45:50, :] = False
    holes = gt.copy()
    holes[~valid] = 0.0  # missing ground truth must not read as a boundary
    assert metrics.boundary_f1(gt, holes, valid) == 1


def test_boundary_f1_is_nan_without_ground_truth_boundaries():
    flat = np.full((20, 20), 3.0)
    assert math.isnan(metrics.boundary_f1(flat, flat, all_valid(flat)))


def test_boundary_f1_thresholds_follow_depth_pro():
    assert len(metrics.BOUNDARY_THRESHOLDS) == 10
    assert metrics.BOUNDARY_THRESHOLDS[0] == pytest.approx(1.05)
    assert metrics.BOUNDARY_THRESHOLDS[-1] == pytest.approx(1.25)


def test_dbe_of_identical_maps_is_zero():
    gt = scene_depth_m()
    assert metrics.depth_boundary_errors(gt, gt, all_valid(gt)) == (0.0, 0.0)


def test_dbe_of_a_shifted_edge_is_the_shift():
    gt = np.full((60, 80), 4.0)
    gt[:, 40:] = 2.0
    shifted = np.full((60, 80), 4.0)
    shifted[:, 43:] = 2.0
    accuracy, completeness = metrics.depth_boundary_errors(shifted, gt, all_valid(gt))
    assert accuracy == pytest.approx(3.0, abs=0.5)
    assert completeness == pytest.approx(3.0, abs=0.5)


def test_dbe_without_predicted_edges_is_the_maximum_and_without_true_edges_nan():
    gt = scene_depth_m()
    flat = np.full(gt.shape, 3.0)
    assert metrics.depth_boundary_errors(flat, gt, all_valid(gt)) == (10.0, 10.0)
    assert all(math.isnan(v) for v in metrics.depth_boundary_errors(gt, flat, all_valid(gt)))


def test_fit_on_a_subsample_is_close_to_the_full_fit():
    rng = np.random.default_rng(0)
    source = rng.uniform(0.1, 1.0, (300, 400))
    target = 2.0 * source + 0.3 + rng.normal(0, 0.01, source.shape)
    full = metrics.fit_scale_shift(source, target, all_valid(source))
    subsampled = metrics.fit_scale_shift(source, target, all_valid(source), max_resolution=100)
    assert subsampled == pytest.approx(full, rel=1e-2)


def test_sparse_ground_truth_skips_detail_metrics():
    gt = scene_depth_m()
    scores = metrics.depth_metrics(gt, gt, all_valid(gt), detail=False)
    assert scores["abs_rel"] == 0 and math.isnan(scores["boundary_f1"]) and math.isnan(scores["dbe_accuracy"])


def test_no_common_valid_pixel_is_an_error():
    gt = scene_depth_m()
    with pytest.raises(ValueError, match="no pixel is valid"):
        metrics.aligned_depth(np.full(gt.shape, np.nan), gt, all_valid(gt), 1e-3, 10.0)


# ---------------------------------------------------------------------------------------------- normals


def tilted_plane_depth_m(intrinsics, normal=(0.3, -0.2, -1.0), distance_m=5.0):
    """Depth of the plane n . X = -distance seen by `intrinsics` (its normal faces the camera)."""
    normal = np.asarray(normal) / np.linalg.norm(normal)
    rows, columns = np.mgrid[0:intrinsics.height, 0:intrinsics.width]
    rays = np.stack([(columns - intrinsics.cx) / intrinsics.fx, (rows - intrinsics.cy) / intrinsics.fy,
                     np.ones(columns.shape)])
    return distance_m / np.abs(np.einsum("k,khw->hw", normal, rays)), normal


@pytest.fixture
def camera():
    from betterdepth_engine.recon.camera import intrinsics_from_focal_px

    return intrinsics_from_focal_px(128, 96, 150.0)


def test_a_plane_predicted_exactly_has_zero_normal_error_and_is_flat(camera):
    gt, _ = tilted_plane_depth_m(camera)
    scores = metrics.normal_metrics(gt.copy(), gt, all_valid(gt), camera)
    assert scores["normal_error_deg"] < 1e-4 and scores["flatness_deg"] < 1e-4
    assert scores["normal_within_11_25"] == scores["normal_within_22_5"] == scores["normal_within_30"] == 1


def test_a_tilted_plane_is_recovered_exactly_from_affine_disparity(camera):
    """A plane's disparity is affine in the pixel coordinates, so the protocol's alignment restores it."""
    gt, _ = tilted_plane_depth_m(camera)
    depth = metrics.aligned_depth(7.0 / gt - 0.3, gt, all_valid(gt), 1e-3, 100.0)
    scores = metrics.depth_metrics(depth, gt, all_valid(gt), intrinsics=camera)
    assert scores["normal_error_deg"] < 1e-3 and scores["flatness_deg"] < 1e-3


def test_a_fronto_parallel_guess_of_a_tilted_plane_is_off_by_the_tilt_but_flat(camera):
    gt, normal = tilted_plane_depth_m(camera)
    tilt_deg = np.degrees(np.arccos(abs(normal[2])))  # 19.83 degrees
    scores = metrics.normal_metrics(np.full(gt.shape, 5.0), gt, all_valid(gt), camera)
    assert scores["normal_error_deg"] == pytest.approx(tilt_deg, abs=1e-6)
    assert (scores["normal_within_11_25"], scores["normal_within_22_5"], scores["normal_within_30"]) == (0, 1, 1)
    assert scores["flatness_deg"] < 1e-6


def test_a_rippled_plane_has_the_ripples_slope_as_normal_error_and_flatness():
    """Depth z0 + a sin(2 pi u / 9) on a fronto-parallel plane at z0, seen by a long lens (the lateral scale
    z0 / f per pixel is then the same everywhere). The grid normals see the central difference of the ripple,
    a sin(2 pi / 9) cos(phase) per pixel, so each pixel's error is atan of that over z0 / f; flatness (window =
    one period: the mean normal is the plane's) is the same mean."""
    from betterdepth_engine.recon.camera import intrinsics_from_focal_px

    camera = intrinsics_from_focal_px(126, 90, 3000.0)
    z0, amplitude, period = 5.0, 0.003, 9
    columns = np.arange(126)
    rippled = np.tile(z0 + amplitude * np.sin(2 * np.pi * columns / period), (90, 1))
    slopes = amplitude * np.sin(2 * np.pi / period) * np.cos(2 * np.pi * np.arange(period) / period) / (z0 / 3000.0)
    expected_deg = np.degrees(np.arctan(np.abs(slopes))).mean()  # 40.8 degrees
    scores = metrics.normal_metrics(rippled, np.full(rippled.shape, z0), all_valid(rippled), camera)
    assert scores["normal_error_deg"] == pytest.approx(expected_deg, rel=0.01)
    assert scores["flatness_deg"] == pytest.approx(expected_deg, rel=0.01)


def test_normals_skip_discontinuities_and_need_intrinsics(camera):
    """A box in front of a wall predicted exactly: the silhouette's normals are left out, so the error is 0;
    without the camera the normal metrics are NaN."""
    gt = np.full((96, 128), 4.0)
    gt[30:60, 40:80] = 2.0
    scores = metrics.depth_metrics(gt.copy(), gt, all_valid(gt), intrinsics=camera)
    assert scores["normal_error_deg"] == 0 and scores["flatness_deg"] == 0
    smooth = metrics.smooth_pixels(metrics.continuous_quads(gt, all_valid(gt), camera.focal_px))
    assert not smooth[28:33, 38:82].any() and not smooth[0].any()  # near the step and at the border
    assert smooth[45, 60] and smooth[10, 10]
    assert math.isnan(metrics.depth_metrics(gt.copy(), gt, all_valid(gt))["normal_error_deg"])
