"""The artist and studio features in real Blender against a real engine: scene-aligned meshes from camera renders.

Each operator runs through its synchronous path (background mode), as `blender -b` and the batch script run it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import bpy
import numpy as np
import pytest
from mathutils import Vector

from .conftest import MODULE, vertex_pixels, write_frames


def _textured_scene(scene, width=128, height=96):
    """A floor with a colour grid, a box and a ball, seen obliquely by a camera with lens shift; the floor fills
    the view (no sky). Rendered by Workbench with the texture, shadows and cavity as depth cues."""
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    shading = scene.display.shading
    shading.light, shading.color_type = "STUDIO", "TEXTURE"
    shading.show_shadows, shading.show_cavity = True, True
    bpy.ops.mesh.primitive_plane_add(size=40)
    floor = bpy.context.active_object
    grid = bpy.data.images.new("grid", 1024, 1024)
    grid.generated_type = "COLOR_GRID"
    material = bpy.data.materials.new("grid")
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True  # 5.0: always on (and deprecated)
    texture = material.node_tree.nodes.new("ShaderNodeTexImage")
    texture.image = grid
    shader = material.node_tree.nodes["Principled BSDF"]
    material.node_tree.links.new(texture.outputs["Color"], shader.inputs["Base Color"])
    floor.data.materials.append(material)
    bpy.ops.mesh.primitive_cube_add(size=1.6, location=(-1.2, 1.0, 0.8), rotation=(0, 0, 0.5))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.9, location=(1.4, 2.5, 0.9))
    camera = bpy.data.cameras.new("shot")
    camera.lens, camera.shift_x = 35.0, 0.05
    obj = bpy.data.objects.new("shot", camera)
    scene.collection.objects.link(obj)
    obj.location, obj.rotation_euler = (0.0, -6.0, 4.0), (math.radians(58), 0.0, 0.0)
    scene.camera = obj
    bpy.context.view_layer.update()
    return obj


def _floor_scene(scene):
    """The simple scene the shipped models handle: a plain floor filling a 128 x 96 view at 35 degrees down."""
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 128, 96, 100
    shading = scene.display.shading
    shading.light, shading.color_type, shading.show_shadows = "STUDIO", "RANDOM", True  # as measured
    bpy.ops.mesh.primitive_plane_add(size=300)
    camera = bpy.data.cameras.new("shot")
    camera.lens, camera.shift_x = 30.0, 0.05
    obj = bpy.data.objects.new("shot", camera)
    scene.collection.objects.link(obj)
    obj.location, obj.rotation_euler = (0.0, -6.0, 1.8), (math.radians(55), 0.0, 0.0)
    scene.camera = obj
    bpy.context.view_layer.update()
    return obj


def _pixel_rays(scene, camera):
    """World ray directions through every pixel centre (rows top to bottom), from the camera's view frame
    (Blender's own sensor fit, shift and aspect rules; independent of the add-on's intrinsics)."""
    width, height = scene.render.resolution_x, scene.render.resolution_y
    top_right, bottom_right, bottom_left, top_left = camera.data.view_frame(scene=scene)
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    tl, tr, bl = (np.array(corner) for corner in (top_left, top_right, bottom_left))
    local = tl + u[None, :, None] * (tr - tl) + v[:, None, None] * (bl - tl)
    return local.reshape(-1, 3)


def _true_depth(scene, camera) -> np.ndarray:
    """Depth along the camera axis of the first surface at every pixel centre (H x W, NaN where nothing)."""
    width, height = scene.render.resolution_x, scene.render.resolution_y
    depsgraph = bpy.context.evaluated_depsgraph_get()
    matrix = camera.matrix_world
    depth = np.full(width * height, np.nan)
    for index, direction in enumerate(_pixel_rays(scene, camera)):
        hit, location, *_ = scene.ray_cast(depsgraph, matrix.translation,
                                           (matrix.to_3x3() @ Vector(direction)).normalized())
        if hit:
            depth[index] = -(matrix.inverted() @ location).z
    return depth.reshape(height, width)


def _vertex_depth_error(obj, camera, scene, truth: np.ndarray) -> np.ndarray:
    """Per vertex |depth - true depth at its pixel| / true depth (pixel read from its UV)."""
    world, uvs = vertex_pixels(obj)
    height, width = truth.shape
    columns = np.rint(uvs[:, 0] * width - 0.5).astype(int)
    rows = np.rint((1 - uvs[:, 1]) * height - 0.5).astype(int)
    to_camera = np.array(camera.matrix_world.inverted())
    local = world @ to_camera[:3, :3].T + to_camera[:3, 3]
    true = truth[rows, columns]
    return np.abs(-local[:, 2] - true) / true


def _new_mesh(before: set):
    (obj,) = [obj for obj in bpy.data.objects if obj.name not in before and obj.type == "MESH"]
    return obj


@pytest.fixture
def no_refiner(addon):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.refiner = "none"
    yield
    prefs.refiner = "default"


def test_scene_aligned_mesh_is_exact_with_the_true_disparity(scene, no_refiner, tmp_path):
    """The engine's depth replaced by the true disparity (External Depth, refiner off): after alignment every
    vertex lies on the scene's surface, although the engine lifted it with its own depth range."""
    camera = _textured_scene(scene, 96, 64)
    truth = _true_depth(scene, camera)
    assert np.isfinite(truth).all()
    np.save(tmp_path / "true_disparity.npy", (1.0 / truth).astype(np.float32))
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_mesh(source="CAMERA", base_prediction=str(tmp_path / "true_disparity.npy"),
                                          min_angle_deg=0.0) == {"FINISHED"}
    obj = _new_mesh(before)
    alignment = json.loads(obj["betterdepth"])["alignment"]
    assert alignment["median_relative_error"] < 1e-5 and alignment["unplaced_vertices"] == 0
    assert obj["betterdepth_alignment_error"] == alignment["median_relative_error"]
    assert len(obj.data.vertices) == 96 * 64
    assert _vertex_depth_error(obj, camera, scene, truth).max() < 1e-4
    # Without alignment the same mesh has the engine's arbitrary depth range.
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_mesh(source="CAMERA", base_prediction=str(tmp_path / "true_disparity.npy"),
                                          min_angle_deg=0.0, align_to_scene=False) == {"FINISHED"}
    assert np.median(_vertex_depth_error(_new_mesh(before), camera, scene, truth)) > 0.1


