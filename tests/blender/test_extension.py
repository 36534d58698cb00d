"""The extension in real Blender (bpy wheel) against a real engine: every operator, camera exactness, errors.

Each operator runs through its synchronous path (background mode: timers never fire), exactly as
`blender -b` and the batch script run it.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import threading
import time
import zlib

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from .conftest import MODULE, vertex_pixels

SLOW_ESTIMATE = {"ensemble_size": 12, "processing_resolution": 512}  # seconds of work, to cancel or kill mid-job


def _camera_scene(scene):
    """Objects seen by a camera with vertical sensor fit, lens shift and non-square pixels, a 96 x 64 render."""
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 96, 64, 100
    render.pixel_aspect_x, render.pixel_aspect_y = 1.0, 1.25
    bpy.ops.mesh.primitive_plane_add(size=20)
    bpy.ops.mesh.primitive_cube_add(location=(-1.0, 0.5, 0.8), rotation=(0.3, 0.2, 0.6))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.9, location=(1.3, 1.5, 0.9))
    camera = bpy.data.cameras.new("shot")
    camera.lens, camera.sensor_fit, camera.sensor_width, camera.sensor_height = 28.0, "VERTICAL", 30.0, 20.0
    camera.shift_x, camera.shift_y = 0.08, -0.05
    obj = bpy.data.objects.new("shot", camera)
    scene.collection.objects.link(obj)
    obj.location, obj.rotation_euler = (0.3, -6.5, 2.2), (math.radians(75), 0.0, math.radians(2))
    scene.camera = obj
    bpy.context.view_layer.update()
    return obj


def _snapshot() -> dict:
    kinds = ("objects", "meshes", "cameras", "materials", "images", "textures")
    return {kind: sorted(block.name for block in getattr(bpy.data, kind)) for kind in kinds}


def _projection_error(obj, camera, scene, pixel_centres: bool = True) -> float:
    """Largest distance (pixels) between a vertex projected through the Blender camera and its pixel's centre
    (pixel_centres) or the image position its UV names (decimated meshes: vertices move off the grid)."""
    width, height = scene.render.resolution_x, scene.render.resolution_y
    world, uvs = vertex_pixels(obj)
    pixel = np.stack((uvs[:, 0] * width - 0.5, (1 - uvs[:, 1]) * height - 0.5), 1)
    if pixel_centres:
        assert np.abs(pixel - np.round(pixel)).max() < 1e-3  # one vertex per pixel centre
        pixel = np.round(pixel)
    projected = np.array([world_to_camera_view(scene, camera, Vector(point)) for point in world])
    assert (projected[:, 2] > 0).all()  # in front of the camera
    seen = np.stack((projected[:, 0] * width - 0.5, (1 - projected[:, 1]) * height - 0.5), 1)
    return float(np.abs(seen - pixel).max())


def _new_objects(before: dict) -> list:
    return [obj for obj in bpy.data.objects if obj.name not in before["objects"]]


def _parameters(obj) -> dict:
    return json.loads(obj["betterdepth"])


def test_camera_render_mesh_projects_onto_its_pixels(scene):
    """The key promise: from a camera render, every vertex lands within 0.01 px of its pixel's centre."""
    camera = _camera_scene(scene)
    before = _snapshot()
    assert bpy.ops.betterdepth.create_mesh(source="CAMERA") == {"FINISHED"}
    (obj,) = _new_objects(before)
    assert obj.type == "MESH" and scene.camera == camera and len(bpy.data.cameras) == 1
    parameters = _parameters(obj)
    assert parameters["request"]["mesh"]["blender_camera"]["sensor_fit"] == "VERTICAL"
    assert parameters["engine"]["mesh"]["camera"]["source"] == "blender_camera"
    assert len(obj.data.vertices) == parameters["engine"]["mesh"]["counts"]["vertices"] > 96 * 64 // 2
    assert len(obj.data.polygons) == parameters["engine"]["mesh"]["counts"]["faces"]
    assert not obj.data.validate()  # True would mean Blender had to repair the mesh
    assert _projection_error(obj, camera, scene) < 0.01
    # The check is sharp: ignoring the lens shift (as the common formula does) misses by pixels.
    camera.data.shift_x = 0.0
    assert _projection_error(obj, camera, scene) > 1.0
    camera.data.shift_x = 0.08

    colors = obj.data.color_attributes["normal_color"]
    assert colors.domain == "POINT" and colors.data_type == "BYTE_COLOR"
    rgba = np.empty(4 * len(colors.data), np.float32)
    colors.data.foreach_get("color_srgb", rgba)  # the engine's bytes, exactly
    engine_normals = 2 * rgba.reshape(-1, 4)[:, :3] - 1  # the normal colours, decoded
    blender_normals = np.empty(3 * len(obj.data.vertices), np.float32)
    obj.data.vertices.foreach_get("normal", blender_normals)
    agreement = np.sum(engine_normals * blender_normals.reshape(-1, 3), 1) / np.linalg.norm(engine_normals, axis=1)
    assert np.median(agreement) > 0.98  # the colours are the normals Blender computes for the same surface

    material = obj.active_material
    texture = next(node for node in material.node_tree.nodes if node.type == "TEX_IMAGE")
    assert tuple(texture.image.size) == (96, 64) and texture.image.packed_file is not None


