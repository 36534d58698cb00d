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

    def to_open3d(self):
        """This mesh as an `open3d.t.geometry.TriangleMesh`: positions, normals, colours (float 0..1) on the
        vertices; UVs as Open3D keeps them, per triangle corner (`triangle.texture_uvs`, M x 3 x 2)."""
        import open3d as o3d

        mesh = o3d.t.geometry.TriangleMesh()
        mesh.vertex.positions = o3d.core.Tensor(self.vertices)
        mesh.vertex.normals = o3d.core.Tensor(self.normals)
        mesh.vertex.colors = o3d.core.Tensor(self.colors.astype(np.float32) / 255)
        mesh.triangle.indices = o3d.core.Tensor(self.faces)
        mesh.triangle.texture_uvs = o3d.core.Tensor(self.uvs[self.faces])
        return mesh

    @classmethod
    def from_open3d(cls, mesh, metadata: dict | None = None) -> MeshArrays:
        """An Open3D triangle mesh (tensor or legacy API) as MeshArrays. Missing normals are computed; missing
        colours become normal colours; missing UVs are zero (a mesh without them has no image to map)."""
        import open3d as o3d

        from betterdepth_engine.recon.attributes import normal_colors, vertex_normals

        if isinstance(mesh, o3d.geometry.TriangleMesh):
            mesh = o3d.t.geometry.TriangleMesh.from_legacy(mesh)
        vertices = mesh.vertex.positions.numpy().astype(np.float32)
        faces = mesh.triangle.indices.numpy().astype(np.int32)
        normals = (mesh.vertex.normals.numpy().astype(np.float32) if "normals" in mesh.vertex
                   else vertex_normals(vertices, faces))
        if "colors" in mesh.vertex:
            colors = np.clip(np.rint(mesh.vertex.colors.numpy() * 255), 0, 255).astype(np.uint8)
        else:
            colors = normal_colors(normals)
        uvs = np.zeros((len(vertices), 2), np.float32)
        if "texture_uvs" in mesh.triangle:  # per corner; a vertex shared by corners gets one of their values
            uvs[faces.ravel()] = mesh.triangle.texture_uvs.numpy().reshape(-1, 2)
        return cls(vertices, faces, normals, colors, uvs, dict(metadata or {}))


@dataclass
class HeightMap:
    """A displacement height map: float32 H x W in [0, 1], 0 = the base (farthest or invalid), 1 = nearest.

    `metadata["blender_displace"]` holds the Displace modifier's strength and midlevel that reproduce the relief.
    """

    height: np.ndarray
    metadata: dict = field(default_factory=dict)