def test_scene_aligned_mesh_with_the_shipped_models(scene):
    """The shipped models on a simple rendered scene, aligned: median relative depth error about 2 %.

    The bar is about what the small shipped models reach: on this floor 2.03 % at their defaults, 1.90 % for
    the refiner's raw output (the guard, docs/results.md section 9, drops the small corrections that smooth
    the shipped base's own bumps; it keeps a blurry base's normals from crumpling), 1.8 % before the result was
    composed as base + correction (2.1-2.5 % at 60-65 degrees down); with a box and a ball on it 3.8 % (the
    shipped base exaggerates their relief). docs/architecture.md has the numbers."""
    camera = _floor_scene(scene)
    truth = _true_depth(scene, camera)
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_mesh(source="CAMERA") == {"FINISHED"}
    obj = _new_mesh(before)
    error = np.median(_vertex_depth_error(obj, camera, scene, truth))
    reported = json.loads(obj["betterdepth"])["alignment"]["median_relative_error"]
    print(f"median relative depth error: vertices {error:.4f}, reported {reported:.4f}")
    assert error < 0.021 and reported < 0.021
    assert abs(error - reported) < 0.01  # the reported residual is the mesh's


def test_alignment_without_geometry_in_view_warns_and_keeps_the_engine_depth(scene):
    camera = _textured_scene(scene, 48, 32)
    camera.rotation_euler = (math.radians(120), 0.0, 0.0)  # looking up at the sky
    bpy.context.view_layer.update()
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_mesh(source="CAMERA") == {"FINISHED"}
    obj = _new_mesh(before)
    assert "error" in json.loads(obj["betterdepth"])["alignment"]
    assert "betterdepth_alignment_error" not in obj


def _stored(obj) -> dict:
    return json.loads(obj["betterdepth"])


def _job_stages(addon, job_id: str) -> set[str]:
    """The stages the engine's log shows for a job (`job <id>: <stage>` lines)."""
    log = addon.engine.settings().log_path.read_text()
    return {line.split(f"job {job_id}: ", 1)[1].strip() for line in log.splitlines() if f"job {job_id}: " in line}


