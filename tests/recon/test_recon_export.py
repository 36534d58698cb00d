"""Exported files re-read by independent readers give the same counts and attributes."""

import json

import numpy as np
import open3d as o3d
import OpenEXR
import pygltflib
import pytest
import trimesh
from PIL import Image

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.recon import ReconOptions, reconstruct, relief_height_map, write_outputs
from tests.recon.scenes import sphere_on_wall


@pytest.fixture(scope="module")
def mesh():
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return reconstruct(sphere_on_wall(), image_rgb=image, options=ReconOptions(focal_px=60))


@pytest.fixture(scope="module")
def written(mesh, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    paths = write_outputs(mesh, out, "scene", formats=("ply", "glb", "obj"), height_map=relief_height_map(sphere_on_wall()))
    return out, paths


def test_output_names(written):
    out, paths = written
    names = [path.name for path in paths]
    assert names == ["scene_mesh.ply", "scene_mesh.glb", "scene_mesh.obj", "scene_mesh.json", "scene_height.exr",
                     "scene_height.png", "scene_height.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temporary files left behind


def _ply_header(path):
    data = path.read_bytes()
    return data[: data.index(b"end_header\n")].decode().splitlines()


def test_ply_is_binary_float32_and_open3d_reads_it_back(mesh, written):
    path = written[0] / "scene_mesh.ply"
    header = _ply_header(path)
    assert "format binary_little_endian 1.0" in header and "property float x" in header
    assert not any("double" in line for line in header)
    read = o3d.io.read_triangle_mesh(str(path))
    assert len(read.vertices) == len(mesh.vertices) and len(read.triangles) == len(mesh.faces)
    np.testing.assert_allclose(np.asarray(read.vertices), mesh.vertices, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(read.triangles), mesh.faces)
    np.testing.assert_allclose(np.asarray(read.vertex_normals), mesh.normals, atol=1e-6)
    np.testing.assert_allclose(np.asarray(read.vertex_colors), mesh.colors / 255, atol=1e-6)


def test_ply_uvs_read_by_trimesh(mesh, written):
    read = trimesh.load(written[0] / "scene_mesh.ply", process=False)
    assert read.vertices.shape == mesh.vertices.shape and read.faces.shape == mesh.faces.shape
    np.testing.assert_allclose(read.visual.uv, mesh.uvs, atol=1e-6)


def test_glb_is_valid_gltf_for_pygltflib_and_trimesh(mesh, written):
    path = written[0] / "scene_mesh.glb"
    gltf = pygltflib.GLTF2().load(str(path))
    primitive = gltf.meshes[0].primitives[0]
    accessors = gltf.accessors
    assert accessors[primitive.attributes.POSITION].count == len(mesh.vertices)
    assert accessors[primitive.indices].count == mesh.faces.size
    for name in ("NORMAL", "COLOR_0", "TEXCOORD_0"):
        assert accessors[getattr(primitive.attributes, name)].count == len(mesh.vertices)
    for view in gltf.bufferViews:
        assert view.byteOffset % 4 == 0
    assert sum(view.byteLength for view in gltf.bufferViews) <= gltf.buffers[0].byteLength

    def attribute(index, dtype, columns):
        view = gltf.bufferViews[accessors[index].bufferView]
        data = gltf.binary_blob()[view.byteOffset : view.byteOffset + view.byteLength]
        return np.frombuffer(data, dtype).reshape(-1, columns)

    positions = attribute(primitive.attributes.POSITION, np.float32, 3)
    np.testing.assert_allclose(positions, mesh.vertices * [1, -1, -1])  # +Y up, -Z forward
    np.testing.assert_allclose(accessors[primitive.attributes.POSITION].max, positions.max(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(attribute(primitive.attributes.COLOR_0, np.uint8, 4)[:, :3], mesh.colors)

    scene = trimesh.load(path, process=False)
    loaded = next(iter(scene.geometry.values()))
    assert len(loaded.vertices) == len(mesh.vertices) and len(loaded.faces) == len(mesh.faces)
    np.testing.assert_array_equal(loaded.faces, mesh.faces)
    np.testing.assert_allclose(loaded.visual.uv, mesh.uvs, atol=1e-6)  # trimesh turns glTF's top-left origin back
    np.testing.assert_allclose(loaded.vertex_normals, mesh.normals * [1, -1, -1], atol=1e-6)


def test_obj_read_by_trimesh(mesh, written):
    loaded = trimesh.load(written[0] / "scene_mesh.obj", process=False)
    assert len(loaded.vertices) == len(mesh.vertices) and len(loaded.faces) == len(mesh.faces)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices * [1, -1, -1], rtol=1e-5, atol=1e-6)


def test_height_maps_round_trip(written):
    out = written[0]
    expected = relief_height_map(sphere_on_wall()).height
    exr = OpenEXR.File(str(out / "scene_height.exr"), separate_channels=True).channels()
    np.testing.assert_array_equal(exr["Y"].pixels, expected)
    png = Image.open(out / "scene_height.png")
    assert png.mode.startswith("I;16")
    np.testing.assert_allclose(np.asarray(png) / 65535, expected, atol=1 / 65535)


def test_sidecar_records_camera_range_and_frames(mesh, written):
    sidecar = json.loads((written[0] / "scene_mesh.json").read_text())
    assert sidecar["counts"] == {"vertices": len(mesh.vertices), "faces": len(mesh.faces)}
    assert sidecar["mesh"]["camera"]["fx"] == 60 and sidecar["mesh"]["camera"]["source"] == "focal_px"
    assert sidecar["mesh"]["depth_range"]["far_near_ratio"] == pytest.approx(10)
    assert sidecar["file_frames"] == {"ply": "opencv", "glb": "y_up", "obj": "y_up"}
    assert "height_map" not in sidecar  # the height maps have their own sidecar
    height_sidecar = json.loads((written[0] / "scene_height.json").read_text())
    assert height_sidecar["files"] == {"exr": "scene_height.exr", "png": "scene_height.png"}
    assert height_sidecar["height_map"]["blender_displace"]["midlevel"] == 0.0


def test_relief_files_are_named_relief(tmp_path):
    mesh = reconstruct(sphere_on_wall(12, 16), options=ReconOptions(mode="relief"))
    names = [p.name for p in write_outputs(mesh, tmp_path, "s", formats=("ply",), preview=True)]
    assert names == ["s_relief.ply", "s_relief_preview.png", "s_relief.json"]


def test_failed_writes_leave_nothing(mesh, tmp_path):
    with pytest.raises(BetterDepthError) as error:
        write_outputs(mesh, tmp_path, "scene", formats=("ply", "stl"))
    assert error.value.code == BetterDepthError.BAD_INPUT
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output folder should be")
    with pytest.raises(BetterDepthError) as error:
        write_outputs(mesh, blocked, "scene", formats=("ply", "glb"))
    assert error.value.code == BetterDepthError.OUTPUT_ERROR
    assert [p.name for p in tmp_path.iterdir()] == ["blocked"]
