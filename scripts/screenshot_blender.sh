#!/usr/bin/env bash
# A real screenshot of the BetterDepth sidebar in Blender 3.4's window (Debian's blender) under Xvfb, with a
# scene-aligned mesh in the viewport:  bash scripts/screenshot_blender.sh [OUT.png]
# Needs `make setup` (the engine's .venv) and `make blender3` (blender, python3-numpy, xvfb, xdotool).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/docs/images/blender_panel.jpg}")"
WORK="$(mktemp -d)"
trap 'kill "${XVFB_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export BLENDER_USER_SCRIPTS="$WORK/scripts" BLENDER_USER_CONFIG="$WORK/config"
"$ROOT/.venv-blender-4.5/bin/python" "$ROOT/scripts/build_extension.py" --legacy --output-dir "$WORK/dist" >/dev/null
ENGINE_PYTHON="${BETTERDEPTH_ENGINE_PYTHON:-$ROOT/.venv/bin/python}"
blender -b --factory-startup --python "$ROOT/scripts/screenshot/make_scene.py" -- \
  "$WORK/dist/betterdepth-0.1.0-legacy.zip" "$ENGINE_PYTHON" "$WORK/scene.blend" >"$WORK/make_scene.log" 2>&1 \
  || { tail -20 "$WORK/make_scene.log"; exit 1; }
Xvfb :97 -screen 0 1400x860x24 >/dev/null 2>&1 &
XVFB_PID=$!
export DISPLAY=:97
sleep 1
blender "$WORK/scene.blend" --python "$ROOT/scripts/screenshot/take.py" -- "$OUT.partial.png" >"$WORK/gui.log" 2>&1 &
BLENDER_PID=$!
timeout 60 xdotool search --sync --onlyvisible --name "Blender" >/dev/null
sleep 4  # the window maps before its first full draw
# The sidebar opens on its first tab (Item); click the BetterDepth tab, the fourth on the sidebar's right edge
# (its place in this fixed 1400x860 window with Blender 3.4's default layout).
for _ in 1 2; do xdotool mousemove 1143 262 click 1; sleep 1; done
xdotool mousemove 600 450
wait "$BLENDER_PID" || true
[ -s "$OUT.partial.png" ] || { tail -20 "$WORK/gui.log"; exit 1; }
# JPEG (a fifth of the PNG's size), written through a partial file.
"$ROOT/.venv/bin/python" -c "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('RGB').save(sys.argv[2], 'JPEG', quality=90)" \
  "$OUT.partial.png" "$OUT.partial"
mv "$OUT.partial" "$OUT"
rm -f "$OUT.partial.png"
echo "$OUT"
