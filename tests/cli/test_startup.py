"""Start-up: help answers without the heavy libraries; Ctrl-C at any time ends cleanly, without a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "diffusers", "transformers", "open3d", "scipy")


def _run_python(code: str) -> str:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          check=True, timeout=60).stdout


@pytest.mark.parametrize("argv", [["--help"], ["mesh", "--help"], ["estimate", "--help"], ["models", "--help"]])
def test_help_imports_no_heavy_library(argv):
    code = (
        "import contextlib, io, sys\n"
        "from betterdepth_engine import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    cli.main({argv!r})\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    assert _run_python(code).strip() == "[]"


def test_ctrl_c_during_start_up_exits_cleanly(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "betterdepth_engine", "estimate", str(REPO / "samples" / "rocket.jpg"),
               "-o", str(tmp_path / "out"), "-q"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment)
    time.sleep(0.4)  # inside the import of torch (the whole run takes about 1.4 s on an idle machine)
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=60)
    # 130, or ended by SIGINT itself: CPython re-raises the signal at exit when the interrupt once passed
    # through a C extension's embedded Python code, even though the command handled it.
    assert process.returncode in (130, -signal.SIGINT), error
    assert "Traceback" not in error
    assert error.strip() == "betterdepth: interrupted; no partial outputs were written."
    assert not (tmp_path / "out").exists()


def test_estimate_help_states_the_shipped_refiners_defaults(capsys):
    import json

    from betterdepth_engine import cli

    config = json.loads((REPO / "betterdepth_engine" / "weights" / "refiner" / "betterdepth_refiner.json").read_text())
    with pytest.raises(SystemExit):
        cli.main(["estimate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    steps = config["default_denoising_steps"]
    assert f"shipped refiner: {steps} step{'s' if steps != 1 else ''} at {config['default_processing_resolution']} px" \
        in help_text
