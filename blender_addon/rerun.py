"""Re-run: rebuild a created object with changed mesh, relief or displacement options on its stored depth.

The object's parameters name the engine job that holds its depth; the new job is submitted with `reuse_job`,
so the engine runs no model, only the reconstruction. The rebuilt object takes the old one's place (name,
transform, collections, parent, materials) and the old one is removed.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from .core.jobs import JobError
from .core.provenance import file_sha256
from .scene_build import PARAMETERS_PROPERTY, read_parameters

def stored_parameters(name: str) -> tuple[bpy.types.Object, dict]:
    obj = bpy.data.objects.get(name)
    parameters = read_parameters(obj) if obj is not None else {}
    if not parameters.get("engine_job"):
        raise JobError("NOT_RERUNNABLE", f"'{name}' is not an object BetterDepth created (no stored parameters).",
                       "Select a mesh, relief or displaced plane that BetterDepth made.")
    return obj, parameters


def source_image(parameters: dict) -> Path:
    """The input file to send again when the engine no longer has the depth: the recorded one, if unchanged;
    else a path that does not exist (the job then says the depth is gone)."""
    image = parameters.get("provenance", {}).get("image", {})
    path = Path(image.get("path") or "")
    if image.get("path") and path.is_file() and file_sha256(path) == image.get("sha256"):
        return path
    return Path("/nonexistent-betterdepth-input")


def material_image(obj: bpy.types.Object) -> str:
    """The image the object's material shows (reused for the rebuilt object instead of loading it again)."""
    for material in obj.data.materials if obj.type == "MESH" else ():
        for node in material.node_tree.nodes if material and material.node_tree else ():
            image = node.image if node.type == "TEX_IMAGE" else None
            if image is not None and image.colorspace_settings.name != "Non-Color":  # not a height map
                return image.name
    return ""


def replace(old: bpy.types.Object, created) -> bpy.types.Object:
    """The rebuilt object (among `created`) takes the old one's place; extra cameras it made are removed."""
    objects = [block for block in created.ids if isinstance(block, bpy.types.Object)]
    (new,) = [obj for obj in objects if PARAMETERS_PROPERTY in obj]
    for extra in objects:
        if extra is not new:  # a photo's camera: the old object's camera stays
            data = extra.data
            bpy.data.objects.remove(extra)
            if data is not None and data.users == 0:
                bpy.data.batch_remove([data])
    new.matrix_world = old.matrix_world.copy()
    new.parent = old.parent
    for collection in old.users_collection:
        if new.name not in collection.objects:
            collection.objects.link(new)
    for collection in new.users_collection:
        if collection not in old.users_collection:
            collection.objects.unlink(new)
    if old.type == "MESH" and new.type == "MESH" and len(old.data.materials):
        unused = [material for material in new.data.materials if material is not None]
        new.data.materials.clear()
        for material in old.data.materials:
            new.data.materials.append(material)
        bpy.data.batch_remove([material for material in unused if material.users == 0])
    name, old_data = old.name, old.data
    bpy.data.objects.remove(old)
    if old_data is not None and old_data.users == 0:
        bpy.data.batch_remove([old_data])
    new.name = name
    if new.data is not None:
        new.data.name = name
    return new