def test_photo_mesh_gets_a_matching_camera(scene, photo_path):
    before = _snapshot()
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path), fov_deg=60) == {"FINISHED"}
    created = _new_objects(before)
    (obj,) = [o for o in created if o.type == "MESH"]
    (camera,) = [o for o in created if o.type == "CAMERA"]
    assert scene.camera == camera and (scene.render.resolution_x, scene.render.resolution_y) == (75, 50)
    assert _projection_error(obj, camera, scene) < 0.01
    assert _parameters(obj)["engine"]["mesh"]["camera"]["source"] == "fov"
    image = next(node for node in obj.active_material.node_tree.nodes if node.type == "TEX_IMAGE").image
    assert bpy.path.abspath(image.filepath) == str(photo_path)


def test_decimated_mesh_keeps_its_uvs_on_the_camera_image(scene):
    camera = _camera_scene(scene)
    before = _snapshot()
    assert bpy.ops.betterdepth.create_mesh(source="CAMERA", max_faces=1500) == {"FINISHED"}
    (obj,) = _new_objects(before)
    assert 500 < len(obj.data.polygons) <= 1500
    assert _parameters(obj)["engine"]["mesh"]["decimation"]["max_faces"] == 1500
    assert _projection_error(obj, camera, scene, pixel_centres=False) < 0.01


def test_unsaved_image_is_sent_as_a_copy(scene):
    """A generated (never saved) image works as input; the user's image is left as it was."""
    image = bpy.data.images.new("painted", 64, 48)
    pixels = np.ones((48, 64, 4), np.float32)
    pixels[:, :32, :3] = np.linspace(0, 1, 32)[None, :, None]
    image.pixels.foreach_set(pixels.ravel())
    assert bpy.ops.betterdepth.estimate_depth(source="IMAGE", image_name="painted") == {"FINISHED"}
    assert tuple(bpy.data.images["painted depth"].size) == (64, 48)
    assert image.filepath == "" and image.source == "GENERATED" and len(bpy.data.images) == 3


