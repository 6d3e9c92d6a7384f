#!/usr/bin/env bash
# Fresh machine to a working search page, on the embedded store (no server needed):
# install, ingest real sample photos from registry packages, train the autoencoder, cluster,
# run sample searches, then serve the web UI on http://127.0.0.1:7860 (Ctrl-C stops).
#   scripts/demo.sh              everything, ending with the web UI
#   scripts/demo.sh --no-serve   stop after the sample searches
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

export SIMIMG_DATA_DIR="${SIMIMG_DATA_DIR:-./simimg-data}"
PY=.venv/bin/python
ADMIN=.venv/bin/simimg-admin
SAMPLES=./samples

# Real images: 20 ImageNet photos (foolbox) and 11 photos bundled with scikit-image/-learn.
# Each step fails at once, in one line, if it cannot write its images or the ones named
# below (--expect).
"$PY" -m benchmarks.datasets foolbox "$SAMPLES/imagenet" --expect imagenet_05_853.jpg
"$PY" -m benchmarks.datasets skimage "$SAMPLES/photos" --expect chelsea.png
"$ADMIN" ingest "$SAMPLES/imagenet"
"$ADMIN" ingest "$SAMPLES/photos"

# A query from outside the collection: an edited copy (cropped, shrunk, re-encoded) of one photo.
mkdir -p "$SAMPLES/queries"
"$PY" - "$SAMPLES/imagenet/imagenet_05_853.jpg" "$SAMPLES/queries/edited-copy.jpg" <<'PYCODE'
import sys
from PIL import Image
image = Image.open(sys.argv[1]).convert("RGB")
w, h = image.size
image.crop((w // 10, h // 10, w * 9 // 10, h * 9 // 10)).resize((w // 2, h // 2)).save(
    sys.argv[2], quality=70)
PYCODE

"$ADMIN" train --epochs 10
"$ADMIN" cluster --min-samples 2
"$ADMIN" status
"$ADMIN" search "$SAMPLES/queries/edited-copy.jpg" "$SAMPLES/photos/chelsea.png" --k 6
"$ADMIN" search "$SAMPLES/photos/chelsea.png" --space fused --k 6

if [[ "${1:-}" != "--no-serve" ]]; then
    echo "Open http://127.0.0.1:7860 (Ctrl-C stops the server)"
    "$ADMIN" serve
fi
