"""scripts/batch_reconstruct.py end to end: its own Blender process, fresh profile, the built zip, a real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import bpy
import numpy as np
import pytest

from .conftest import ENGINE_PYTHON, ROOT


def _batch(input_dir, output_dir, extension_zip, profile, *options):
    command = [sys.executable, str(ROOT / "scripts" / "batch_reconstruct.py"), "--input", str(input_dir),
               "--output", str(output_dir), "--extension", str(extension_zip), "--engine-python", ENGINE_PYTHON,
               *(options or ("--formats", "blend,ply"))]
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(profile)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_batch_does_the_rest_reports_the_broken_and_resumes(extension_zip, photo_path, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(photo_path.read_bytes())
    (photos / "b.png").write_bytes(photo_path.read_bytes())
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a JPEG at all")
    (photos / "notes.txt").write_text("not an image: ignored")
    output = tmp_path / "out"

    first = _batch(photos, output, extension_zip, tmp_path / "profile")
    assert first.returncode == 1, first.stdout + first.stderr
    lines = [line for line in first.stdout.splitlines() if line.startswith(("ok ", "FAILED ", "skip "))]
    assert [line.split()[:2] for line in lines] == [["ok", "a.png"], ["ok", "b.png"], ["FAILED", "broken.jpg"]]
    assert "2 done, 0 skipped, 1 failed" in first.stdout
    report = json.loads((output / "batch_report.json").read_text())
    assert list(report["failed"]) == ["broken.jpg"] and "image" in report["failed"]["broken.jpg"].lower()
    written = sorted(path.name for path in output.iterdir() if path.is_file())
    assert written == ["a.blend", "a.ply", "b.blend", "b.ply", "batch_report.json"]  # no partial files
    stamps = {name: (output / name).stat().st_mtime_ns for name in written if name != "batch_report.json"}

    second = _batch(photos, output, extension_zip, tmp_path / "profile")
    assert second.returncode == 1
    assert "skip    a.png" in second.stdout and "skip    b.png" in second.stdout
    assert "0 done, 2 skipped, 1 failed" in second.stdout
    assert {name: (output / name).stat().st_mtime_ns for name in stamps} == stamps

    bpy.ops.wm.open_mainfile(filepath=str(output / "a.blend"))
    kinds = sorted(obj.type for obj in bpy.data.objects)
    assert kinds == ["CAMERA", "MESH"]
    mesh = next(obj for obj in bpy.data.objects if obj.type == "MESH")
    assert len(mesh.data.vertices) > 1000 and mesh.active_material is not None and "betterdepth" in mesh
    assert bpy.context.scene.camera.type == "CAMERA"


def test_batch_displacement_writes_the_float_height_map(extension_zip, photo_path, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(photo_path.read_bytes())
    output = tmp_path / "out"
    run = _batch(photos, output, extension_zip, tmp_path / "profile", "--mode", "displacement", "--formats",
                 "exr,blend", "--width", "3", "--depth", "0.5")
    assert run.returncode == 0, run.stdout + run.stderr
    height = bpy.data.images.load(str(output / "a.exr"))
    assert height.is_float and tuple(height.size) == (75, 50)
    pixels = np.empty(4 * 75 * 50, np.float32)
    height.pixels.foreach_get(pixels)
    assert pixels.min() >= 0 and pixels.max() == pytest.approx(1.0, abs=1e-3)  # 0 = base plane, 1 = nearest
    bpy.ops.wm.open_mainfile(filepath=str(output / "a.blend"))
    (plane,) = bpy.data.objects
    assert plane.modifiers["BetterDepth Displace"].strength == pytest.approx(0.5)
    assert plane.dimensions.x == pytest.approx(3.0, rel=1e-3)
    wrong = _batch(photos, output, extension_zip, tmp_path / "profile", "--formats", "exr")
    assert wrong.returncode == 2 and "needs --mode displacement" in wrong.stderr
