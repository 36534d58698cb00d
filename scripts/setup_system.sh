#!/usr/bin/env bash
# System libraries the Python packages need: Open3D's wheel links against libusb-1.0.
set -euo pipefail
if ldconfig -p | grep -q 'libusb-1.0.so.0'; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq libusb-1.0-0 >/dev/null
elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
  sudo apt-get update -qq && sudo apt-get install -y -qq libusb-1.0-0 >/dev/null
else
  echo "Open3D needs the libusb-1.0 library: install it with your system's package manager (Debian: libusb-1.0-0)." >&2
  exit 1
fi
