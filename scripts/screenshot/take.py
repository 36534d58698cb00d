"""Blender 3.4 GUI under Xvfb: wait for the window, then save a screenshot and quit (argv after --: OUT_PNG).
scripts/screenshot_blender.sh switches the sidebar to the BetterDepth tab meanwhile (Ctrl+wheel)."""

import sys

import bpy

out_png = sys.argv[sys.argv.index("--") + 1]


def shoot():
    window = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=window, screen=window.screen) if hasattr(bpy.context, "temp_override") \
            else __import__("contextlib").nullcontext():
        bpy.ops.screen.screenshot(filepath=out_png)
    bpy.ops.wm.quit_blender()


bpy.app.timers.register(shoot, first_interval=20.0)
