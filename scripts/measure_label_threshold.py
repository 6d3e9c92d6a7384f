"""Measure the probability threshold for ImageNet ``labels`` on real labelled photos.

``python scripts/measure_label_threshold.py [--data /tmp/simimg-labels]``

The 20 foolbox ImageNet photos (true class in the file name) give, per threshold, how many
photos keep at least one class, how many keep their true class, and how many kept classes
are wrong (precision over kept classes; a "wrong" class that shares the true class's
nearest hypernym with the true class, e.g. tabby vs tiger cat, still gives the right plain
words, so those are counted apart). The result is recorded in docs/labels.md; the threshold lives in
service/embedders/imagenet_labels.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.datasets import foolbox_imagenet, label_of
from service.config import Settings
from service.embedders.imagenet_labels import MAX_CLASSES, WORDS_FILE, softmax
from service.embedders.mobilenet import load_mobilenet
from service.pipeline import EmbeddingPipeline

THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/simimg-labels"))
    args = parser.parse_args()
    settings = Settings(data_dir=args.data)
    embedder = load_mobilenet(settings)
    pipeline = EmbeddingPipeline(settings, [embedder])
    files = foolbox_imagenet(args.data / "imagenet")
    items = [pipeline.prepare_file(f) for f in files]
    _, logits = embedder.embed_and_classify(np.stack([i.inputs["mobilenet"] for i in items]))
    probs = softmax(logits.astype(np.float64))
    truth = [label_of(f) for f in files]
    classes = json.loads(WORDS_FILE.read_text())["classes"]
    parent = [(c["hypernyms"] or [""])[0] for c in classes]
    print(f"{len(files)} foolbox ImageNet photos, top {MAX_CLASSES} classes at most")
    print("| threshold | photos with a label | true class kept | kept classes | wrong classes"
          " | wrong and not a sibling |")
    print("|---|---|---|---|---|---|")
    for t in THRESHOLDS:
        labelled = hit = kept = wrong = unrelated = 0
        for row, true in zip(probs, truth, strict=True):
            chosen = [int(i) for i in np.argsort(-row)[:MAX_CLASSES] if row[i] >= t]
            labelled += bool(chosen)
            hit += true in chosen
            kept += len(chosen)
            for c in chosen:
                if c != true:
                    wrong += 1
                    unrelated += parent[c] != parent[true]
        print(f"| {t} | {labelled}/{len(files)} | {hit}/{len(files)} | {kept} | {wrong} "
              f"| {unrelated} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
