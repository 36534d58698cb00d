"""Blender 3.4 (Debian's `blender` package) loads the same add-on as a legacy add-on (bl_info) and runs it.

Blender 3.x is a separate program (not a bpy wheel), so the session runs in it as a subprocess
(blender3_session.py in background mode; blender3_ui_session.py in a real window under Xvfb, for the modal
path that background mode never takes) against a real managed engine; the test reads what it wrote.
`make blender3` (or scripts/setup_blender3.sh) installs Debian's blender, python3-numpy and Xvfb; without
them the tests are skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

from .conftest import ENGINE_PYTHON, ROOT, write_frames

BLENDER = shutil.which("blender")


def _blender3() -> bool:
    if BLENDER is None:
        return False
    completed = subprocess.run([BLENDER, "--version"], capture_output=True, text=True, timeout=60)
    return re.search(r"Blender 3\.\d", completed.stdout) is not None


def _legacy_zip(tmp_path) -> Path:
    completed = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_extension.py"), "--legacy",
                                "--output-dir", str(tmp_path / "dist")], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    legacy_zip = Path(completed.stdout.splitlines()[0])
    assert legacy_zip.name.endswith("-legacy.zip")
    return legacy_zip


def _environment(tmp_path) -> dict:
    environment = {**os.environ, "BLENDER_USER_SCRIPTS": str(tmp_path / "scripts"),
                   "BLENDER_USER_CONFIG": str(tmp_path / "config")}
    environment.pop("BLENDER_USER_RESOURCES", None)
    return environment


@pytest.mark.slow
@pytest.mark.skipif(bpy.app.version[:2] != (4, 5), reason="Blender 3.4 is one program: tested once, from 4.5's run")
@pytest.mark.skipif(not _blender3(), reason="Debian's Blender 3.x is not installed (make blender3)")
def test_legacy_addon_runs_in_blender_3(tmp_path, photo_path):
    legacy_zip = _legacy_zip(tmp_path)
    out = tmp_path / "result.json"
    environment = _environment(tmp_path)
    completed = subprocess.run(
        [BLENDER, "-b", "--factory-startup", "--python", str(Path(__file__).with_name("blender3_session.py")), "--",
         str(legacy_zip), ENGINE_PYTHON, str(photo_path), str(out)],
        capture_output=True, text=True, env=environment, timeout=600)
    assert out.is_file(), completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert "error" not in result, result.get("error")
    assert result["version"][0] == 3
    assert result["estimate"] == result["photo_mesh"] == result["camera_mesh"] == ["FINISHED"]
    assert {"coffee_small depth", "coffee_small base"} <= set(result["images"])
    assert result["photo_vertices"] > 75 * 50 // 2 and result["photo_mesh_valid"]
    assert result["uv_layers"] == ["UVMap"]
    assert result["kept_depth"]["storage"] == "PACKED" and result["rerun"] == ["FINISHED"]
    assert "reused_disparity" in result["rerun_engine"] and result["known_distance"] == ["FINISHED"]
    assert result["alignment"]["samples"] == 64 * 48 and result["alignment"]["scale"] > 0


@pytest.mark.slow
@pytest.mark.skipif(bpy.app.version[:2] != (4, 5), reason="Blender 3.4 is one program: tested once, from 4.5's run")
@pytest.mark.skipif(not _blender3() or shutil.which("Xvfb") is None,
                    reason="Debian's Blender 3.x or Xvfb is not installed (make blender3)")
def test_jobs_run_as_modal_operators_in_a_real_window(tmp_path, photo_path):
    """The interactive path (worker thread + modal timer), in Blender 3.4's real window under Xvfb: Create Mesh,
    Re-run after its dialog, Mesh Sequence as shape keys, and a sequence cancelled after its first frame."""
    legacy_zip = _legacy_zip(tmp_path)
    write_frames(photo_path, tmp_path / "frames", count=5)
    out = tmp_path / "result.json"
    display = f":{90 + os.getpid() % 9}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        completed = subprocess.run(
            [BLENDER, "--factory-startup", "--python", str(Path(__file__).with_name("blender3_ui_session.py")),
             "--", str(legacy_zip), ENGINE_PYTHON, str(photo_path), str(tmp_path / "frames"), str(out)],
            capture_output=True, text=True, env={**_environment(tmp_path), "DISPLAY": display}, timeout=600)
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
    assert out.is_file(), completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert "error" not in result, result["error"]
    assert result["create_mesh"] == result["rerun"] == result["shape_keys"] == ["RUNNING_MODAL"]
    assert result["create_mesh_ran_modal"] and result["rerun_ran_modal"] and result["shape_keys_ran_modal"]
    assert result["rerun_faces"][1] < result["rerun_faces"][0]
    assert sorted(result["keys"]) == ["Basis"] + [f"frame {frame:04d}" for frame in range(1, 6)]
    assert result["cancel"] == ["FINISHED"] and 1 <= len(result["frames_kept"]) < 5
    assert result["frames_kept"][0] == "frames 0000"
