"""The one place where the engine's OpenCV camera frame becomes Blender's camera frame.

OpenCV (engine): +X right, +Y down, +Z forward (away from the camera).
Blender camera:  +X right, +Y up,   -Z forward (the camera looks down its local -Z).
The change is a 180-degree turn about X (a rotation, determinant +1), so triangle winding and therefore
which side faces the camera are unchanged.
"""

from __future__ import annotations

import numpy as np

OPENCV_TO_BLENDER_CAMERA = np.float32([1.0, -1.0, -1.0])


def opencv_to_blender_camera(vectors: np.ndarray) -> np.ndarray:
    """Points or directions (N x 3) from the OpenCV camera frame into the Blender camera frame."""
    return np.asarray(vectors, dtype=np.float32) * OPENCV_TO_BLENDER_CAMERA