def test_provenance_survives_save_and_reload(scene, photo_path, tmp_path):
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path), fov_deg=60) == {"FINISHED"}
    obj = _new_mesh(before)
    provenance = _stored(obj)["provenance"]
    assert provenance["engine_version"] and provenance["addon_version"] == "0.1.0"
    assert provenance["models"]["base"].endswith("base") and provenance["models"]["refiner"]
    assert provenance["steps"] >= 1 and provenance["seed"] == 0 and provenance["ensemble_size"] == 1
    assert provenance["processing_resolution"] > 0
    assert provenance["image"] == {"source": "FILE", "path": str(photo_path.resolve()), "width": 75, "height": 50,
                                   "sha256": hashlib.sha256(photo_path.read_bytes()).hexdigest()}
    assert provenance["camera"]["intrinsics"]["source"] == "fov"
    assert provenance["depth_range"]["far_near_ratio"] == 10.0
    assert provenance["reconstruction"]["min_angle_deg"] == 4.0
    stored, name = obj["betterdepth"], obj.name
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.ops.wm.read_homefile(use_empty=True)
    assert name not in bpy.data.objects
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    assert bpy.data.objects[name]["betterdepth"] == stored


def test_rerun_rebuilds_on_the_stored_depth_without_running_the_models(scene, prefs, addon):
    """The engine still has the job (Depth Storage: Engine only): the re-run reuses it there."""
    prefs.depth_storage = "ENGINE"
    camera = _textured_scene(scene, 64, 48)
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_mesh(source="CAMERA") == {"FINISHED"}
    obj = _new_mesh(before)
    name, first, faces = obj.name, _stored(obj), len(obj.data.polygons)
    assert first["provenance"]["camera"]["name"] == "shot"
    assert first["provenance"]["camera"]["blender_camera"]["shift_x"] == pytest.approx(0.05)
    material = obj.active_material
    objects = len(bpy.data.objects)
    camera.location.x += 1.0  # the camera moved since: the re-run keeps the mesh where it was made
    bpy.context.view_layer.update()
    assert bpy.ops.betterdepth.create_mesh(rerun_object=name, min_angle_deg=30.0) == {"FINISHED"}
    rebuilt = bpy.data.objects[name]
    again = _stored(rebuilt)
    assert len(bpy.data.objects) == objects and rebuilt.active_material == material
    assert again["engine"]["reused_from"] == first["engine_job"] != again["engine_job"]
    assert again["provenance"]["depth_from_job"] == first["engine_job"]
    assert again["request"]["mesh"]["min_angle_deg"] == 30.0 and len(rebuilt.data.polygons) < faces
    assert again["request"]["mesh"]["blender_camera"] == first["request"]["mesh"]["blender_camera"]
    assert again["alignment"]["reused_fit"]  # the same depth: the same fit, not one from the moved camera
    assert (again["alignment"]["scale"], again["alignment"]["shift"]) == (first["alignment"]["scale"],
                                                                           first["alignment"]["shift"])
    camera.location.x -= 1.0
    bpy.context.view_layer.update()
    assert np.allclose(np.array(rebuilt.matrix_world), np.array(camera.matrix_world), atol=1e-6)
    # The engine's log: the first job ran the models, the re-run only reconstructed.
    assert {"base", "refine"} <= _job_stages(addon, first["engine_job"])
    stages = _job_stages(addon, again["engine_job"])
    assert "reconstruct" in stages and not stages & {"loading", "base", "refine", "ensemble"}


@pytest.mark.parametrize("storage", ["PACKED", "BESIDE"])
def test_rerun_after_the_engine_forgot_the_job_uses_the_depth_kept_with_the_blend(scene, prefs, addon, photo_path,
                                                                                  tmp_path, storage):
    """Saved, a new engine that never saw the job (another computer; the old state gone), the photo gone:
    Re-run rebuilds from the depth kept in or beside the .blend, and the engine runs no model stage."""
    prefs.depth_storage = storage
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))  # Beside .blend needs a saved .blend
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path)) == {"FINISHED"}
    obj = _new_mesh(before)
    name, first, faces = obj.name, _stored(obj), len(obj.data.polygons)
    kept = first["kept_depth"]
    assert kept["storage"] == storage and (kept["width"], kept["height"]) == (75, 50)
    assert first["provenance"]["kept_depth"] == kept
    image = bpy.data.images[kept["image"]]
    assert (image.packed_file is not None) == (storage == "PACKED")
    if storage == "BESIDE":
        assert kept["path"].startswith("//betterdepth/") and (tmp_path / kept["path"][2:]).is_file()
    bpy.ops.wm.save_mainfile()
    bpy.ops.betterdepth.engine_stop()
    shutil.rmtree(addon.engine.settings().state_dir)
    photo_path.unlink()
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert bpy.ops.betterdepth.create_mesh(rerun_object=name, min_angle_deg=30.0) == {"FINISHED"}
    rebuilt = bpy.data.objects[name]
    again = _stored(rebuilt)
    stages = _job_stages(addon, again["engine_job"])
    assert "reconstruct" in stages and not stages & {"loading", "base", "refine", "ensemble"}
    assert again["engine"]["estimate"]["reused_disparity"]["width"] == 75
    assert again["kept_depth"] == kept  # the same depth, still kept where it was
    assert again["provenance"]["models"] == first["provenance"]["models"]
    assert again["provenance"]["depth_from_job"] == first["engine_job"] != again["engine_job"]
    assert again["provenance"]["camera"]["intrinsics"] == first["provenance"]["camera"]["intrinsics"]
    assert again["request"]["mesh"]["min_angle_deg"] == 30.0 and len(rebuilt.data.polygons) < faces