def _with_exif_orientation(png: bytes, orientation: int) -> bytes:
    """The PNG with its EXIF replaced by just the orientation tag (what phones write for portrait photos)."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">HHHIHHI", 1, 0x0112, 3, 1, orientation, 0, 0)
    exif = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    chunks, offset = [], 8  # after the signature: length, type, data, CRC
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset:offset + 4])
        kind, end = png[offset + 4:offset + 8], offset + 12 + length
        if kind != b"eXIf":  # Blender writes its own (resolution only)
            chunks.append(png[offset:end])
        if kind == b"IHDR":
            chunks.append(exif)
        offset = end
    return png[:8] + b"".join(chunks)


def test_rotated_phone_photo_keeps_its_texture_on_the_mesh(scene, photo_path, tmp_path):
    """EXIF orientation 6 (portrait): the engine turns the photo; the texture must turn the same way."""
    rotated = tmp_path / "portrait.png"
    rotated.write_bytes(_with_exif_orientation(photo_path.read_bytes(), 6))
    before = _snapshot()
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(rotated)) == {"FINISHED"}
    created = _new_objects(before)
    (obj,) = [o for o in created if o.type == "MESH"]
    (camera,) = [o for o in created if o.type == "CAMERA"]
    assert (scene.render.resolution_x, scene.render.resolution_y) == (50, 75)  # portrait, as the camera saw it
    assert _projection_error(obj, camera, scene) < 0.01
    texture = next(node for node in obj.active_material.node_tree.nodes if node.type == "TEX_IMAGE").image
    assert tuple(texture.size) == (50, 75)
    original = bpy.data.images.load(str(photo_path))
    stored = np.empty(75 * 50 * 4, np.float32)
    original.pixels.foreach_get(stored)
    turned = np.empty(75 * 50 * 4, np.float32)
    texture.pixels.foreach_get(turned)
    top_down = stored.reshape(50, 75, 4)[::-1]
    assert np.allclose(turned.reshape(75, 50, 4)[::-1], np.rot90(top_down, -1), atol=1 / 255)


def test_exr_photo_is_sent_as_a_png_copy(scene, photo_path, tmp_path):
    """Formats the engine cannot read (EXR) but Blender can go through Blender; the label stays the file's."""
    photo = bpy.data.images.load(str(photo_path))
    pixels = np.empty(75 * 50 * 4, np.float32)
    photo.pixels.foreach_get(pixels)
    hdr = bpy.data.images.new("hdr", 75, 50, float_buffer=True)
    hdr.pixels.foreach_set(pixels ** 2.2)  # roughly linear light, as an HDR photo holds it
    exr = tmp_path / "hdr_photo.exr"
    hdr.filepath_raw, hdr.file_format = str(exr), "OPEN_EXR"
    hdr.save()
    bpy.data.images.remove(hdr)
    assert bpy.ops.betterdepth.estimate_depth(source="FILE", filepath=str(exr)) == {"FINISHED"}
    assert tuple(bpy.data.images["hdr_photo depth"].size) == (75, 50)
    before = _snapshot()
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(exr)) == {"FINISHED"}
    (mesh,) = [obj for obj in _new_objects(before) if obj.type == "MESH"]
    texture = next(node for node in mesh.active_material.node_tree.nodes if node.type == "TEX_IMAGE").image
    assert texture.packed_file is not None and tuple(texture.size) == (75, 50)  # the copy's folder is gone


def test_estimate_depth_makes_float_non_color_images(scene, photo_path):
    image = bpy.data.images.load(str(photo_path))
    assert bpy.ops.betterdepth.estimate_depth(source="IMAGE", image_name=image.name) == {"FINISHED"}
    depth, base = (bpy.data.images[f"{image.name.rsplit('.', 1)[0]} {kind}"] for kind in ("depth", "base"))
    for result in (depth, base):
        assert tuple(result.size) == (75, 50) and result.is_float and result.colorspace_settings.name == "Non-Color"
        pixels = np.empty(4 * 75 * 50, np.float32)
        result.pixels.foreach_get(pixels)
        gray = pixels.reshape(-1, 4)[:, 0]
        assert gray.min() == pytest.approx(0, abs=1e-6) and gray.max() == pytest.approx(1, abs=1e-6)
    parameters = json.loads(depth["betterdepth"])
    assert parameters["request"]["estimate"]["base"] == "default" and parameters["source"] == "IMAGE"


