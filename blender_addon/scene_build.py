"""Blender data from engine results: meshes (foreach_set), cameras, materials, images, displaced planes.

Vertices arrive already in the Blender camera frame (core.frames); an object built from them gets its
camera's world matrix, so the mesh sits exactly in the camera's view.
"""

from __future__ import annotations

import json
import math

import bpy
import numpy as np

from .core.camera import CameraParams
from .core.mesh_arrays import MeshBuffers
from .core.pixels import orient

NORMAL_COLORS = "normal_color"
PARAMETERS_PROPERTY = "betterdepth"


class Created:
    """The data-blocks one operator makes, so a failure half-way can remove them and leave the scene as it was."""

    def __init__(self):
        self.ids: list = []

    def add(self, datablock):
        self.ids.append(datablock)
        return datablock

    def remove_all(self) -> None:
        alive = [datablock for datablock in self.ids if datablock is not None]
        self.ids.clear()
        if alive:
            bpy.data.batch_remove(alive)


def build_mesh(name: str, buffers: MeshBuffers) -> bpy.types.Mesh:
    """A triangle mesh with UVs and the normal colours as a byte colour attribute on the points.

    Written through the generic attribute arrays ("position", ".corner_vert", a FLOAT2 corner attribute for
    the UVs): an order of magnitude faster than MeshVertex.co / MeshLoop.vertex_index / uv_layers for
    ~1 M vertices (scripts/bench_blender.py). Faces are smooth-shaded (no "sharp_face" attribute).
    The engine's colours are bytes meant as sRGB (like its normal-map pictures); set through `color_srgb`
    they are stored exactly and look the same in Blender."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(buffers.vertex_count)
    mesh.loops.add(len(buffers.loop_vertex_indices))
    mesh.polygons.add(buffers.triangle_count)
    attributes = mesh.attributes
    if bpy.app.version >= (3, 6, 0):
        attributes["position"].data.foreach_set("vector", buffers.vertices)
        attributes[".corner_vert"].data.foreach_set("value", buffers.loop_vertex_indices)
        mesh.polygons.foreach_set("loop_start", buffers.loop_starts)  # loop totals follow from the starts
        attributes.new("UVMap", "FLOAT2", "CORNER").data.foreach_set("vector", buffers.loop_uvs)
    else:  # Blender 3.x before the generic position / corner attributes
        mesh.vertices.foreach_set("co", buffers.vertices)
        mesh.loops.foreach_set("vertex_index", buffers.loop_vertex_indices)
        mesh.polygons.foreach_set("loop_start", buffers.loop_starts)
        mesh.polygons.foreach_set("loop_total", np.full(buffers.triangle_count, 3, np.int32))
        mesh.uv_layers.new(name="UVMap").data.foreach_set("uv", buffers.loop_uvs)
    colors = mesh.color_attributes.new(NORMAL_COLORS, "BYTE_COLOR", "POINT")
    colors.data.foreach_set("color_srgb", buffers.vertex_colors)
    mesh.color_attributes.active_color = colors
    mesh.update()  # derives the edges
    return mesh


def link_object(context, name: str, data) -> bpy.types.Object:
    obj = bpy.data.objects.new(name, data)
    (context.collection or context.scene.collection).objects.link(obj)
    return obj


def camera_params(camera_object: bpy.types.Object, scene: bpy.types.Scene) -> CameraParams:
    """The intrinsics-defining settings of a perspective Blender camera and the scene's render."""
    camera = camera_object.data
    if camera.type != "PERSP":
        raise ValueError(f"Camera '{camera_object.name}' is {camera.type.lower()}; only perspective cameras "
                         "give camera-exact meshes.")
    return CameraParams(
        lens_mm=camera.lens, sensor_width_mm=camera.sensor_width, sensor_height_mm=camera.sensor_height,
        sensor_fit=camera.sensor_fit, pixel_aspect_x=scene.render.pixel_aspect_x,
        pixel_aspect_y=scene.render.pixel_aspect_y, shift_x=camera.shift_x, shift_y=camera.shift_y,
    )


def new_camera(context, name: str, params: CameraParams, width: int, height: int) -> bpy.types.Object:
    """A camera with these intrinsics, looking along +Y from the origin; the scene renders at width x height
    with its pixel aspect and uses it when it has no camera yet."""
    camera = bpy.data.cameras.new(name)
    camera.lens, camera.sensor_fit = params.lens_mm, params.sensor_fit
    camera.sensor_width, camera.sensor_height = params.sensor_width_mm, params.sensor_height_mm
    camera.shift_x, camera.shift_y = params.shift_x, params.shift_y
    obj = link_object(context, name, camera)
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
    render = context.scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    render.pixel_aspect_x, render.pixel_aspect_y = params.pixel_aspect_x, params.pixel_aspect_y
    if context.scene.camera is None:
        context.scene.camera = obj
    return obj