def test_rerun_with_the_kept_depth_damaged_or_missing_fails_clearly_and_changes_nothing(scene, prefs, addon,
                                                                                      photo_path):
    prefs.depth_storage = "PACKED"
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path)) == {"FINISHED"}
    obj = _new_mesh(before)
    name, stored, vertices = obj.name, obj["betterdepth"], vertex_pixels(obj)[0]
    image = bpy.data.images[_stored(obj)["kept_depth"]["image"]]
    pixels = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(pixels)
    pixels[0] += 0.5
    image.pixels.foreach_set(pixels)
    objects = set(bpy.data.objects.keys())
    damaged = f"depth kept for '{name}' \\(packed in the .blend\\) was changed or damaged"
    with pytest.raises(RuntimeError, match=damaged):
        bpy.ops.betterdepth.create_mesh(rerun_object=name, min_angle_deg=30.0)
    bpy.data.images.remove(image)
    with pytest.raises(RuntimeError, match=f"depth kept for '{name}' .* is missing. Restore it, or run"):
        bpy.ops.betterdepth.create_mesh(rerun_object=name, min_angle_deg=30.0)
    assert set(bpy.data.objects.keys()) == objects and bpy.data.objects[name]["betterdepth"] == stored
    assert np.array_equal(vertex_pixels(bpy.data.objects[name])[0], vertices)


def test_rerun_of_a_relief_with_a_new_depth(scene, photo_path, addon):
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_relief(source="FILE", filepath=str(photo_path), depth=0.2) == {"FINISHED"}
    obj = _new_mesh(before)
    name, height = obj.name, obj.dimensions.z
    assert bpy.ops.betterdepth.create_relief(rerun_object=name, depth=0.6) == {"FINISHED"}
    rebuilt = bpy.data.objects[name]
    assert rebuilt.dimensions.z > height + 0.3
    assert not _job_stages(addon, _stored(rebuilt)["engine_job"]) & {"base", "refine"}
    with pytest.raises(RuntimeError, match="made by create_relief"):
        bpy.ops.betterdepth.create_mesh(rerun_object=name)


def test_rerun_of_a_displaced_plane_on_the_kept_depth(scene, photo_path, addon):
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.displacement(source="FILE", filepath=str(photo_path), width=3.0, depth=0.2,
                                            subdivisions=40) == {"FINISHED"}
    obj = _new_mesh(before)
    name, kept, material = obj.name, _stored(obj)["kept_depth"], obj.active_material
    assert kept["storage"] == "PACKED" and (kept["width"], kept["height"]) == (75, 50)
    assert bpy.ops.betterdepth.displacement(rerun_object=name, width=3.0, depth=0.5, subdivisions=40) == {
        "FINISHED"}
    rebuilt = bpy.data.objects[name]
    again = _stored(rebuilt)
    assert rebuilt.modifiers[0].strength == pytest.approx(0.5) and rebuilt.active_material == material
    assert again["kept_depth"] == kept and again["engine"]["estimate"]["reused_disparity"]
    assert not _job_stages(addon, again["engine_job"]) & {"loading", "base", "refine", "ensemble"}


