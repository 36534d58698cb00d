"""BetterDepth for Blender: detailed depth and camera-exact 3D from a photo or a camera render.

Registration only; each concern lives in its own module (preferences, properties, operators, panels,
scene_build, inputs, engine) and the bpy-free logic in core/, which imports without Blender (hence the
imports below happen at registration, not at import).
"""


def _classes():
    from . import operators, panels, preferences, properties, result_panel, sequence

    return (*preferences.CLASSES, *properties.CLASSES, *operators.CLASSES, *panels.CLASSES, *result_panel.CLASSES,
            *sequence.CLASSES)


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
