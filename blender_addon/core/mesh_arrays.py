"""Engine mesh files -> flat buffers in the layout Blender's `foreach_set` takes (no per-vertex Python).

`mesh.npz` (engine protocol v1): vertices float32 N x 3 (OpenCV camera frame), triangles int32 M x 3
(counter-clockwise seen from the camera), normals float32 N x 3, colors uint8 N x 3 (normal colours),
uvs float32 N x 2 (origin bottom-left, Blender's convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .frames import opencv_to_blender_camera

REQUIRED = {"vertices": (3, np.float32), "triangles": (3, np.int32), "normals": (3, np.float32),
            "colors": (3, np.uint8), "uvs": (2, np.float32)}


class MeshFileError(ValueError):
    """The engine's mesh file is missing arrays or has inconsistent ones."""


@dataclass(frozen=True)
class MeshBuffers:
    """Everything a Blender mesh needs, flattened; vertices and normals already in the Blender camera frame."""

    vertices: np.ndarray  # float32, 3 N (co)
    loop_vertex_indices: np.ndarray  # int32, 3 M (one loop per triangle corner)
    loop_starts: np.ndarray  # int32, M (0, 3, 6, ...)
    loop_uvs: np.ndarray  # float32, 2 * 3 M (UVs live on loops in Blender)
    vertex_colors: np.ndarray  # float32, 4 N RGBA in [0, 1]: the engine's colour bytes / 255 (sRGB values)
    normals: np.ndarray  # float32, N x 3, Blender camera frame

    @property
    def vertex_count(self) -> int:
        return len(self.vertices) // 3

    @property
    def triangle_count(self) -> int:
        return len(self.loop_starts)


def load_mesh_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an engine mesh file, checked for presence, shape and index range."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        raise MeshFileError(f"Cannot read the engine's mesh file {path}: {error}") from error
    missing = sorted(set(REQUIRED) - set(arrays))
    if missing:
        raise MeshFileError(f"The engine's mesh file lacks {', '.join(missing)}.")
    count = len(arrays["vertices"])
    for name, (columns, dtype) in REQUIRED.items():
        array = arrays[name]
        rows_ok = name == "triangles" or len(array) == count
        if array.ndim != 2 or array.shape[1] != columns or not rows_ok:
            raise MeshFileError(f"Mesh array '{name}' has shape {array.shape}; expected rows x {columns}.")
        arrays[name] = array.astype(dtype, copy=False)
    triangles = arrays["triangles"]
    if len(triangles) and (triangles.min() < 0 or triangles.max() >= count):
        raise MeshFileError("Mesh triangles index vertices that do not exist.")
    return arrays


def mesh_buffers(arrays: dict[str, np.ndarray]) -> MeshBuffers:
    triangles = arrays["triangles"]
    colors = np.empty((len(arrays["colors"]), 4), np.float32)
    colors[:, :3] = arrays["colors"] / np.float32(255)
    colors[:, 3] = 1.0
    return MeshBuffers(
        vertices=opencv_to_blender_camera(arrays["vertices"]).ravel(),
        loop_vertex_indices=np.ascontiguousarray(triangles, np.int32).ravel(),
        loop_starts=np.arange(0, 3 * len(triangles), 3, dtype=np.int32),
        loop_uvs=np.ascontiguousarray(arrays["uvs"][triangles], np.float32).ravel(),
        vertex_colors=colors.ravel(),
        normals=opencv_to_blender_camera(arrays["normals"]),
    )


def grid_plane(columns: int, rows: int, width: float, height: float) -> dict[str, np.ndarray]:
    """A flat grid in the OpenCV frame at z = 0 (facing the viewer), as mesh arrays, with UVs over [0, 1].

    Used for the displaced plane: one UV-mapped quad grid, two triangles per cell.
    """
    u = np.linspace(0.0, 1.0, columns, dtype=np.float32)
    v = np.linspace(0.0, 1.0, rows, dtype=np.float32)
    uu, vv = np.meshgrid(u, v)  # row 0 at the top of the image
    vertices = np.stack(((uu - 0.5) * width, (vv - 0.5) * height, np.zeros_like(uu)), -1).reshape(-1, 3)
    index = np.arange(rows * columns, dtype=np.int32).reshape(rows, columns)
    top_left, top_right = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    bottom_left, bottom_right = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    # Counter-clockwise seen from the viewer (-Z side in OpenCV): top-left, bottom-left, bottom-right ...
    triangles = np.concatenate((np.stack((top_left, bottom_left, bottom_right), 1),
                                np.stack((top_left, bottom_right, top_right), 1))).astype(np.int32)
    count = len(vertices)
    return {
        "vertices": vertices.astype(np.float32),
        "triangles": triangles,
        "normals": np.tile(np.float32([0, 0, -1]), (count, 1)),
        "colors": np.full((count, 3), 128, np.uint8),
        "uvs": np.stack((uu.ravel(), 1.0 - vv.ravel()), 1).astype(np.float32),
    }
