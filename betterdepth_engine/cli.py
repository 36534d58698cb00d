"""`betterdepth` command line: one sub-command per module in `betterdepth_engine.commands`.

Heavy libraries (torch, diffusers, open3d) are imported inside each command's `run`, so that
`betterdepth --help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from betterdepth_engine import __version__
from betterdepth_engine.errors import BetterDepthError

# Sub-command name -> module in betterdepth_engine.commands that defines `add_parser(subparsers)`.
COMMANDS = {
    "estimate": "estimate",
    "mesh": "mesh",
    "train": "train",
    "eval": "evaluate",
    "serve": "serve",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="betterdepth",
        description=(
            "BetterDepth: detailed monocular depth from a single image. A base model predicts a robust, "
            "smooth disparity; a diffusion refiner adds fine detail while keeping its layout."
        ),
    )
    parser.add_argument("--version", action="version", version=f"betterdepth {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS.values():
        module = importlib.import_module(f"betterdepth_engine.commands.{module_name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except BetterDepthError as error:
        print(f"betterdepth: error [{error.code}]: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"  hint: {error.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("betterdepth: interrupted; no partial outputs were written.", file=sys.stderr)
        return 130
