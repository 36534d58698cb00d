"""Reconstruction entry points: a disparity or depth map (+ the photo) -> mesh arrays or a relief height map."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.options import setting
from betterdepth_engine.recon import attributes, filters, grid, lifting, relief
from betterdepth_engine.recon.arrays import HeightMap, MeshArrays
from betterdepth_engine.recon.camera import (
    DEFAULT_FOV_DEG,
    BlenderCamera,
    Intrinsics,
    OrthographicCamera,
    intrinsics_from_35mm,
    intrinsics_from_blender,
    intrinsics_from_focal_px,
    intrinsics_from_fov,
)

MODES = ("mesh", "relief")
COLOR_MODES = ("auto", "image", "normal")  # auto: the photo's colours when an image is given, else normals
INVALID_POLICIES = ("drop", "backplate")
# Above this many pixels the grid takes every n-th pixel: ~2 MP already resolves more than a screen shows,
# and keeps a 4K map (every 2nd pixel: 2.07 MP) within seconds and a few hundred MB. 1080p stays whole.
DEFAULT_MAX_VERTICES = 2_500_000


def _require(condition: bool, message: str, hint: str) -> None:
    if not condition:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, message, hint)


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    _require(value in allowed, f"Unknown {name} '{value}'.", f"Use one of {', '.join(allowed)}.")


@dataclass(frozen=True)
class ReliefOptions:
    """Bas-relief shape. Sizes are in scene units (slicers read them as millimetres)."""

    method: str = setting("gradient", "depth compression: linear, gamma, or gradient (keeps far detail, flattens "
                          "big steps)", choices=relief.RELIEF_METHODS)
    gamma: float = setting(0.5, "for method gamma: < 1 lifts far parts, > 1 near parts")
    gradient_power: float = setting(0.3, "for method gradient: 1 keeps slopes, smaller flattens large steps more")
    width: float = setting(100.0, "the relief's width across the image, scene units (mm for printing)")
    depth: float = setting(10.0, "height of the nearest point above the base plane")
    base: float = setting(2.0, "thickness of the solid back plate under height 0")

    def __post_init__(self):
        _one_of("relief method", self.method, relief.RELIEF_METHODS)
        _require(self.gamma > 0, f"Relief gamma must be positive, got {self.gamma}.", "Try 0.5.")
        _require(0 < self.gradient_power <= 1, "Relief gradient power must be in (0, 1].", "Try 0.3.")
        sizes = (self.width, self.depth, self.base)
        _require(all(math.isfinite(s) and s > 0 for s in sizes), "Relief width, depth and base must be positive.",
                 "E.g. width 100, depth 10, base 2 (mm for printing).")


@dataclass(frozen=True)
class ReconOptions:
    """Everything that shapes the reconstruction. Recorded in the result's metadata; `betterdepth mesh`'s options
    are generated from these fields (betterdepth_engine.options)."""

    mode: str = setting("mesh", "mesh: camera-aligned surface; relief: closed printable bas-relief solid "
                        "(orthographic)", choices=MODES)
    # Depth range for affine-invariant inputs: depth spans [near, near * far_near_ratio] (see recon.lifting).
    far_near_ratio: float = setting(10.0, "for affine inputs: the farthest depth is this many times the nearest")
    near: float = setting(1.0, "for affine inputs: depth of the nearest point, in scene units")
    invalid: str = setting("drop", "invalid pixels (NaN, sky): no geometry, or a plate at the far depth",
                           choices=INVALID_POLICIES)
    sky_below: float | None = setting(None, "treat pixels with normalised disparity below this (0..1) as sky, "
                                      "e.g. 0.02")
    # Camera: blender_camera, focal_px or fov_deg (across the longer side) if given, else the image's EXIF
    # focal_35mm, else DEFAULT_FOV_DEG.
    focal_px: float | None = setting(None, "focal length in pixels (default: EXIF of the image, else "
                                     f"{DEFAULT_FOV_DEG:g} degrees across the longer side)")
    fov_deg: float | None = setting(None, "field of view across the longer image side, in degrees")
    focal_35mm: float | None = setting(None, "35 mm equivalent focal length (from the image's EXIF)", cli=False)
    blender_camera: BlenderCamera | None = setting(None, "a Blender camera's settings", cli=False)
    # Mesh
    min_angle_deg: float = setting(4.0, "cut triangles a surface seen at a shallower angle could not produce "
                                   "(depth jumps); 0 keeps all")
    max_vertices: int = setting(DEFAULT_MAX_VERTICES, "above this many pixels use every n-th pixel")
    max_faces: int | None = setting(None, "decimate to at most this many faces")
    colors: str = setting("auto", "vertex colours: the photo's (auto, with an image) or normal colours",
                          choices=COLOR_MODES)
    fill_holes_px: int = setting(0, "fill invalid gaps up to this many pixels wide", flag="--fill-holes")
    smooth_iterations: int = setting(0, "edge-aware smoothing passes over log depth", flag="--smooth")
    relief: ReliefOptions = field(default_factory=ReliefOptions, metadata={"cli": False})

    def __post_init__(self):
        _one_of("mode", self.mode, MODES)
        _one_of("colors", self.colors, COLOR_MODES)
        _one_of("invalid-pixel policy", self.invalid, INVALID_POLICIES)
        _require(self.far_near_ratio > 1, "The far/near ratio must be above 1.", "Try 10 (or 3 for a close-up).")
        _require(self.near > 0, "The near distance must be positive.", "Try 1.")
        _require(0 <= self.min_angle_deg < 90, "The minimum viewing angle must be in [0, 90) degrees.", "Try 4.")
        _require(self.max_vertices >= 4, "max_vertices must be at least 4.", "Try 2500000.")
        _require(self.max_faces is None or self.max_faces >= 4, "max_faces must be at least 4.", "Try 150000.")
        _require(self.fill_holes_px >= 0 and self.smooth_iterations >= 0,
                 "Hole size and smoothing passes cannot be negative.", "Use 0 to turn them off.")
        _require(self.sky_below is None or 0 <= self.sky_below < 1, "sky_below must be in [0, 1).", "Try 0.02.")
        explicit = [name for name in ("focal_px", "fov_deg", "blender_camera") if getattr(self, name) is not None]
        _require(len(explicit) <= 1, f"Give one camera description, not {' and '.join(explicit)}.",
                 "Use either a focal length in pixels, a field of view or a Blender camera.")


def resolve_intrinsics(width: int, height: int, options: ReconOptions) -> Intrinsics:
    """The camera for an image of this size, from the first description the options give."""
    if options.blender_camera is not None:
        return intrinsics_from_blender(width, height, options.blender_camera)
    if options.focal_px is not None:
        return intrinsics_from_focal_px(width, height, options.focal_px)
    if options.fov_deg is not None:
        return intrinsics_from_fov(width, height, options.fov_deg)
    if options.focal_35mm:
        return intrinsics_from_35mm(width, height, options.focal_35mm)
    return intrinsics_from_fov(width, height, DEFAULT_FOV_DEG, source="default_fov")


def grid_stride(height: int, width: int, max_vertices: int) -> int:
    """Take every n-th pixel so the grid has at most max_vertices vertices."""
    return max(1, math.ceil(math.sqrt(height * width / max_vertices)))


def _checked_image(image_rgb: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if image_rgb is None:
        return None
    image_rgb = np.asarray(image_rgb)
    _require(image_rgb.ndim == 3 and image_rgb.shape[2] == 3 and image_rgb.dtype == np.uint8,
             f"The image must be H x W x 3 uint8 RGB, got {image_rgb.dtype} {image_rgb.shape}.",
             "Load it with betterdepth_engine.images.load_image.")
    _require(image_rgb.shape[:2] == shape,
             f"The image is {image_rgb.shape[1]}x{image_rgb.shape[0]} but the depth map {shape[1]}x{shape[0]}.",
             "Pass the image the depth map was computed from (after EXIF rotation), at the same size.")
    return image_rgb


def _color_mode(requested: str, image_rgb: np.ndarray | None) -> str:
    if requested == "auto":
        return "normal" if image_rgb is None else "image"
    _require(requested == "normal" or image_rgb is not None, "Image colours need the image.",
             "Pass the photo (--image), or use normal colours.")
    return requested


def _vertex_colors(mode: str, normals: np.ndarray, image_rgb, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return attributes.normal_colors(normals) if mode == "normal" else attributes.sample_image(image_rgb, u, v)


def lift_to_depth(values, space: str, options: ReconOptions, valid_mask=None) -> tuple[np.ndarray, lifting.DepthRange]:
    """Depth along +Z (H x W float32, NaN = no geometry) after the sky and invalid-pixel policies."""
    values = lifting.as_depth_array(values)
    valid = lifting.valid_pixels(values, space, valid_mask)
    depth, depth_range = lifting.to_depth(values, space, valid, options.near, options.far_near_ratio)
    if options.sky_below is not None:
        with np.errstate(invalid="ignore"):
            depth[lifting.normalized_disparity(depth, depth_range) < options.sky_below] = np.nan
        if np.isnan(depth).all():
            raise BetterDepthError(BetterDepthError.BAD_DEPTH, "Every pixel fell below the sky threshold.",
                                   "Lower sky_below or leave it unset.")
    if options.invalid == "backplate":
        depth[np.isnan(depth)] = depth_range.far
    return depth, depth_range


def _cleaned(depth_grid: np.ndarray, focal_px: float, stride: int, options: ReconOptions) -> np.ndarray:
    if options.fill_holes_px:
        depth_grid = filters.fill_small_holes(depth_grid, -(-options.fill_holes_px // stride))
    if options.smooth_iterations:
        step_ratio = grid.max_depth_ratio(focal_px, options.min_angle_deg, stride)
        depth_grid = filters.smooth_depth(depth_grid, options.smooth_iterations, step_ratio)
    return depth_grid


def _perspective_mesh(depth_grid, u, v, intrinsics: Intrinsics, stride: int, options: ReconOptions):
    """The cut grid mesh: (camera, vertices N x 3, faces, normals N x 3, vertex pixel u, v, metadata)."""
    points = intrinsics.lift(depth_grid, u, v).astype(np.float32, copy=False)
    max_ratio = grid.max_depth_ratio(intrinsics.focal_px, options.min_angle_deg, math.sqrt(2) * stride)
    faces, normals, used = grid.triangulate(points, grid.continuous_quads(depth_grid, max_ratio))
    index = np.flatnonzero(used)
    vertices, normals = (grid_array.reshape(3, -1).T[index] for grid_array in (points, normals))
    rows, columns = np.divmod(index, used.shape[1])  # integer pixels: colours index them directly
    metadata = {"discontinuity": {"min_angle_deg": options.min_angle_deg, "max_depth_ratio": max_ratio}}
    return intrinsics, vertices, faces, normals, columns * stride, rows * stride, metadata


def _relief_mesh(depth_grid, u, v, intrinsics: Intrinsics, stride: int, options: ReconOptions):
    """The closed relief solid, with the same return values as _perspective_mesh."""
    width, height = intrinsics.width, intrinsics.height
    camera = OrthographicCamera(width, height, options.relief.width / width, (width - 1) / 2, (height - 1) / 2)
    step_ratio = grid.max_depth_ratio(intrinsics.focal_px, options.min_angle_deg, stride)
    settings = options.relief
    heights = relief.relief_heights(depth_grid, settings.method, settings.gamma, settings.gradient_power, step_ratio)
    vertices, faces, normals = relief.relief_solid(heights, u, v, camera, settings.depth, settings.base)
    u_vertex, v_vertex = camera.project(vertices)
    return camera, vertices, faces, normals, u_vertex, v_vertex, {"relief_camera": camera.to_dict()}


def normal_map(values, space: str = "disparity", options: ReconOptions | None = None,
               valid_mask: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel normals of the lifted surface as colours (0.5 n + 0.5, camera frame), H x W x 3 uint8.

    The picture of geometry that a depth map alone hides; black where no continuous surface touches a pixel.
    """
    options = options or ReconOptions()
    depth, _ = lift_to_depth(values, space, options, valid_mask)
    height, width = depth.shape
    intrinsics = resolve_intrinsics(width, height, options)
    u = np.arange(width, dtype=np.float32)[None, :]
    v = np.arange(height, dtype=np.float32)[:, None]
    points = intrinsics.lift(depth, u, v).astype(np.float32, copy=False)
    keep = grid.continuous_quads(depth, grid.max_depth_ratio(intrinsics.focal_px, options.min_angle_deg, math.sqrt(2)))
    normals = grid.grid_normals(points, keep).reshape(3, -1).T
    colors = attributes.normal_colors(normals)
    colors[~normals.any(axis=1)] = 0
    return colors.reshape(height, width, 3)


