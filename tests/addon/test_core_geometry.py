"""The add-on's bpy-free geometry: frame conversion, mesh buffers from the engine's own mesh files, cameras."""

from __future__ import annotations

import numpy as np
import pytest

from betterdepth_engine.recon import ReconOptions, reconstruct
from betterdepth_engine.recon.camera import BlenderCamera, intrinsics_from_blender
from blender_addon.core.camera import CameraParams, params_from_intrinsics
from blender_addon.core.frames import opencv_to_blender_camera
from blender_addon.core.mesh_arrays import MeshFileError, grid_plane, load_mesh_npz, mesh_buffers


def _face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    return np.cross(b - a, c - a)


def _engine_mesh(tmp_path, **options):
    """A real engine mesh (a tilted plane with a step), saved the way the service saves mesh.npz."""
    y, x = np.mgrid[0:24, 0:32].astype(np.float32)
    disparity = 1.0 + 0.02 * x + np.where(x > 20, 1.0, 0.0)
    mesh = reconstruct(disparity, "disparity", options=ReconOptions(colors="normal", **options))
    path = tmp_path / "mesh.npz"
    np.savez(path, vertices=mesh.vertices, triangles=mesh.faces, normals=mesh.normals, colors=mesh.colors,
             uvs=mesh.uvs)
    return mesh, path


def test_opencv_to_blender_camera_flips_y_and_z():
    points = np.float32([[1, 2, 3], [-1, -2, 5]])
    assert np.array_equal(opencv_to_blender_camera(points), np.float32([[1, -2, -3], [-1, 2, -5]]))


def test_engine_mesh_faces_the_blender_camera(tmp_path):
    """Triangles the engine winds towards its camera still face the camera (+Z in Blender's camera frame)."""
    _, path = _engine_mesh(tmp_path)
    buffers = mesh_buffers(load_mesh_npz(path))
    vertices = buffers.vertices.reshape(-1, 3)
    normals = _face_normals(vertices, buffers.loop_vertex_indices.reshape(-1, 3))
    assert (normals[:, 2] > 0).all()
    assert (vertices[:, 2] < 0).all()  # in front of a camera that looks down -Z


def test_mesh_buffers_match_the_engine_arrays(tmp_path):
    mesh, path = _engine_mesh(tmp_path)
    buffers = mesh_buffers(load_mesh_npz(path))
    assert buffers.vertex_count == len(mesh.vertices) and buffers.triangle_count == len(mesh.faces)
    assert np.array_equal(buffers.loop_starts, 3 * np.arange(len(mesh.faces)))
    loop_uvs = buffers.loop_uvs.reshape(-1, 2)
    assert np.array_equal(loop_uvs, mesh.uvs[mesh.faces.ravel()])
    colors = buffers.vertex_colors.reshape(-1, 4)
    assert np.allclose(colors[:, :3] * 255, mesh.colors) and (colors[:, 3] == 1).all()
    # The normal colours are 0.5 n + 0.5 of the normals in the Blender camera frame.
    assert np.abs(colors[:, :3] - (0.5 * buffers.normals + 0.5)).max() <= 1 / 255 + 1e-6


def test_mesh_file_errors_say_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, vertices=np.zeros((4, 3), np.float32), triangles=np.int32([[0, 1, 9]]),
             normals=np.zeros((4, 3), np.float32), colors=np.zeros((4, 3), np.uint8), uvs=np.zeros((4, 2), np.float32))
    with pytest.raises(MeshFileError, match="index vertices that do not exist"):
        load_mesh_npz(bad)
    np.savez(bad, vertices=np.zeros((4, 3), np.float32))
    with pytest.raises(MeshFileError, match="lacks colors, normals, triangles, uvs"):
        load_mesh_npz(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(MeshFileError, match="Cannot read"):
        load_mesh_npz(tmp_path / "junk.npz")


def test_grid_plane_faces_up_with_uvs_over_the_image():
    plane = grid_plane(5, 3, 4.0, 2.0)
    buffers = mesh_buffers(plane)
    vertices = buffers.vertices.reshape(-1, 3)
    assert np.allclose(vertices.min(0), [-2, -1, 0]) and np.allclose(vertices.max(0), [2, 1, 0])
    assert (_face_normals(vertices, plane["triangles"])[:, 2] > 0).all()
    # UV (0, 1) is the image's top-left corner, which lies at -X, +Y (top of the plane seen from above).
    top_left = np.flatnonzero(np.all(plane["uvs"] == [0, 1], axis=1))[0]
    assert np.allclose(vertices[top_left], [-2, 1, 0])


@pytest.mark.parametrize("size, fx, fy, cx, cy", [
    ((640, 480), 500.0, 500.0, 319.5, 239.5),
    ((300, 500), 420.0, 420.0, 140.25, 260.0),  # portrait, off-centre principal point
    ((320, 200), 400.0, 300.0, 170.0, 90.0),  # non-square pixels (fx > fy)
    ((320, 200), 300.0, 400.0, 150.0, 110.0),  # non-square pixels (fx < fy)
])
def test_params_from_intrinsics_reproduce_the_engine_camera(size, fx, fy, cx, cy):
    """A Blender camera made for a photo has exactly the engine's intrinsics under Blender's view-plane rules."""
    width, height = size
    params = params_from_intrinsics({"width": width, "height": height, "fx": fx, "fy": fy, "cx": cx, "cy": cy})
    assert params.pixel_aspect_x >= 1 and params.pixel_aspect_y >= 1  # Blender's range
    intrinsics = intrinsics_from_blender(width, height, BlenderCamera(**params.to_request()))
    assert np.allclose([intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy], [fx, fy, cx, cy])


def test_camera_params_request_is_what_the_engine_accepts():
    params = CameraParams(lens_mm=35, sensor_fit="VERTICAL", shift_x=0.1, pixel_aspect_y=2)
    assert BlenderCamera(**params.to_request()) == BlenderCamera(35.0, 36.0, 24.0, "VERTICAL", 1.0, 2.0, 0.1, 0.0)
    with pytest.raises(ValueError, match="sensor fit"):
        CameraParams(sensor_fit="DIAGONAL")
