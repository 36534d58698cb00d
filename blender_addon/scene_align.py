"""Scene-aligned meshes for camera renders: the scene's own depth, measured by ray casting from the camera.

Ray casting (not the render's Z pass) because it works the same in background mode, in every render engine and
Blender version, needs no compositor set-up (which 5.0 moved), and measures exactly at the pixel centres the
engine lifts. Objects this add-on made are looked through: they are estimates, not the scene.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Vector

from .core.alignment import DisparityFit, align_vertices, fit_disparity_to_depth, pixel_rays, sample_grid
from .core.frames import opencv_to_blender_camera
from .scene_build import PARAMETERS_PROPERTY

MAX_SAMPLES = 4096  # rays: enough for two parameters, a fraction of a second
MAX_PASS_THROUGH = 8  # BetterDepth objects one ray may look through
ERROR_PROPERTY = "betterdepth_alignment_error"  # on aligned objects: the fit's median relative depth error


def scene_depth(context, camera: bpy.types.Object, intrinsics: dict, rows: np.ndarray,
                columns: np.ndarray) -> np.ndarray:
    """Depth (along the camera axis, in the camera object's local units) of the first scene surface at each
    pixel centre; NaN where the ray hits nothing."""
    depsgraph = context.evaluated_depsgraph_get()
    scene = context.scene
    to_world = camera.matrix_world.copy()
    to_camera = to_world.inverted()
    rotation = to_world.to_3x3()
    origin = to_world.translation.copy()
    directions = opencv_to_blender_camera(pixel_rays(rows, columns, intrinsics))
    depth = np.full(len(directions), np.nan)
    for index, direction in enumerate(directions):
        world_direction = (rotation @ Vector(direction.tolist())).normalized()
        start = origin
        for _ in range(MAX_PASS_THROUGH):
            hit, location, _normal, _face, obj, _matrix = scene.ray_cast(depsgraph, start, world_direction)
            if not hit:
                break
            if obj is None or PARAMETERS_PROPERTY not in obj.original:
                depth[index] = -(to_camera @ location).z
                break
            start = location + world_direction * 1e-4
    return depth


def align_mesh(context, camera: bpy.types.Object, arrays: dict, disparity: np.ndarray,
               intrinsics: dict) -> tuple[dict, dict]:
    """The engine's mesh arrays with vertices moved to the scene's metric depth, and the fit's record.

    Raises core.alignment.AlignmentError when the camera sees too little geometry to fit."""
    rows, columns = sample_grid(*disparity.shape, max_samples=MAX_SAMPLES)
    depth = scene_depth(context, camera, intrinsics, rows, columns)
    fit: DisparityFit = fit_disparity_to_depth(disparity[rows, columns], depth)
    vertices, unplaced = align_vertices(arrays["vertices"], intrinsics, disparity, fit)
    record = {**fit.to_dict(), "source": "ray cast", "unplaced_vertices": unplaced}
    return {**arrays, "vertices": vertices}, record


def apply_stored_fit(arrays: dict, disparity: np.ndarray, intrinsics: dict, record: dict) -> tuple[dict, dict]:
    """A Re-run on the same depth: the fit recorded on the object, applied again (no ray casting: the camera may
    have moved since, the depth and its fit have not)."""
    fit = DisparityFit(record["scale"], record["shift"], record["samples"], record["inliers"],
                       record["median_relative_error"])
    vertices, unplaced = align_vertices(arrays["vertices"], intrinsics, disparity, fit)
    return {**arrays, "vertices": vertices}, {**record, "unplaced_vertices": unplaced, "reused_fit": True}


def refresh_normal_colors(mesh: bpy.types.Mesh, attribute: str) -> None:
    """Normal colours (0.5 n + 0.5, camera frame = the mesh's frame) from Blender's normals of the moved mesh."""
    normals = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("normal", normals)
    colors = np.ones((len(mesh.vertices), 4), np.float32)
    colors[:, :3] = np.rint((0.5 * normals.reshape(-1, 3) + 0.5) * 255) / 255
    mesh.color_attributes[attribute].data.foreach_set("color_srgb", colors.ravel())
