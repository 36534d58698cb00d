"""Writing reconstruction results: meshes (PLY, GLB, OBJ), point clouds (PCD, PLY), height maps (EXR, 16-bit
PNG), a preview, and one JSON sidecar per kind of output.

Frames: PLY, PCD and the in-memory arrays stay in the engine's OpenCV camera frame (+Y down, +Z forward). GLB
and OBJ readers assume +Y up with the camera looking down -Z (glTF; Blender's OBJ importer defaults), so those
files get the 180-degree turn about X that takes one frame to the other; the sidecar records this per file.
The mesh writers are numpy-only (Open3D's PLY writer drops UVs and is 8x slower, its legacy GLB writer writes
invalid files); the point clouds are written by Open3D, whose PCD and PLY point writers are what readers expect.
Sidecars: `<stem>_mesh.json` or `<stem>_relief.json` for the geometry, `<stem>_height.json` for the height
maps, so a relief run never overwrites what describes an earlier mesh run in the same folder.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from betterdepth_engine import __version__
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.fileio import write_files_atomically
from betterdepth_engine import depthfile
from betterdepth_engine.recon.arrays import HeightMap, MeshArrays

MESH_FORMATS = ("ply", "glb", "obj", "pcd", "ply-points")  # the last two: the vertices as a point cloud
# OpenCV camera frame -> +Y up, -Z forward (glTF, OBJ): negate Y and Z, a rotation, so windings stay valid.
TO_Y_UP = np.float32([1, -1, -1])
FILE_FRAMES = {"ply": "opencv", "glb": "y_up", "obj": "y_up", "pcd": "opencv", "ply-points": "opencv"}


def write_ply(mesh: MeshArrays, path: Path) -> None:
    """Binary little-endian PLY: float32 positions and normals, uchar colours, float32 UVs (s, t), int32 faces."""
    vertex = np.empty(
        len(mesh.vertices),
        dtype=[("position", "<f4", 3), ("normal", "<f4", 3), ("color", "u1", 3), ("uv", "<f4", 2)],
    )
    vertex["position"], vertex["normal"], vertex["color"], vertex["uv"] = (
        mesh.vertices, mesh.normals, mesh.colors, mesh.uvs
    )
    face = np.empty(len(mesh.faces), dtype=[("count", "u1"), ("indices", "<i4", 3)])
    face["count"], face["indices"] = 3, mesh.faces
    header = "\n".join(
        [
            "ply",
            "format binary_little_endian 1.0",
            f"comment BetterDepth {__version__}, OpenCV camera frame (+X right, +Y down, +Z forward)",
            f"element vertex {len(vertex)}",
            *(f"property float {name}" for name in ("x", "y", "z", "nx", "ny", "nz")),
            *(f"property uchar {name}" for name in ("red", "green", "blue")),
            "property float s",
            "property float t",
            f"element face {len(face)}",
            "property list uchar int vertex_indices",
            "end_header",
        ]
    )
    with open(path, "wb") as file:
        file.write(header.encode("ascii") + b"\n")
        file.write(vertex.tobytes())
        file.write(face.tobytes())


def _glb_layout(blobs: list[tuple[np.ndarray, int]]) -> tuple[list[dict], bytes]:
    """Buffer views for consecutive arrays (each a multiple of 4 bytes, so every view stays 4-byte aligned)."""
    views, offset = [], 0
    for array, target in blobs:
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": array.nbytes, "target": target})
        offset += array.nbytes
    return views, b"".join(array.tobytes() for array, _ in blobs)


def glb_bytes(mesh: MeshArrays) -> bytes:
    """A binary glTF 2.0 file: one mesh with POSITION, NORMAL, COLOR_0 (RGBA8), TEXCOORD_0 and uint32 indices."""
    positions = mesh.vertices * TO_Y_UP
    normals = mesh.normals * TO_Y_UP
    # Vertex attribute elements must be 4-byte aligned: RGB8 would be 3 bytes, so add an opaque alpha.
    colors = np.concatenate((mesh.colors, np.full((len(mesh.colors), 1), 255, np.uint8)), axis=1)
    texcoords = np.stack((mesh.uvs[:, 0], 1 - mesh.uvs[:, 1]), axis=1)  # glTF's UV origin is top-left
    indices = mesh.faces.astype(np.uint32)
    array_buffer, element_buffer = 34962, 34963
    views, binary = _glb_layout(
        [(positions, array_buffer), (normals, array_buffer), (colors, array_buffer), (texcoords, array_buffer),
         (indices, element_buffer)]
    )
    count = len(positions)
    float32, uint8, uint32 = 5126, 5121, 5125
    accessors = [
        {"bufferView": 0, "componentType": float32, "count": count, "type": "VEC3",
         "min": positions.min(axis=0).tolist(), "max": positions.max(axis=0).tolist()},
        {"bufferView": 1, "componentType": float32, "count": count, "type": "VEC3"},
        {"bufferView": 2, "componentType": uint8, "normalized": True, "count": count, "type": "VEC4"},
        {"bufferView": 3, "componentType": float32, "count": count, "type": "VEC2"},
        {"bufferView": 4, "componentType": uint32, "count": indices.size, "type": "SCALAR"},
    ]
    document = {
        "asset": {"version": "2.0", "generator": f"BetterDepth {__version__}"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "BetterDepth"}],
        "meshes": [{"primitives": [{
            "attributes": {"POSITION": 0, "NORMAL": 1, "COLOR_0": 2, "TEXCOORD_0": 3},
            "indices": 4, "material": 0, "mode": 4,
        }]}],
        "materials": [{"pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0}, "doubleSided": True}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    json_chunk = json.dumps(document, separators=(",", ":")).encode()
    json_chunk += b" " * (-len(json_chunk) % 4)
    binary += b"\0" * (-len(binary) % 4)
    length = 12 + 8 + len(json_chunk) + 8 + len(binary)
    return b"".join(
        (
            struct.pack("<4sII", b"glTF", 2, length),
            struct.pack("<I4s", len(json_chunk), b"JSON"), json_chunk,
            struct.pack("<I4s", len(binary), b"BIN\0"), binary,
        )
    )


def write_glb(mesh: MeshArrays, path: Path) -> None:
    Path(path).write_bytes(glb_bytes(mesh))


def write_obj(mesh: MeshArrays, path: Path) -> None:
    """Wavefront OBJ with vertex colours (the common `v x y z r g b` extension), UVs and normals, +Y up."""
    with open(path, "w") as file:
        file.write(f"# BetterDepth {__version__}, +Y up, camera looking down -Z\n")
        np.savetxt(file, np.hstack((mesh.vertices * TO_Y_UP, mesh.colors / 255)), fmt="v %.6g %.6g %.6g %.4f %.4f %.4f")
        np.savetxt(file, mesh.uvs, fmt="vt %.6f %.6f")
        np.savetxt(file, mesh.normals * TO_Y_UP, fmt="vn %.4f %.4f %.4f")
        np.savetxt(file, np.repeat(mesh.faces + 1, 3, axis=1), fmt="f %d/%d/%d %d/%d/%d %d/%d/%d")


def write_points(mesh: MeshArrays, path: Path) -> None:
    """The vertices with normals and colours as a point cloud, by Open3D (format from the suffix: .pcd, .ply)."""
    import open3d as o3d

    cloud = o3d.t.geometry.PointCloud(o3d.core.Tensor(mesh.vertices))
    cloud.point.normals = o3d.core.Tensor(mesh.normals)
    cloud.point.colors = o3d.core.Tensor(mesh.colors)
    if not o3d.t.io.write_point_cloud(str(path), cloud, write_ascii=False, compressed=False):
        raise OSError(f"Open3D could not write the point cloud {path}")


MESH_WRITERS = {"ply": write_ply, "glb": write_glb, "obj": write_obj, "pcd": write_points, "ply-points": write_points}


def write_png(rgb: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(rgb).save(path, format="PNG")


def mesh_sidecar(mesh: MeshArrays, files: dict[str, str]) -> dict:
    """The geometry's JSON sidecar: what was written, in which frame, and everything the reconstruction used."""
    return {
        "betterdepth_version": __version__,
        "files": files,
        "file_frames": {kind: FILE_FRAMES[kind] for kind in files if kind in FILE_FRAMES},
        "counts": {"vertices": len(mesh.vertices), "faces": len(mesh.faces)},
        "bounds": {"min": mesh.vertices.min(axis=0).tolist(), "max": mesh.vertices.max(axis=0).tolist()},
        "mesh": mesh.metadata,
    }


