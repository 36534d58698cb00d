"""Pictures of the artist features for docs/images/ (real Blender through the bpy wheel, a real engine).

    .venv-blender-4.5/bin/python scripts/picture_blender_features.py [--output docs/images]

- blender_scene_alignment.png: a camera render's mesh aligned to the scene (normal colours) sitting on the
  floor, box and ball it was made from (grey), seen from the side; the median depth error in the title bar.
- blender_compare.png: Compare with Base on samples/coffee.jpg: base | refined depth side by side.
Needs `make extension` (dist/betterdepth-*.zip) and the engine's .venv.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from batch_reconstruct import configure_engine, ensure_extension  # noqa: E402


def scene_with_floor():
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 192, 144, 100
    shading = scene.display.shading
    shading.light, shading.color_type, shading.show_shadows = "STUDIO", "RANDOM", True
    bpy.ops.mesh.primitive_plane_add(size=300)
    bpy.ops.mesh.primitive_cube_add(size=0.6, location=(-0.8, -3.0, 0.3), rotation=(0, 0, 0.5))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.4, location=(0.8, -2.5, 0.4))
    camera = bpy.data.objects.new("shot", bpy.data.cameras.new("shot"))
    camera.data.lens = 30.0
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -6.0, 1.8), (math.radians(60), 0.0, 0.0)
    scene.camera = camera
    bpy.context.view_layer.update()
    return scene, camera


def side_view(scene, path: Path) -> None:
    """From the side and above, the floor hidden (the mesh would hide in it): the box and the ball (grey)
    and the mesh (normal colours), whose bumps should wrap them."""
    from mathutils import Vector

    bpy.data.objects["Plane"].hide_render = True
    view = bpy.data.objects.new("side", bpy.data.cameras.new("side"))
    view.data.lens = 35.0
    scene.collection.objects.link(view)
    view.location = Vector((7.0, -7.5, 4.5))
    view.rotation_euler = (Vector((0.0, -1.5, 0.0)) - view.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = view
    render = scene.render
    render.resolution_x, render.resolution_y = 800, 500
    shading = scene.display.shading
    shading.light, shading.color_type, shading.show_shadows = "STUDIO", "VERTEX", False
    scene.view_settings.view_transform = "Standard"
    render.filepath, render.use_file_extension = str(path), False
    render.image_settings.file_format = "PNG"
    bpy.ops.render.render(write_still=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
    work = Path(tempfile.mkdtemp(prefix="betterdepth-pictures-"))
    module = ensure_extension(None, work)
    configure_engine(module, argparse.Namespace(url="", token="", engine_python=""))

    scene, _ = scene_with_floor()
    assert bpy.ops.betterdepth.create_mesh(source="CAMERA") == {"FINISHED"}
    mesh = next(obj for obj in bpy.data.objects if "betterdepth" in obj)
    error = json.loads(mesh["betterdepth"])["alignment"]["median_relative_error"]
    side_view(scene, args.output / "blender_scene_alignment.png")
    print(f"scene alignment: median relative depth error {error:.2%}")

    bpy.ops.wm.read_homefile(use_empty=True)
    photo = bpy.data.images.load(str(ROOT / "samples" / "coffee.jpg"))
    photo.scale(320, round(320 * photo.size[1] / photo.size[0]))
    small = work / "coffee.png"
    photo.filepath_raw, photo.file_format = str(small), "PNG"
    photo.save()
    assert bpy.ops.betterdepth.create_mesh(source="FILE", filepath=str(small), compare_base=True) == {"FINISHED"}
    image = bpy.data.images["coffee base | refined"]
    image.filepath_raw, image.file_format = str(args.output / "blender_compare.png"), "PNG"
    image.save_render(str(args.output / "blender_compare.png"))  # 8-bit PNG through the scene's settings
    print("wrote", args.output / "blender_scene_alignment.png", args.output / "blender_compare.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
