#!/usr/bin/env bash
# Debian's Blender 3.4 with numpy, and Xvfb: the legacy add-on test (tests/blender/test_legacy.py) and the
# panel screenshot (scripts/screenshot_blender.sh). Not needed for Blender 4.2+ (the bpy wheels).
set -euo pipefail
if command -v blender >/dev/null && command -v Xvfb >/dev/null && command -v xdotool >/dev/null \
     && ! blender -b --factory-startup --python-expr "import numpy" 2>&1 | grep -q "No module named 'numpy'"; then
  exit 0
fi
packages="blender python3-numpy xvfb xdotool"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq $packages >/dev/null
elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
  sudo apt-get update -qq && sudo apt-get install -y -qq $packages >/dev/null
else
  echo "Blender 3.x tests need Debian's packages: $packages (install them with your package manager)." >&2
  exit 1
fi
