"""Blender 3.4, background: a scene with a scene-aligned BetterDepth mesh, the sidebar open, saved as a .blend
(run by scripts/screenshot_blender.sh; argv after --: LEGACY_ZIP ENGINE_PYTHON OUT_BLEND)."""

import math
import sys

import addon_utils
import bpy

zip_path, engine_python, out_blend = sys.argv[sys.argv.index("--") + 1:]
bpy.ops.preferences.addon_install(filepath=zip_path)
addon_utils.enable("betterdepth", default_set=True, handle_error=None)
prefs = bpy.context.preferences.addons["betterdepth"].preferences
prefs.engine_mode, prefs.engine_python = "MANAGED", engine_python
bpy.ops.wm.save_userpref()  # the GUI session starts with the add-on enabled

scene = bpy.context.scene
for obj in list(bpy.data.objects):
    if obj.type != "CAMERA":
        bpy.data.objects.remove(obj)
render = scene.render
render.engine = "BLENDER_WORKBENCH"
render.resolution_x, render.resolution_y, render.resolution_percentage = 192, 144, 100
scene.display.shading.light, scene.display.shading.color_type = "STUDIO", "RANDOM"
bpy.ops.mesh.primitive_plane_add(size=40)
bpy.ops.mesh.primitive_cube_add(size=0.6, location=(-0.8, -3.0, 0.3), rotation=(0, 0, 0.5))
bpy.ops.mesh.primitive_uv_sphere_add(radius=0.4, location=(0.8, -2.5, 0.4))
camera = scene.camera
camera.data.lens = 30.0
camera.location, camera.rotation_euler = (0.0, -6.0, 1.8), (math.radians(60), 0.0, 0.0)
bpy.context.view_layer.update()
assert bpy.ops.betterdepth.create_mesh(source="CAMERA") == {"FINISHED"}
mesh = next(obj for obj in bpy.data.objects if "betterdepth" in obj)
bpy.data.objects["Plane"].hide_set(True)  # the mesh lies on the floor: show it, and the objects it wraps
for obj in bpy.data.objects:
    obj.select_set(obj == mesh)
bpy.context.view_layer.objects.active = mesh
for window in bpy.context.window_manager.windows:
    for area in window.screen.areas:
        if area.type == "VIEW_3D":
            space = area.spaces.active
            space.show_region_ui = True
            space.shading.type = "SOLID"
            space.shading.color_type = "VERTEX"
            view = space.region_3d
            view.view_perspective = "PERSP"
            view.view_location = (0.0, -1.0, 0.3)
            view.view_distance = 9.0
            view.view_rotation = (camera.rotation_euler.to_quaternion()
                                  @ __import__("mathutils").Quaternion((0, 1, 0), math.radians(35)))
addon_utils.disable("betterdepth", default_set=False)  # stops the engine; stays enabled in the preferences
bpy.ops.wm.save_as_mainfile(filepath=out_blend)