def reconstruct(
    values,
    space: str = "disparity",
    image_rgb: np.ndarray | None = None,
    options: ReconOptions | None = None,
    valid_mask: np.ndarray | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> MeshArrays:
    """A camera-aligned mesh (mode "mesh") or a closed relief solid (mode "relief") from a depth map.

    values: H x W disparity or depth in `space` (see recon.lifting.SPACES); NaN/inf mark invalid pixels.
    image_rgb: the photo (H x W x 3 uint8, same size) for vertex colours; optional.
    valid_mask: optional H x W bool, False where values are meaningless.
    on_stage: called with each stage's name as it starts ("mesh" or "relief", then "decimate" and "check solid"
    where they apply), for progress displays: decimation and large reliefs take seconds.
    """
    options = options or ReconOptions()
    on_stage = on_stage or (lambda stage: None)
    on_stage(options.mode)
    depth, depth_range = lift_to_depth(values, space, options, valid_mask)
    height, width = depth.shape
    image_rgb = _checked_image(image_rgb, depth.shape)
    color_mode = _color_mode(options.colors, image_rgb)
    intrinsics = resolve_intrinsics(width, height, options)
    stride = grid_stride(height, width, options.max_vertices)
    u = np.arange(0, width, stride, dtype=np.float32)[None, :]
    v = np.arange(0, height, stride, dtype=np.float32)[:, None]
    depth_grid = _cleaned(depth[::stride, ::stride], intrinsics.focal_px, stride, options)
    _require(min(depth_grid.shape) >= 2, "The depth map is too small for its stride.", "Raise max_vertices.")

    build = _perspective_mesh if options.mode == "mesh" else _relief_mesh
    camera, vertices, faces, normals, u_vertex, v_vertex, mode_metadata = build(
        depth_grid, u, v, intrinsics, stride, options
    )
    if len(faces) == 0:
        raise BetterDepthError(
            BetterDepthError.BAD_DEPTH,
            "No triangles survived: every quad touches an invalid pixel or a depth jump.",
            "Check the depth map, lower min_angle_deg, or use invalid='backplate'.",
        )
    mesh = MeshArrays(
        vertices=vertices,
        faces=faces,
        normals=normals,
        colors=_vertex_colors(color_mode, normals, image_rgb, u_vertex, v_vertex),
        uvs=attributes.uvs_from_pixels(u_vertex, v_vertex, width, height),
        metadata={
            "mode": options.mode,
            "frame": "opencv",  # +X right, +Y down, +Z forward
            "space": space,
            "camera": intrinsics.to_dict(),
            "depth_range": depth_range.to_dict(),
            "grid": {"stride": stride, "columns": depth_grid.shape[1], "rows": depth_grid.shape[0]},
            "colors": color_mode,
            "options": asdict(options),
            **mode_metadata,
        },
    )
    if options.max_faces is not None and len(faces) > options.max_faces:
        on_stage("decimate")
        mesh = decimate(mesh, options.max_faces, camera, image_rgb, color_mode)
    if options.mode == "relief":
        on_stage("check solid")
        mesh.metadata["solid"] = relief.solid_check(mesh.vertices, mesh.faces)
    return mesh


def decimate(mesh: MeshArrays, max_faces: int, camera, image_rgb, color_mode: str) -> MeshArrays:
    """At most max_faces faces (quadric edge collapse), with normals recomputed and UVs and colours re-sampled.

    Collapses move vertices off their pixels, so UVs and colours come from projecting them back into the image.
    Borders (silhouettes at depth cuts, the image edge) are kept in place so outlines stay exact, unless the
    budget cannot be met that way.
    """
    import fast_simplification

    vertices, faces = fast_simplification.simplify(
        mesh.vertices, mesh.faces, target_count=max_faces, preserve_border=True
    )
    borders_kept = len(faces) <= max_faces
    if not borders_kept:  # a fragmented mesh (noisy depth, many cuts) is mostly border: let borders collapse too
        vertices, faces = fast_simplification.simplify(vertices, faces, target_count=max_faces)
    vertices = vertices.astype(np.float32)
    faces = faces.astype(np.int32)
    normals = attributes.vertex_normals(vertices, faces)
    u, v = camera.project(vertices)
    decimation = {"max_faces": max_faces, "faces_before": len(mesh.faces), "borders_kept": borders_kept}
    metadata = {**mesh.metadata, "decimation": decimation}
    return MeshArrays(
        vertices=vertices,
        faces=faces,
        normals=normals,
        colors=_vertex_colors(color_mode, normals, image_rgb, u, v),
        uvs=attributes.uvs_from_pixels(u, v, camera.width, camera.height),
        metadata=metadata,
    )


def relief_height_map(
    values, space: str = "disparity", options: ReconOptions | None = None, valid_mask: np.ndarray | None = None
) -> HeightMap:
    """A full-resolution displacement map of the relief, with the Displace modifier settings that reproduce it.

    In Blender: a plane options.relief.width wide with this map as its texture (UV coordinates) and a Displace
    modifier with strength options.relief.depth and midlevel 0 (height 0 stays on the plane, 1 rises by depth).
    A plane of another width w needs strength depth * w / width.
    """
    options = options or ReconOptions()
    depth, depth_range = lift_to_depth(values, space, options, valid_mask)
    intrinsics = resolve_intrinsics(depth.shape[1], depth.shape[0], options)
    step_ratio = grid.max_depth_ratio(intrinsics.focal_px, options.min_angle_deg, 1)
    settings = options.relief
    heights = relief.relief_heights(depth, settings.method, settings.gamma, settings.gradient_power, step_ratio)
    metadata = {
        "encoding": "0 = base plane (farthest and invalid pixels), 1 = nearest",
        "blender_displace": {
            "strength": settings.depth,
            "midlevel": 0.0,
            "plane_width": settings.width,
            "texture_coordinates": "UV",
            "color_space": "Non-Color",
        },
        "camera": intrinsics.to_dict(),
        "depth_range": depth_range.to_dict(),
        "relief": asdict(settings),
    }
    return HeightMap(height=heights, metadata=metadata)
