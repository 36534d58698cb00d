"""Set Known Distance: the metric scale of a photo's mesh from one measured distance (core/known_distance.py
says which assumption: the shape is kept, the scale solved, the mesh scaled about its camera).

The point is the mesh vertex nearest the 3D cursor (snap the cursor onto the mesh) or a pixel of the image;
the distance is to that point, or to the focus plane through it. The object's parameters record it
(`known_distance`, also in the provenance), and Re-run applies it again to the rebuilt mesh at the same pixel.
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from .core.known_distance import distance_factor, pixels_of_uvs, vertex_at_pixel
from .scene_build import read_parameters, store_parameters


def mesh_vertices(mesh) -> tuple[np.ndarray, np.ndarray]:
    """Local vertex positions (N x 3) and the UV each vertex carries (N x 2; a grid mesh has one per vertex)."""
    count = len(mesh.vertices)
    co = np.empty(3 * count, np.float32)
    mesh.vertices.foreach_get("co", co)
    loop_vertices = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", loop_vertices)
    loop_uvs = np.empty(2 * len(mesh.loops), np.float32)
    mesh.uv_layers["UVMap"].data.foreach_get("uv", loop_uvs)
    uvs = np.zeros((count, 2), np.float32)
    uvs[loop_vertices] = loop_uvs.reshape(-1, 2)
    return co.reshape(-1, 3), uvs


def apply_known_distance(vertices: np.ndarray, uvs: np.ndarray, intrinsics: dict, known: dict) -> float:
    """The factor that puts the vertex at the recorded pixel at the recorded distance (vertices in a camera
    frame: OpenCV or Blender alike, the distance does not depend on the axes' signs)."""
    index = vertex_at_pixel(uvs, int(intrinsics["width"]), int(intrinsics["height"]), *known["pixel"])
    return distance_factor(vertices[index], known["distance"], known["measure"])


class BETTERDEPTH_OT_set_known_distance(bpy.types.Operator):
    """Scale a photo's mesh about its camera so that one point lies at a distance you know (metric scale)"""

    bl_idname = "betterdepth.set_known_distance"
    bl_label = "Set Known Distance"
    bl_options = {"REGISTER", "UNDO"}

    object_name: StringProperty(name="Object", description="The mesh (empty: the active object)")
    distance: FloatProperty(name="Distance", default=2.0, min=1e-6, unit="LENGTH",
                            description="The known distance from the camera, in scene units")
    point: EnumProperty(name="Point", default="CURSOR", items=(
        ("CURSOR", "3D Cursor", "The mesh vertex nearest the 3D cursor (snap the cursor onto the mesh first)"),
        ("PIXEL", "Pixel", "The vertex of an image pixel (column, row from the top left)")))
    column: IntProperty(name="Column", default=-1, min=-1, description="Pixel column (-1: the image centre)")
    row: IntProperty(name="Row", default=-1, min=-1, description="Pixel row from the top (-1: the image centre)")
    measure: EnumProperty(name="Measured", default="RAY", items=(
        ("RAY", "To the Point", "The straight distance from the camera to the point"),
        ("AXIS", "To the Focus Plane", "Along the view axis: the plane through the point facing the camera, "
                                       "e.g. the lens's focus distance with the point in focus")))

    def invoke(self, context, event):
        obj = bpy.data.objects.get(self.object_name) if self.object_name else context.active_object
        known = (read_parameters(obj) if obj is not None else {}).get("known_distance") or {}
        if known:
            self.distance, self.measure = known["distance"], known["measure"]
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        obj = bpy.data.objects.get(self.object_name) if self.object_name else context.active_object
        parameters = read_parameters(obj) if obj is not None else {}
        if parameters.get("operator") != "create_mesh":
            self.report({"ERROR"}, "BetterDepth: Set Known Distance needs a mesh made by Create Mesh. Select one.")
            return {"CANCELLED"}
        intrinsics = parameters["engine"]["mesh"]["camera"]
        width, height = int(intrinsics["width"]), int(intrinsics["height"])
        vertices, uvs = mesh_vertices(obj.data)
        if self.point == "CURSOR":
            local = np.array(obj.matrix_world.inverted() @ context.scene.cursor.location)
            index = int(np.argmin(np.linalg.norm(vertices - local, axis=1)))
            column, row = (float(value) for value in np.rint(pixels_of_uvs(uvs[index:index + 1], width, height)[0]))
        else:
            column = (width - 1) / 2 if self.column < 0 else min(self.column, width - 1)
            row = (height - 1) / 2 if self.row < 0 else min(self.row, height - 1)
        known = {"distance": self.distance, "measure": self.measure, "pixel": [column, row]}
        try:
            factor = apply_known_distance(vertices, uvs, intrinsics, known)
        except ValueError as error:
            self.report({"ERROR"}, f"BetterDepth: {error}")
            return {"CANCELLED"}
        obj.data.vertices.foreach_set("co", (vertices * factor).astype(np.float32).ravel())
        obj.data.update()
        previous = (parameters.get("known_distance") or {}).get("scale", 1.0)
        known["scale"] = previous * factor  # over the engine's (or the scene fit's) depth
        parameters["known_distance"] = known
        parameters.setdefault("provenance", {})["known_distance"] = known
        store_parameters(obj, parameters)
        what = "focus plane through pixel" if self.measure == "AXIS" else "pixel"
        self.report({"INFO"}, f"BetterDepth: '{obj.name}' scaled x{factor:.4g}: {what} ({column:g}, {row:g}) "
                              f"is {self.distance:g} from the camera")
        return {"FINISHED"}


CLASSES = (BETTERDEPTH_OT_set_known_distance,)
