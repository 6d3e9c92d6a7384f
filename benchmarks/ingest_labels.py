"""Ingest speed with ImageNet labels and photo metadata beside without them, same run.

``python -m benchmarks.ingest_labels [--count 1000] [--side 512] [--rounds 2]``

* **with**: ingest as shipped: the ONNX export with two outputs (pooled features and the
  ImageNet logits), labels from the logits (softmax, top classes, WordNet words), EXIF
  ``taken_at`` / ``camera`` / ``location_gps`` and ``modified_at`` in every payload;
* **without**: the path before labels and metadata: an export with the features output
  only (the pooled features, no classifier), no label words, no EXIF fields read.

Each run is a fresh process ingesting the same camera-roll folder (real clip-art and photos
re-encoded as JPEG, ``benchmarks.datasets.camera_roll_jpegs``) into a fresh embedded store;
the two are alternated ``--rounds`` times so load from other processes hits both alike, and
the table shows every run plus the median of each. Record the result in
docs/benchmarks-ingest.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.features_only import plain_pipeline
from benchmarks.ingest import (
    cpu_seconds,
    format_table,
    load_average,
    machine_description,
    measure_export,
    measure_ingest,
    run_isolated,
    table_row,
)


def measure_model(folder: Path, data_dir: Path, models_dir: Path, rounds: int) -> dict:
    """The model step alone, both forms alternated in one process on the same 64 prepared
    images (batches of 16): CPU ms and images/s of ``embed_batch``, which for the shipped
    form includes the classifier, the softmax and the label words."""
    import time

    from benchmarks.ingest import bench_settings, load_pipeline
    from service.walker import iter_image_files

    settings = bench_settings(data_dir, models_dir)
    shipped, plain = load_pipeline(settings), plain_pipeline(settings, models_dir)
    items = [shipped.prepare_file(f) for f in sorted(iter_image_files(folder))[:64]]
    runs: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
    for _ in range(rounds):
        for name, pipeline in (("without", plain), ("with", shipped)):
            cpu, wall = cpu_seconds(), time.perf_counter()
            for start in range(0, len(items), 16):
                pipeline.embed_batch(items[start : start + 16])
            runs[name].append(((cpu_seconds() - cpu) * 1000 / len(items),
                               len(items) / (time.perf_counter() - wall)))
    return {name: {"cpu_ms_per_image": statistics.median(r[0] for r in values),
                   "images_per_s": statistics.median(r[1] for r in values)}
            for name, values in runs.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ingest_labels", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "simimg-bench")
    ap.add_argument("--count", type=int, default=1000, help="camera-roll JPEGs to ingest")
    ap.add_argument("--side", type=int, default=512, help="camera-roll long side, px")
    ap.add_argument("--rounds", type=int, default=2, help="alternated runs of each")
    args = ap.parse_args(argv)
    from benchmarks.datasets import camera_roll_jpegs

    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="runs-labels-", dir=work))
    machine = machine_description()
    print("machine:", ", ".join(f"{k} {v}" for k, v in machine.items()))
    print("load average at start:", load_average())
    run_isolated(measure_export, work / "export")
    models_dir = work / "export" / "models"
    camera = work / f"camera-{args.side}"
    camera_roll_jpegs(camera, args.count, side=args.side)
    model = run_isolated(measure_model, camera, runs / "model", models_dir, 5 * args.rounds)
    for name in ("without", "with"):
        print(f"model step only ({name} labels), median of {5 * args.rounds}: "
              f"{model[name]['images_per_s']:.1f} images/s, "
              f"{model[name]['cpu_ms_per_image']:.2f} CPU ms/image")
    results: dict[str, list[dict[str, Any]]] = {"with": [], "without": []}
    rows = []
    for round_ in range(args.rounds):
        for name, plain in (("without", True), ("with", False)):
            result = run_isolated(measure_ingest, camera, runs / f"{name}-{round_}",
                                  models_dir, None, plain)
            results[name].append(result)
            label = "with labels + metadata" if not plain else "without (features only)"
            rows.append(table_row(f"round {round_ + 1}: {label}", result))
    medians = {name: statistics.median(r["images_per_s"] for r in runs_)
               for name, runs_ in results.items()}
    print("load average at end:", load_average())
    print()
    print(format_table(rows))
    print()
    change = (medians["with"] / medians["without"] - 1) * 100
    print(f"median images/s: with {medians['with']:.1f}, without {medians['without']:.1f} "
          f"({change:+.1f}%)")
    cpu = {name: statistics.median(r["cpu_ms_per_image"] for r in runs_)
           for name, runs_ in results.items()}
    print(f"median CPU ms/image: with {cpu['with']:.1f}, without {cpu['without']:.1f} "
          f"({(cpu['with'] / cpu['without'] - 1) * 100:+.1f}%)")
    print(json.dumps({"machine": machine, **results, "medians": medians, "model": model},
                     default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