def test_create_mesh_after_estimate_reuses_the_depth(scene, photo_path, addon):
    assert bpy.ops.betterdepth.estimate_depth(source="FILE", filepath=str(photo_path)) == {"FINISHED"}
    estimate_job = json.loads(bpy.data.images[f"{photo_path.stem} depth"]["betterdepth"])["engine_job"]
    before = _snapshot()
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path)) == {"FINISHED"}
    (obj,) = [o for o in _new_objects(before) if o.type == "MESH"]
    assert _parameters(obj)["engine"]["reused_from"] == estimate_job  # no model run
    before = _snapshot()
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path), reuse_depth=False) == {
        "FINISHED"}
    (fresh,) = [o for o in _new_objects(before) if o.type == "MESH"]
    assert _parameters(fresh)["engine"]["reused_from"] is None
    # The engine forgot the latest job on this photo (restart, retention): the next one sends the image again.
    addon.engine.connect(addon.engine.settings()).delete(_parameters(fresh)["engine_job"])
    before = _snapshot()
    assert bpy.ops.betterdepth.create_relief(source="FILE", filepath=str(photo_path)) == {"FINISHED"}
    (relief,) = _new_objects(before)
    assert _parameters(relief)["engine"]["reused_from"] is None


def test_relief_is_a_solid_on_the_ground(scene, photo_path):
    before = _snapshot()
    result = bpy.ops.betterdepth.create_relief(source="FILE", filepath=str(photo_path), width=2.0, depth=0.2,
                                                base=0.05)
    assert result == {"FINISHED"}
    (obj,) = _new_objects(before)
    world, _ = vertex_pixels(obj)
    assert world[:, 0].max() - world[:, 0].min() == pytest.approx(2.0 * 74 / 75, rel=1e-3)
    assert world[:, 2].min() == pytest.approx(-0.05, abs=1e-5) and 0.1 < world[:, 2].max() <= 0.2 + 1e-5
    # Closed: every edge is shared by exactly two triangles.
    edges = np.sort(np.array([edge for polygon in obj.data.polygons for edge in polygon.edge_keys]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()


def test_displacement_plane_follows_the_height_map(scene, photo_path):
    before = _snapshot()
    result = bpy.ops.betterdepth.displacement(source="FILE", filepath=str(photo_path), width=3.0, depth=0.25,
                                               subdivisions=60)
    assert result == {"FINISHED"}
    (obj,) = _new_objects(before)
    assert len(obj.data.vertices) == 60 * 40
    (modifier,) = obj.modifiers
    assert modifier.type == "DISPLACE" and modifier.texture_coords == "UV" and modifier.mid_level == 0
    assert modifier.strength == pytest.approx(0.25)  # the engine's strength for a plane as wide as the relief
    height = modifier.texture.image
    assert height.is_float and height.colorspace_settings.name == "Non-Color" and height.packed_file is not None
    assert tuple(height.size) == (75, 50)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
    z = np.empty(3 * len(evaluated.vertices), np.float32)
    evaluated.vertices.foreach_get("co", z)
    z = z.reshape(-1, 3)[:, 2]
    assert z.min() >= -1e-4 and 0.15 < z.max() <= 0.25 + 1e-4  # heights 0..1 displaced by up to `depth`


def test_displacement_in_the_material_for_cycles(scene, photo_path):
    before = _snapshot()
    result = bpy.ops.betterdepth.displacement(source="FILE", filepath=str(photo_path), width=3.0, depth=0.25,
                                               subdivisions=30, method="MATERIAL")
    assert result == {"FINISHED"}
    (obj,) = _new_objects(before)
    (modifier,) = obj.modifiers
    assert modifier.type == "SUBSURF" and modifier.subdivision_type == "SIMPLE"
    if bpy.app.version >= (5, 0, 0):  # where each Blender keeps adaptive subdivision
        assert modifier.use_adaptive_subdivision
    else:
        assert obj.cycles.use_adaptive_subdivision
    material = obj.active_material
    assert material.displacement_method == "DISPLACEMENT"
    output = next(node for node in material.node_tree.nodes if node.type == "OUTPUT_MATERIAL")
    displacement = output.inputs["Displacement"].links[0].from_node
    assert displacement.type == "DISPLACEMENT"
    assert displacement.inputs["Scale"].default_value == pytest.approx(0.25)
    assert displacement.inputs["Midlevel"].default_value == 0
    height = displacement.inputs["Height"].links[0].from_node.image
    assert height.is_float and height.colorspace_settings.name == "Non-Color" and tuple(height.size) == (75, 50)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_engine_down_wrong_token_bad_image_leave_the_scene_unchanged(scene, prefs, photo_path, addon, tmp_path):
    before = _snapshot()
    prefs.engine_mode, prefs.url, prefs.token = "EXTERNAL", f"http://127.0.0.1:{_closed_port()}", "x"
    with pytest.raises(RuntimeError, match="Cannot reach the engine"):
        bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path))
    managed = addon.engine.start_managed(addon.engine.settings())
    prefs.url, prefs.token = managed.url, "not-the-token"
    with pytest.raises(RuntimeError, match="(?i)token"):
        bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path))
    prefs.engine_mode = "MANAGED"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a JPEG")
    with pytest.raises(RuntimeError, match="(?i)image"):
        bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(broken))
    with pytest.raises(RuntimeError, match="No image file at"):
        bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(tmp_path / "missing.jpg"))
    assert _snapshot() == before


