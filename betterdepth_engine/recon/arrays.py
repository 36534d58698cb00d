"""The in-memory results of reconstruction: plain numpy arrays the server can send and Blender can foreach_set."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MeshArrays:
    """A triangle mesh with per-vertex attributes.

    Frame: the OpenCV camera frame, +X right, +Y down, +Z forward (away from the camera); scene units.
    Faces wind counter-clockwise as seen from the camera, so their normals point back at it.
    Relief solids use the same axes with an orthographic camera: the relief faces -Z, its base is at +Z.
    """

    vertices: np.ndarray  # float32 N x 3
    faces: np.ndarray  # int32 M x 3, indices into vertices
    normals: np.ndarray  # float32 N x 3, unit vertex normals
    colors: np.ndarray  # uint8 N x 3, sRGB: the photo's colours or normal colours (attributes.normal_colors)
    uvs: np.ndarray  # float32 N x 2, position in the image, origin at its bottom-left corner (Blender/OBJ)
    metadata: dict = field(default_factory=dict)  # JSON-ready: camera, depth range, options, notes

    def __post_init__(self):
        count = len(self.vertices)
        expected = {
            "vertices": (self.vertices, np.float32, 3),
            "faces": (self.faces, np.int32, 3),
            "normals": (self.normals, np.float32, 3),
            "colors": (self.colors, np.uint8, 3),
            "uvs": (self.uvs, np.float32, 2),
        }
        for name, (array, dtype, columns) in expected.items():
            if array.dtype != dtype or array.ndim != 2 or array.shape[1] != columns:
                raise ValueError(f"{name} must be {dtype.__name__} with {columns} columns, got {array.dtype} {array.shape}")
            if name != "faces" and len(array) != count:
                raise ValueError(f"{name} has {len(array)} rows for {count} vertices")


@dataclass
class HeightMap:
    """A displacement height map: float32 H x W in [0, 1], 0 = the base (farthest or invalid), 1 = nearest.

    `metadata["blender_displace"]` holds the Displace modifier's strength and midlevel that reproduce the relief.
    """

    height: np.ndarray
    metadata: dict = field(default_factory=dict)
