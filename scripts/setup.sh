#!/usr/bin/env bash
# Install what JStore needs on a Debian 12 machine with Python 3.11, then the locked Python
# packages into .venv. Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium and chromium-driver: the web UI's browser test and `make screenshots` (headless).
DEBIAN_PACKAGES=(postgresql redis-server openjdk-17-jre-headless libpostgresql-jdbc-java python3-venv
  chromium chromium-driver)
UV_VERSION=0.13.9

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  # no `| grep -q`: under pipefail, grep quitting early could fail the pipe and reinstall
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null \
      || { echo "setup: run as root, or install sudo, to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -q
  # through env: sudo resets the environment, so a plain VAR=… prefix would not reach apt-get
  $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python=$(command -v python3.11 || command -v python3 || true)
[ -n "$python" ] || { echo "setup: JStore needs Python 3.11 (python3.11 not found)" >&2; exit 1; }
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null \
  || { echo "setup: JStore needs Python 3.11 (found $("$python" --version))" >&2; exit 1; }

uv=.jstore/tools/bin/uv
if ! [ -x "$uv" ] || [ "$("$uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "setup: installing uv $UV_VERSION into .jstore/tools"
  # --clear: a venv left without pip by an earlier run (before python3-venv) is made anew
  "$python" -m venv --clear .jstore/tools
  .jstore/tools/bin/pip install -q "uv==$UV_VERSION"
fi

# --frozen: install exactly what uv.lock pins; never re-resolve on a user's machine.
# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set, nothing would ever cache the
# compiled modules, and every CLI call, Spark worker and test subprocess would recompile them.
"$uv" sync --frozen --compile-bytecode --all-extras --group dev --python "$python" -q

# The Data Docs pages' scripts, styles and fonts, from the npm registry (package-lock.json pins
# them), so that the quality reports render with no internet (jstore/quality/offline_assets.py).
assets=jstore/quality/web_assets
if ! [ -f "$assets/node_modules/.package-lock.json" ] \
    || [ "$assets/package-lock.json" -nt "$assets/node_modules/.package-lock.json" ]; then
  command -v npm >/dev/null \
    || { echo "setup: npm not found: install Node.js 20 and npm to install $assets" >&2; exit 1; }
  echo "setup: installing the Data Docs assets (npm ci in $assets)"
  npm ci --prefix "$assets" --no-audit --no-fund --ignore-scripts --loglevel=error
fi
