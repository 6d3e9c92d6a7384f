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

from benchmarks.ingest import (
    format_table,
    load_average,
    machine_description,
    measure_export,
    measure_ingest,
    run_isolated,
    table_row,
)

PLAIN_EXPORT_DIR = "mobilenet-features-only"


def plain_pipeline(settings: Any, models_dir: Path) -> Any:
    """A pipeline as before labels and metadata: features-only export, no EXIF fields.

    Runs in its own benchmark process: the EXIF readers are switched off by replacing the
    two functions ingest calls, which affects that process only.
    """
    import ingest.runner
    import service.pipeline
    from service.embedders.base import l2_normalise
    from service.embedders.mobilenet import load_mobilenet
    from service.embedders.onnx_export import cached_export, export_verified, make_session
    from service.weights import resolve_weights

    service.pipeline.exif_metadata = lambda exif: {}
    ingest.runner.modified_at = lambda mtime_ns: {}
    full = load_mobilenet(settings)
    cache_dir = models_dir / PLAIN_EXPORT_DIR
    export = cached_export(cache_dir, full.model_id)
    if export is None:
        import torch

        from service.weights import build_mobilenet

        class FeaturesOnly(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.inner(x)[0]

        model = FeaturesOnly(build_mobilenet(resolve_weights(settings.weights))).eval()
        export = export_verified(model, (3, full.input_size, full.input_size), cache_dir,
                                 full.model_id, {})
    run = make_session(export.path)

    class FeaturesOnlyEmbedder:
        space, dim, model_id, min_side = full.space, full.dim, full.model_id, full.min_side
        preprocess = staticmethod(full.preprocess)

        @staticmethod
        def embed(batch: Any) -> Any:
            return l2_normalise(run(batch)[0])

    from service.pipeline import EmbeddingPipeline

    return EmbeddingPipeline(settings, [FeaturesOnlyEmbedder()])


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
    print(json.dumps({"machine": machine, **results, "medians": medians}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