def float_image(name: str, values: np.ndarray, created: Created) -> bpy.types.Image:
    """A float, Non-Color image of an H x W map (row 0 at the top, as images are stored; Blender's start at
    the bottom). NaN becomes 0."""
    height, width = values.shape
    image = created.add(bpy.data.images.new(name, width, height, alpha=False, float_buffer=True, is_data=True))
    gray = np.nan_to_num(values[::-1], nan=0.0).astype(np.float32)
    pixels = np.ones((height, width, 4), np.float32)
    pixels[..., :3] = gray[..., None]
    image.pixels.foreach_set(pixels.ravel())
    image.update()
    return image


def load_image(path, created: Created, non_color: bool = False) -> bpy.types.Image:
    image = created.add(bpy.data.images.load(str(path), check_existing=False))
    if non_color:
        image.colorspace_settings.name = "Non-Color"
    return image


def oriented_copy(image: bpy.types.Image, orientation: int, created: Created) -> bpy.types.Image:
    """A packed copy of the image turned for its EXIF orientation (Blender shows the pixels as stored)."""
    width, height = image.size
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    top_down = orient(pixels.reshape(height, width, 4)[::-1], orientation)
    turned = created.add(bpy.data.images.new(f"{image.name} (oriented)", top_down.shape[1], top_down.shape[0]))
    turned.pixels.foreach_set(np.ascontiguousarray(top_down[::-1]).ravel())
    turned.pack()
    return turned


def photo_material(name: str, image: bpy.types.Image) -> bpy.types.Material:
    """The photo through the mesh's UVs into a Principled BSDF."""
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True  # 5.0: always on, and the property is deprecated
    nodes = material.node_tree.nodes
    shader = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.location = (shader.location.x - 400, shader.location.y)
    material.node_tree.links.new(texture.outputs["Color"], shader.inputs["Base Color"])
    return material


def displace_modifier(obj, height_image: bpy.types.Image, strength: float, midlevel: float, created: Created):
    """A Displace modifier along the normals driven by the height map through the UVs (4.2 through 5.0 alike)."""
    texture = created.add(bpy.data.textures.new(f"{obj.name} height", type="IMAGE"))
    texture.image = height_image
    texture.extension = "EXTEND"
    modifier = obj.modifiers.new("BetterDepth Displace", "DISPLACE")
    modifier.texture, modifier.texture_coords = texture, "UV"
    modifier.uv_layer = "UVMap"
    modifier.strength, modifier.mid_level = strength, midlevel
    return modifier


def displacement_material(name: str, height_image, photo_image, strength: float, midlevel: float):
    """Cycles true displacement: the height map through the UVs into a Displacement node (the photo as colour)."""
    material = photo_material(name, photo_image)
    material.displacement_method = "DISPLACEMENT"  # the surface really moves (not only its shading)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    texture = nodes.new("ShaderNodeTexImage")
    texture.image, texture.extension, texture.interpolation = height_image, "EXTEND", "Cubic"
    displacement = nodes.new("ShaderNodeDisplacement")
    displacement.inputs["Midlevel"].default_value = midlevel
    displacement.inputs["Scale"].default_value = strength
    links.new(texture.outputs["Color"], displacement.inputs["Height"])
    output = next(node for node in nodes if node.type == "OUTPUT_MATERIAL")
    links.new(displacement.outputs["Displacement"], output.inputs["Displacement"])
    texture.location, displacement.location = (output.location.x - 600, output.location.y - 400), (
        output.location.x - 250, output.location.y - 300)
    return material


def adaptive_subdivision(obj) -> bpy.types.Modifier:
    """A Subdivision Surface modifier that Cycles dices adaptively (finer near the camera).

    Blender 5.0 keeps the setting on the modifier; 4.x on the object's Cycles settings, where it takes effect
    with the scene's Cycles feature set 'Experimental' (left to the user: it changes the whole scene).
    """
    modifier = obj.modifiers.new("BetterDepth Subdivision", "SUBSURF")
    modifier.subdivision_type = "SIMPLE"  # keep the plane flat; the displacement adds the shape
    if bpy.app.version >= (5, 0, 0):
        modifier.use_adaptive_subdivision = True
    else:
        obj.cycles.use_adaptive_subdivision = True
    return modifier


def store_parameters(obj, parameters: dict) -> None:
    """What made this object (models, steps, seed, camera, depth range), as JSON in a custom property."""
    obj[PARAMETERS_PROPERTY] = json.dumps(parameters, sort_keys=True, default=str)


def read_parameters(obj) -> dict:
    return json.loads(obj.get(PARAMETERS_PROPERTY, "{}"))
