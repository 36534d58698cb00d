"""Reconstruction speed and quality: our grid mesh vs Open3D's usual point-cloud path, on an exact synthetic scene.

    python scripts/bench_recon.py                  # 1024x768 and 3840x2160; prints a markdown table
    python scripts/bench_recon.py --save-scene DIR # also writes DIR/scene_depth.npy + DIR/scene.png (docs images)

The scene (floor, back wall with fine ripples, two spheres, a thin pole) is ray-cast analytically, so its depth
is exact. "Off-surface triangles" are triangles whose centroid projects into the image but lies more than 5 %
in front of or behind the true surface there: triangles bridging a depth jump, or surfaces invented where
there is none. Our mesh should have none; a grid without the cut bridges every silhouette; Poisson closes
the scene into a blob; ball pivoting bridges gaps of up to its largest radius.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from betterdepth_engine.recon import Intrinsics, ReconOptions, reconstruct, write_outputs
from betterdepth_engine.recon.camera import intrinsics_from_fov
from betterdepth_engine.recon.pipeline import decimate

OFF_SURFACE_TOLERANCE = 0.05
SPHERES = (((-0.8, 0.3, 3.5), 0.8), ((1.2, 0.6, 5.0), 0.6))  # centre, radius (OpenCV frame, +Y down)
POLE = ((0.3, 2.5), 0.05)  # vertical cylinder: (x, z) of its axis, radius
FLOOR_Y, WALL_Z = 1.2, 9.0


def _first_hit(rays: np.ndarray, centre, radius) -> np.ndarray:
    """Ray parameter (= depth, rays have z = 1) of the nearest hit with a sphere/cylinder; inf where missed."""
    centre = np.asarray(centre, np.float64)
    a = np.einsum("k...,k...", rays, rays)
    b = np.tensordot(centre, rays, axes=1)
    discriminant = b * b - a * (centre @ centre - radius * radius)
    with np.errstate(invalid="ignore"):
        t = (b - np.sqrt(discriminant)) / a
    return np.where((discriminant >= 0) & (t > 0), t, np.inf)


def synthetic_scene(width: int, height: int) -> tuple[np.ndarray, np.ndarray, Intrinsics]:
    """Exact depth (float32, along +Z), an RGB image (uint8) and the camera (60 degrees across the width)."""
    intrinsics = intrinsics_from_fov(width, height, 60)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = (u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy
    rays = np.stack((x, y, np.ones_like(x)))
    wall = WALL_Z * (1 + 0.004 * np.sin(60 * x) * np.sin(60 * y))
    with np.errstate(divide="ignore"):
        floor = np.where(y > 0, FLOOR_Y / y, np.inf)
    spheres = [_first_hit(rays, centre, radius) for centre, radius in SPHERES]
    (pole_x, pole_z), pole_radius = POLE
    pole = _first_hit(rays[[0, 2]], (pole_x, pole_z), pole_radius)
    layers = np.stack([wall, floor, *spheres, pole])
    nearest = layers.argmin(axis=0)
    depth = layers.min(axis=0)

    colours = np.float64([[0.75, 0.72, 0.65], [0.45, 0.35, 0.25], [0.8, 0.25, 0.2], [0.2, 0.45, 0.8], [0.9, 0.9, 0.9]])
    point_x, point_z = x * depth, depth
    checker = ((np.floor(point_x * 2) + np.floor(point_z * 2)) % 2 == 0) & (nearest == 1)
    shade = np.clip(1.1 - depth / 12, 0.3, 1.0)
    image = colours[nearest] * np.where(checker, 0.7, 1.0)[..., None] * shade[..., None]
    return depth.astype(np.float32), np.rint(image * 255).astype(np.uint8), intrinsics


def off_surface_triangles(vertices: np.ndarray, faces: np.ndarray, true_depth: np.ndarray, intrinsics) -> int:
    centroids = vertices[faces].mean(axis=1).astype(np.float64)
    in_front = centroids[:, 2] > 0
    u, v = intrinsics.project(np.where(in_front[:, None], centroids, 1.0))
    columns, rows = np.rint(u).astype(np.int64), np.rint(v).astype(np.int64)
    inside = in_front & (columns >= 0) & (columns < intrinsics.width) & (rows >= 0) & (rows < intrinsics.height)
    truth = true_depth[rows[inside], columns[inside]]
    return int(np.sum(np.abs(centroids[inside, 2] / truth - 1) > OFF_SURFACE_TOLERANCE))


def best_time(function, repeats: int):
    """(fastest wall time in seconds, the last result): the machine is shared, the minimum is the cost."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def open3d_point_cloud(depth: np.ndarray, intrinsics: Intrinsics):
    import open3d as o3d

    camera = o3d.camera.PinholeCameraIntrinsic(
        intrinsics.width, intrinsics.height, intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    )
    # Open3D 0.20 scales float depth by depth_scale (default 1000) and cuts at depth_trunc (default 3): pass both.
    cloud = o3d.geometry.PointCloud.create_from_depth_image(
        o3d.geometry.Image(depth), camera, depth_scale=1.0, depth_trunc=1e6
    )
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(30))
    cloud.orient_normals_towards_camera_location(np.zeros(3))
    return cloud


