"""Scene alignment (bpy-free core): fitting the engine's disparity to a scene's depth, moving the vertices."""

from __future__ import annotations

import numpy as np
import pytest

from betterdepth_engine.recon import ReconOptions, reconstruct
from blender_addon.core.alignment import (AlignmentError, align_vertices, chain_to_reference, engine_lift,
                                          fit_disparity_to_depth, pixel_rays,
                                          sample_grid, sample_image)


def _scene_depth(height=48, width=64):
    """A metric depth map: a floor receding from 2 to 12 units and a box at 3 units on the left."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    depth = 2.0 + 10.0 * (1 - rows / (height - 1)) ** 2
    depth[10:30, 5:25] = 3.0
    return depth


def test_fit_recovers_scale_and_shift_and_ignores_outliers():
    depth = _scene_depth()
    disparity = 0.37 / depth - 0.05  # what an affine-invariant model gives, up to scale and shift
    fit = fit_disparity_to_depth(disparity, depth)
    assert fit.scale == pytest.approx(1 / 0.37) and fit.shift == pytest.approx(0.05 / 0.37)
    assert fit.median_relative_error < 1e-9 and fit.samples == fit.inliers == depth.size
    spoiled = disparity.copy()
    spoiled[:5] = 10.0  # a few rows that the model got badly wrong (e.g. a reflection)
    robust = fit_disparity_to_depth(spoiled, depth)
    assert robust.scale == pytest.approx(1 / 0.37) and robust.inliers == depth.size - 5 * depth.shape[1]
    assert robust.median_relative_error < 1e-9  # the median is over all samples, outliers included


def test_fit_needs_samples():
    with pytest.raises(AlignmentError, match="Only 0 pixels"):
        fit_disparity_to_depth(np.ones(10), np.full(10, np.nan))


def test_aligned_engine_mesh_lies_on_the_scene_depth():
    """The engine's own mesh of the (affine-distorted) true disparity, aligned, has exactly the scene's depth at
    every vertex's pixel, whatever depth range the engine lifted it with."""
    depth = _scene_depth()
    disparity = (4.0 / depth + 1.5).astype(np.float32)
    mesh = reconstruct(disparity, "disparity", options=ReconOptions(fov_deg=50.0, far_near_ratio=4.0))
    intrinsics = mesh.metadata["camera"]
    rows, columns = sample_grid(*depth.shape, max_samples=500)
    assert len(rows) <= 500 and rows.max() < depth.shape[0] and columns.max() < depth.shape[1]
    fit = fit_disparity_to_depth(disparity[rows, columns], depth[rows, columns])
    vertices, unplaced = align_vertices(mesh.vertices, intrinsics, disparity, fit)
    assert unplaced == 0
    u = intrinsics["fx"] * vertices[:, 0] / vertices[:, 2] + intrinsics["cx"]
    v = intrinsics["fy"] * vertices[:, 1] / vertices[:, 2] + intrinsics["cy"]
    assert np.abs(u - np.rint(u)).max() < 1e-3 and np.abs(v - np.rint(v)).max() < 1e-3  # still on their rays
    truth = depth[np.rint(v).astype(int), np.rint(u).astype(int)]
    assert np.abs(vertices[:, 2] / truth - 1).max() < 1e-5


def test_pixel_rays_hit_depth_at_distance_t():
    intrinsics = {"fx": 50.0, "fy": 60.0, "cx": 31.5, "cy": 23.5}
    rays = pixel_rays(np.array([0, 23.5]), np.array([0, 31.5]), intrinsics)
    assert np.allclose(rays[1], [0, 0, 1]) and np.allclose(rays[0], [-31.5 / 50, -23.5 / 60, 1])


def test_sample_image_is_bilinear_and_nan_aware():
    values = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert sample_image(values, np.array([1.5]), np.array([1.0]))[0] == pytest.approx(5.5)
    values[1, 2] = np.nan
    assert sample_image(values, np.array([1.4]), np.array([1.0]))[0] == 5.0  # nearest where a neighbour is NaN
    assert np.isnan(sample_image(values, np.array([-1.0]), np.array([0.0]))[0])


def test_engine_lift_and_chaining_give_one_scale_across_frames():
    """The engine lifts each frame with its own percentile range; chained to a reference frame's lift, frames
    that differ by scale and shift in disparity (what a per-frame model gives) get the same depth."""
    depth = _scene_depth()
    reference = (2.0 / depth + 0.3).astype(np.float32)
    frame = (5.0 * reference - 1.0).astype(np.float32)
    options = ReconOptions(fov_deg=50.0, far_near_ratio=8.0)
    meshes = [reconstruct(values, "disparity", options=options) for values in (reference, frame)]
    lift = engine_lift(meshes[0].metadata["depth_range"])
    inside = (reference > np.percentile(reference, 1)) & (reference < np.percentile(reference, 99))
    engine_depth = 1.0 / (lift.scale * reference + lift.shift)
    vertices, _ = align_vertices(meshes[0].vertices, meshes[0].metadata["camera"], reference, lift)
    assert np.allclose(np.sort(vertices[:, 2]), np.sort(meshes[0].vertices[:, 2]), rtol=1e-4)  # its own lift
    chained = chain_to_reference(frame, reference, lift)
    assert np.allclose(chained.depth(frame)[inside], engine_depth[inside], rtol=1e-5)
    # The engine's own lift of the second frame matches here too (same percentiles), but not after a change of
    # the visible depth range; the chained depth does not depend on the frame's percentiles at all.
    cropped = frame.copy()
    cropped[:, :8] = np.nan
    chained_cropped = chain_to_reference(cropped, reference, lift)
    assert np.allclose(chained_cropped.depth(frame)[inside], engine_depth[inside], rtol=1e-5)
