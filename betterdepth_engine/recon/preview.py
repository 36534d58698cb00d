"""A software preview render of a mesh: vectorised numpy rasterisation with a z-buffer, no GPU or display.

Open3D's OffscreenRenderer needs Vulkan or EGL with a GPU driver, which servers and CI machines lack;
a preview needs only a few hundred thousand fragments, which numpy handles in about a second.
The view turns around the mesh's median point so the relief shows, with a head light and two-sided shading.
"""

from __future__ import annotations

import math

import numpy as np

from betterdepth_engine.recon.arrays import MeshArrays

BACKGROUND = np.float32([0.12, 0.12, 0.14])
SUPERSAMPLING = 2  # render at 2x and average down: smooth edges at little cost
FRAGMENTS_PER_CHUNK = 4_000_000  # bounds memory whatever the triangle sizes


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Turn about the vertical axis (Y) then tilt about X, in the OpenCV frame."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    turn = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    tilt = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    return (tilt @ turn).astype(np.float32)


def _view(vertices: np.ndarray, rotation: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Screen positions (N x 2), view depths (N) and image size of a camera 2.5 radii from the median point."""
    centred = (vertices - np.median(vertices, axis=0)) @ rotation.T
    radius = float(np.percentile(np.linalg.norm(centred, axis=1), 98)) or 1.0
    depth = centred[:, 2] + 2.5 * radius
    depth = np.maximum(depth, 0.05 * radius)  # nothing behind the camera (outliers beyond 2.5 radii)
    rays = centred[:, :2] / depth[:, None]
    low, high = rays.min(axis=0), rays.max(axis=0)
    span = np.maximum(high - low, 1e-9)
    focal = 0.92 * width / span[0]
    height = int(np.clip(round(span[1] * focal / 0.92), width // 3, 2 * width))
    screen = (rays - (low + high) / 2) * focal + np.float32([(width - 1) / 2, (height - 1) / 2])
    return screen.astype(np.float32), depth.astype(np.float32), (height, width)


def _chunks(cost: np.ndarray) -> list[slice]:
    """Consecutive face ranges of about FRAGMENTS_PER_CHUNK total cost each."""
    total = np.cumsum(cost)
    cuts = np.searchsorted(total, np.arange(FRAGMENTS_PER_CHUNK, total[-1], FRAGMENTS_PER_CHUNK))
    bounds = np.unique(np.concatenate(([0], cuts, [len(cost)])))
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]


def _enumerate(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For items with counts[i] entries each: the item of every entry and the entry's index within its item."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)


def _row_spans(x: np.ndarray, y: np.ndarray, row: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixel columns [left, right] where each row crosses its triangle (x, y: K x 3 corners).

    Spans only have to contain the inside pixels (the barycentric test decides), so the edges' crossings
    with the row, and both ends of a horizontal edge lying on it, are enough.
    """
    low = np.full(len(row), np.inf, np.float32)
    high = np.full(len(row), -np.inf, np.float32)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        x0, y0, x1, y1 = x[:, i], y[:, i], x[:, j], y[:, j]
        crosses = (row >= np.minimum(y0, y1)) & (row <= np.maximum(y0, y1))
        flat = y0 == y1
        t = np.clip((row - y0) / np.where(flat, 1, y1 - y0), 0, 1)
        crossing = x0 + t * (x1 - x0)
        low = np.where(crosses, np.minimum(low, np.where(flat, np.minimum(x0, x1), crossing)), low)
        high = np.where(crosses, np.maximum(high, np.where(flat, np.maximum(x0, x1), crossing)), high)
    return np.maximum(np.ceil(low), 0).astype(np.int64), np.minimum(np.floor(high), width - 1).astype(np.int64)


def rasterize(screen: np.ndarray, depth: np.ndarray, faces: np.ndarray, shape: tuple[int, int]):
    """Nearest face and barycentric weights per pixel: (face index H x W, -1 = empty; weights H x W x 3).

    Scanline order, vectorised: every triangle lists its rows, every row its span of pixels, and each
    candidate pixel (centre at integer coordinates) is kept if its barycentric weights are all >= 0.
    """
    height, width = shape
    x, y, z = screen[faces, 0], screen[faces, 1], depth[faces]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    top = np.maximum(np.ceil(y.min(1)), 0).astype(np.int64)
    bottom = np.minimum(np.floor(y.max(1)), height - 1).astype(np.int64)
    rows = np.where(area != 0, np.maximum(bottom - top + 1, 0), 0)

    zbuffer = np.full(height * width, np.inf, np.float32)
    nearest = np.full(height * width, -1, np.int64)
    weights = np.zeros((height * width, 3), np.float32)
    for chunk in _chunks(rows + np.abs(area) / 2):  # about the rows plus the pixels each triangle covers
        face, row = _enumerate(rows[chunk])
        face += chunk.start
        row += top[face]
        left, right = _row_spans(x[face], y[face], row, width)
        span, column = _enumerate(np.maximum(right - left + 1, 0))
        face, py, px = face[span], row[span], left[span] + column
        fx, fy = x[face], y[face]
        w0 = ((fx[:, 1] - px) * (fy[:, 2] - py) - (fx[:, 2] - px) * (fy[:, 1] - py)) / area[face]
        w1 = ((fx[:, 2] - px) * (fy[:, 0] - py) - (fx[:, 0] - px) * (fy[:, 2] - py)) / area[face]
        w = np.stack((w0, w1, 1 - w0 - w1), axis=1)
        inside = (w >= 0).all(axis=1)
        face, w, pixel = face[inside], w[inside], (py * width + px)[inside]
        fragment_depth = np.einsum("ij,ij->i", w, z[face])
        order = np.lexsort((fragment_depth, pixel))  # by pixel, nearest first
        pixel = pixel[order]
        first = np.flatnonzero(np.r_[True, pixel[1:] != pixel[:-1]])
        pixel, order = pixel[first], order[first]
        closer = fragment_depth[order] < zbuffer[pixel]
        pixel, order = pixel[closer], order[closer]
        zbuffer[pixel] = fragment_depth[order]
        nearest[pixel] = face[order]
        weights[pixel] = w[order]
    return nearest.reshape(height, width), weights.reshape(height, width, 3)


def render_preview(mesh: MeshArrays, width: int = 640, yaw_deg: float = -25.0, pitch_deg: float = 12.0) -> np.ndarray:
    """An RGB uint8 image of the mesh in its vertex colours, turned by yaw/pitch, shaded by a head light."""
    rotation = _rotation(yaw_deg, pitch_deg)
    screen, depth, (height, width) = _view(mesh.vertices, rotation, width * SUPERSAMPLING)
    nearest, weights = rasterize(screen, depth, mesh.faces, (height, width))
    covered = nearest >= 0
    corners = mesh.faces[nearest[covered]]
    normals = np.einsum("ij,ijk->ik", weights[covered], mesh.normals[corners]) @ rotation.T
    colors = np.einsum("ij,ijk->ik", weights[covered], mesh.colors[corners].astype(np.float32) / 255)
    light = np.float32([-0.35, -0.45, -1.0]) / np.linalg.norm([-0.35, -0.45, -1.0])  # from above left of the viewer
    length = np.maximum(np.linalg.norm(normals, axis=1), 1e-9)
    shade = 0.3 + 0.7 * np.abs(normals @ light) / length
    image = np.broadcast_to(BACKGROUND, (height, width, 3)).copy()
    image[covered] = colors * shade[:, None]
    image = image[: height // SUPERSAMPLING * SUPERSAMPLING, : width // SUPERSAMPLING * SUPERSAMPLING]
    image = image.reshape(height // SUPERSAMPLING, SUPERSAMPLING, width // SUPERSAMPLING, SUPERSAMPLING, 3).mean((1, 3))
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