def test_a_render_releases_the_engine_models(scene, prefs, addon, photo_path):
    """Release Before Render: a render in background mode unloads the engine's models (health shows none);
    the add-on's own input render does not; off, the models stay."""
    camera = _textured_scene(scene, 32, 24)
    assert bpy.ops.betterdepth.estimate_depth(source="FILE", filepath=str(photo_path)) == {"FINISHED"}
    client = addon.engine.connect(addon.engine.settings())
    assert client.health()["loaded_models"]
    prefs.release_before_render = False
    try:
        bpy.ops.render.render()
        assert client.health()["loaded_models"]
    finally:
        prefs.release_before_render = True
    bpy.ops.render.render()
    health = client.health()
    assert health["loaded_models"] == [] and health["last_unload"]["unloaded"]
    unloaded_at = health["last_unload"]["at"]
    assert bpy.ops.betterdepth.create_mesh(source="CAMERA") == {"FINISHED"}  # renders its input first
    health = client.health()
    assert health["loaded_models"] and health["last_unload"]["at"] == unloaded_at
    assert scene.camera == camera
    # The engine box's live status (a timer in the UI runs this on a thread every few seconds).
    addon.handlers.fetch_engine_status(addon.engine.settings())
    status = addon.operators.EngineStatus
    assert status.health["memory"]["rss_bytes"] > 0 and status.health["loaded_models"] and not status.error


def test_compare_builds_the_base_and_the_refined_mesh(scene, photo_path, addon):
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path), compare_base=True) == {
        "FINISHED"}
    meshes = {obj.name: obj for obj in bpy.data.objects if obj.name not in before and obj.type == "MESH"}
    refined, base = meshes["coffee_small depth mesh"], meshes["coffee_small base mesh"]
    assert base["betterdepth_compare_of"] == refined.name and base.hide_get() and base.hide_render
    assert not refined.hide_get()
    assert np.allclose(np.array(base.matrix_world), np.array(refined.matrix_world))
    assert _stored(base)["provenance"]["models"]["external_depth"]
    assert _stored(base)["provenance"]["models"]["refiner"] in (None, "none"), _stored(base)["provenance"]["models"]
    positions = []
    for obj in (refined, base):
        co = np.empty(3 * len(obj.data.vertices), np.float32)
        obj.data.vertices.foreach_get("co", co)
        positions.append(co.reshape(-1, 3))
    same = min(len(positions[0]), len(positions[1]))
    assert np.abs(positions[0][:same] - positions[1][:same]).max() > 1e-3  # the refiner changed the depth
    image = bpy.data.images["coffee_small base | refined"]
    assert image.size[0] > 2 * 75 and image.size[1] == 50 and image.packed_file is not None
    pixels = np.empty(image.size[0] * 50 * 4, np.float32)
    image.pixels.foreach_get(pixels)
    rows = pixels.reshape(50, -1, 4)[::-1, :, 0]
    left, right = rows[:, :75], rows[:, -75:]
    refined_depth = bpy.data.images.get("coffee_small depth")
    assert left.max() == pytest.approx(1.0) and right.max() == pytest.approx(1.0) and not np.allclose(left, right)
    assert refined_depth is None  # Create Mesh makes no other images


def _pixel_depths(obj, width: int, height: int) -> np.ndarray:
    """H x W depth of a camera-frame mesh at the pixels its vertices came from (UVs); NaN elsewhere."""
    mesh = obj.data
    co = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("co", co)
    loops = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", loops)
    loop_uvs = np.empty(2 * len(mesh.loops), np.float32)
    mesh.uv_layers["UVMap"].data.foreach_get("uv", loop_uvs)
    uvs = np.empty((len(mesh.vertices), 2), np.float32)
    uvs[loops] = loop_uvs.reshape(-1, 2)
    depth = np.full((height, width), np.nan)
    columns = np.rint(uvs[:, 0] * width - 0.5).astype(int)
    rows = np.rint((1 - uvs[:, 1]) * height - 0.5).astype(int)
    depth[rows, columns] = -co[2::3]
    return depth


