"""Blender 3.4 (Debian's `blender` package) loads the same add-on as a legacy add-on (bl_info) and runs it.

Blender 3.x is a separate program (not a bpy wheel), so the session runs in it as a subprocess
(blender3_session.py) against a real managed engine; the test reads what it wrote. `make blender3` (or
scripts/setup_blender3.sh) installs Debian's blender and python3-numpy; without them the test is skipped.
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

from .conftest import ENGINE_PYTHON, ROOT

BLENDER = shutil.which("blender")


def _blender3() -> bool:
    if BLENDER is None:
        return False
    completed = subprocess.run([BLENDER, "--version"], capture_output=True, text=True, timeout=60)
    return re.search(r"Blender 3\.\d", completed.stdout) is not None


@pytest.mark.slow
@pytest.mark.skipif(bpy.app.version[:2] != (4, 5), reason="Blender 3.4 is one program: tested once, from 4.5's run")
@pytest.mark.skipif(not _blender3(), reason="Debian's Blender 3.x is not installed (make blender3)")
def test_legacy_addon_runs_in_blender_3(tmp_path, photo_path):
    completed = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_extension.py"), "--legacy",
                                "--output-dir", str(tmp_path / "dist")], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    legacy_zip = Path(completed.stdout.splitlines()[0])
    assert legacy_zip.name.endswith("-legacy.zip")
    out = tmp_path / "result.json"
    environment = {**os.environ, "BLENDER_USER_SCRIPTS": str(tmp_path / "scripts"),
                   "BLENDER_USER_CONFIG": str(tmp_path / "config")}
    environment.pop("BLENDER_USER_RESOURCES", None)
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