def _when_running(addon, action) -> threading.Thread:
    """Call action() on another thread as soon as the add-on's job runs on the engine."""
    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = addon.operators.ActiveJob.job
            if job is not None and job.progress.state.value == "running":
                action(job)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_cancel_stops_the_engine_job_and_leaves_the_scene_unchanged(scene, prefs, photo_path, addon):
    prefs.ensemble_size, prefs.processing_resolution = SLOW_ESTIMATE["ensemble_size"], SLOW_ESTIMATE[
        "processing_resolution"]
    before = _snapshot()
    cancelled = []
    watcher = _when_running(addon, lambda job: (cancelled.append(job), job.cancel()))
    try:
        with pytest.raises(RuntimeError, match="cancelled"):
            bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path))
    finally:
        prefs.ensemble_size, prefs.processing_resolution = 1, 0
    watcher.join(5)
    (job,) = cancelled
    assert job.client.status(job.job_id)["state"] == "cancelled"
    assert _snapshot() == before


def test_engine_killed_mid_job_is_reported_and_restarted(scene, prefs, photo_path, addon):
    prefs.ensemble_size, prefs.processing_resolution = SLOW_ESTIMATE["ensemble_size"], SLOW_ESTIMATE[
        "processing_resolution"]
    before = _snapshot()
    killed = []
    watcher = _when_running(addon, lambda job: (killed.append(addon.engine._managed.process.pid),
                                                addon.engine._managed.process.kill()))
    try:
        with pytest.raises(RuntimeError, match="The managed engine stopped during the job.*engine.log"):
            bpy.ops.betterdepth.estimate_depth(source="FILE", filepath=str(photo_path))
    finally:
        prefs.ensemble_size, prefs.processing_resolution = 1, 0
    watcher.join(5)
    assert killed and _snapshot() == before
    # The next job starts a fresh managed engine by itself.
    assert bpy.ops.betterdepth.estimate_depth(source="FILE", filepath=str(photo_path)) == {"FINISHED"}
    assert addon.engine._managed.process.pid != killed[0]


