"""Finding the engine's Python and saying exactly what is missing (the "Check setup" button).

The engine lives in its own Python environment (torch never enters Blender's Python); the add-on only needs
the path of that environment's interpreter. Looked up in order: the preference, the
BETTERDEPTH_ENGINE_PYTHON environment variable, the project's .venv in a configured project folder,
the Python next to a `betterdepth` command on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ENV_VARIABLE = "BETTERDEPTH_ENGINE_PYTHON"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str  # what was checked and found
    fix: str = ""  # what to do when not ok


def find_engine_python(configured: str = "", project_dir: str = "", environ=None) -> tuple[Path | None, str]:
    """(interpreter path or None, where it came from). A preference that names a missing file is not
    silently replaced by another Python."""
    environ = os.environ if environ is None else environ
    if configured and not Path(configured).is_file():
        return None, f"the add-on preference names a missing file ({configured})"
    candidates = [
        (configured, "the add-on preference"),
        (environ.get(ENV_VARIABLE, ""), f"${ENV_VARIABLE}"),
        (str(Path(project_dir) / ".venv" / "bin" / "python") if project_dir else "", "the project's .venv"),
    ]
    command = shutil.which("betterdepth", path=environ.get("PATH"))
    if command:
        candidates.append((str(Path(command).resolve().parent / "python"), "the `betterdepth` command on PATH"))
    for path, origin in candidates:
        if path and Path(path).is_file():
            return Path(path), origin
    return None, "not found"


def probe_engine_python(python: Path, timeout: float = 60.0) -> Finding:
    """Can this interpreter import the engine? Runs it once with a clean environment."""
    code = "import betterdepth_engine, sys; print(betterdepth_engine.__version__, sys.version.split()[0])"
    # Blender's own PYTHONHOME/PYTHONPATH would make the engine's interpreter load Blender's standard library.
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONHOME", "PYTHONPATH")}
    try:
        completed = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=timeout,
                                   env=environment, cwd=tempfile.gettempdir())  # not a checkout's folder
    except (OSError, subprocess.TimeoutExpired) as error:
        return Finding(False, f"{python} could not be run: {error}", "Point the preference at a working Python.")
    if completed.returncode != 0:
        last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return Finding(False, f"{python} cannot import the engine ({last_line}).",
                       "Install it there: `make setup` in the project, or `pip install -e .` in that environment.")
    version, python_version = completed.stdout.split()
    return Finding(True, f"Engine {version} on Python {python_version} at {python}.")


def check_setup(mode: str, configured_python: str = "", project_dir: str = "", url: str = "", token: str = "",
                online_access: bool = True, environ=None) -> list[Finding]:
    """Everything the chosen engine mode needs, each with a fix when missing. Does not start the engine."""
    if mode == "EXTERNAL":
        findings = []
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return [Finding(False, f"Engine URL '{url}' is not an http(s) URL.", "E.g. http://gpu-box:8765")]
        findings.append(Finding(True, f"Engine URL {url}."))
        if parsed.hostname not in LOOPBACK_HOSTS and not online_access:
            findings.append(Finding(False, "Blender's online access is off, and the engine is on another machine.",
                                    "Enable Preferences > System > Network > Allow Online Access."))
        findings.append(Finding(bool(token), "Token set." if token else "No token set.",
                                "" if token else "Paste the engine's token (its --token-file) into the preferences."))
        return findings
    python, origin = find_engine_python(configured_python, project_dir, environ)
    if python is None and configured_python:
        return [Finding(False, f"The Engine Python preference names a missing file: {configured_python}.",
                        "Fix the 'Engine Python' path, or clear it to detect the engine automatically.")]
    if python is None:
        return [Finding(False, "No engine Python found.",
                        f"Set 'Engine Python' in the preferences, or ${ENV_VARIABLE}, to the engine's interpreter "
                        "(e.g. <project>/.venv/bin/python after `make setup`).")]
    return [Finding(True, f"Engine Python from {origin}: {python}."), probe_engine_python(python)]
