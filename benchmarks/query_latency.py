"""Single-image query latency over a 100k-point collection on the embedded backend.

``python -m benchmarks.query_latency [--points 100000] [--real 2900] [--queries 300]``

The collection: ``--real`` camera-roll JPEGs (``benchmarks.datasets.camera_roll_jpegs``)
ingested for real with :class:`~ingest.runner.FolderIngester`, then topped up to
``--points`` with **derived** points: a real MobileNet vector plus Gaussian noise
(``--noise`` per dimension, about cosine 0.94 to its source at the default), renormalised,
with payload ``derived_from``. Derived points are stated as such; they give the store the
size and the clustered shape of a real collection without decoding 100k images.

The queries: held-out camera-roll JPEGs (never ingested) and scikit-image photos, each timed
end to end through :class:`~service.search.Searcher` exactly as the CLI and UI call it: read
the file, decode, preprocess, MobileNet (ONNX, batch 1), exact top-k search with payloads.
The model is loaded once before timing, as in the running service.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ingest import (
    bench_settings,
    load_average,
    load_pipeline,
    machine_description,
    measure_export,
    peak_rss_mib,
    run_isolated,
)

_DERIVED_NAMESPACE = uuid.UUID("4f0b6a52-2a8e-4c55-9a53-8f1f5e6c0d11")
_UPSERT_CHUNK = 1024


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def add_derived_points(store: Any, total: int, noise: float, seed: int = 0) -> int:
    """Top the store up to ``total`` points with noisy copies of its real vectors."""
    from service.store.base import PointRecord
    from service.store.schema import PAYLOAD_PATH, PAYLOAD_ROOT, VECTOR_MOBILENET

    real = [r for page in store.scroll(1024, with_vectors=[VECTOR_MOBILENET]) for r in page]
    base = np.stack([r.vectors[VECTOR_MOBILENET] for r in real])
    rng = np.random.default_rng(seed)
    added = 0
    for start in range(len(real), total, _UPSERT_CHUNK):
        n = min(_UPSERT_CHUNK, total - start)
        sources = rng.integers(0, len(real), n)
        vectors = base[sources] + rng.normal(0, noise, (n, base.shape[1])).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.upsert([
            PointRecord(
                id=str(uuid.uuid5(_DERIVED_NAMESPACE, str(start + i))),
                vectors={VECTOR_MOBILENET: vectors[i]},
                payload={
                    PAYLOAD_PATH: f"derived/{start + i:06d}",
                    PAYLOAD_ROOT: "(derived)",
                    "derived_from": real[source].id,
                },
            )
            for i, source in enumerate(sources)
        ])
        added += n
    store.flush()
    return added


def measure_queries(
    collection: list[Path], queries: list[Path], data_dir: Path, models_dir: Path,
    points: int, noise: float, rounds: int, k: int,
) -> dict[str, Any]:
    """Build the collection, then time each query end to end and per stage."""
    from ingest.runner import FolderIngester
    from service.search import Searcher
    from service.store import open_store
    from service.store.schema import VECTOR_MOBILENET

    settings = bench_settings(data_dir, models_dir)
    pipeline = load_pipeline(settings)
    store = open_store(settings)
    try:
        started = time.perf_counter()
        report = FolderIngester(store, pipeline).ingest(collection[0].parent, collection)
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        derived = add_derived_points(store, points, noise)
        derived_s = time.perf_counter() - started
        total_points = store.count()

        searcher = Searcher(store, pipeline)
        for query in queries[:5]:
            searcher.search(query, k=k)  # warm-up
        end_to_end: list[float] = []
        stages: dict[str, list[float]] = {"prepare": [], "embed": [], "search": [],
                                          "store_query": []}
        for i in range(rounds):
            query = queries[i % len(queries)]
            t0 = time.perf_counter()
            results = searcher.search(query, k=k)
            end_to_end.append(time.perf_counter() - t0)
            assert len(results) == k
            t0 = time.perf_counter()
            prepared = searcher.prepare(query)
            t1 = time.perf_counter()
            vector = pipeline.embed([prepared])
            t2 = time.perf_counter()
            searcher.search_vectors({name: v[0] for name, v in vector.items()}, k)
            t3 = time.perf_counter()
            store.search(vector[VECTOR_MOBILENET][0], VECTOR_MOBILENET, k)
            t4 = time.perf_counter()
            stages["prepare"].append(t1 - t0)
            stages["embed"].append(t2 - t1)
            stages["search"].append(t3 - t2)
            stages["store_query"].append(t4 - t3)
    finally:
        store.close()
    return {
        "points": total_points,
        "real_points": report.added,
        "derived_points": derived,
        "ingest_seconds": ingest_s,
        "derived_upsert_seconds": derived_s,
        "queries": rounds,
        "k": k,
        "p50_ms": percentile_ms(end_to_end, 50),
        "p95_ms": percentile_ms(end_to_end, 95),
        "mean_ms": float(np.mean(end_to_end) * 1000),
        "stage_p50_ms": {name: percentile_ms(s, 50) for name, s in stages.items()},
        "peak_rss_mib": peak_rss_mib(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.query_latency", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "simimg-bench")
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--real", type=int, default=2900, help="camera-roll images really ingested")
    ap.add_argument("--held-out", type=int, default=100, help="camera-roll images used as queries")
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--noise", type=float, default=0.01, help="per-dimension sigma, derived pts")
    ap.add_argument("--queries", type=int, default=300, help="timed queries")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args(argv)

    from benchmarks.datasets import camera_roll_jpegs, skimage_photos

    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print("machine:", ", ".join(f"{k} {v}" for k, v in machine_description().items()))
    print("load average at start:", load_average())
    camera = camera_roll_jpegs(work / f"camera-{args.side}", args.real + args.held_out,
                               side=args.side)
    photos = skimage_photos(work / "skimage")
    queries = camera[args.real:] + sorted(photos)
    export = run_isolated(measure_export, work / "export")
    print(f"ONNX vs eager PyTorch max abs diff {export['max_abs_diff']:.2e}")
    data_dir = Path(tempfile.mkdtemp(prefix="query-", dir=work))
    result = run_isolated(measure_queries, camera[: args.real], queries, data_dir,
                          work / "export" / "models", args.points, args.noise, args.queries,
                          args.k)
    print("load average at end:", load_average())
    stages = result["stage_p50_ms"]
    print()
    print("| collection | queries | p50 | p95 | mean | stage p50: prepare / embed / search "
          "(of which the store's query) |")
    print("|---|---|---|---|---|---|")
    print(f"| {result['points']:,} points ({result['real_points']:,} real, "
          f"{result['derived_points']:,} derived), top-{result['k']} | {result['queries']} "
          f"| {result['p50_ms']:.1f} ms | {result['p95_ms']:.1f} ms | {result['mean_ms']:.1f} ms "
          f"| {stages['prepare']:.1f} / {stages['embed']:.1f} / {stages['search']:.1f} "
          f"({stages['store_query']:.1f}) ms |")
    print()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
