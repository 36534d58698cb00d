"""Per-vertex attributes: UVs from pixel positions, the photo's colours, normal colours, normals of any mesh."""

from __future__ import annotations

import numpy as np


def uvs_from_pixels(u: np.ndarray, v: np.ndarray, width: int, height: int) -> np.ndarray:
    """Texture coordinates (N x 2 float32) of pixel positions, origin at the image's bottom-left corner.

    Pixel centres are at integer coordinates, so pixel x covers [x - 0.5, x + 0.5] and maps to (x + 0.5) / W.
    """
    uvs = np.empty((len(u), 2), np.float32)
    uvs[:, 0] = (u + 0.5) / width
    uvs[:, 1] = 1 - (v + 0.5) / height
    return uvs


def normal_colors(normals_opencv: np.ndarray) -> np.ndarray:
    """Camera-space normal colours, 0.5 * n + 0.5 as uint8 (N x 3), in the usual normal-map convention.

    The normals come in the engine's OpenCV frame; the colours use the OpenGL/Blender camera frame (x right,
    y up, z toward the viewer), so a surface facing the camera is light blue, as in normal maps and the
    BetterDepth paper's figures, rather than the near-black that OpenCV's +Z-forward frame would give.
    """
    normals_opengl = normals_opencv * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    return np.clip(np.rint(normals_opengl * 127.5 + 127.5), 0, 255).astype(np.uint8)


def sample_image(image_rgb: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Samples (N x 3 uint8) of an H x W x 3 image (H, W >= 2) at pixel coordinates, clamped to it.

    Integer coordinates (grid vertices) index their pixels; float ones (moved vertices) interpolate bilinearly.
    """
    height, width = image_rgb.shape[:2]
    if u.dtype.kind in "iu" and v.dtype.kind in "iu":
        return image_rgb[np.clip(v, 0, height - 1), np.clip(u, 0, width - 1)]
    u = np.clip(u, 0, width - 1)
    v = np.clip(v, 0, height - 1)
    left = np.minimum(u.astype(np.int32), width - 2)
    top = np.minimum(v.astype(np.int32), height - 2)
    right, bottom = left + 1, top + 1
    fu = (u - left)[:, None]
    fv = (v - top)[:, None]
    def pixels(rows, columns):
        return image_rgb[rows, columns].astype(np.float32)

    upper = pixels(top, left) * (1 - fu) + pixels(top, right) * fu
    lower = pixels(bottom, left) * (1 - fu) + pixels(bottom, right) * fu
    return np.rint(upper * (1 - fv) + lower * fv).astype(np.uint8)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (N x 3 float32) of any triangle mesh; zero for unused vertices.

    By Open3D: 4x faster than numpy's scatter-add on a decimated mesh (the grid mesh gets its normals on the
    pixel grid instead, where numpy needs no scatter).
    """
    import open3d as o3d

    mesh = o3d.t.geometry.TriangleMesh()
    mesh.vertex.positions = o3d.core.Tensor(np.ascontiguousarray(vertices, np.float32))
    mesh.triangle.indices = o3d.core.Tensor(np.ascontiguousarray(faces, np.int32))
    mesh.compute_vertex_normals(normalized=True)
    return mesh.vertex.normals.numpy()
