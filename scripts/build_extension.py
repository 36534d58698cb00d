"""Validate and build the Blender extension zip with Blender's own extension tool (from the bpy wheel).

    .venv-blender-4.5/bin/python scripts/build_extension.py      # -> dist/<id>-<version>.zip

The package is staged in build/extension/: blender_addon/'s files, blender_manifest.toml, and the engine's
stdlib-only protocol client (betterdepth_engine/client.py) as engine_client.py, the one copy kept in git.
Runs under the Python that has the bpy wheel installed; bpy itself is not imported (the tool is plain Python).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def find_extension_tool() -> Path:
    """blender_ext.py inside the installed bpy wheel (bpy/<version>/scripts/addons_core/bl_pkg/cli/)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("The bpy wheel is not installed in this Python: run `make extension` (it creates "
                         ".venv-blender-4.5), or `pip install bpy==4.5.*`.")
    package_dir = Path(list(spec.submodule_search_locations)[0])
    tools = sorted(package_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not tools:
        raise SystemExit(f"No blender_ext.py under {package_dir}: is this a complete bpy wheel?")
    return tools[-1]


def stage(stage_dir: Path) -> Path:
    """A clean copy of the package's files, with the engine client copied in."""
    shutil.rmtree(stage_dir, ignore_errors=True)
    shutil.copytree(ROOT / "blender_addon", stage_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "blender_manifest.toml", stage_dir / "blender_manifest.toml")
    shutil.copy2(ROOT / "betterdepth_engine" / "client.py", stage_dir / "engine_client.py")
    return stage_dir


def build(output_dir: Path) -> Path:
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    source = stage(ROOT / "build" / "extension" / manifest["id"])
    tool = find_extension_tool()
    output_dir.mkdir(parents=True, exist_ok=True)
    zip_path = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    for command in (["validate", str(source)],
                    ["build", "--source-dir", str(source), "--output-filepath", str(zip_path)]):
        completed = subprocess.run([sys.executable, str(tool), *command], capture_output=True, text=True)
        if completed.returncode != 0:
            raise SystemExit(f"blender_ext {command[0]} failed:\n{completed.stdout}{completed.stderr}")
    # The tool validates the built archive as well; check once more what Blender will read.
    completed = subprocess.run([sys.executable, str(tool), "validate", str(zip_path)], capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"The built zip does not validate:\n{completed.stdout}{completed.stderr}")
    return zip_path


def build_legacy(output_dir: Path) -> Path:
    """The same files as a Blender 3.x add-on zip (one top-level folder named after the id; bl_info in
    __init__.py): Preferences > Add-ons > Install."""
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    source = stage(ROOT / "build" / "legacy" / manifest["id"])
    output_dir.mkdir(parents=True, exist_ok=True)
    zip_path = output_dir / f"{manifest['id']}-{manifest['version']}-legacy.zip"
    partial = zip_path.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file() and path.name != "blender_manifest.toml":
                archive.write(path, Path(manifest["id"]) / path.relative_to(source))
    partial.replace(zip_path)
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    parser.add_argument("--legacy", action="store_true", help="also the Blender 3.x add-on zip (...-legacy.zip)")
    args = parser.parse_args(argv)
    if args.legacy:
        print(build_legacy(args.output_dir))
    print(build(args.output_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
