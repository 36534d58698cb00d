"""Reconstruction: disparity or depth + intrinsics -> camera-aligned meshes, reliefs and displacement maps.

    from betterdepth_engine.recon import ReconOptions, reconstruct, relief_height_map, write_outputs

    mesh = reconstruct(disparity, space="disparity", image_rgb=rgb, options=ReconOptions(focal_35mm=26))
    paths = write_outputs(mesh, out_dir, stem, formats=("ply", "glb"), preview=True)

See docs/reconstruction.md for the conventions, the discontinuity threshold and the relief methods.
"""

from betterdepth_engine.recon.arrays import HeightMap, MeshArrays
from betterdepth_engine.recon.camera import BlenderCamera, Intrinsics, OrthographicCamera
from betterdepth_engine.recon.export import MESH_FORMATS, write_outputs
from betterdepth_engine.recon.lifting import SPACES
from betterdepth_engine.recon.pipeline import (
    ReconOptions,
    ReliefOptions,
    normal_map,
    reconstruct,
    relief_height_map,
    resolve_intrinsics,
)
from betterdepth_engine.recon.preview import render_preview

__all__ = [
    "MESH_FORMATS",
    "SPACES",
    "BlenderCamera",
    "HeightMap",
    "Intrinsics",
    "MeshArrays",
    "OrthographicCamera",
    "ReconOptions",
    "ReliefOptions",
    "normal_map",
    "reconstruct",
    "relief_height_map",
    "render_preview",
    "resolve_intrinsics",
    "write_outputs",
]
