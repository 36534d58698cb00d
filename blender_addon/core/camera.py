"""Camera parameters as plain data: what the engine needs from a Blender camera, and back.

`CameraParams` mirrors the engine's `mesh.blender_camera` request (protocol v1); the engine turns it into
pixel intrinsics with Blender's own view-plane rules (sensor fit, pixel aspect, lens shift), so a mesh built
from a camera render projects back onto its pixels. `params_from_intrinsics` goes the other way, for photos:
a Blender camera that sees the engine's pinhole camera exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")


@dataclass(frozen=True)
class CameraParams:
    """A Blender camera's intrinsics: Camera data (lens, sensor, fit, shift) + the render's pixel aspect."""

    lens_mm: float = 50.0
    sensor_width_mm: float = 36.0
    sensor_height_mm: float = 24.0
    sensor_fit: str = "AUTO"
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def __post_init__(self):
        if self.sensor_fit not in SENSOR_FITS:
            raise ValueError(f"Unknown sensor fit '{self.sensor_fit}'; use one of {', '.join(SENSOR_FITS)}.")

    def to_request(self) -> dict:
        """The `mesh.blender_camera` object of a job request."""
        return {name: (value if isinstance(value, str) else float(value)) for name, value in asdict(self).items()}


def params_from_intrinsics(intrinsics: dict, sensor_width_mm: float = 36.0) -> CameraParams:
    """A Blender camera (horizontal fit) with the engine's pinhole intrinsics {width, height, fx, fy, cx, cy}.

    Inverts the engine's intrinsics_from_blender for sensor fit HORIZONTAL: the image width spans the sensor,
    fx = lens / sensor * width, fy = fx * aspect_x / aspect_y, and the principal point's offset from the
    centre ((W - 1) / 2, (H - 1) / 2) is minus the shift times the width (y flipped: image down, Blender up).
    """
    width, height = int(intrinsics["width"]), int(intrinsics["height"])
    fx, fy = float(intrinsics["fx"]), float(intrinsics["fy"])
    cx, cy = float(intrinsics["cx"]), float(intrinsics["cy"])
    pixel_aspect = fx / fy  # aspect_y / aspect_x; Blender keeps both aspects >= 1
    aspect_x, aspect_y = (1.0, pixel_aspect) if pixel_aspect >= 1 else (1.0 / pixel_aspect, 1.0)
    return CameraParams(
        lens_mm=fx * sensor_width_mm / width,
        sensor_width_mm=sensor_width_mm,
        sensor_height_mm=sensor_width_mm * height / width,
        sensor_fit="HORIZONTAL",
        pixel_aspect_x=aspect_x,
        pixel_aspect_y=aspect_y,
        shift_x=((width - 1) / 2 - cx) / width,
        shift_y=(cy - (height - 1) / 2) * pixel_aspect / width,
    )
