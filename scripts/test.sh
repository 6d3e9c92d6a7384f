#!/usr/bin/env bash
# Lint, then run the whole test suite (real images, real embedded Qdrant, real browser).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
