"""What a job reads: an image datablock, an image file, or the scene camera's render, always as a file."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from .core.jobs import JobError
from .core.pixels import srgb_from_linear_rgba


def active_image(context) -> bpy.types.Image | None:
    """The image shown in this Image Editor, or in the first one on screen."""
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen else ():
        if area.type == "IMAGE_EDITOR" and area.spaces.active.image is not None:
            return area.spaces.active.image
    return None


# What the engine reads (Pillow); anything else Blender can open (EXR, HDR, ...) is sent as a PNG copy.
ENGINE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def image_file(image: bpy.types.Image, folder: Path) -> Path:
    """A file with this image's pixels: its own file when it has an unchanged one on disk in a format the
    engine reads, else a PNG copy (8-bit sRGB)."""
    if image.source == "FILE" and image.packed_file is None and not image.is_dirty:
        path = Path(bpy.path.abspath(image.filepath, library=image.library))
        if path.is_file() and path.suffix.lower() in ENGINE_SUFFIXES:
            return path
    width, height = image.size  # reading the size loads a file image's pixels (images load lazily)
    if width == 0 or height == 0:
        raise JobError("BAD_IMAGE", f"Image '{image.name}' has no pixels (the Render Result cannot be read).",
                       "Use the Camera Render source, or save the image to a file first.")
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    if image.is_float and image.colorspace_settings.name != "Non-Color":
        pixels = srgb_from_linear_rgba(pixels)  # float images hold scene-linear values; PNG bytes are sRGB
    # A new byte image, saved: Image.copy() of a file image carries no pixels to save.
    copy = bpy.data.images.new("BetterDepth input", width, height, alpha=True)
    try:
        copy.pixels.foreach_set(pixels)
        path = folder / f"{bpy.path.clean_name(image.name)}.png"
        copy.filepath_raw, copy.file_format = str(path), "PNG"
        copy.save()
    finally:
        bpy.data.images.remove(copy)
    return path


def file_key(path: Path) -> tuple:
    """Recognises a file again while it is unchanged (path, modification time, size)."""
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def image_key(image: bpy.types.Image) -> tuple | None:
    """An image data-block's file key when it shows an unchanged file, else None (edited, generated, packed)."""
    if image.source == "FILE" and image.packed_file is None and not image.is_dirty:
        path = Path(bpy.path.abspath(image.filepath, library=image.library))
        if path.is_file():
            return file_key(path)
    return None


def checked_file(filepath: str, folder: Path) -> Path:
    """The image file itself, or a PNG copy when the engine cannot read its format but Blender can."""
    path = Path(bpy.path.abspath(filepath))
    if not path.is_file():
        raise JobError("BAD_IMAGE", f"No image file at '{path}'.", "Choose an existing image file.")
    if path.suffix.lower() in ENGINE_SUFFIXES:
        return path
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError:
        raise JobError("BAD_IMAGE", f"Neither the engine nor Blender can read '{path.name}'.",
                       "Use a PNG, JPEG, TIFF, WebP or EXR image.") from None
    try:
        return image_file(image, folder)
    finally:
        bpy.data.images.remove(image)


rendering_input = False  # True while the add-on renders a job's input (handlers: keep the engine's models)


def render_camera(scene: bpy.types.Scene, folder: Path) -> Path:
    """Render the scene's camera at the scene's resolution to a PNG (the Render Result reads empty from Python).

    The scene's output settings are restored afterwards.
    """
    if scene.camera is None:
        raise JobError("NO_CAMERA", "The scene has no active camera to render.",
                       "Add a camera and make it active (Ctrl+Numpad 0), or pick an image instead.")
    render = scene.render
    settings = render.image_settings
    saved = (render.filepath, render.use_file_extension, settings.file_format, settings.color_mode,
             settings.color_depth)
    path = folder / "camera_render.png"
    global rendering_input
    try:
        render.filepath, render.use_file_extension = str(path), False
        settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGB", "8"
        rendering_input = True
        bpy.ops.render.render(write_still=True, scene=scene.name)
    finally:
        rendering_input = False
        (render.filepath, render.use_file_extension, settings.file_format, settings.color_mode,
         settings.color_depth) = saved
    if not path.is_file():
        raise JobError("RENDER_FAILED", "Blender did not write the camera render.", "Check the scene renders (F12).")
    return path
