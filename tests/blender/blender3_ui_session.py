"""Run inside Debian's Blender 3.4 with a real window (Xvfb) by test_legacy.py:
`blender --factory-startup --python THIS -- LEGACY_ZIP ENGINE_PYTHON PHOTO FRAMES_DIR OUT_JSON`.

Drives the interactive path that background mode never takes: each operator invoked as the UI invokes it,
running as a modal operator on a worker thread while Blender's event loop goes on (a timer steps through this
script between events). Create Mesh, Re-run after its dialog's OK, Mesh Sequence as shape keys, and a
sequence cancelled by the panel's Cancel after its first frame. Writes what happened as JSON and quits.
"""

import json
import sys
import traceback

import addon_utils
import bpy

zip_path, engine_python, photo, frames, out = sys.argv[sys.argv.index("--") + 1:]
result = {"version": list(bpy.app.version)}


def in_viewport():
    """The context of the 3D Viewport of the window, as a click on a sidebar button has it."""
    window = bpy.context.window_manager.windows[0]
    area = next(area for area in window.screen.areas if area.type == "VIEW_3D")
    region = next(region for region in area.regions if region.type == "WINDOW")
    return bpy.context.temp_override(window=window, screen=window.screen, area=area, region=region)


def steps():
    bpy.ops.preferences.addon_install(filepath=zip_path)
    addon_utils.enable("betterdepth", default_set=True, handle_error=None)
    prefs = bpy.context.preferences.addons["betterdepth"].preferences
    prefs.engine_mode, prefs.engine_python = "MANAGED", engine_python
    active = sys.modules["betterdepth.operators"].ActiveJob
    yield 0.5

    with in_viewport():
        result["create_mesh"] = sorted(bpy.ops.betterdepth.create_mesh(
            "INVOKE_DEFAULT", source="FILE", filepath=photo, fov_deg=60))
    result["create_mesh_ran_modal"] = active.running()
    while active.job is not None:
        yield 0.2
    mesh = next(obj for obj in bpy.data.objects if obj.type == "MESH" and "betterdepth" in obj)
    name, faces = mesh.name, len(mesh.data.polygons)

    with in_viewport():  # what the Re-run dialog's OK runs
        result["rerun"] = sorted(bpy.ops.betterdepth.create_mesh(
            "EXEC_DEFAULT", rerun_object=name, min_angle_deg=30.0, from_dialog=True))
    result["rerun_ran_modal"] = active.running()
    while active.job is not None:
        yield 0.2
    result["rerun_faces"] = [faces, len(bpy.data.objects[name].data.polygons)]

    with in_viewport():
        result["shape_keys"] = sorted(bpy.ops.betterdepth.mesh_sequence(
            "INVOKE_DEFAULT", directory=frames, output="SHAPE_KEYS", fov_deg=60))
    result["shape_keys_ran_modal"] = active.running()
    while active.job is not None:
        yield 0.2
    target = bpy.data.objects.get("frames shape keys")
    result["keys"] = [key.name for key in target.data.shape_keys.key_blocks] if target else []

    with in_viewport():
        bpy.ops.betterdepth.mesh_sequence("INVOKE_DEFAULT", directory=frames, output="OBJECTS", fov_deg=60)
    while "frames 0000" not in bpy.data.objects and active.job is not None:
        yield 0.1
    with in_viewport():
        result["cancel"] = sorted(bpy.ops.betterdepth.cancel())  # the panel's Cancel button
    while active.job is not None:
        yield 0.2
    result["frames_kept"] = sorted(obj.name for obj in bpy.data.objects if obj.name.startswith("frames 0"))
    addon_utils.disable("betterdepth", default_set=True)  # stops the managed engine


def finish():
    with open(out, "w") as file:
        json.dump(result, file)
    bpy.ops.wm.quit_blender()


script = steps()


def tick():
    try:
        return next(script)
    except StopIteration:
        pass
    except Exception:  # noqa: BLE001 - the test shows it
        result["error"] = traceback.format_exc()
    finish()
    return None


bpy.app.timers.register(tick, first_interval=2.0)
