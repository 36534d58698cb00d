"""`betterdepth` command line: one sub-command per module in `betterdepth_engine.commands`.

Start-up is lazy: a command module's top level imports nothing heavy and names its one-line `HELP`; only the
command being run builds its full parser (`add_parser(subparsers)`), and heavy libraries (torch, diffusers,
Open3D) are imported inside its `run`. So `betterdepth --help` and `betterdepth mesh --help` answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from betterdepth_engine import __version__
from betterdepth_engine.errors import BetterDepthError

# Sub-command name -> module in betterdepth_engine.commands (defines HELP and `add_parser(subparsers)`).
COMMANDS = {
    "estimate": "estimate",
    "batch": "batch",
    "mesh": "mesh",
    "models": "models",
    "train": "train",
    "eval": "evaluate",
    "serve": "serve",
}


def _chosen_command(argv: list[str]) -> str | None:
    """The sub-command named in argv: the first word that is not an option (the top level's take no value)."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for argv: the full options of the command it names, one help line for each other command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="betterdepth",
        description=(
            "BetterDepth: detailed monocular depth from a single image. A base model predicts a robust, "
            "smooth disparity; a diffusion refiner adds fine detail while keeping its layout."
        ),
    )
    parser.add_argument("--version", action="version", version=f"betterdepth {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _chosen_command(argv)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"betterdepth_engine.commands.{module_name}")
        if name == chosen:
            module.add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=module.HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser(argv).parse_args(argv)
        return args.run(args) or 0
    except BetterDepthError as error:
        print(f"betterdepth: error [{error.code}]: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"  hint: {error.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("betterdepth: interrupted; no partial outputs were written.", file=sys.stderr)
        return 130
