"""Intrinsics from every camera description, and vertices that project back onto pixel centres."""

import math

import numpy as np
import pytest

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.recon import BlenderCamera, ReconOptions, reconstruct, resolve_intrinsics
from betterdepth_engine.recon.camera import (
    DEFAULT_FOV_DEG,
    intrinsics_from_35mm,
    intrinsics_from_blender,
    intrinsics_from_fov,
)


def test_fov_is_measured_across_the_longer_side():
    landscape = intrinsics_from_fov(400, 300, 90)
    portrait = intrinsics_from_fov(300, 400, 90)
    assert landscape.fx == pytest.approx(200) and portrait.fx == pytest.approx(200)
    assert (landscape.cx, landscape.cy) == (199.5, 149.5)


def test_35mm_equivalent_uses_the_diagonal():
    # A 3:2 frame has the full-frame shape: 36 mm equivalent spans exactly the width.
    assert intrinsics_from_35mm(3000, 2000, 36).fx == pytest.approx(3000)
    # 4:3 keeps the diagonal, so the same lens covers slightly less width.
    assert intrinsics_from_35mm(4000, 3000, 36).fx == pytest.approx(36 / math.hypot(36, 24) * 5000)


def test_blender_default_camera():
    intrinsics = intrinsics_from_blender(1920, 1080, BlenderCamera())
    assert intrinsics.fx == pytest.approx(50 / 36 * 1920)
    assert intrinsics.fy == pytest.approx(intrinsics.fx)
    assert (intrinsics.cx, intrinsics.cy) == (959.5, 539.5)


def test_blender_sensor_fit_and_pixel_aspect():
    # AUTO fits the sensor width to the longer side, here the height.
    portrait = intrinsics_from_blender(1080, 1920, BlenderCamera())
    assert portrait.fy == pytest.approx(50 / 36 * 1920)
    vertical = intrinsics_from_blender(1920, 1080, BlenderCamera(sensor_fit="VERTICAL"))
    assert vertical.fy == pytest.approx(50 / 24 * 1080)
    # Pixels twice as tall as wide: the same angle covers half the rows.
    tall_pixels = intrinsics_from_blender(1000, 1000, BlenderCamera(pixel_aspect_y=2.0, sensor_fit="HORIZONTAL"))
    assert tall_pixels.fy == pytest.approx(tall_pixels.fx / 2)


def test_blender_lens_shift_moves_the_view():
    camera = BlenderCamera(lens_mm=35, shift_x=0.1, shift_y=-0.05)
    intrinsics = intrinsics_from_blender(800, 600, camera)
    # Shift is a fraction of the fitted side (the width here), measured on the sensor: the ray through
    # the image centre points right by shift_x * sensor / lens and (shift_y < 0) down by |shift_y| * sensor / lens.
    x_ray = ((800 - 1) / 2 - intrinsics.cx) / intrinsics.fx
    y_ray = ((600 - 1) / 2 - intrinsics.cy) / intrinsics.fy  # +y is down in the OpenCV frame
    assert x_ray == pytest.approx(0.1 * 36 / 35)
    assert y_ray == pytest.approx(0.05 * 36 / 35)


def test_camera_precedence_and_conflicts():
    assert resolve_intrinsics(640, 480, ReconOptions()).source == "default_fov"
    assert resolve_intrinsics(640, 480, ReconOptions()).fx == pytest.approx(320 / math.tan(math.radians(DEFAULT_FOV_DEG / 2)))
    assert resolve_intrinsics(640, 480, ReconOptions(focal_35mm=26)).source == "exif_35mm"
    assert resolve_intrinsics(640, 480, ReconOptions(focal_35mm=26, focal_px=500)).source == "focal_px"
    assert resolve_intrinsics(640, 480, ReconOptions(fov_deg=60)).source == "fov"
    with pytest.raises(BetterDepthError) as error:
        ReconOptions(focal_px=500, fov_deg=60)
    assert error.value.code == BetterDepthError.BAD_INPUT


def test_vertices_reproject_onto_pixel_centres():
    rng = np.random.default_rng(0)
    depth = (3 + 0.1 * rng.random((30, 40))).astype(np.float32)
    camera = BlenderCamera(lens_mm=30, shift_x=0.07, shift_y=0.03, pixel_aspect_y=1.25)
    mesh = reconstruct(depth, space="depth", options=ReconOptions(blender_camera=camera))
    intrinsics = resolve_intrinsics(40, 30, ReconOptions(blender_camera=camera))
    u, v = intrinsics.project(mesh.vertices.astype(np.float64))
    assert len(mesh.vertices) == 30 * 40
    np.testing.assert_allclose(u, np.rint(u), atol=1e-3)
    np.testing.assert_allclose(v, np.rint(v), atol=1e-3)
    # and each vertex sits at its own pixel's depth, with UVs at that pixel's centre
    columns, rows = np.rint(u).astype(int), np.rint(v).astype(int)
    np.testing.assert_allclose(mesh.vertices[:, 2], depth[rows, columns], rtol=1e-6)
    np.testing.assert_allclose(mesh.uvs[:, 0], (columns + 0.5) / 40, atol=1e-6)
    np.testing.assert_allclose(mesh.uvs[:, 1], 1 - (rows + 0.5) / 30, atol=1e-6)
    assert mesh.metadata["camera"]["source"] == "blender_camera"