def test_check_setup_and_engine_box(scene, prefs, addon, photo_path):
    assert bpy.ops.betterdepth.check_setup() == {"FINISHED"}
    assert bpy.ops.betterdepth.engine_start() == {"FINISHED"}
    assert bpy.ops.betterdepth.estimate_depth(source="FILE", filepath=str(photo_path)) == {"FINISHED"}
    assert bpy.ops.betterdepth.engine_status() == {"FINISHED"}
    health = addon.operators.EngineStatus.health
    assert health["protocol"] == "1" and health["device"] == "cpu"
    assert {model["kind"] for model in health["loaded_models"]} == {"base", "refiner"}
    assert bpy.ops.betterdepth.release_memory() == {"FINISHED"}
    assert bpy.ops.betterdepth.engine_status() == {"FINISHED"}
    assert addon.operators.EngineStatus.health["loaded_models"] == []  # released, the engine still up
    assert addon.engine.managed_running()
    managed = addon.engine.start_managed(addon.engine.settings())
    prefs.engine_mode, prefs.url, prefs.token = "EXTERNAL", managed.url, managed.token
    assert bpy.ops.betterdepth.estimate_depth(source="FILE", filepath=str(photo_path)) == {"FINISHED"}
    prefs.token = "wrong"
    with pytest.raises(RuntimeError, match="(?i)token"):  # the check asks the engine itself
        bpy.ops.betterdepth.check_setup()
    prefs.token = managed.token
    assert bpy.ops.betterdepth.check_setup() == {"FINISHED"}
    # A Python without the engine: the managed engine cannot start, and the job says so with its log.
    prefs.engine_mode, prefs.engine_python = "MANAGED", "/usr/bin/python3"
    assert bpy.ops.betterdepth.engine_stop() == {"FINISHED"} and not addon.engine.managed_running()
    before = _snapshot()
    try:
        with pytest.raises(RuntimeError, match="The engine did not start.*engine.stderr.log"):
            bpy.ops.betterdepth.estimate_depth(source="FILE", filepath=str(photo_path))
    finally:
        from .conftest import ENGINE_PYTHON

        prefs.engine_python = ENGINE_PYTHON
    assert _snapshot() == before
    prefs.engine_python = "/nonexistent/python"
    try:
        with pytest.raises(RuntimeError, match="Engine Python preference names a missing file"):
            bpy.ops.betterdepth.check_setup()
    finally:
        from .conftest import ENGINE_PYTHON

        prefs.engine_python = ENGINE_PYTHON
    assert MODULE in bpy.context.preferences.addons


def test_sidebar_inputs_feed_the_job_buttons(scene, photo_path):
    """The panel passes the scene's input choice to the buttons; the same options run a job."""
    inputs = scene.betterdepth_inputs
    inputs.source, inputs.filepath = "FILE", str(photo_path)
    inputs.image = bpy.data.images.new("ignored for FILE", 8, 8)
    options = inputs.operator_options()
    assert options == {"source": "FILE", "filepath": str(photo_path), "image_name": ""}
    assert bpy.ops.betterdepth.estimate_depth(**options) == {"FINISHED"}
    inputs.source = "IMAGE"
    assert inputs.operator_options() == {"source": "IMAGE", "filepath": "", "image_name": "ignored for FILE"}


def test_panel_drawing_uses_what_this_blender_has(addon):
    """The panels cannot be drawn without a window; check the UI names they use against this Blender's API."""
    import inspect
    import re

    icons = set(bpy.types.UILayout.bl_rna.functions["operator"].parameters["icon"].enum_items.keys())
    source = "".join(inspect.getsource(module) for module in (addon.panels, addon.preferences))
    used = set(re.findall(r'icon="([A-Z_0-9]+)"', source)) | set(re.findall(r'\("\w+", "([A-Z_0-9]+)"\)', source))
    assert used and used <= icons, sorted(used - icons)
    progress = bpy.types.UILayout.bl_rna.functions["progress"].parameters
    assert {"factor", "type", "text"} <= set(progress.keys())
    assert "BAR" in progress["type"].enum_items.keys()
