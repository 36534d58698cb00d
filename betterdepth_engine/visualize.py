"""Pictures of depth results: colorized disparity, the labelled side-by-side comparison with its colour bar."""

from __future__ import annotations

import functools

import numpy as np

from betterdepth_engine.images import LoadedImage


def disparity_display_range(*disparities: np.ndarray) -> tuple[float, float]:
    """One robust (1%, 99%) range over the valid pixels of all maps, so panels share a color scale."""
    values = np.concatenate([d[np.isfinite(d)].ravel() for d in disparities])
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1.0, 99.0])
    return float(low), float(max(high, low + 1e-6))


# ColorBrewer's 11-class Spectral scheme (red -> blue), the colours Marigold's figures and diffusers use.
SPECTRAL_RGB = np.array([(158, 1, 66), (213, 62, 79), (244, 109, 67), (253, 174, 97), (254, 224, 139),
                         (255, 255, 191), (230, 245, 152), (171, 221, 164), (102, 194, 165), (50, 136, 189),
                         (94, 79, 162)], dtype=np.float32) / 255
SPECTRAL_LEVELS = 1024  # table entries: finer than 8-bit colour can show


@functools.cache
def _spectral_table() -> np.ndarray:
    """SPECTRAL_LEVELS colours interpolated linearly between the scheme's, as uint8 (truncated, as diffusers)."""
    position = np.linspace(0, 1, SPECTRAL_LEVELS, dtype=np.float32) * np.float32(len(SPECTRAL_RGB) - 1)
    left = position.astype(np.intp)
    right = np.minimum(left + 1, len(SPECTRAL_RGB) - 1)
    weight = (position - left.astype(np.float32))[:, None]
    colours = (1 - weight) * SPECTRAL_RGB[left] + weight * SPECTRAL_RGB[right]
    return (colours * 255).astype(np.uint8)


def _spectral(depth_unit: np.ndarray) -> np.ndarray:
    """Spectral over [0 = near, 1 = far], near red, far blue; uint8 RGB. Looked up in a table (computing the
    interpolation per pixel took ~60 ms for a 256 px preview)."""
    return _spectral_table()[np.rint(np.clip(depth_unit, 0, 1) * (SPECTRAL_LEVELS - 1)).astype(np.intp)]


def colorize_disparity(disparity: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Disparity -> H x W x 3 uint8 in Marigold's colours: near = red, far = blue (Spectral), invalid = black."""
    low, high = value_range or disparity_display_range(disparity)
    unit = np.clip((np.nan_to_num(disparity, nan=low) - low) / (high - low), 0.0, 1.0)
    colored = _spectral(1.0 - unit)  # disparity grows towards the camera, so 1 - unit runs near -> far
    colored[~np.isfinite(disparity)] = 0
    return colored


def _text_strip(width: int, height: int, text: str, align: str = "center") -> np.ndarray:
    """A white strip with black text, for panel labels."""
    from PIL import Image, ImageDraw, ImageFont

    strip = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=max(10, int(height * 0.6)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = (width - (right - left)) // 2 - left if align == "center" else 2 - left
    draw.text((x, (height - (bottom - top)) // 2 - top), text, fill=(0, 0, 0), font=font)
    return np.asarray(strip)


def colour_bar(height: int, label_height: int) -> np.ndarray:
    """The legend: 'near' over a Spectral bar running from near (top) to far (bottom) over 'far'."""
    width = max(48, label_height * 2)
    bar = np.full((height, width, 3), 255, np.uint8)
    bar[:, width // 4: 3 * width // 4] = _spectral(np.linspace(0.0, 1.0, height))[:, None, :]
    return np.concatenate((_text_strip(width, label_height, "near"), bar, _text_strip(width, label_height, "far")))


def side_by_side(image: LoadedImage, base_disparity: np.ndarray, disparity: np.ndarray,
                 normals_rgb: np.ndarray | None = None, panel_height: int = 384) -> np.ndarray:
    """Labelled panels image | base | refined [| normals] and a near/far colour bar; H x W x 3 uint8.

    The two disparity panels share one colour scale (a robust range over both), so their colours compare.
    """
    from PIL import Image

    value_range = disparity_display_range(base_disparity, disparity)
    panels = {"image": image.rgb, "base disparity": colorize_disparity(base_disparity, value_range),
              "refined disparity": colorize_disparity(disparity, value_range)}
    if normals_rgb is not None:
        panels["normals (refined)"] = normals_rgb
    width = max(1, round(image.width * panel_height / image.height))
    label_height = max(16, panel_height // 16)
    gap = np.full((panel_height + 2 * label_height, 4, 3), 255, np.uint8)
    columns = []
    for label, panel in panels.items():
        resized = np.asarray(Image.fromarray(panel).resize((width, panel_height), Image.Resampling.BILINEAR))
        blank = np.full((label_height, width, 3), 255, np.uint8)
        columns += [np.concatenate((_text_strip(width, label_height, label), resized, blank)), gap]
    columns.append(colour_bar(panel_height, label_height))
    return np.concatenate(columns, axis=1)


