#!/usr/bin/env bash
# Fresh machine to search results: install, ingest a real sample set into the embedded store,
# run sample searches (one image from the collection, photos from outside it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export SIMIMG_DATA_DIR="${SIMIMG_DATA_DIR:-./simimg-data}"
SAMPLES=./samples
.venv/bin/python -m benchmarks.datasets foolbox "$SAMPLES/imagenet"
.venv/bin/python -m benchmarks.datasets skimage "$SAMPLES/photos"
ADMIN=.venv/bin/simimg-admin
"$ADMIN" ingest "$SAMPLES/imagenet"
"$ADMIN" ingest "$SAMPLES/photos"
"$ADMIN" status
"$ADMIN" search "$SAMPLES/imagenet/imagenet_05_853.jpg" "$SAMPLES/photos/chelsea.png" --k 6
