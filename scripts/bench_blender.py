"""Estimate Depth -> mesh in the scene for a 1024 x 768 photo: engine time vs Blender-side mesh building,
and foreach_set (what the extension does) vs from_pydata for the same mesh.

    .venv-blender-4.5/bin/python scripts/bench_blender.py        # after `make extension`; prints a table

Runs in a fresh Blender profile with the built extension and its managed engine (the shipped default models).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="betterdepth-bench-profile-")
import bpy  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def install_extension():
    zip_path = sorted((ROOT / "dist").glob("betterdepth-*.zip"))[-1]
    repo_dir = tempfile.mkdtemp(prefix="betterdepth-bench-extensions-")
    bpy.context.preferences.extensions.repos.new(name="bench", module="bench", custom_directory=repo_dir,
                                                 source="USER")
    bpy.ops.extensions.package_install_files(repo="bench", filepath=str(zip_path), enable_on_install=True)
    prefs = bpy.context.preferences.addons["bl_ext.bench.betterdepth"].preferences
    prefs.engine_python = os.environ.get("BETTERDEPTH_ENGINE_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    return sys.modules["bl_ext.bench.betterdepth"]


def photo_1024x768(folder: Path) -> Path:
    image = bpy.data.images.load(str(ROOT / "samples" / "coffee.jpg"))
    image.scale(1024, 768)
    path = folder / "coffee_1024x768.png"
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    bpy.data.images.remove(image)
    return path


REPEATS = 3  # each row is the median of this many runs: the CPU is shared, single runs vary


def timed(function):
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), result


def main() -> int:
    addon = install_extension()
    from_core = sys.modules["bl_ext.bench.betterdepth.core.mesh_arrays"]
    scene_build = sys.modules["bl_ext.bench.betterdepth.scene_build"]
    folder = Path(tempfile.mkdtemp(prefix="betterdepth-bench-"))
    photo = photo_1024x768(folder)
    client = addon.engine.connect(addon.engine.settings())  # starts the engine outside the timings
    bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo))  # warm-up: loads the models

    rows = []
    total, _ = timed(lambda: bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(photo)))
    rows.append(("Create Mesh, button to mesh in scene", total))

    def engine_job():
        job = client.submit("mesh", image_bytes=photo.read_bytes(), filename=photo.name, mesh={"colors": "normal"})
        client.wait(job["job_id"])
        return client.download(job["job_id"], "mesh.npz", folder / "mesh.npz")

    seconds, npz = timed(engine_job)
    rows.append(("  engine: upload, estimate, mesh, download", seconds))
    seconds, arrays = timed(lambda: from_core.load_mesh_npz(npz))
    rows.append(("  read mesh.npz", seconds))
    seconds, buffers = timed(lambda: from_core.mesh_buffers(arrays))
    rows.append(("  buffers (frame conversion, loop UVs)", seconds))
    seconds, _ = timed(lambda: scene_build.build_mesh("foreach_set", buffers))
    rows.append(("  build mesh: attribute arrays (the extension)", seconds))

    def from_pydata():
        mesh = bpy.data.meshes.new("from_pydata")
        mesh.from_pydata(buffers.vertices.reshape(-1, 3).tolist(), [],
                         buffers.loop_vertex_indices.reshape(-1, 3).tolist())
        mesh.uv_layers.new(name="UVMap").data.foreach_set("uv", buffers.loop_uvs)
        mesh.color_attributes.new("normal_color", "BYTE_COLOR", "POINT").data.foreach_set(
            "color_srgb", buffers.vertex_colors)
        mesh.update()

    seconds, _ = timed(from_pydata)
    rows.append(("  build mesh with from_pydata (same attributes)", seconds))

    vertices, faces = buffers.vertex_count, buffers.triangle_count
    print(f"\nBlender {bpy.app.version_string}, 1024 x 768 photo -> {vertices:,} vertices, {faces:,} triangles, "
          f"{os.cpu_count()} CPU threads, median of {REPEATS} runs\n")
    print(f"| {'step':<48} | seconds |\n|{'-' * 50}|---------|")
    for name, value in rows:
        print(f"| {name:<48} | {value:7.2f} |")
    bpy.ops.betterdepth.engine_stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
