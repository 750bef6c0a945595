#!/usr/bin/env bash
# Fresh-machine set-up: system packages (Fashion-MNIST, Arm compiler) where apt is usable,
# then a virtualenv in .venv with keras-cprune installed in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=""
  [ -d /usr/share/datasets/fashion-mnist ] || need="$need dataset-fashion-mnist"
  command -v arm-none-eabi-g++ >/dev/null 2>&1 || need="$need gcc-arm-none-eabi"
  if [ -n "$need" ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need
  fi
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
