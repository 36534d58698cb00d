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