def open3d_poisson(depth: np.ndarray, intrinsics: Intrinsics, octree_depth: int):
    import open3d as o3d

    cloud = open3d_point_cloud(depth, intrinsics)
    mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=octree_depth)
    mesh.remove_vertices_by_mask(np.asarray(densities) < np.quantile(densities, 0.01))  # the usual trim
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


def open3d_ball_pivoting(depth: np.ndarray, intrinsics: Intrinsics):
    import open3d as o3d

    cloud = open3d_point_cloud(depth, intrinsics)
    spacing = float(np.mean(cloud.compute_nearest_neighbor_distance()))
    radii = o3d.utility.DoubleVector([1.5 * spacing, 3 * spacing, 6 * spacing])
    mesh = o3d.geometry.TriangleMesh.create_from_point_cloud_ball_pivoting(cloud, radii)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


def ours(depth, image, intrinsics, **options):
    mesh = reconstruct(depth, "depth", image, ReconOptions(focal_px=intrinsics.fx, **options))
    return mesh.vertices, mesh.faces, mesh


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True)
         .stdout.splitlines() if line.startswith("Model name")),
        platform.processor(),
    )
    import os

    return f"{model}, {os.cpu_count()} cores, no GPU; Python {platform.python_version()}, numpy {np.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poisson-depth", type=int, default=9)
    parser.add_argument("--save-scene", type=Path, help="write the 1024x768 scene's depth and image here")
    args = parser.parse_args()
    import open3d as o3d

    rows = []

    def row(size, method, seconds, faces, off_surface, reference):
        rows.append((size, method, seconds, faces, off_surface, seconds / reference if reference else None))

    for width, height in ((1024, 768), (3840, 2160)):
        size = f"{width}x{height}"
        depth, image, intrinsics = synthetic_scene(width, height)
        if args.save_scene and width == 1024:
            from PIL import Image

            args.save_scene.mkdir(parents=True, exist_ok=True)
            np.save(args.save_scene / "scene_depth.npy", depth)
            Image.fromarray(image).save(args.save_scene / "scene.png")
        seconds, (vertices, faces, mesh) = best_time(lambda: ours(depth, image, intrinsics), args.repeats)
        reference = seconds
        row(size, f"ours: grid mesh + normals + colours (stride {mesh.metadata['grid']['stride']})", seconds,
            len(faces), off_surface_triangles(vertices, faces, depth, intrinsics), None)
        with tempfile.TemporaryDirectory() as folder:
            ply_seconds, _ = best_time(lambda: write_outputs(mesh, folder, "bench", ("ply",)), args.repeats)
        row(size, "ours: + write binary PLY", seconds + ply_seconds, len(faces), None, None)
        _, (vertices, faces, _) = best_time(lambda: ours(depth, image, intrinsics, min_angle_deg=0), 1)
        row(size, "grid without the discontinuity cut", None, len(faces),
            off_surface_triangles(vertices, faces, depth, intrinsics), None)
        if width == 1024:
            target = 150_000
            decimate_seconds, small = best_time(
                lambda: decimate(mesh, target, intrinsics, image, "image"), args.repeats
            )
            row(size, f"ours: decimate {len(mesh.faces) / 1e6:.2f}M -> {target // 1000}k faces (fast-simplification)",
                decimate_seconds, len(small.faces), off_surface_triangles(small.vertices, small.faces, depth, intrinsics),
                None)
            poisson_seconds, (vertices, faces) = best_time(
                lambda: open3d_poisson(depth, intrinsics, args.poisson_depth), 1
            )
            row(size, f"Open3D: point cloud + normals + Poisson (depth {args.poisson_depth}, 1% density trim)",
                poisson_seconds, len(faces), off_surface_triangles(vertices, faces, depth, intrinsics), reference)

    # Ball pivoting is too slow for a full map: compare both on a 256x192 one.
    depth, image, intrinsics = synthetic_scene(256, 192)
    seconds, (vertices, faces, _) = best_time(lambda: ours(depth, image, intrinsics), args.repeats)
    row("256x192", "ours: grid mesh + normals + colours", seconds, len(faces),
        off_surface_triangles(vertices, faces, depth, intrinsics), None)
    pivot_seconds, (vertices, faces) = best_time(lambda: open3d_ball_pivoting(depth, intrinsics), 1)
    row("256x192", "Open3D: point cloud + normals + ball pivoting (3 radii)", pivot_seconds, len(faces),
        off_surface_triangles(vertices, faces, depth, intrinsics), seconds)

    print(f"Machine: {machine()}; Open3D {o3d.__version__}.\n")
    print("| size | method | time (s) | faces | off-surface triangles | time / ours |")
    print("|---|---|---:|---:|---:|---:|")
    for size, method, seconds, faces, off_surface, ratio in rows:
        cells = [
            size, method, f"{seconds:.3f}" if seconds is not None else "-", f"{faces:,}",
            f"{off_surface:,}" if off_surface is not None else "-", f"{ratio:.1f}x" if ratio else "-",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
