"""Reliefs: depth compression, the Poisson reintegration, a watertight printable solid, height maps."""

import tracemalloc

import numpy as np
import open3d as o3d
import pytest
import trimesh

from betterdepth_engine.recon import ReconOptions, ReliefOptions, reconstruct, relief_height_map
from betterdepth_engine.recon.relief import attenuate, poisson_reintegrate, relief_heights
from tests.recon.scenes import sphere_on_wall


def _is_closed_solid(mesh) -> None:
    solid = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert solid.is_watertight and solid.is_winding_consistent and solid.is_volume
    assert solid.volume > 0  # outward normals
    legacy = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(mesh.vertices.astype(np.float64)), o3d.utility.Vector3iVector(mesh.faces)
    )
    assert legacy.is_watertight() and legacy.is_orientable()


@pytest.mark.parametrize("method", ["linear", "gamma", "gradient"])
def test_relief_solid_is_watertight(method):
    disparity = sphere_on_wall(24, 32)
    disparity[:3, :5] = np.nan  # invalid pixels sit on the base plane
    relief = ReliefOptions(method=method, width=64.0, depth=6.0, base=1.5)
    mesh = reconstruct(disparity, options=ReconOptions(mode="relief", relief=relief))
    _is_closed_solid(mesh)
    z = mesh.vertices[:, 2]
    assert z.min() == pytest.approx(-6.0) and z.max() == pytest.approx(1.5)  # relief depth + base
    x = mesh.vertices[:, 0]
    assert x.max() - x.min() == pytest.approx(64.0 * 31 / 32)  # pixel centres span (W - 1) pixels of width / W


def test_decimated_relief_stays_watertight():
    mesh = reconstruct(sphere_on_wall(24, 32), options=ReconOptions(mode="relief", max_faces=600))
    assert len(mesh.faces) <= 600
    _is_closed_solid(mesh)


def test_poisson_reintegration_recovers_a_height_field():
    height = np.random.default_rng(0).random((17, 23))
    gx = np.diff(height, axis=1, append=height[:, -1:])
    gy = np.diff(height, axis=0, append=height[-1:, :])
    recovered = poisson_reintegrate(gx, gy)
    np.testing.assert_allclose(recovered - recovered.mean(), height - height.mean(), atol=1e-4)


def _mirrored_fft_reintegrate(gx, gy):
    """The textbook solver the DCT replaced: mirror the divergence to 2H x 2W and solve periodically by FFT."""
    height, width = gx.shape
    divergence = gx - np.pad(gx[:, :-1], ((0, 0), (1, 0))) + gy - np.pad(gy[:-1, :], ((1, 0), (0, 0)))
    mirrored = np.block([[divergence, divergence[:, ::-1]], [divergence[::-1, :], divergence[::-1, ::-1]]])
    spectrum = np.fft.fft2(mirrored)
    eigenvalues = (2 * np.cos(np.pi * np.arange(2 * height) / height) - 2)[:, None] + (
        2 * np.cos(np.pi * np.arange(2 * width) / width) - 2)[None, :]
    eigenvalues[0, 0] = 1
    spectrum /= eigenvalues
    spectrum[0, 0] = 0
    return np.fft.ifft2(spectrum).real[:height, :width]


def test_dct_reintegration_equals_the_mirrored_fft_with_a_quarter_of_the_memory():
    rng = np.random.default_rng(1)
    gx, gy = rng.standard_normal((2, 120, 160))
    tracemalloc.start()
    recovered = poisson_reintegrate(gx, gy)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(recovered, _mirrored_fft_reintegrate(gx, gy), atol=1e-4)
    # The mirrored FFT peaked at ~19x one gradient array's bytes (2H x 2W copies); the DCT works in place of H x W.
    assert peak < 8 * gx.nbytes


def test_attenuation_only_shrinks_steep_gradients():
    gx = np.array([[0.01, 0.01, 1.0]])
    gy = np.zeros_like(gx)
    small, _ = attenuate(gx, gy, power=0.3)
    assert small[0, 0] == pytest.approx(0.01) and small[0, 2] < 0.1
    unchanged, _ = attenuate(gx, gy, power=1.0)
    np.testing.assert_allclose(unchanged, gx)


def test_gradient_method_keeps_far_detail():
    # A near box in front of a far wall with fine ripples: linear heights spend the range on the box's step.
    v, u = np.mgrid[0:64, 0:64]
    depth = (10 + 0.05 * np.sin(u / 1.5)).astype(np.float32)
    depth[20:44, 20:44] = 2.0
    ripple = (slice(0, 10), slice(0, 64))

    def ripple_amplitude(method):
        heights = relief_heights(depth, method, gamma=0.5, gradient_power=0.3, max_step_ratio=0.05)
        return np.ptp(heights[ripple])

    assert ripple_amplitude("gradient") > 10 * ripple_amplitude("linear")


def test_height_map_encoding_and_blender_settings():
    relief = ReliefOptions(method="linear", depth=4.0, width=50.0)
    height_map = relief_height_map(sphere_on_wall(), options=ReconOptions(relief=relief))
    assert height_map.height.dtype == np.float32 and height_map.height.shape == (48, 64)
    assert height_map.height.min() == 0.0 and height_map.height.max() == 1.0
    assert height_map.height[24, 32] == 1.0  # the sphere's centre is the nearest point
    displace = height_map.metadata["blender_displace"]
    assert displace["strength"] == 4.0 and displace["midlevel"] == 0.0 and displace["plane_width"] == 50.0