def test_sequence_meshes_keep_one_scale_on_a_static_shot(scene, photo_path, tmp_path):
    write_frames(photo_path, tmp_path / "shot")
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.mesh_sequence(directory=str(tmp_path / "shot"), fov_deg=60,
                                             reference=2) == {"FINISHED"}
    meshes = sorted((obj for obj in bpy.data.objects if obj.name not in before and obj.type == "MESH"),
                    key=lambda obj: obj.name)
    assert [obj.name for obj in meshes] == [f"shot {index:04d}" for index in range(5)]
    depths = [_pixel_depths(obj, 75, 50) for obj in meshes]
    changes = np.array([abs(np.nanmedian(depths[k] / depths[k - 1]) - 1) for k in range(1, 5)])
    print("frame-to-frame median scale change", changes)
    assert changes.max() < 0.01
    stored = [json.loads(obj["betterdepth"]) for obj in meshes]
    assert stored[2]["sequence_fit"]["model"] and stored[0]["reference_index"] == 2
    assert stored[0]["provenance"]["image"]["path"].endswith("frame_0000.png")
    for frame in range(1, 6):  # each mesh shows on its own frame only
        scene.frame_set(frame)
        assert [obj.name for obj in meshes if not obj.hide_render] == [f"shot {frame - 1:04d}"]
    assert (scene.frame_start, scene.frame_end) == (1, 5)


def test_sequence_reports_a_missing_folder(scene, tmp_path):
    with pytest.raises(RuntimeError, match="No folder at"):
        bpy.ops.betterdepth.mesh_sequence(directory=str(tmp_path / "nowhere"))


def _camera_view(obj, camera, scene) -> np.ndarray:
    """Every vertex's position in the camera's view (x, y in [0, 1] across the frame)."""
    from bpy_extras.object_utils import world_to_camera_view

    world, _ = vertex_pixels(obj)
    return np.array([tuple(world_to_camera_view(scene, camera, Vector(point)))[:2] for point in world])


def test_a_known_distance_scales_a_photo_mesh_about_its_camera(scene, photo_path):
    """After Set Known Distance the picked vertex lies at that distance from the camera and every other vertex
    still projects onto its pixel; a focus-plane distance is along the view axis; Re-run keeps the scale."""
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo_path)) == {"FINISHED"}
    obj = _new_mesh(before)
    (camera,) = [item for item in bpy.data.objects if item.type == "CAMERA" and item.name not in before]
    origin = np.array(camera.matrix_world.translation)
    world, uvs = vertex_pixels(obj)
    view = _camera_view(obj, camera, scene)
    picked = len(world) // 2 + 11
    scene.cursor.location = Vector(world[picked]) + Vector((1e-4, 0.0, 0.0))  # snapped onto the mesh, nearly
    assert bpy.ops.betterdepth.set_known_distance(object_name=obj.name, distance=3.7) == {"FINISHED"}
    moved, moved_uvs = vertex_pixels(obj)
    assert np.linalg.norm(moved[picked] - origin) == pytest.approx(3.7, abs=1e-5)
    assert np.array_equal(moved_uvs, uvs)
    assert np.abs(_camera_view(obj, camera, scene) - view).max() < 1e-5  # on their pixels' rays
    ratio = np.linalg.norm(moved - origin, axis=1) / np.linalg.norm(world - origin, axis=1)
    assert np.ptp(ratio) < 1e-5  # one scale for the whole mesh
    known = _stored(obj)["known_distance"]
    column = round(float(uvs[picked, 0]) * 75 - 0.5)
    assert known["distance"] == pytest.approx(3.7) and known["measure"] == "RAY" and known["pixel"][0] == column
    assert _stored(obj)["provenance"]["known_distance"] == known
    # The focus plane through the image centre, 2 units in front of the camera.
    assert bpy.ops.betterdepth.set_known_distance(object_name=obj.name, distance=2.0, point="PIXEL",
                                                  measure="AXIS", column=37, row=25) == {"FINISHED"}
    world, uvs = vertex_pixels(obj)
    centre = int(np.argmin(np.abs(uvs[:, 0] * 75 - 37.5) + np.abs((1 - uvs[:, 1]) * 50 - 25.5)))
    to_camera = np.array(camera.matrix_world.inverted())
    assert -(to_camera[:3, :3] @ world[centre] + to_camera[:3, 3])[2] == pytest.approx(2.0, abs=1e-5)
    # Re-run with another cut angle: the same pixel at the same distance.
    name = obj.name
    assert bpy.ops.betterdepth.create_mesh(rerun_object=name, min_angle_deg=20.0) == {"FINISHED"}
    world, uvs = vertex_pixels(bpy.data.objects[name])
    centre = int(np.argmin(np.abs(uvs[:, 0] * 75 - 37.5) + np.abs((1 - uvs[:, 1]) * 50 - 25.5)))
    assert -(to_camera[:3, :3] @ world[centre] + to_camera[:3, 3])[2] == pytest.approx(2.0, abs=1e-5)
    assert _stored(bpy.data.objects[name])["known_distance"]["distance"] == 2.0


