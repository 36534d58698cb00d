"""The engine connection: a managed engine process on this computer, or an external one (URL + token).

`EngineSettings` is read from the preferences on the main thread; `connect()` may then run on a worker
thread (starting a managed engine takes seconds: the UI must not wait for it).
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import bpy

from . import engine_client
from .core.engine_setup import LOOPBACK_HOSTS, find_engine_python
from .core.jobs import JobError
from .preferences import get_preferences

CLIENT_TIMEOUT_S = 30.0
_lock = threading.Lock()
_managed = None  # engine_client.ManagedEngine of this Blender session


@dataclass(frozen=True)
class EngineSettings:
    mode: str  # MANAGED | EXTERNAL
    python: str
    project_dir: str
    url: str
    token: str
    online_access: bool
    state_dir: Path

    @property
    def log_path(self) -> Path:  # where launch_managed_engine's engine logs
        return self.state_dir / "engine.log"


def online_access() -> bool:
    """Blender's Allow Online Access (4.2+); older Blender has no such setting."""
    return bool(getattr(bpy.app, "online_access", True))


def user_dir() -> Path:
    """The add-on's writable folder (never its own install folder)."""
    if hasattr(bpy.utils, "extension_path_user"):  # 4.2+: the extension's own user folder
        return Path(bpy.utils.extension_path_user(__package__, create=True))
    # Blender 3.x (legacy add-on): a folder in the user's config
    return Path(bpy.utils.user_resource("CONFIG", path=__package__, create=True))


def settings(context=None) -> EngineSettings:
    prefs = get_preferences(context)
    return EngineSettings(prefs.engine_mode, bpy.path.abspath(prefs.engine_python),
                          bpy.path.abspath(prefs.project_dir), prefs.url.strip(), prefs.token.strip(),
                          online_access(), user_dir() / "engine")


def _managed_alive() -> bool:
    return _managed is not None and _managed.running()


def start_managed(engine_settings: EngineSettings):
    """The running managed engine, started if needed (blocks until it is ready)."""
    global _managed
    with _lock:
        if _managed_alive():
            return _managed
        python, _ = find_engine_python(engine_settings.python, engine_settings.project_dir)
        if python is None:
            raise JobError("ENGINE_NOT_FOUND", "No engine Python is set up.",
                           "Open the add-on preferences and press Check Setup: it says what to set.")
        try:  # the client strips Blender's Python settings from the engine's environment
            _managed = engine_client.launch_managed_engine(python, engine_settings.state_dir, parent_pid=os.getpid())
        except Exception as error:
            raise JobError.from_exception(error) from None
        # Blender does not unregister add-ons when it quits; the engine would also exit within 2 s of
        # Blender's death (--parent-pid), but a clean shutdown lets it finish writing its state.
        atexit.unregister(stop_managed)
        atexit.register(stop_managed)
        return _managed


def stop_managed() -> bool:
    """Stop the managed engine if it runs; True when one was stopped."""
    global _managed
    with _lock:
        engine, _managed = _managed, None
    if engine is None:
        return False
    engine.stop()
    return True


def managed_running() -> bool:
    return _managed_alive()


def connect(engine_settings: EngineSettings):
    """A client for the configured engine; starts the managed engine on first use."""
    if engine_settings.mode == "EXTERNAL":
        host = urlparse(engine_settings.url).hostname
        if host not in LOOPBACK_HOSTS and not engine_settings.online_access:
            raise JobError("OFFLINE", "Blender's online access is off, and the engine is on another machine.",
                           "Enable Preferences > System > Network > Allow Online Access.")
        return engine_client.EngineClient(engine_settings.url, engine_settings.token, timeout=CLIENT_TIMEOUT_S)
    engine = start_managed(engine_settings)
    return engine_client.EngineClient(engine.url, engine.token, timeout=CLIENT_TIMEOUT_S)


def explain(error: JobError, engine_settings: EngineSettings) -> JobError:
    """The error in the user's terms: a managed engine that stops answering died, and restarts on next use."""
    if engine_settings.mode == "MANAGED" and error.code == "ENGINE_UNREACHABLE":
        return JobError("ENGINE_STOPPED", "The managed engine stopped during the job (it crashed or was killed).",
                        f"Run the job again to restart it; its log: {engine_settings.log_path}")
    return error
