"""The disparity an object keeps with the .blend (for Re-run after the engine dropped its job), as float pixels.

A Blender float image holds RGBA floats with the bottom row first. The disparity goes into R and its validity
into G (1 = valid): NaN marks invalid pixels in the engine's files, and keeping NaN out of the image keeps
every image path (packing, OpenEXR, display) away from it. Blender writes float images as 32-bit OpenEXR,
which round-trips the values exactly (tests/blender). A digest of the values recognises a damaged copy.
"""

from __future__ import annotations

import hashlib

import numpy as np


def to_pixels(disparity: np.ndarray) -> np.ndarray:
    """H x W disparity (NaN = invalid) -> flat float32 RGBA for `Image.pixels`, bottom row first."""
    valid = np.isfinite(disparity)
    rgba = np.zeros((*disparity.shape, 4), np.float32)
    rgba[..., 0] = np.where(valid, disparity, 0.0)
    rgba[..., 1] = valid
    rgba[..., 3] = 1.0
    return np.ascontiguousarray(rgba[::-1]).ravel()


def from_pixels(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The inverse of `to_pixels`: float32 H x W, NaN where invalid."""
    rgba = np.asarray(pixels, np.float32).reshape(height, width, 4)[::-1]
    return np.where(rgba[..., 1] > 0.5, rgba[..., 0], np.nan).astype(np.float32)


def digest(disparity: np.ndarray) -> str:
    """SHA-256 of the float32 values with invalid pixels as 0, and of the validity (NaN bit patterns vary)."""
    values = np.asarray(disparity, np.float32)
    valid = np.isfinite(values)
    hasher = hashlib.sha256(np.ascontiguousarray(np.where(valid, values, 0.0).astype(np.float32)).tobytes())
    hasher.update(np.packbits(valid).tobytes())
    hasher.update(f"{values.shape}".encode())
    return hasher.hexdigest()
