"""Stack the side-by-side pictures of `betterdepth estimate --formats side-by-side` into one JPEG figure.

    python scripts/photo_sheet.py OUT_DIR docs/images/results_photos.jpg [--row-height 192]

Each row is image | base | refined | normals for one photo of OUT_DIR (sorted by name); narrower rows are
padded white on the right.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="output folder of `betterdepth estimate`")
    parser.add_argument("figure", type=Path, help="JPEG to write")
    parser.add_argument("--row-height", type=int, default=192)
    args = parser.parse_args()
    rows = []
    for path in sorted(args.results.glob("*_side_by_side.png")):
        picture = Image.open(path).convert("RGB")
        width = round(picture.width * args.row_height / picture.height)
        rows.append(np.asarray(picture.resize((width, args.row_height), Image.Resampling.LANCZOS)))
    if not rows:
        raise SystemExit(f"photo_sheet: no *_side_by_side.png in {args.results}; run betterdepth estimate "
                         "with --formats side-by-side first.")
    sheet_width = max(row.shape[1] for row in rows)
    gap = np.full((4, sheet_width, 3), 255, np.uint8)
    padded = [np.pad(row, ((0, 0), (0, sheet_width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    pieces = [padded[0]]
    for row in padded[1:]:
        pieces += [gap, row]
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(pieces)).save(args.figure, quality=85)
    print(f"photo_sheet: {len(rows)} rows -> {args.figure}")


if __name__ == "__main__":
    main()
