"""Render handlers: hand the engine's GPU memory back to Blender before it renders; the engine box's live status.

An engine on this machine keeps its models loaded between jobs; a render (Cycles on the GPU) then competes
for the same VRAM. With the preference "Release Before Render" (on by default) the engine unloads its models
when a render starts (render_init, which also fires in background mode); the next job loads them again. The
add-on's own input renders (Camera Render source) are exempt: their job needs the models right after.
"""

from __future__ import annotations

import threading
import time
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


STATUS_INTERVAL_S = 3.0
_status_thread: threading.Thread | None = None


def fetch_engine_status(settings: engine.EngineSettings) -> None:
    """Ask the engine for its health (memory, loaded models) into EngineStatus, for the engine box. Any thread:
    it only does HTTP and sets plain attributes."""
    from .core.jobs import JobError
    from .operators import EngineStatus

    managed = engine._managed  # never start an engine just to show its status
    if settings.mode == "MANAGED" and (managed is None or not managed.running()):
        EngineStatus.health, EngineStatus.error = None, "Not running (starts on first use)."
        return
    try:
        client = (engine.engine_client.EngineClient(managed.url, managed.token, timeout=2.0)
                  if settings.mode == "MANAGED" else engine.connect(settings))
        client.timeout = 2.0
        EngineStatus.health, EngineStatus.error = client.health(), ""
    except Exception as error:  # noqa: BLE001 - shown in the box
        EngineStatus.health, EngineStatus.error = None, JobError.from_exception(error).report()
    EngineStatus.checked_at = time.time()


def _live_status() -> float:
    """Timer (UI only; timers never fire in background mode): refresh the engine box every few seconds from a
    short-lived thread, so drawing never waits for HTTP; redraw the sidebars."""
    global _status_thread
    settings = engine.settings()
    if settings.mode == "EXTERNAL" or engine.managed_running():
        if _status_thread is None or not _status_thread.is_alive():
            _status_thread = threading.Thread(target=fetch_engine_status, args=(settings,), daemon=True,
                                              name="betterdepth-status")
            _status_thread.start()
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "IMAGE_EDITOR"):
                area.tag_redraw()
    return STATUS_INTERVAL_S


def register() -> None:
    if release_before_render not in bpy.app.handlers.render_init:
        bpy.app.handlers.render_init.append(release_before_render)
    if not bpy.app.background and not bpy.app.timers.is_registered(_live_status):
        bpy.app.timers.register(_live_status, first_interval=STATUS_INTERVAL_S, persistent=True)


def unregister() -> None:
    if release_before_render in bpy.app.handlers.render_init:
        bpy.app.handlers.render_init.remove(release_before_render)
    if bpy.app.timers.is_registered(_live_status):
        bpy.app.timers.unregister(_live_status)
    if _status_thread is not None:
        _status_thread.join(timeout=3)  # threads left running crash Blender at exit
