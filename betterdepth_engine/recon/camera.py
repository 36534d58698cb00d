"""Camera models for lifting a depth map to 3D and projecting points back into the image.

Convention (engine-wide): the OpenCV camera frame, +X right, +Y down, +Z forward (away from the camera);
pixel centres sit at integer coordinates, so a centred principal point is ((W - 1) / 2, (H - 1) / 2).
The Blender camera frame (-Z forward, +Y up) only appears in the add-on's adapter and in Y-up file formats.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from betterdepth_engine.errors import BetterDepthError

# Used when neither the user nor the image's EXIF gives a focal length: 55 degrees across the longer side,
# a moderate wide angle (about a 35 mm lens on full frame) between phone cameras (~69 degrees) and a
# "normal" 50 mm lens (~40 degrees). Measured across the longer side, like Blender's AUTO sensor fit,
# so a portrait photo from the same camera gets the same focal length as a landscape one.
DEFAULT_FOV_DEG = 55.0
# The diagonal of a 36 x 24 mm frame: EXIF's 35-mm-equivalent focal length scales with the diagonal.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")


def _bad_camera(message: str, hint: str) -> BetterDepthError:
    return BetterDepthError(BetterDepthError.BAD_INPUT, message, hint)


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera: focal lengths and principal point in pixels, for an image of width x height."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    source: str  # where the focal length came from: focal_px | fov | exif_35mm | blender_camera | default_fov

    @property
    def focal_px(self) -> float:
        """The smaller focal length: the conservative one for thresholds that must hold along both axes."""
        return min(self.fx, self.fy)

    def lift(self, depth: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Camera-frame points, component first (3 x ...), for depth along +Z at pixel coordinates u (x), v (y)."""
        return np.stack(((u - self.cx) * (depth / self.fx), (v - self.cy) * (depth / self.fy), depth))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (u, v) of camera-frame points (N x 3)."""
        z = points[:, 2]
        return self.fx * points[:, 0] / z + self.cx, self.fy * points[:, 1] / z + self.cy

    def to_dict(self) -> dict:
        return {"model": "pinhole", **asdict(self)}


@dataclass(frozen=True)
class OrthographicCamera:
    """A parallel projection for reliefs: one pixel is `pixel_size` scene units wide; depth does not shrink it."""

    width: int
    height: int
    pixel_size: float
    cx: float
    cy: float

    def lift(self, depth: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Points, component first (3 x ...), at pixel coordinates u, v with the given z."""
        x, y = np.broadcast_arrays((u - self.cx) * self.pixel_size, (v - self.cy) * self.pixel_size)
        return np.stack((x, y, np.broadcast_to(depth, x.shape)))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return points[:, 0] / self.pixel_size + self.cx, points[:, 1] / self.pixel_size + self.cy

    def to_dict(self) -> dict:
        return {"model": "orthographic", **asdict(self)}


@dataclass(frozen=True)
class BlenderCamera:
    """The Blender camera settings that define intrinsics (Camera data block + render pixel aspect)."""

    lens_mm: float = 50.0
    sensor_width_mm: float = 36.0
    sensor_height_mm: float = 24.0
    sensor_fit: str = "AUTO"  # AUTO | HORIZONTAL | VERTICAL
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0
    shift_x: float = 0.0  # in units of the larger (fitted) image side, as in Blender
    shift_y: float = 0.0

    def __post_init__(self):
        if self.sensor_fit not in SENSOR_FITS:
            raise _bad_camera(f"Unknown sensor fit '{self.sensor_fit}'.", f"Use one of {', '.join(SENSOR_FITS)}.")
        sizes = (self.lens_mm, self.sensor_width_mm, self.sensor_height_mm, self.pixel_aspect_x, self.pixel_aspect_y)
        if not all(math.isfinite(size) and size > 0 for size in sizes):
            raise _bad_camera(
                "Blender camera lens, sensor size and pixel aspect must be positive.", "Check the camera settings."
            )


def centred(width: int, height: int, fx: float, fy: float, source: str) -> Intrinsics:
    return Intrinsics(width, height, float(fx), float(fy), (width - 1) / 2, (height - 1) / 2, source)


def intrinsics_from_focal_px(width: int, height: int, focal_px: float, source: str = "focal_px") -> Intrinsics:
    if not (math.isfinite(focal_px) and focal_px > 0):
        raise _bad_camera(f"Focal length must be a positive number of pixels, got {focal_px}.", "Pass e.g. 1000.")
    return centred(width, height, focal_px, focal_px, source)


def intrinsics_from_fov(width: int, height: int, fov_deg: float, source: str = "fov") -> Intrinsics:
    """Field of view across the longer image side (Blender's AUTO sensor fit)."""
    if not (0 < fov_deg < 180):
        raise _bad_camera(f"Field of view must be between 0 and 180 degrees, got {fov_deg}.", "Pass e.g. 55.")
    focal_px = max(width, height) / (2 * math.tan(math.radians(fov_deg) / 2))
    return centred(width, height, focal_px, focal_px, source)


def intrinsics_from_35mm(width: int, height: int, focal_35mm: float) -> Intrinsics:
    """EXIF FocalLengthIn35mmFilm: the image diagonal corresponds to the 43.27 mm full-frame diagonal."""
    if not (math.isfinite(focal_35mm) and focal_35mm > 0):
        raise _bad_camera(f"35 mm focal length must be positive, got {focal_35mm}.", "Check the image's EXIF data.")
    focal_px = focal_35mm / FULL_FRAME_DIAGONAL_MM * math.hypot(width, height)
    return centred(width, height, focal_px, focal_px, "exif_35mm")


def intrinsics_from_blender(width: int, height: int, camera: BlenderCamera) -> Intrinsics:
    """Blender's own view-plane computation (BKE_camera_params_compute_viewplane), including lens shift.

    The fitted side spans the sensor size; non-square pixels make fy = fx / (aspect_y / aspect_x);
    shift moves the view by a fraction of the fitted side, so the principal point moves the other way.
    """
    pixel_aspect = camera.pixel_aspect_y / camera.pixel_aspect_x
    fit = camera.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if camera.pixel_aspect_x * width >= camera.pixel_aspect_y * height else "VERTICAL"
    sensor_mm = camera.sensor_height_mm if camera.sensor_fit == "VERTICAL" else camera.sensor_width_mm
    view_px = width if fit == "HORIZONTAL" else pixel_aspect * height  # the fitted side, in x-pixel units
    fx = camera.lens_mm / sensor_mm * view_px
    fy = fx / pixel_aspect
    cx = (width - 1) / 2 - camera.shift_x * view_px
    cy = (height - 1) / 2 + camera.shift_y * view_px / pixel_aspect  # +Y is down in the image, up in Blender
    return Intrinsics(width, height, fx, fy, cx, cy, "blender_camera")
