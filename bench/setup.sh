#!/usr/bin/env bash
# What bench/run.py needs on a new machine: nginx and wrk (Debian), matplotlib and psutil (PyPI).
# Both system packages are optional for --smoke, which falls back to Python without them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! { command -v nginx && command -v wrk; } >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] || ! command -v wrk >/dev/null; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "==> apt-get install nginx wrk"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq nginx wrk
  else
    echo "no apt-get: install nginx and wrk yourself (the bench falls back to Python without them)" >&2
  fi
fi

python=.venv/bin/python
[ -x "$python" ] || python=python3
echo "==> pip install matplotlib psutil (into $("$python" -c 'import sys; print(sys.prefix)'))"
"$python" -m pip install -q "matplotlib>=3.8" "psutil>=5.9"
echo "ready: $python bench/run.py --help"
