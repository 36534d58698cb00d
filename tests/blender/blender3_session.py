"""Run inside Debian's Blender 3.4 (`blender -b --python THIS -- LEGACY_ZIP ENGINE_PYTHON PHOTO OUT_JSON`) by
test_legacy.py: installs the legacy add-on zip, runs Estimate Depth, Create Mesh (photo) and Create Mesh
(camera render, aligned to the scene), Re-run on the depth kept in the .blend and Set Known Distance, and
writes what happened as JSON."""

import json
import math
import sys
import traceback

import addon_utils
import bpy

zip_path, engine_python, photo, out = sys.argv[sys.argv.index("--") + 1:]
result = {"version": list(bpy.app.version)}
try:
    bpy.ops.preferences.addon_install(filepath=zip_path)
    addon_utils.enable("betterdepth", default_set=True, handle_error=None)
    prefs = bpy.context.preferences.addons["betterdepth"].preferences
    prefs.engine_mode, prefs.engine_python = "MANAGED", engine_python
    result["estimate"] = sorted(bpy.ops.betterdepth.estimate_depth(source="FILE", filepath=photo))
    result["images"] = sorted(image.name for image in bpy.data.images)
    result["photo_mesh"] = sorted(bpy.ops.betterdepth.create_mesh(source="FILE", filepath=photo, fov_deg=60))
    mesh = next(obj for obj in bpy.data.objects if obj.type == "MESH" and "betterdepth" in obj)
    result["photo_vertices"] = len(mesh.data.vertices)
    result["photo_mesh_valid"] = not mesh.data.validate()
    result["uv_layers"] = [layer.name for layer in mesh.data.uv_layers]
    result["kept_depth"] = json.loads(mesh["betterdepth"])["kept_depth"]
    name = mesh.name  # the re-run replaces the object
    result["rerun"] = sorted(bpy.ops.betterdepth.create_mesh(rerun_object=name, min_angle_deg=20.0))
    result["known_distance"] = sorted(bpy.ops.betterdepth.set_known_distance(
        object_name=name, distance=2.5, point="PIXEL", measure="AXIS"))
    result["rerun_engine"] = json.loads(bpy.data.objects[name]["betterdepth"])["engine"]["estimate"]

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 48, 100
    bpy.ops.mesh.primitive_plane_add(size=300)
    camera = bpy.data.objects.new("shot", bpy.data.cameras.new("shot"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -6.0, 1.8), (math.radians(55), 0.0, 0.0)
    scene.camera = camera
    result["camera_mesh"] = sorted(bpy.ops.betterdepth.create_mesh(source="CAMERA"))
    mesh = next(obj for obj in bpy.data.objects if obj.type == "MESH" and "betterdepth" in obj)
    result["alignment"] = json.loads(mesh["betterdepth"])["alignment"]
    addon_utils.disable("betterdepth", default_set=True)  # stops the managed engine
except Exception:  # noqa: BLE001 - the test shows it
    result["error"] = traceback.format_exc()
with open(out, "w") as file:
    json.dump(result, file)
