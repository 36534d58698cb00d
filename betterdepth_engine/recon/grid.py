"""Triangulating a grid of lifted pixels: two triangles per quad, cut where the depth jumps.

Every function works on H x W grids with numpy slicing (no per-vertex Python), which keeps a 1024 x 768 map
well under a second. A quad's corners are named
    a = (row, col)     b = (row, col + 1)
    c = (row + 1, col) d = (row + 1, col + 1)
and its triangles wind counter-clockwise as seen from the camera, so face normals point back at it.
"""

from __future__ import annotations

import math

import numpy as np


def max_depth_ratio(focal_px: float, min_angle_deg: float, distance_px: float) -> float:
    """The largest depth ratio - 1 a surface seen at >= min_angle_deg can produce between two pixels.

    A surface at grazing angle theta to the viewing ray changes depth by z * d / (focal_px * tan(theta)) over
    d pixels. Anything steeper than that is a jump between surfaces, not a surface: the mesh must not bridge it.
    min_angle_deg = 0 disables the test.
    """
    if min_angle_deg <= 0:
        return math.inf
    return distance_px / (focal_px * math.tan(math.radians(min_angle_deg)))


def quad_corners(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Views of the a, b, c, d corners of every quad; the last two axes are the grid's rows and columns."""
    return grid[..., :-1, :-1], grid[..., :-1, 1:], grid[..., 1:, :-1], grid[..., 1:, 1:]


def continuous_quads(depth: np.ndarray, max_ratio: float) -> np.ndarray:
    """True for quads whose four corners are valid and within max_ratio of each other (max / min - 1)."""
    a, b, c, d = quad_corners(depth)
    smallest = np.fmin(np.fmin(a, b), np.fmin(c, d))
    largest = np.fmax(np.fmax(a, b), np.fmax(c, d))
    valid = np.isfinite(a) & np.isfinite(b) & np.isfinite(c) & np.isfinite(d)
    with np.errstate(invalid="ignore"):
        return valid & (largest <= smallest * (1 + max_ratio))


def shorter_diagonal_is_ad(points: np.ndarray) -> np.ndarray:
    """True where the a-d diagonal is shorter than b-c in 3D: splitting there gives the better-shaped pair.

    `points` is component-first, 3 x H x W, like everything on the grid (contiguous planes are ~3x faster).
    """
    a, b, c, d = quad_corners(points)
    return np.einsum("k...,k...", d - a, d - a) <= np.einsum("k...,k...", c - b, c - b)


def cross(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cross product of component-first vectors (3 x ...); written out, 3x faster than np.cross(axis=0)."""
    (x1, y1, z1), (x2, y2, z2) = first, second
    return np.stack((y1 * z2 - z1 * y2, z1 * x2 - x1 * z2, x1 * y2 - y1 * x2))


def grid_normals(points: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (3 x H x W, unit, zero where no kept quad touches the vertex).

    Each kept quad adds its vector area to its four corners: the cross product of its diagonals, which is the
    sum of its two triangles' normals whichever diagonal splits it.
    """
    a, b, c, d = quad_corners(points)
    with np.errstate(invalid="ignore"):
        area = np.where(keep, cross(d - a, b - c), 0)
    normals = np.zeros(points.shape, np.float32)
    for corner in quad_corners(normals):
        corner += area
    length = np.sqrt(np.einsum("k...,k...", normals, normals))
    return np.divide(normals, length, out=normals, where=length > 0)


def used_vertices(keep: np.ndarray) -> np.ndarray:
    """H x W mask of grid vertices that belong to at least one kept quad."""
    used = np.zeros((keep.shape[0] + 1, keep.shape[1] + 1), bool)
    for corner in quad_corners(used):
        corner |= keep
    return used


def grid_faces(keep: np.ndarray, diagonal_ad: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Triangles (M x 3, int32) of the kept quads, indexing the used vertices in row-major order.

    Split along a-d the triangles are (a, c, d) and (a, d, b); along b-c they are (a, c, b) and (b, c, d).
    """
    index = (np.cumsum(used.ravel(), dtype=np.int32) - 1).reshape(used.shape)
    a, b, c, d = (corner[keep] for corner in quad_corners(index))
    ad = diagonal_ad[keep]
    faces = np.empty((2, len(a), 3), np.int32)
    faces[0, :, 0], faces[0, :, 1], faces[0, :, 2] = a, c, np.where(ad, d, b)
    faces[1, :, 0], faces[1, :, 1], faces[1, :, 2] = np.where(ad, a, b), np.where(ad, d, c), np.where(ad, b, d)
    return faces.reshape(-1, 3)


def triangulate(points: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces (M x 3), vertex normals (3 x H x W) and the used-vertex mask (H x W) of a 3 x H x W point grid."""
    used = used_vertices(keep)
    return grid_faces(keep, shorter_diagonal_is_ad(points), used), grid_normals(points, keep), used
