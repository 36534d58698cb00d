"""EXIF orientation for photos: the engine applies it (PIL's exif_transpose), Blender's image loader does not.

So that a photo's texture matches the mesh the engine built, the add-on turns the photo's pixels the same way.
"""

from __future__ import annotations

import re

import numpy as np

_NOTE = re.compile(r"applied EXIF orientation (\d)")


def orientation_from_notes(notes: list[str]) -> int:
    """The EXIF orientation the engine applied (its image notes say so), 1 when none."""
    for note in notes or ():
        match = _NOTE.search(note)
        if match:
            return int(match.group(1))
    return 1


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """An H x W x C array (row 0 at the top) as the camera saw it, for EXIF orientation 1..8."""
    if orientation in (5, 6, 7, 8):
        turned = {5: pixels.transpose(1, 0, 2), 6: np.rot90(pixels, -1),
                  7: np.rot90(pixels, 2).transpose(1, 0, 2), 8: np.rot90(pixels, 1)}[orientation]
    else:
        turned = {1: pixels, 2: pixels[:, ::-1], 3: pixels[::-1, ::-1], 4: pixels[::-1]}.get(orientation, pixels)
    return np.ascontiguousarray(turned)
