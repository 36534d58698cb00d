"""BetterDepth for Blender: detailed depth and camera-exact 3D from a photo or a camera render.

Blender 4.2+ reads blender_manifest.toml (an extension); Blender 3.x reads bl_info below (a legacy add-on:
dist/betterdepth-<version>-legacy.zip from scripts/build_extension.py).

Registration only; each concern lives in its own module (preferences, properties, operators, panels,
scene_build, inputs, engine) and the bpy-free logic in core/, which imports without Blender (hence the
imports below happen at registration, not at import).
"""


bl_info = {  # Blender 3.x only; 4.2+ takes the manifest (keep name and version equal to it)
    "name": "BetterDepth",
    "author": "BetterDepth developers",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "3D Viewport and Image Editor > Sidebar > BetterDepth",
    "description": "Detailed depth and camera-exact 3D from a photo or a camera render",
    "category": "3D View",
}


def _classes():
    from . import known_distance, operators, panels, preferences, properties, result_panel, sequence

    return (*preferences.CLASSES, *properties.CLASSES, *operators.CLASSES, *panels.CLASSES, *result_panel.CLASSES,
            *sequence.CLASSES, *known_distance.CLASSES)


def register():
    import bpy

    from . import handlers
    from .properties import BetterDepthInputs

    for cls in _classes():
        bpy.utils.register_class(cls)
    bpy.types.Scene.betterdepth_inputs = bpy.props.PointerProperty(type=BetterDepthInputs)
    handlers.register()


def unregister():
    import bpy

    from . import engine, handlers, operators

    handlers.unregister()
    job = operators.ActiveJob.job
    if job is not None:  # threads left running crash Blender at exit
        job.cancel()
        job.join(timeout=10)
    engine.stop_managed()
    del bpy.types.Scene.betterdepth_inputs
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
