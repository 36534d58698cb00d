"""docs/images/results_photos_normals.jpg: the normals of real photos, base against refined, with and without the
refiner's guard (docs/results.md sections 8 and 9).

    betterdepth estimate docs/photos -o GUARDED -q
    betterdepth estimate docs/photos -o RAW -q --no-guard
    python scripts/photo_normals_figure.py GUARDED RAW docs/photos OUT.jpg [--row-height 160]

Per photo: image | normals of the base | of the refined depth, raw | of the refined depth, guarded (the
default), each as `betterdepth estimate --formats side-by-side` draws them (`recon.normal_map`, the photo's own
focal length).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from betterdepth_engine.images import load_image
from betterdepth_engine.recon import ReconOptions, normal_map

LABELS = ("image", "normals: base", "refined, raw (--no-guard)", "refined, guarded (default)")
GAP, HEADER = 4, 18


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("guarded", "raw", "photos"):
        parser.add_argument(name, type=Path)
    parser.add_argument("figure", type=Path)
    parser.add_argument("--row-height", type=int, default=160)
    args = parser.parse_args()
    rows = []
    for photo in sorted(path for path in args.photos.iterdir() if path.suffix.lower() in (".jpg", ".png")):
        image = load_image(photo)
        options = ReconOptions(focal_35mm=image.focal_length_35mm)
        base = np.load(args.guarded / f"{photo.stem}_base_disparity.npy")
        panels = [image.rgb] + [normal_map(disparity, "disparity", options, valid_mask=np.isfinite(disparity))
                                for disparity in (base, np.load(args.raw / f"{photo.stem}_disparity.npy"),
                                                  np.load(args.guarded / f"{photo.stem}_disparity.npy"))]
        width = round(image.width * args.row_height / image.height)
        rows.append([Image.fromarray(panel).resize((width, args.row_height), Image.Resampling.LANCZOS)
                     for panel in panels])
    column_width = max(row[0].width for row in rows)
    figure = Image.new("RGB", (len(LABELS) * (column_width + GAP) - GAP,
                               HEADER + len(rows) * (args.row_height + GAP)), "white")
    draw = ImageDraw.Draw(figure)
    for column, label in enumerate(LABELS):
        draw.text((column * (column_width + GAP) + 2, 3), label, fill="black")
    for index, row in enumerate(rows):
        for column, panel in enumerate(row):
            figure.paste(panel, (column * (column_width + GAP), HEADER + GAP + index * (args.row_height + GAP)))
    figure.save(args.figure, quality=88)
    print(f"photo_normals_figure: {len(rows)} rows -> {args.figure}")


if __name__ == "__main__":
    main()
