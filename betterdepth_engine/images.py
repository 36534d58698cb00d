"""Loading input images: every accepted file becomes an RGB uint8 array, upright, with a clear error otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from betterdepth_engine.errors import BetterDepthError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
# Images above this many pixels are downscaled with a message: the models work at ~768 px anyway,
# and a 100-megapixel input would only exhaust memory in the output stages.
MAX_PIXELS = 40_000_000
MAX_SIDE = 16384
MIN_SIDE = 8  # below this there is nothing to estimate depth from (and no 2 x 2 grid for normals)


@dataclass
class LoadedImage:
    """An input image as the pipeline sees it."""

    rgb: np.ndarray  # H x W x 3, uint8, EXIF orientation applied
    path: Path | None = None
    notes: list[str] = field(default_factory=list)  # conversions applied (mode, rotation, downscale)
    focal_length_35mm: float | None = None  # from EXIF, for reconstruction
    exif_orientation: int = 1  # the EXIF orientation that was applied to `rgb` (1 = none)

    @property
    def stem(self) -> str:
        return self.path.stem if self.path is not None else "image"

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


IMAGE_HINT = "Use a JPEG, PNG, TIFF, BMP or WebP file that opens in an image viewer."


def _bad_image(path: Path, what: str, hint: str = IMAGE_HINT) -> BetterDepthError:
    return BetterDepthError(BetterDepthError.BAD_IMAGE, f"Cannot read image '{path}': {what}", hint)


def _to_rgb_uint8(image, notes: list[str]) -> np.ndarray:
    """Convert any Pillow mode to RGB uint8: 16-bit and float are rescaled, alpha is composited on white."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        if image.mode == "F":
            top = max(float(np.nanmax(values)), 1e-12) if values.size else 1.0
        notes.append(f"converted {image.mode} to 8-bit RGB")
        gray = np.clip(np.nan_to_num(values) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("composited the alpha channel over white")
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if image.mode != "RGB":
        notes.append(f"converted {image.mode} to RGB")
        image = image.convert("RGB")
    return np.asarray(image)


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image file as upright RGB uint8, or raise BetterDepthError(BAD_IMAGE) saying why not."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise BetterDepthError(BetterDepthError.BAD_IMAGE, f"Image '{path}' does not exist.", "Check the path.")
    if path.is_dir():
        raise _bad_image(path, "it is a folder")
    if path.stat().st_size == 0:
        raise _bad_image(path, "the file is empty")
    notes: list[str] = []
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width == 0 or height == 0:
                raise _bad_image(path, f"it has zero size ({width}x{height})")
            if width > MAX_SIDE or height > MAX_SIDE or width * height > 4 * MAX_PIXELS:
                raise _bad_image(
                    path, f"it is {width}x{height}; the largest accepted is {MAX_SIDE} px a side and "
                    f"{4 * MAX_PIXELS // 1_000_000} megapixels",
                    f"Downscale or crop it to at most {MAX_SIDE} px a side first (larger inputs are downscaled to "
                    f"{MAX_PIXELS // 1_000_000} megapixels anyway).",
                )
            if width < MIN_SIDE or height < MIN_SIDE:
                raise _bad_image(path, f"it is {width}x{height}; the smallest accepted is {MIN_SIDE} px a side",
                                 "Use the full-size image.")
            exif = image.getexif()
            focal_35mm = exif.get_ifd(0x8769).get(0xA405) if exif else None
            orientation = exif.get(0x0112, 1) if exif else 1
            image.load()  # decode now, so truncated files fail here and not in a later stage
            if orientation not in (1, None):
                image = ImageOps.exif_transpose(image)
                notes.append(f"applied EXIF orientation {orientation}")
            rgb = _to_rgb_uint8(image, notes)
            if rgb.shape[0] * rgb.shape[1] > MAX_PIXELS:
                scale = (MAX_PIXELS / (rgb.shape[0] * rgb.shape[1])) ** 0.5
                size = (max(1, int(rgb.shape[1] * scale)), max(1, int(rgb.shape[0] * scale)))
                rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
                notes.append(f"downscaled from {width}x{height} to {size[0]}x{size[1]} (limit {MAX_PIXELS} pixels)")
    except BetterDepthError:
        raise
    except UnidentifiedImageError:
        raise _bad_image(path, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise _bad_image(path, f"the file is corrupt or truncated ({error})") from None
    focal = float(focal_35mm) if focal_35mm else None
    return LoadedImage(rgb=np.array(rgb, dtype=np.uint8), path=path, notes=notes, focal_length_35mm=focal,
                       exif_orientation=int(orientation or 1))


def find_images(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (non-recursive) into a sorted list of image paths, each file once."""
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise BetterDepthError(
                    BetterDepthError.BAD_INPUT,
                    f"Folder '{item}' contains no images.",
                    f"Accepted extensions: {', '.join(sorted(IMAGE_SUFFIXES))}.",
                )
            paths.extend(found)
        else:
            paths.append(item)
    unique = {path.resolve(): path for path in reversed(paths)}  # a file named twice is processed once
    return [path for path in paths if unique[path.resolve()] is path]


def check_unique_stems(paths: list[Path]) -> None:
    """Refuse inputs whose results would overwrite each other: outputs are named by the file's stem.

    `pic.jpg` and `pic.png`, or `a/pic.jpg` and `b/pic.jpg`, would both write OUT/pic_*. Stems are compared
    ignoring case, because the output folder may be on a case-insensitive file system (macOS, Windows).
    """
    by_stem: dict[str, list[Path]] = {}
    for path in paths:
        by_stem.setdefault(path.stem.casefold(), []).append(path)
    clashes = [" and ".join(f"'{p}'" for p in group) for group in by_stem.values() if len(group) > 1]
    if clashes:
        raise BetterDepthError(
            BetterDepthError.BAD_INPUT,
            "Inputs with the same name would overwrite each other's results (files are named by the image's name "
            f"without its extension): {'; '.join(clashes)}.",
            "Rename one of each, or run them into separate output folders. Nothing was processed.",
        )
