"""Pixel arrays the add-on prepares itself: EXIF orientation and sRGB encoding.

The engine applies a photo's EXIF orientation (PIL's exif_transpose); Blender's image loader does not, so the
add-on turns the photo's texture the same way to match the mesh the engine built.
"""

from __future__ import annotations

import numpy as np

def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """An H x W x C array (row 0 at the top) as the camera saw it, for EXIF orientation 1..8."""
    if orientation in (5, 6, 7, 8):
        turned = {5: pixels.transpose(1, 0, 2), 6: np.rot90(pixels, -1),
                  7: np.rot90(pixels, 2).transpose(1, 0, 2), 8: np.rot90(pixels, 1)}[orientation]
    else:
        turned = {1: pixels, 2: pixels[:, ::-1], 3: pixels[::-1, ::-1], 4: pixels[::-1]}.get(orientation, pixels)
    return np.ascontiguousarray(turned)


def srgb_from_linear_rgba(pixels: np.ndarray) -> np.ndarray:
    """Scene-linear RGBA (flat or N x 4, alpha linear) encoded with the sRGB curve, clipped to [0, 1]."""
    rgba = np.clip(np.asarray(pixels, np.float32).reshape(-1, 4), 0.0, 1.0)
    rgb = rgba[:, :3]
    rgba[:, :3] = np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)
    return rgba.reshape(np.shape(pixels))
