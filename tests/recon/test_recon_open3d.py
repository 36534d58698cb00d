"""Open3D as the Python API's 3D library: MeshArrays <-> open3d.t.geometry.TriangleMesh, point-cloud outputs,
normals after decimation and the relief solid's check."""

from __future__ import annotations

import json

import numpy as np
import open3d as o3d
import pytest

from betterdepth_engine import cli
from betterdepth_engine.recon import MeshArrays, ReconOptions, reconstruct, write_outputs
from tests.recon.scenes import sphere_on_wall


@pytest.fixture(scope="module")
def mesh():
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return reconstruct(sphere_on_wall(), image_rgb=rgb, options=ReconOptions(focal_px=60))


def test_to_open3d_carries_every_attribute(mesh):
    converted = mesh.to_open3d()
    assert isinstance(converted, o3d.t.geometry.TriangleMesh)
    np.testing.assert_array_equal(converted.vertex.positions.numpy(), mesh.vertices)
    np.testing.assert_array_equal(converted.vertex.normals.numpy(), mesh.normals)
    np.testing.assert_array_equal(np.rint(converted.vertex.colors.numpy() * 255), mesh.colors)
    np.testing.assert_array_equal(converted.triangle.indices.numpy(), mesh.faces)
    np.testing.assert_array_equal(converted.triangle.texture_uvs.numpy(), mesh.uvs[mesh.faces])


def test_open3d_round_trip_is_exact(mesh):
    back = MeshArrays.from_open3d(mesh.to_open3d(), mesh.metadata)
    for name in ("vertices", "faces", "normals", "colors", "uvs"):
        np.testing.assert_array_equal(getattr(back, name), getattr(mesh, name), err_msg=name)
    assert back.metadata == mesh.metadata


def test_from_a_legacy_open3d_mesh_computes_what_is_missing():
    legacy = o3d.geometry.TriangleMesh.create_sphere(radius=1.0, resolution=8)
    converted = MeshArrays.from_open3d(legacy)
    assert len(converted.vertices) == len(legacy.vertices) and len(converted.faces) == len(legacy.triangles)
    outward = np.einsum("ij,ij->i", converted.normals, converted.vertices)
    assert (outward > 0).all()  # area-weighted normals of a sphere point outwards
    assert converted.colors.dtype == np.uint8 and not converted.uvs.any()


@pytest.mark.parametrize("fmt, name", [("pcd", "scene_mesh.pcd"), ("ply-points", "scene_mesh_points.ply")])
def test_point_cloud_outputs_read_back_by_open3d(mesh, tmp_path, fmt, name):
    write_outputs(mesh, tmp_path, "scene", formats=(fmt,))
    cloud = o3d.io.read_point_cloud(str(tmp_path / name))
    assert len(cloud.points) == len(mesh.vertices)
    np.testing.assert_allclose(np.asarray(cloud.points), mesh.vertices, atol=1e-6)
    np.testing.assert_allclose(np.asarray(cloud.normals), mesh.normals, atol=1e-6)
    np.testing.assert_allclose(np.asarray(cloud.colors) * 255, mesh.colors, atol=0.5)
    sidecar = json.loads((tmp_path / "scene_mesh.json").read_text())
    assert sidecar["files"] == {fmt: name} and sidecar["file_frames"] == {fmt: "opencv"}


def test_mesh_command_writes_a_point_cloud(tmp_path):
    np.save(tmp_path / "shot_disparity.npy", sphere_on_wall())
    assert cli.main(["mesh", str(tmp_path / "shot_disparity.npy"), "-o", str(tmp_path), "--format", "ply,pcd"]) == 0
    assert len(o3d.io.read_point_cloud(str(tmp_path / "shot_mesh.pcd")).normals) > 0


def test_decimated_normals_match_the_area_weighted_definition(mesh):
    decimated = reconstruct(sphere_on_wall(), options=ReconOptions(focal_px=60, max_faces=800))
    corners = decimated.vertices[decimated.faces].astype(np.float64)
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    expected = np.zeros_like(decimated.vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(expected, decimated.faces[:, k], face_normals)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(decimated.normals, expected, atol=1e-5)


def test_relief_solids_record_the_open3d_check():
    solid = reconstruct(sphere_on_wall(), options=ReconOptions(mode="relief", max_faces=1500))
    assert solid.metadata["solid"] == {"checked": True, "watertight": True, "closed": True,
                                       "vertex_manifold": True, "orientable": True}
    opened = reconstruct(sphere_on_wall(), options=ReconOptions(mode="mesh"))
    assert "solid" not in opened.metadata