def height_sidecar(height_map: HeightMap, files: dict[str, str]) -> dict:
    """The height maps' JSON sidecar: their files, encoding and the Displace modifier settings."""
    return {"betterdepth_version": __version__, "files": files, "height_map": height_map.metadata}


def output_paths(out_dir: Path, stem: str, mode: str) -> dict[str, Path]:
    """Every file name the mesh command can write (other parts of the project rely on these names).

    `json` is the geometry's sidecar (one per mode), `height_json` the height maps' own.
    """
    kind = "relief" if mode == "relief" else "mesh"
    paths = {fmt: out_dir / f"{stem}_{kind}.{fmt}" for fmt in ("ply", "glb", "obj", "pcd")}
    paths.update(
        {"ply-points": out_dir / f"{stem}_{kind}_points.ply"},
        preview=out_dir / f"{stem}_{kind}_preview.png",
        json=out_dir / f"{stem}_{kind}.json",
        height_exr=out_dir / f"{stem}_height.exr",
        height_png=out_dir / f"{stem}_height.png",
        height_json=out_dir / f"{stem}_height.json",
    )
    return paths


def write_outputs(
    mesh: MeshArrays,
    out_dir: str | os.PathLike,
    stem: str,
    formats: Iterable[str] = ("ply",),
    height_map: HeightMap | None = None,
    preview: bool = False,
) -> list[Path]:
    """Write the mesh in the given formats, the optional height map and preview, and the JSON sidecar.

    All files appear together or not at all. Returns their paths: the geometry's sidecar follows the
    geometry files and the preview; the height maps and their sidecar come last.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [fmt for fmt in formats if fmt not in MESH_FORMATS]
    if unknown:
        raise BetterDepthError(
            BetterDepthError.BAD_INPUT, f"Unknown mesh format(s): {', '.join(unknown)}.",
            f"Use any of {', '.join(MESH_FORMATS)}."
        )
    paths = output_paths(Path(out_dir), stem, mesh.metadata.get("mode", "mesh"))
    writers = {paths[fmt]: (lambda path, write=MESH_WRITERS[fmt]: write(mesh, path)) for fmt in formats}
    if preview:
        from betterdepth_engine.recon.preview import render_preview

        writers[paths["preview"]] = lambda path: write_png(render_preview(mesh), path)
    files = {kind: path.name for kind, path in paths.items() if path in writers}
    mesh_document = mesh_sidecar(mesh, files)
    writers[paths["json"]] = lambda path: path.write_text(json.dumps(mesh_document, indent=2))
    if height_map is not None:
        writers[paths["height_exr"]] = lambda path: depthfile.write_exr(path, height_map.height)
        writers[paths["height_png"]] = lambda path: write_height_png16(height_map.height, path)
        height_files = {"exr": paths["height_exr"].name, "png": paths["height_png"].name}
        height_document = height_sidecar(height_map, height_files)
        writers[paths["height_json"]] = lambda path: path.write_text(json.dumps(height_document, indent=2))
    return write_files_atomically(writers)


def write_height_png16(height: np.ndarray, path: Path) -> None:
    """16-bit grayscale PNG, 0..1 -> 0..65535 (8 bits would terrace the displacement)."""
    from PIL import Image

    Image.fromarray(np.rint(np.clip(height, 0, 1) * 65535).astype(np.uint16)).save(path, format="PNG")
