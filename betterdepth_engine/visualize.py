"""Pictures of depth results: colorized disparity, the side-by-side comparison."""

from __future__ import annotations

import numpy as np

from betterdepth_engine.images import LoadedImage


def disparity_display_range(*disparities: np.ndarray) -> tuple[float, float]:
    """One robust (1%, 99%) range over the valid pixels of all maps, so panels share a color scale."""
    values = np.concatenate([d[np.isfinite(d)].ravel() for d in disparities])
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1.0, 99.0])
    return float(low), float(max(high, low + 1e-6))


def colorize_disparity(disparity: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Disparity -> H x W x 3 uint8 with the Spectral colormap (near = blue, far = red, invalid = black)."""
    from diffusers.pipelines.marigold import MarigoldImageProcessor

    low, high = value_range or disparity_display_range(disparity)
    unit = np.clip((np.nan_to_num(disparity, nan=low) - low) / (high - low), 0.0, 1.0)
    # Marigold shows depth with Spectral (near = red); disparity is inverted so near stays red.
    colored = MarigoldImageProcessor.colormap(1.0 - unit, cmap="Spectral", bytes=True)
    colored[~np.isfinite(disparity)] = 0
    return colored


def side_by_side(image: LoadedImage, base_disparity: np.ndarray, disparity: np.ndarray,
                 normals_rgb: np.ndarray | None = None, panel_height: int = 384) -> np.ndarray:
    """image | base | refined [| normals], each scaled to `panel_height`; H x W x 3 uint8."""
    from PIL import Image

    value_range = disparity_display_range(base_disparity, disparity)
    panels = [image.rgb, colorize_disparity(base_disparity, value_range),
              colorize_disparity(disparity, value_range)]
    if normals_rgb is not None:
        panels.append(normals_rgb)
    width = max(1, round(image.width * panel_height / image.height))
    resized = [np.asarray(Image.fromarray(panel).resize((width, panel_height), Image.Resampling.BILINEAR))
               for panel in panels]
    gap = np.full((panel_height, 4, 3), 255, np.uint8)
    row = [resized[0]]
    for panel in resized[1:]:
        row += [gap, panel]
    return np.concatenate(row, axis=1)
