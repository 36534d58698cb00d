"""Start-up and relief-solve times, before and after a change, in one run; prints a markdown table.

    python scripts/bench_startup.py                       # this checkout only
    python scripts/bench_startup.py --before 0ba1d63      # also a commit, exported to a temporary folder

Each command runs as a fresh process (what a user waits for), `--repeats` times after one warm-up; the table
gives the median wall time. The relief solve is the gradient-domain Poisson reintegration of a 4K
(3840 x 2160) map, timed in-process (median) with its peak traced memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "samples" / "rocket.jpg"  # 640 x 427, public domain (samples/ATTRIBUTION.md)

RELIEF_SNIPPET = """
import statistics, time, tracemalloc
import numpy as np
from betterdepth_engine.recon.relief import poisson_reintegrate
rng = np.random.default_rng(0)
gx, gy = rng.standard_normal((2, 2160, 3840))
times = []
for _ in range({repeats}):
    start = time.perf_counter()
    poisson_reintegrate(gx, gy)
    times.append(time.perf_counter() - start)
tracemalloc.start()
poisson_reintegrate(gx, gy)
peak = tracemalloc.get_traced_memory()[1]
print(statistics.median(times), peak / 2**20)
"""


def _environment(tree: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree)}


def time_command(tree: Path, arguments: list[str], repeats: int, output: Path) -> float:
    """Median wall seconds of `python -m betterdepth_engine ARGUMENTS` as a new process, after a warm-up."""
    command = [sys.executable, "-m", "betterdepth_engine", *arguments]
    seconds = []
    for run in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(command, env=_environment(tree), cwd=output, check=True, capture_output=True)
        if run:
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def time_relief(tree: Path, repeats: int, scratch: Path) -> tuple[float, float]:
    # Run from the scratch folder: `python -c` puts the working directory first on sys.path.
    result = subprocess.run([sys.executable, "-c", RELIEF_SNIPPET.format(repeats=repeats)], cwd=scratch,
                            env=_environment(tree), check=True, capture_output=True, text=True)
    seconds, peak_mb = result.stdout.split()
    return float(seconds), float(peak_mb)


def export_commit(commit: str, destination: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
    return destination


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", metavar="COMMIT", help="also time this commit (exported with git archive)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        trees = {}
        if args.before:
            (scratch / "before").mkdir()
            trees[f"before ({args.before})"] = export_commit(args.before, scratch / "before")
        trees["after (this checkout)"] = REPO
        commands = {
            "`betterdepth --help`": ["--help"],
            "`betterdepth mesh --help`": ["mesh", "--help"],
            f"`betterdepth estimate {PHOTO.name}` (shipped models, end to end)": [
                "estimate", str(PHOTO), "-o", str(scratch / "out"), "-q"],
        }
        rows = {name: [] for name in [*commands, "relief solve, 3840 x 2160 (s)", "relief solve peak memory (MB)"]}
        for tree in trees.values():
            for name, arguments in commands.items():
                rows[name].append(f"{time_command(tree, arguments, args.repeats, scratch):.2f}")
            seconds, peak_mb = time_relief(tree, args.repeats, scratch)
            rows["relief solve, 3840 x 2160 (s)"].append(f"{seconds:.2f}")
            rows["relief solve peak memory (MB)"].append(f"{peak_mb:.0f}")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"median of {args.repeats} runs after a warm-up; wall seconds\n")
    print("| | " + " | ".join(trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    main()
