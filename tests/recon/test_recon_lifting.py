"""Disparity/depth -> depth along +Z: the documented range mapping, invalid pixels, and clear errors."""

import numpy as np
import pytest
from PIL import Image

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.recon import ReconOptions, reconstruct
from betterdepth_engine.recon.lifting import NORMALIZE_PERCENTILES, as_depth_array, to_depth, valid_pixels
from betterdepth_engine.recon.pipeline import lift_to_depth


def _ramp(height=20, width=30):
    return np.linspace(-3, 5, height * width, dtype=np.float32).reshape(height, width)


def test_affine_disparity_spans_near_to_far_in_inverse_depth():
    disparity = _ramp()
    valid = valid_pixels(disparity, "disparity")
    depth, depth_range = to_depth(disparity, "disparity", valid, near=2.0, far_near_ratio=5.0)
    assert np.nanmin(depth) == pytest.approx(2.0) and np.nanmax(depth) == pytest.approx(10.0)
    low, high = np.percentile(disparity, NORMALIZE_PERCENTILES)
    t = np.clip((disparity - low) / (high - low), 0, 1)
    np.testing.assert_allclose(1 / depth, 1 / 10 + t * (1 / 2 - 1 / 10), rtol=1e-5)
    assert depth[0, 0] > depth[-1, -1]  # larger disparity = nearer
    assert depth_range.to_dict()["far_near_ratio"] == pytest.approx(5.0)


def test_affine_depth_is_linear_and_metric_depth_is_kept():
    affine = _ramp()
    depth, _ = to_depth(affine, "affine-depth", valid_pixels(affine, "affine-depth"), 1.0, 4.0)
    assert depth[0, 0] == pytest.approx(1.0) and depth[-1, -1] == pytest.approx(4.0)
    metric = np.abs(_ramp()) + 0.5
    kept, depth_range = to_depth(metric, "depth", valid_pixels(metric, "depth"), 1.0, 10.0)
    np.testing.assert_array_equal(kept, metric)
    assert depth_range.source == "measured" and depth_range.near == pytest.approx(metric.min())


def test_invalid_pixels_are_dropped_or_become_a_back_plate():
    disparity = _ramp()
    disparity[:5] = np.nan
    disparity[5, :] = np.inf
    dropped = reconstruct(disparity)
    plated = reconstruct(disparity, options=ReconOptions(invalid="backplate"))
    assert len(dropped.vertices) == 14 * 30 and len(plated.vertices) == 20 * 30
    assert plated.vertices[:, 2].max() == pytest.approx(10.0)  # the plate sits at the far depth


def test_sky_threshold_and_valid_mask():
    disparity = _ramp()
    depth, _ = lift_to_depth(disparity, "disparity", ReconOptions(sky_below=0.5))
    assert np.isnan(depth[0]).all() and np.isfinite(depth[-1]).all()
    mask = np.ones(disparity.shape, bool)
    mask[:, :10] = False
    depth, _ = lift_to_depth(disparity, "disparity", ReconOptions(), valid_mask=mask)
    assert np.isnan(depth[:, :10]).all() and np.isfinite(depth[:, 10:]).all()


def test_zero_metric_depth_means_missing():
    depth = np.full((10, 10), 2.0, np.float32)
    depth[:3] = 0
    assert len(reconstruct(depth, space="depth").vertices) == 70


@pytest.mark.parametrize(
    "values, space",
    [
        (np.full((8, 8), np.nan, np.float32), "disparity"),
        (np.full((8, 8), np.inf, np.float32), "depth"),
        (np.zeros((8, 8), np.float32), "depth"),
        (-np.ones((8, 8), np.float32), "depth"),
        (np.ones((1, 1), np.float32), "disparity"),
        (np.ones((1, 50), np.float32), "disparity"),
        (np.ones((8, 8, 3), np.float32), "disparity"),
        (np.array([["a", "b"], ["c", "d"]]), "disparity"),
    ],
    ids=["all-nan", "all-inf", "all-zero-depth", "negative-depth", "one-pixel", "one-row", "rgb", "strings"],
)
def test_bad_depth_maps_raise_bad_depth(values, space):
    with pytest.raises(BetterDepthError) as error:
        reconstruct(values, space=space)
    assert error.value.code == BetterDepthError.BAD_DEPTH
    assert error.value.message and error.value.hint


def test_all_invalid_mask_and_steep_everything():
    with pytest.raises(BetterDepthError, match="no valid pixels"):
        reconstruct(_ramp(), valid_mask=np.zeros((20, 30), bool))
    checkerboard = np.where(np.indices((10, 10)).sum(0) % 2 == 0, 1.0, 5.0).astype(np.float32)
    with pytest.raises(BetterDepthError, match="No triangles survived") as error:
        reconstruct(checkerboard, space="depth")
    assert error.value.code == BetterDepthError.BAD_DEPTH


def test_image_must_match_the_depth_map():
    image = np.zeros((21, 30, 3), np.uint8)
    with pytest.raises(BetterDepthError, match="21") as error:
        reconstruct(_ramp(), image_rgb=image)
    assert error.value.code == BetterDepthError.BAD_INPUT
    with pytest.raises(BetterDepthError, match="need the image"):
        reconstruct(_ramp(), options=ReconOptions(colors="image"))


@pytest.mark.parametrize(
    "options",
    [
        dict(far_near_ratio=1.0),
        dict(near=0),
        dict(mode="voxels"),
        dict(min_angle_deg=95),
        dict(max_faces=2),
        dict(colors="rainbow"),
        dict(sky_below=1.5),
        dict(fov_deg=200),
        dict(focal_px=-5),
    ],
)
def test_bad_options_raise_bad_input(options):
    with pytest.raises(BetterDepthError) as error:
        reconstruct(_ramp(), options=ReconOptions(**options))
    assert error.value.code == BetterDepthError.BAD_INPUT


def test_integer_and_single_channel_maps_are_accepted():
    assert as_depth_array(np.ones((4, 5, 1), np.uint16)).shape == (4, 5)
    assert as_depth_array(np.ones((4, 5), np.uint16)).dtype == np.float32
    image = np.asarray(Image.new("RGB", (30, 20), (10, 200, 30)))
    mesh = reconstruct(_ramp(), image_rgb=image)
    assert (mesh.colors == [10, 200, 30]).all()
