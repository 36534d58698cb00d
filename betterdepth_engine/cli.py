"""`betterdepth` command line: one sub-command per module in `betterdepth_engine.commands`.

Start-up is lazy: a command module's top level imports nothing heavy and names its one-line `HELP`; only the
command being run builds its full parser (`add_parser(subparsers)`), and heavy libraries (torch, diffusers,
Open3D) are imported inside its `run`. So `betterdepth --help` and `betterdepth mesh --help` answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

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


class _Interrupts:
    """Ctrl-C raises KeyboardInterrupt as usual, and is remembered: a library that turns the interrupt into an
    error of its own (an interrupted system call becomes an OSError) still ends the command as interrupted."""

    def __init__(self):
        self.seen = False

    def __call__(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    interrupts = _Interrupts()
    # Only in the main thread, and not when embedded in a program with a SIGINT handler of its own.
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupts)
    try:
        args = build_parser(argv).parse_args(argv)
        status = args.run(args) or 0
    except BetterDepthError as error:
        if interrupts.seen:
            return _interrupted()
        print(f"betterdepth: error [{error.code}]: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"  hint: {error.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    finally:
        if previous is signal.default_int_handler and signal.getsignal(signal.SIGINT) is interrupts:
            signal.signal(signal.SIGINT, previous)
    return _interrupted() if interrupts.seen else status


def _interrupted() -> int:
    print("betterdepth: interrupted; no partial outputs were written.", file=sys.stderr)
    return 130
