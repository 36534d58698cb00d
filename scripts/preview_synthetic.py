"""Write a contact sheet of synthetic scenes: image | depth (colorized disparity) | valid mask, per scene.

    python scripts/preview_synthetic.py --out docs/images/synthetic_contact_sheet.png --count 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from betterdepth_engine.data.synthetic import generate_scene, seed_for
from betterdepth_engine.visualize import colorize_disparity


def scene_panels(seed: int, size: int, kind: str | None) -> tuple[np.ndarray, str]:
    """image | colorized disparity | valid mask for one scene, as one size x 3*size uint8 strip, and a label."""
    sample = generate_scene(seed, size, size, kind=kind)
    image = (sample.image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    valid = sample.valid_mask.numpy()
    disparity = np.where(valid, 1.0 / np.maximum(sample.depth.numpy(), 1e-6), np.nan)
    depth_rgb = colorize_disparity(disparity)
    mask_rgb = np.repeat((valid * 255).astype(np.uint8)[..., None], 3, axis=2)
    depth_range = sample.depth[sample.valid_mask]
    label = f"{seed} {sample.kind} f={sample.focal_px:.0f}px"
    if depth_range.numel():
        label += f" {depth_range.min():.1f}-{depth_range.max():.1f}m"
    return np.concatenate([image, depth_rgb, mask_rgb], axis=1), label


def contact_sheet(strips: list[tuple[np.ndarray, str]], columns: int) -> Image.Image:
    height, width = strips[0][0].shape[:2]
    gap = 6
    rows = -(-len(strips) // columns)
    sheet = Image.new("RGB", (columns * (width + gap) - gap, rows * (height + gap + 12) - gap), (60, 60, 60))
    draw = ImageDraw.Draw(sheet)
    for index, (strip, label) in enumerate(strips):
        x, y = (index % columns) * (width + gap), (index // columns) * (height + gap + 12)
        draw.text((x + 2, y), label, fill="white")
        sheet.paste(Image.fromarray(strip), (x, y + 12))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/synthetic_contact_sheet.png"))
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--size", type=int, default=192, help="scene resolution (square), pixels")
    parser.add_argument("--columns", type=int, default=2, help="scenes per row")
    parser.add_argument("--split", choices=["train", "val"], default="val")
    parser.add_argument("--start", type=int, default=0, help="index of the first scene in the split")
    parser.add_argument("--kind", default=None, help="only this layout (room, outdoor, still_life, relief_wall)")
    parser.add_argument("--colors", type=int, default=256, help="palette size of the PNG (0: full colour)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    strips = [scene_panels(seed_for(args.split, args.start + i), args.size, args.kind) for i in range(args.count)]
    sheet = contact_sheet(strips, args.columns)
    if args.colors:  # a palette keeps the sheet small enough to live in the repository
        sheet = sheet.quantize(colors=args.colors, dither=Image.Dither.NONE)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
