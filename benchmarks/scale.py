"""A million images on one machine: index build, search, recall, memory, clustering.

``python -m benchmarks.scale --points N [--quantization int8] [--on-disk] [--ef 32 64 128 256]``

The collection is built through simimg's own store (``open_store``) with both named vectors:

* **real** MobileNet vectors: the Fashion-MNIST photos (Debian ``dataset-fashion-mnist``)
  embedded by simimg's pipeline (``benchmarks.cluster.embed_split``, cached in ``--cache``);
  the 10,000 test-split images, plus the 60,000 train-split ones once their cache exists;
* topped up with **derived** vectors (``benchmarks.duplicates.derived_vectors``: a random mix
  of two real vectors plus noise, 2% near-duplicate copies), stated in the output;
* the autoencoder vector of every point is a stand-in: a fixed random projection of its
  MobileNet vector to 256 dimensions (no autoencoder is trained for this benchmark);
* payload ``cluster`` = point number modulo 100, so a cluster filter keeps 1% of the points.

Queries are real vectors held out of the collection. Recall@10 is measured against the
store's own exact search (``exact=True``). The search phase runs in a fresh process, so its
peak RSS is what serving the collection costs. End-to-end queries read real photo files
(scikit-image's and foolbox's) and go through :class:`~service.search.Searcher` (decode,
MobileNet ONNX, search), as the CLI and the page do.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ingest import (
    cpu_jiffies,
    load_average,
    machine_description,
    peak_rss_mib,
    run_isolated,
    steal_percent,
)
from benchmarks.query_latency import percentile_ms

DEFAULT_CACHE = Path("/tmp/simimg-scale")
AE_DIM = 256
CLUSTERS = 100  # payload `cluster` = i % CLUSTERS: one cluster is 1% of the points
_CHUNK = 10_000
_HELD_OUT = 200


def real_vectors(cache: Path) -> tuple[np.ndarray, str]:
    """Real MobileNet vectors of the Fashion-MNIST photos (embedded once, then cached)."""
    from benchmarks.cluster import embed_split

    test, _ = embed_split("test", cache)
    parts, what = [test], "10,000 Fashion-MNIST test photos"
    if (cache / "simimg-fmnist-train-mobilenet.npy").exists():
        parts.append(embed_split("train", cache)[0])
        what = "70,000 Fashion-MNIST photos (train + test)"
    return np.concatenate(parts).astype(np.float32), what


def ae_stand_in(mobilenet: np.ndarray) -> np.ndarray:
    """A 256-d unit vector per row: a fixed random projection of the MobileNet vector."""
    projection = np.random.default_rng(42).standard_normal((mobilenet.shape[1], AE_DIM))
    out = mobilenet @ projection.astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def bench_settings(data_dir: Path, args: argparse.Namespace) -> Any:
    from service.config import Settings

    return Settings.from_env(
        {}, data_dir=data_dir, latent_dim=AE_DIM, quantization=args.quantization,
        vectors_on_disk=args.on_disk, hnsw_ef_construct=args.ef_construct, hnsw_m=args.m,
    )


def _points(start: int, mobilenet: np.ndarray, derived: bool) -> list[Any]:
    from service.store.base import PointRecord
    from service.store.schema import (
        PAYLOAD_CLUSTER,
        PAYLOAD_LOCATIONS,
        PAYLOAD_PATH,
        PAYLOAD_ROOT,
        VECTOR_AUTOENCODER,
        VECTOR_MOBILENET,
    )

    ae = ae_stand_in(mobilenet)
    root = "/derived" if derived else "/fashion-mnist"
    return [
        PointRecord(
            f"00000000-0000-4000-8000-{start + i:012d}",
            {VECTOR_MOBILENET: mobilenet[i], VECTOR_AUTOENCODER: ae[i]},
            {PAYLOAD_ROOT: root, PAYLOAD_PATH: f"{start + i}.png",
             PAYLOAD_LOCATIONS: [{"root": root, "path": f"{start + i}.png", "mtime_ns": 0}],
             PAYLOAD_CLUSTER: (start + i) % CLUSTERS},
        )
        for i in range(len(mobilenet))
    ]


def build(data_dir: Path, args: argparse.Namespace, real: np.ndarray) -> dict[str, Any]:
    """Upsert real then derived points through simimg's store; build the index."""
    from benchmarks.duplicates import derived_vectors
    from service.store import open_store

    store = open_store(bench_settings(data_dir, args))
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    n_real = min(len(real), args.points)
    for start in range(0, n_real, _CHUNK):
        store.upsert(_points(start, real[start : start + _CHUNK][: n_real - start], False))
    for start in range(n_real, args.points, _CHUNK):
        n = min(_CHUNK, args.points - start)
        store.upsert(_points(start, derived_vectors(real, n, 0.02, rng), True))
        if (start + n) % 100_000 < _CHUNK:
            print(f"  upserted {start + n:,} points ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    store.flush()
    upsert_s = time.perf_counter() - started
    print(f"  upserted in {upsert_s:.0f} s; building the index", flush=True)
    started, jiffies = time.perf_counter(), cpu_jiffies()
    store.optimize()
    index_s = time.perf_counter() - started
    index_steal = steal_percent(jiffies, cpu_jiffies())
    indexed = store.indexed_vectors()
    points = store.count()
    store.close()
    return {"points": points, "real_points": n_real, "derived_points": points - n_real,
            "upsert_s": upsert_s, "index_build_s": index_s, "index_build_steal_pct": index_steal,
            "indexed_vectors": indexed,
            "build_peak_rss_mb": peak_rss_mib(), "disk_mb": _disk_mb(data_dir)}


def _disk_mb(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return total / 2**20


def _timed(fn: Any, items: list[Any]) -> tuple[list[Any], list[float]]:
    results, seconds = [], []
    for item in items:
        t0 = time.perf_counter()
        results.append(fn(item))
        seconds.append(time.perf_counter() - t0)
    return results, seconds


def _recall(found: list[list[Any]], truth: list[list[Any]]) -> float:
    hits = [len({h.id for h in f} & {h.id for h in t}) / max(1, len(t))
            for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def serve(data_dir: Path, args: argparse.Namespace, queries: np.ndarray,
          photo_files: list[str]) -> dict[str, Any]:
    """Searches on the built collection, in a fresh process: latency per hnsw_ef, filtered,
    end to end, and the memory that serving them takes; then recall against exact search
    (after the memory is read: an exact scan pages in every original vector)."""
    from benchmarks.duplicates import PeakRss
    from service.store import open_store
    from service.store.base import PointFilter
    from service.store.schema import VECTOR_AUTOENCODER, VECTOR_MOBILENET

    settings = bench_settings(data_dir, args)
    store = open_store(settings)
    mn = list(queries)
    ae = list(ae_stand_in(queries))
    k = 10
    pairs = [(q, PointFilter(cluster=i % CLUSTERS)) for i, q in enumerate(mn)]
    out: dict[str, Any] = {"queries": len(mn), "hnsw_ef": settings.hnsw_ef}
    with PeakRss() as memory:
        for q in mn[:20]:
            store.search(q, VECTOR_MOBILENET, k)  # warm-up (pages in the index and vectors)
        found: dict[int, list[Any]] = {}
        sweep = {}
        for ef in sorted(set(args.ef) | {settings.hnsw_ef}):
            store.settings = replace(settings, hnsw_ef=ef)
            found[ef], seconds = _timed(lambda q: store.search(q, VECTOR_MOBILENET, k), mn)
            sweep[ef] = {"p50_ms": percentile_ms(seconds, 50),
                         "p95_ms": percentile_ms(seconds, 95)}
        store.settings = settings
        ae_found, ae_s = _timed(lambda q: store.search(q, VECTOR_AUTOENCODER, k), ae)
        f_found, f_s = _timed(lambda p: store.search(p[0], VECTOR_MOBILENET, k, p[1]), pairs)
        if photo_files:
            out.update(_end_to_end(settings, store, [Path(p) for p in photo_files], args))
    out.update(serving_rss_mb=memory.peak / 2**20, serving_anon_mb=memory.peak_anon / 2**20,
               ae_search_p50_ms=percentile_ms(ae_s, 50),
               filtered_p50_ms=percentile_ms(f_s, 50), filtered_p95_ms=percentile_ms(f_s, 95))
    exact, exact_s = _timed(lambda q: store.search(q, VECTOR_MOBILENET, k, exact=True), mn)
    out["exact_p50_ms"] = percentile_ms(exact_s, 50)
    for ef, row in sweep.items():
        row["recall_at_10"] = _recall(found[ef], exact)
    out["ef_sweep"] = sweep
    chosen = sweep[settings.hnsw_ef]
    out.update(recall_at_10=chosen["recall_at_10"], search_p50_ms=chosen["p50_ms"],
               search_p95_ms=chosen["p95_ms"])
    ae_exact, _ = _timed(lambda q: store.search(q, VECTOR_AUTOENCODER, k, exact=True), ae)
    f_exact, f_exact_s = _timed(lambda p: store.search(p[0], VECTOR_MOBILENET, k, p[1], True),
                                pairs)
    out.update(ae_recall_at_10=_recall(ae_found, ae_exact),
               filtered_exact_p50_ms=percentile_ms(f_exact_s, 50),
               filtered_recall_at_10=_recall(f_found, f_exact))
    store.close()
    return out


def _end_to_end(settings: Any, store: Any, files: list[Path],
                args: argparse.Namespace) -> dict[str, Any]:
    """One query from an image file: read, decode, MobileNet (ONNX), search; p50.

    Three ways, interleaved file by file so that a change in the host's speed touches each
    alike: the default search (whitened re-score), the plain cosine search (whitening off),
    and the query's image alone (read, decode, preprocess, MobileNet). ``cpu_probe_ms``: a
    fixed pure-Python loop timed before and after, to show how fast the shared host ran.
    """
    from service.embedders.mobilenet import load_mobilenet
    from service.pipeline import EmbeddingPipeline
    from service.query_whitening import QueryWhitening
    from service.search import Searcher
    from service.store.schema import VECTOR_MOBILENET

    models = replace(settings, data_dir=args.models_from)
    pipeline = EmbeddingPipeline(settings, [load_mobilenet(models)])
    searcher, plain = Searcher(store, pipeline), Searcher(store, pipeline)
    plain.whitening = QueryWhitening(replace(settings, whiten_shrinkage=0.0), store)
    ways = {
        "query_from_file": lambda path: searcher.search(path, k=10),
        "query_from_file_plain": lambda path: plain.search(path, k=10),
        "query_image_only": lambda path: pipeline.embed(
            [searcher.prepare(path, spaces=[VECTOR_MOBILENET])], [VECTOR_MOBILENET]),
    }
    for path in files[:3]:
        for way in ways.values():
            way(path)  # warm-up
    probe = [cpu_probe_ms()]
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(max(60, len(files))):
        for name, way in ways.items():
            seconds[name] += _timed(way, [files[i % len(files)]])[1]
    probe.append(cpu_probe_ms())
    out: dict[str, Any] = {"cpu_probe_ms": probe}
    for name, values in seconds.items():
        out[f"{name}_p50_ms"] = percentile_ms(values, 50)
        out[f"{name}_p95_ms"] = percentile_ms(values, 95)
    return out


def cpu_probe_ms() -> float:
    """Milliseconds for a fixed pure-Python loop (3 million additions): the host's speed."""
    started, total = time.perf_counter(), 0
    for i in range(3_000_000):
        total += i
    return (time.perf_counter() - started) * 1000


def _photo_files(work: Path) -> list[str]:
    from benchmarks.datasets import foolbox_imagenet, skimage_photos

    files = list(skimage_photos(work / "photos"))
    with contextlib.suppress(FileNotFoundError):  # foolbox is optional
        files += foolbox_imagenet(work / "foolbox")
    return [str(p) for p in files]


def cluster(data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """`cluster` on the collection as the CLI runs it (labels written), timed."""
    from service.cluster_labels import cluster_collection
    from service.store import open_store

    settings = bench_settings(data_dir, args)
    if args.no_reindex:  # the labels move every point out of the index: leave the rebuild
        settings = replace(settings, index_after=0)
    store = open_store(settings)
    reindex_from: list[float] = []  # labels written, index rebuilt (the labelled points left it)

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "index" and not reindex_from:
            reindex_from.append(time.perf_counter())

    started, jiffies = time.perf_counter(), cpu_jiffies()
    run = cluster_collection(settings, store, eps=args.eps, min_samples=args.min_samples,
                             neighbours=args.neighbours, progress=progress)
    ended = time.perf_counter()
    labelled = reindex_from[0] if reindex_from else ended
    store.close()
    labels = run.result.labels
    out: dict[str, Any] = {
        "cluster_s": labelled - started,
        "cluster_reindex_s": None if args.no_reindex else ended - labelled,
        "cluster_steal_pct": steal_percent(jiffies, cpu_jiffies()),
        "cluster_method": run.result.neighbours,
        "clusters": int(labels.max() + 1) if labels.size else 0,
        "noise_share": float(np.mean(labels < 0)), "eps": run.result.eps,
        "cluster_peak_rss_mb": peak_rss_mib(),
    }
    if args.points <= args.ari_max:
        out.update(_against_exact(data_dir, args, run))
    return out


def _against_exact(data_dir: Path, args: argparse.Namespace, run: Any) -> dict[str, Any]:
    """ARI and cluster count of the run against exact DBSCAN on the same vectors and eps."""
    from sklearn.metrics import adjusted_rand_score

    from service.cluster_labels import read_vectors
    from service.clustering.dbscan import dbscan_cosine
    from service.clustering.vectors import unit_rows
    from service.store import open_store

    store = open_store(bench_settings(data_dir, args))
    ids, vectors = read_vectors(store, "mobilenet")
    store.close()
    position = {pid: i for i, pid in enumerate(run.ids)}
    order = np.array([position[pid] for pid in ids])
    started = time.perf_counter()
    exact = dbscan_cosine(unit_rows(vectors), float(run.result.eps), args.min_samples)
    exact_s = time.perf_counter() - started
    labels = run.result.labels[order]
    return {"ari_vs_exact": float(adjusted_rand_score(exact, labels)),
            "exact_clusters": int(exact.max() + 1), "exact_cluster_s": exact_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--quantization", default="none", choices=["none", "int8"])
    ap.add_argument("--on-disk", action="store_true", help="original vectors memory-mapped")
    ap.add_argument("--ef-construct", type=int, default=None,
                    help="HNSW ef_construct of the new collection (default: the setting)")
    ap.add_argument("--m", type=int, default=None,
                    help="HNSW m (links per node) of the new collection (default: the setting)")
    ap.add_argument("--ef", type=int, nargs="*", default=[32, 64, 128, 256],
                    help="hnsw_ef values to sweep (recall and latency of each)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="embedding cache")
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--models-from", type=Path, default=Path("simimg-data"),
                    help="a data dir with the verified MobileNet export (end-to-end queries)")
    ap.add_argument("--eps", default="auto")
    ap.add_argument("--min-samples", type=int, default=5)
    ap.add_argument("--ari-max", type=int, default=100_000,
                    help="compare with exact DBSCAN up to this many points")
    ap.add_argument("--neighbours", default="index", choices=["auto", "exact", "index"],
                    help="DBSCAN neighbourhoods (cluster --neighbours)")
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--no-reindex", action="store_true",
                    help="after `cluster` has labelled every point, do not rebuild the index")
    ap.add_argument("--reuse", type=Path, default=None,
                    help="a data dir kept by an earlier run (--keep): skip the build")
    ap.add_argument("--keep", action="store_true", help="keep the collection")
    args = ap.parse_args(argv)
    args.eps = args.eps if args.eps == "auto" else float(args.eps)

    print("machine:", ", ".join(f"{k} {v}" for k, v in machine_description().items()))
    print(f"load average at start: {load_average()} (the 2 cores are shared with other "
          "work: times are upper bounds)")
    real, what = real_vectors(args.cache)
    rng = np.random.default_rng(1)
    held = rng.choice(len(real), _HELD_OUT, replace=False)
    queries = real[held]
    real = np.delete(real, held, axis=0)
    work = Path(tempfile.mkdtemp(prefix="simimg-scale-", dir=args.work_dir))
    data_dir = work / "data"
    print(f"collection: {min(len(real), args.points):,} real vectors ({what}, less "
          f"{_HELD_OUT} held out as queries) topped up to {args.points:,} with derived "
          "vectors (mix of two real + noise); autoencoder vectors are a random projection")
    result: dict[str, Any] = {"points": args.points, "quantization": args.quantization,
                              "on_disk": args.on_disk,
                              "ef_construct": bench_settings(data_dir, args).hnsw_ef_construct,
                              "m": bench_settings(data_dir, args).hnsw_m}
    if args.reuse is not None:  # a collection kept by an earlier run (--keep): its figures
        data_dir = args.reuse
        result.update(json.loads((data_dir / "build.json").read_text()))
    else:
        result.update(run_isolated(build, data_dir, args, real))
        (data_dir / "build.json").write_text(json.dumps(result))
    print(f"  built: {result['points']:,} points in {result['upsert_s']:.0f} s, index "
          f"{result['index_build_s']:.0f} s", flush=True)
    if not args.skip_search:
        result.update(run_isolated(serve, data_dir, args, queries, _photo_files(work)))
    if not args.skip_cluster:
        result.update(run_isolated(cluster, data_dir, args))
    result["peak_rss_mb"] = max(result.get(key, 0.0) for key in (
        "build_peak_rss_mb", "serving_rss_mb", "cluster_peak_rss_mb"))
    result["load_average_end"] = load_average()
    if not args.skip_search:
        print_table(result)
    if not args.keep and args.reuse is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"collection kept in {data_dir}")
    print(json.dumps(result))
    return 0


def print_table(r: dict[str, Any]) -> None:
    rows = [
        ("points (real + derived)", f"{r['points']:,} ({r['real_points']:,} + "
                                    f"{r['derived_points']:,})"),
        ("upsert", f"{r['upsert_s']:.0f} s"),
        ("index build", f"{r['index_build_s']:.0f} s ({r['indexed_vectors']:,} vectors, "
                        f"{r.get('index_build_steal_pct', 0.0):.0f}% of the CPUs stolen)"),
        ("disk", f"{r['disk_mb']:,.0f} MB"),
        ("search p50 / p95 (hnsw_ef "
         f"{r['hnsw_ef']})", f"{r['search_p50_ms']:.2f} / {r['search_p95_ms']:.2f} ms"),
        ("exact search p50", f"{r['exact_p50_ms']:.1f} ms"),
        ("recall@10 vs exact", f"{r['recall_at_10']:.4f} (autoencoder "
                               f"{r['ae_recall_at_10']:.4f})"),
        ("1% cluster filter p50 / p95", f"{r['filtered_p50_ms']:.2f} / "
                                        f"{r['filtered_p95_ms']:.2f} ms (recall "
                                        f"{r['filtered_recall_at_10']:.4f})"),
        ("query from file p50: whitened / plain / image only",
         f"{r.get('query_from_file_p50_ms', float('nan')):.1f} / "
         f"{r.get('query_from_file_plain_p50_ms', float('nan')):.1f} / "
         f"{r.get('query_image_only_p50_ms', float('nan')):.1f} ms (CPU probe "
         + " / ".join(f"{v:.0f}" for v in r.get("cpu_probe_ms", [])) + " ms)"),
        ("peak RSS: build / serving", f"{r['build_peak_rss_mb']:,.0f} / "
                                      f"{r['serving_rss_mb']:,.0f} MB (serving anonymous "
                                      f"{r['serving_anon_mb']:,.0f} MB)"),
    ]
    if "cluster_s" in r:
        rebuilt = r.get("cluster_reindex_s")
        rows.append(("cluster", f"{r['cluster_s']:.0f} s ({r['cluster_method']}, "
                                f"{r['clusters']} clusters), " + (
                                    "index not rebuilt (--no-reindex)" if rebuilt is None
                                    else f"then the index rebuilt in {rebuilt:.0f} s")))
    if "ari_vs_exact" in r:
        rows.append(("ARI vs exact DBSCAN", f"{r['ari_vs_exact']:.4f} ({r['exact_clusters']} "
                                            "exact clusters)"))
    print()
    print("| measurement | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print()
    print("| hnsw_ef | recall@10 | p50 ms | p95 ms |")
    print("|---|---|---|---|")
    for ef, row in r["ef_sweep"].items():
        print(f"| {ef} | {row['recall_at_10']:.4f} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} |")
    print()
    print(f"load average at end: {r['load_average_end']}")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
