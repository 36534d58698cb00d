"""The grid mesh: discontinuity cut, viewing-angle threshold, diagonals, normals, stride, clean-ups, decimation."""

import math

import numpy as np
import pytest

from betterdepth_engine.recon import ReconOptions, reconstruct
from betterdepth_engine.recon.grid import max_depth_ratio
from tests.recon.scenes import grazing_plane, sphere_on_wall, step_edge


def test_no_triangle_spans_a_step_edge():
    depth = step_edge()
    mesh = reconstruct(depth, space="depth", options=ReconOptions(focal_px=50))
    face_depths = mesh.vertices[mesh.faces, 2]
    assert np.all(face_depths.max(axis=1) == face_depths.min(axis=1))
    # both sides stay fully meshed: 13 x 23 quads on the near slab, 17 x 23 on the wall
    assert len(mesh.faces) == 2 * 23 * (13 + 17)


def test_without_the_cut_the_step_is_bridged():
    mesh = reconstruct(step_edge(), space="depth", options=ReconOptions(focal_px=50, min_angle_deg=0))
    face_depths = mesh.vertices[mesh.faces, 2]
    assert np.sum(face_depths.max(axis=1) != face_depths.min(axis=1)) == 2 * 23


@pytest.mark.parametrize("angle_deg, kept", [(4.4, True), (3.6, False), (10.0, True), (2.0, False)])
def test_slanted_plane_keeps_its_triangles_down_to_the_threshold_angle(angle_deg, kept):
    depth, intrinsics = grazing_plane(size=9, focal_px=5000, angle_deg=angle_deg)
    options = ReconOptions(focal_px=intrinsics.fx, min_angle_deg=4.0)
    if kept:
        assert len(reconstruct(depth, space="depth", options=options).faces) == 2 * 8 * 8
    else:
        with pytest.raises(Exception, match="No triangles survived"):
            reconstruct(depth, space="depth", options=options)


def test_threshold_formula():
    assert max_depth_ratio(1000, 4, math.sqrt(2)) == pytest.approx(math.sqrt(2) / (1000 * math.tan(math.radians(4))))
    assert max_depth_ratio(1000, 0, 1) == math.inf


def test_quads_split_along_the_shorter_diagonal():
    # A saddle: corners a and d far, b and c near; in 3D the b-c diagonal is much shorter.
    depth = np.array([[2.0, 1.0], [1.0, 2.0]], np.float32)
    mesh = reconstruct(depth, space="depth", options=ReconOptions(focal_px=2, min_angle_deg=0))
    near = set(np.flatnonzero(mesh.vertices[:, 2] == 1.0))
    assert all(near <= set(face) for face in mesh.faces)


def test_normals_face_the_camera_and_encode_as_colours():
    depth = np.full((6, 7), 3.0, np.float32)
    mesh = reconstruct(depth, space="depth")
    np.testing.assert_allclose(mesh.normals, np.tile([0, 0, -1], (42, 1)), atol=1e-6)
    assert (mesh.colors == [128, 128, 255]).all()  # facing the camera: 0.5 * n + 0.5 with n = +Z toward the viewer
    corners = mesh.vertices[mesh.faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert (face_normals[:, 2] < 0).all()  # counter-clockwise seen from the camera


def test_sphere_normals_point_outwards():
    mesh = reconstruct(sphere_on_wall(), options=ReconOptions(focal_px=60))
    towards_camera = -mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", mesh.normals, towards_camera) > 0).mean() > 0.99


def test_unused_vertices_are_removed():
    depth = np.full((10, 10), 2.0, np.float32)
    depth[5, 5] = 1.0  # an isolated spike: every quad around it is cut
    depth[0:2, 8] = depth[1, 9] = np.nan  # leaves the valid corner pixel (0, 9) without a quad
    mesh = reconstruct(depth, space="depth", options=ReconOptions(focal_px=100))
    assert len(np.unique(mesh.faces)) == len(mesh.vertices)
    assert not np.any(mesh.vertices[:, 2] == 1.0)
    assert len(mesh.vertices) == 100 - 1 - 3 - 1


def test_large_maps_use_a_stride_and_stay_on_pixel_centres():
    depth = np.full((100, 150), 2.0, np.float32)
    mesh = reconstruct(depth, space="depth", options=ReconOptions(max_vertices=1000, focal_px=100))
    assert mesh.metadata["grid"]["stride"] == 4
    assert len(mesh.vertices) == 25 * 38 <= 1000
    u = mesh.vertices[:, 0] / mesh.vertices[:, 2] * 100 + 74.5
    np.testing.assert_allclose(u / 4, np.rint(u / 4), atol=1e-4)


def test_small_holes_are_filled_and_wide_regions_are_not():
    depth = np.full((30, 40), 2.0, np.float32)
    depth[10:12, 10:12] = np.nan  # a 2-pixel hole
    depth[:, 30:] = np.nan  # a wide invalid region at the border (sky)
    mesh = reconstruct(depth, space="depth", options=ReconOptions(fill_holes_px=3))
    assert len(mesh.vertices) == 30 * 30
    np.testing.assert_allclose(mesh.vertices[:, 2], 2.0, rtol=1e-5)


def test_edge_aware_smoothing_reduces_noise_and_keeps_the_step():
    rng = np.random.default_rng(1)
    depth = step_edge(40, 40) * (1 + 0.002 * rng.standard_normal((40, 40))).astype(np.float32)
    options = ReconOptions(focal_px=200, min_angle_deg=2)
    rough = reconstruct(depth, space="depth", options=options)
    smooth = reconstruct(depth, space="depth", options=ReconOptions(focal_px=200, min_angle_deg=2, smooth_iterations=5))
    near = smooth.vertices[:, 2] < 1.5
    assert smooth.vertices[near, 2].std() < 0.5 * rough.vertices[rough.vertices[:, 2] < 1.5, 2].std()
    face_depths = smooth.vertices[smooth.faces, 2]
    assert (face_depths.max(axis=1) / face_depths.min(axis=1)).max() < 1.1  # still no bridge across the step


def test_decimation_meets_the_budget_and_resamples_uvs_and_colours():
    height, width = 48, 64
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]  # red grows to the right
    mesh = reconstruct(sphere_on_wall(height, width), image_rgb=image, options=ReconOptions(max_faces=800, focal_px=60))
    assert 0 < len(mesh.faces) <= 800
    assert mesh.metadata["decimation"]["faces_before"] > 800
    u = mesh.vertices[:, 0] / mesh.vertices[:, 2] * 60 + (width - 1) / 2
    np.testing.assert_allclose(mesh.uvs[:, 0], (u + 0.5) / width, atol=1e-4)
    np.testing.assert_allclose(mesh.colors[:, 0], np.interp(u, np.arange(width), image[0, :, 0]), atol=1.01)
    assert np.allclose(np.linalg.norm(mesh.normals, axis=1), 1, atol=1e-5)


def test_decimation_meets_the_budget_on_a_fragmented_mesh():
    # Noisy depth cuts the grid into many pieces, mostly border: borders must give way to meet the budget.
    depth = (2 + 0.2 * np.random.default_rng(0).random((60, 80))).astype(np.float32)
    mesh = reconstruct(depth, space="depth", options=ReconOptions(focal_px=300, max_faces=1000))
    assert len(mesh.faces) <= 1000
    assert mesh.metadata["decimation"]["borders_kept"] is False
