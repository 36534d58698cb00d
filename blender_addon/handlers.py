"""Render handlers: hand the engine's GPU memory back to Blender before it renders.

An engine on this machine keeps its models loaded between jobs; a render (Cycles on the GPU) then competes
for the same VRAM. With the preference "Release Before Render" (on by default) the engine unloads its models
when a render starts (render_init, which also fires in background mode); the next job loads them again. The
add-on's own input renders (Camera Render source) are exempt: their job needs the models right after.
"""

from __future__ import annotations

from urllib.parse import urlparse

import bpy
from bpy.app.handlers import persistent

from . import engine, inputs
from .core.engine_setup import LOOPBACK_HOSTS
from .preferences import get_preferences

UNLOAD_TIMEOUT_S = 10.0


def _same_machine(settings: engine.EngineSettings) -> bool:
    """Only an engine on this computer shares its GPU; a managed one only when it runs (never start one)."""
    if settings.mode == "MANAGED":
        return engine.managed_running()
    return urlparse(settings.url).hostname in LOOPBACK_HOSTS


@persistent
def release_before_render(scene, *_args) -> None:
    if inputs.rendering_input or not get_preferences().release_before_render:
        return
    from .operators import ActiveJob

    if ActiveJob.running():  # its models are in use
        return
    settings = engine.settings()
    if not _same_machine(settings):
        return
    try:
        client = engine.connect(settings)
        client.timeout = UNLOAD_TIMEOUT_S
        answer = client.unload()
    except Exception as error:  # noqa: BLE001 - a render must never fail for this
        print(f"BetterDepth: could not release the engine's memory before rendering: {error}")
        return
    names = ", ".join(model.get("name", "?") for model in answer.get("unloaded", []))
    print(f"BetterDepth: released the engine's models before rendering ({names or 'none were loaded'}).")


def register() -> None:
    if release_before_render not in bpy.app.handlers.render_init:
        bpy.app.handlers.render_init.append(release_before_render)


def unregister() -> None:
    if release_before_render in bpy.app.handlers.render_init:
        bpy.app.handlers.render_init.remove(release_before_render)
