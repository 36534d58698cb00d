"""docs/images/results_guard.jpg: what the refiner's guard changes in the normals (docs/results.md section 9).

    python scripts/guard_figure.py RAW_EVAL GUARD_EVAL OUT.jpg

RAW_EVAL and GUARD_EVAL are `betterdepth eval` folders of the same scenes, with `--no-guard` and without; per
scene: image | base normals | refined normals, raw | refined normals, guarded | true normals, cut from their
contact sheets (columns 1, 6, 7 and 8 of `eval.report.contact_row`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from betterdepth_engine.eval.report import CONTACT_SHEET_HEADERS, PANEL_HEIGHT

GAP, HEADER = 4, 18
LABELS = ("image", "base normals", "refined normals, raw (--no-guard)", "refined normals, guarded (default)",
          "true normals")


def panels(sheet: np.ndarray) -> list[list[np.ndarray]]:
    """Rows of panels of a contact sheet."""
    columns = len(CONTACT_SHEET_HEADERS)
    width = (sheet.shape[1] - GAP * (columns - 1)) // columns
    rows = (sheet.shape[0] - HEADER) // (PANEL_HEIGHT + GAP)
    return [[sheet[top:top + PANEL_HEIGHT, left:left + width]
             for left in range(0, columns * (width + GAP), width + GAP)]
            for top in range(HEADER + GAP, HEADER + GAP + rows * (PANEL_HEIGHT + GAP), PANEL_HEIGHT + GAP)]


def main() -> None:
    raw_folder, guard_folder, output = (Path(argument) for argument in sys.argv[1:4])
    raw, guarded = (panels(np.asarray(Image.open(folder / "contact_sheet.png").convert("RGB")))
                    for folder in (raw_folder, guard_folder))
    rows = [[raw_row[0], raw_row[5], raw_row[6], guard_row[6], raw_row[7]] for raw_row, guard_row in zip(raw, guarded)]
    width = rows[0][0].shape[1]
    figure = Image.new("RGB", (len(LABELS) * (width + GAP) - GAP, HEADER + len(rows) * (PANEL_HEIGHT + GAP)), "white")
    draw = ImageDraw.Draw(figure)
    for column, label in enumerate(LABELS):
        draw.text((column * (width + GAP) + 2, 3), label, fill="black")
    for row_index, row in enumerate(rows):
        for column, panel in enumerate(row):
            figure.paste(Image.fromarray(panel), (column * (width + GAP), HEADER + GAP + row_index * (PANEL_HEIGHT + GAP)))
    figure.save(output, quality=90)
    print(f"guard_figure: {len(rows)} rows -> {output}")


if __name__ == "__main__":
    main()
