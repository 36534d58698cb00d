"""Real Blender (the bpy wheel) with the built extension installed into a fresh user profile.

Runs in its own environment (.venv-blender-<version>: the bpy wheels pin numpy < 2, the engine's venv has
numpy 2), with `--confcutdir tests/blender` so the engine tests' conftest (torch) is not loaded:
    .venv-blender-4.5/bin/python -m pytest tests/blender --confcutdir tests/blender
The engine is real too: the add-on starts it in managed mode from the engine's environment
($BETTERDEPTH_ENGINE_PYTHON, default <repo>/.venv/bin/python) with the shipped default models.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
# A fresh user profile, before bpy is imported: nothing from the machine's own Blender settings leaks in.
PROFILE = tempfile.mkdtemp(prefix="betterdepth-blender-profile-")
os.environ["BLENDER_USER_RESOURCES"] = PROFILE
atexit.register(shutil.rmtree, PROFILE, ignore_errors=True)
import bpy  # noqa: E402

REPO = "bdtest"
MODULE = f"bl_ext.{REPO}.betterdepth"
ENGINE_PYTHON = os.environ.get("BETTERDEPTH_ENGINE_PYTHON") or str(ROOT / ".venv" / "bin" / "python")


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory) -> Path:
    """dist zip built by scripts/build_extension.py (Blender's own validator and builder)."""
    output = tmp_path_factory.mktemp("dist")
    completed = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_extension.py"), "--output-dir",
                                str(output)], capture_output=True, text=True, cwd=ROOT)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return Path(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def addon(extension_zip, tmp_path_factory):
    """The extension installed from its zip (as Install from Disk does) and enabled; its modules."""
    repo_dir = tmp_path_factory.mktemp("extensions")
    bpy.context.preferences.extensions.repos.new(name=REPO, module=REPO, custom_directory=str(repo_dir),
                                                 source="USER")
    result = bpy.ops.extensions.package_install_files(repo=REPO, filepath=str(extension_zip),
                                                      enable_on_install=True)
    assert result == {"FINISHED"} and MODULE in bpy.context.preferences.addons
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.engine_mode, prefs.engine_python = "MANAGED", ENGINE_PYTHON
    yield sys.modules[MODULE]
    bpy.ops.preferences.addon_disable(module=MODULE)  # unregister stops the managed engine


@pytest.fixture
def prefs(addon):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    yield prefs
    prefs.engine_mode, prefs.url, prefs.token = "MANAGED", "http://127.0.0.1:8765", ""
    prefs.depth_storage = "PACKED"


@pytest.fixture
def scene(addon):
    """An empty scene (the add-on stays enabled)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


@pytest.fixture
def photo_path(tmp_path) -> Path:
    """A small crop of a shipped sample photo, odd-sized on purpose (written with Blender's own image API)."""
    source = bpy.data.images.load(str(ROOT / "samples" / "coffee.jpg"))
    source.scale(75, 50)
    path = tmp_path / "coffee_small.png"
    source.filepath_raw, source.file_format = str(path), "PNG"
    source.save()
    bpy.data.images.remove(source)
    return path


def vertex_pixels(obj) -> tuple[np.ndarray, np.ndarray]:
    """World positions of the vertices and the UV each carries (which names the pixel it came from), read with
    the installed add-on's own `known_distance.mesh_vertices`."""
    import importlib

    co, uvs = importlib.import_module(f"{MODULE}.known_distance").mesh_vertices(obj.data)
    matrix = np.array(obj.matrix_world)
    world = co.astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    return world, uvs


def write_frames(photo_path, folder, count=5):
    """A static shot: the same view with the light changing a little and sensor noise, as PNG frames."""
    source = bpy.data.images.load(str(photo_path))
    width, height = source.size
    pixels = np.empty(width * height * 4, np.float32)
    source.pixels.foreach_get(pixels)
    rng = np.random.default_rng(0)
    folder.mkdir()
    for index in range(count):
        frame = bpy.data.images.new(f"frame{index}", width, height)
        values = pixels.reshape(height, width, 4).copy()
        values[..., :3] = np.clip(values[..., :3] * (0.9 + 0.04 * index)
                                  + rng.normal(0, 0.01, (height, width, 3)), 0, 1)
        frame.pixels.foreach_set(values.ravel())
        frame.filepath_raw, frame.file_format = str(folder / f"frame_{index:04d}.png"), "PNG"
        frame.save()
        bpy.data.images.remove(frame)
    bpy.data.images.remove(source)