def test_sequence_as_shape_keys_matches_the_per_frame_meshes(scene, photo_path, tmp_path):
    """One mesh with a shape key per frame: as many keys as frames, key N at scene frame N, and each key's
    vertices where the per-frame mesh has the vertex of the same pixel (the same consistent scale)."""
    write_frames(photo_path, tmp_path / "shot")
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.mesh_sequence(directory=str(tmp_path / "shot"), fov_deg=60, reference=2,
                                             frame_start=10) == {"FINISHED"}
    per_frame = {obj.name: obj for obj in bpy.data.objects if obj.name not in before and obj.type == "MESH"}
    before = {obj.name for obj in bpy.data.objects}
    assert bpy.ops.betterdepth.mesh_sequence(directory=str(tmp_path / "shot"), fov_deg=60, reference=2,
                                             frame_start=10, output="SHAPE_KEYS") == {"FINISHED"}
    (target,) = [obj for obj in bpy.data.objects if obj.name not in before and obj.type == "MESH"]
    keys = target.data.shape_keys.key_blocks
    assert keys[0].name == "Basis" and keys[1].name == "frame 0012"  # the reference frame's first
    assert sorted(key.name for key in keys[1:]) == [f"frame {10 + index:04d}" for index in range(5)]
    assert sorted(_stored(target)["frames"]) == sorted(key.name for key in keys[1:])
    _, uvs = vertex_pixels(target)
    pixels = np.rint(np.stack((uvs[:, 0] * 75 - 0.5, (1 - uvs[:, 1]) * 50 - 0.5), 1)).astype(int)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for index in range(5):
        key = keys[f"frame {10 + index:04d}"]
        co = np.empty(3 * len(key.data), np.float32)
        key.data.foreach_get("co", co)
        co = co.reshape(-1, 3)
        frame_mesh = per_frame[f"shot {index:04d}"]
        frame_co = np.empty(3 * len(frame_mesh.data.vertices), np.float32)
        frame_mesh.data.vertices.foreach_get("co", frame_co)
        _, frame_uvs = vertex_pixels(frame_mesh)
        frame_pixels = np.rint(np.stack((frame_uvs[:, 0] * 75 - 0.5, (1 - frame_uvs[:, 1]) * 50 - 0.5), 1))
        by_pixel = {tuple(pixel): vertex for pixel, vertex in zip(frame_pixels.astype(int).tolist(),
                                                                   frame_co.reshape(-1, 3))}
        shared = [(vertex, by_pixel[tuple(pixel)]) for pixel, vertex in zip(pixels.tolist(), co)
                  if tuple(pixel) in by_pixel]
        assert len(shared) > 0.9 * len(co)
        ours, theirs = np.array([pair[0] for pair in shared]), np.array([pair[1] for pair in shared])
        assert np.abs(ours - theirs).max() < 1e-4 * np.abs(theirs).max()
        # The driver shows key N on scene frame N: the evaluated mesh is that key.
        bpy.context.scene.frame_set(10 + index)
        evaluated = target.evaluated_get(depsgraph).data
        shown = np.empty(3 * len(evaluated.vertices), np.float32)
        evaluated.vertices.foreach_get("co", shown)
        assert np.allclose(shown.reshape(-1, 3), co, atol=1e-5)
        if index != 2:  # a frame's key is its own shape, not the reference's
            basis = np.empty(3 * len(co), np.float32)
            keys["Basis"].data.foreach_get("co", basis)
            assert np.abs(basis.reshape(-1, 3) - co).max() > 1e-3
    assert _stored(target)["output"] == "SHAPE_KEYS"


def test_a_failing_frame_stops_the_sequence_and_keeps_the_finished_frames(scene, photo_path, tmp_path):
    write_frames(photo_path, tmp_path / "shot", count=4)
    (tmp_path / "shot" / "frame_0002.png").write_bytes(b"not a PNG")
    before = {obj.name for obj in bpy.data.objects}
    with pytest.raises(RuntimeError, match=r"frames built and kept"):
        bpy.ops.betterdepth.mesh_sequence(directory=str(tmp_path / "shot"), fov_deg=60)
    built = sorted(obj.name for obj in bpy.data.objects if obj.name not in before and obj.type == "MESH")
    assert built == ["shot 0000", "shot 0001"]
