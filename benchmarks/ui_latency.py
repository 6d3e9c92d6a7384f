"""Latency from request to results through the web page's API, at 10k points.

``python -m benchmarks.ui_latency [--points 10000] [--queries 100] [--work DIR]``

The collection: ``--points`` real Fashion-MNIST test images (Debian
``dataset-fashion-mnist``, 28x28 grey PNGs) ingested for real with
:class:`~ingest.runner.FolderIngester`; each point is labelled with its class as its
``cluster`` (a stand-in for a clustering run, so the cluster filter has ~10% selectivity).
The work directory is reused: a second run skips the ingest.

The app is built with :func:`ui.app.build_app` and launched in-process, exactly as
``simimg-admin serve`` does, then queried with ``gradio_client`` over HTTP on 127.0.0.1:
upload the query file, queue, decode + MobileNet (ONNX) + top-k search, thumbnails of the
results, and the response (``api_results``). ``api_results_and_images`` adds the download
of the result images, which gradio_client fetches one by one (a browser fetches them in
parallel). Queries are held-out Fashion-MNIST train images (not in the collection) and
scikit-image photos, cycled. The same queries through ``Searcher.search`` in-process give
the app's overhead. On a loaded machine, read the load average in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import ui  # noqa: F401  (disables Gradio analytics before gradio is imported)

DEFAULT_WORK = Path("/tmp/simimg-ui-latency")


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "mean_ms": round(float(ms.mean()), 1), "n": len(samples)}


def timed(fn: Callable[[], Any], repeats: list[Path], call: Callable[[Path], Any]) -> list[float]:
    """Wall time of ``call(query)`` for each query (after ``fn`` warm-up)."""
    fn()
    samples = []
    for query in repeats:
        start = time.perf_counter()
        call(query)
        samples.append(time.perf_counter() - start)
    return samples


def build_collection(work: Path, points: int) -> tuple[Any, list[Path]]:
    """Settings of an ingested, class-labelled collection and a list of query files."""
    from benchmarks.datasets import FASHION_CLASSES, fashion_mnist_labelled, skimage_photos
    from ingest.runner import FolderIngester
    from service.config import Settings
    from service.pipeline import build_pipeline
    from service.store import open_store
    from service.walker import iter_image_files

    images = work / "images"
    fashion_mnist_labelled(images, points, split="test")
    settings = Settings.from_env({}, data_dir=work / "data")
    store = open_store(settings)
    try:
        if store.count() < points:
            files = list(iter_image_files(images))
            report = FolderIngester(store, build_pipeline(settings, ["mobilenet"])).ingest(
                images, files
            )
            print(f"ingested {report.added} images in {report.seconds:.0f}s", flush=True)
        for label, name in enumerate(FASHION_CLASSES):
            ids = [r.id for page in store.scroll(2048) for r in page
                   if r.payload["path"].startswith(f"{name}/")
                   and r.payload.get("cluster") != label]
            store.set_payload({"cluster": label}, ids)
    finally:
        store.close()
    held_out = fashion_mnist_labelled(work / "queries", 40, seed=1, split="train")
    queries = [p for paths in held_out.values() for p in paths]
    queries += skimage_photos(work / "photos")
    return settings, sorted(queries)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    args = parser.parse_args(argv)

    from gradio_client import Client, handle_file

    from service.pipeline import build_pipeline
    from service.search import Searcher
    from service.store import open_store
    from ui.app import build_app, launch

    settings, pool = build_collection(args.work, args.points)
    queries = [pool[i % len(pool)] for i in range(args.queries)]
    store = open_store(settings)
    searcher = Searcher(store, build_pipeline(settings))
    demo = build_app(searcher, settings)
    port = free_port()
    results: dict[str, Any] = {}
    try:
        launch(demo, settings, port=port, prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{port}/"
        # Results (JSON rows + gallery URLs) vs. results plus the 6 images fetched one by one.
        bare = Client(url, verbose=False, download_files=False)
        fetching = Client(url, verbose=False, download_files=str(args.work / "downloads"))

        def via_api(client: Client, cluster: str = "all") -> Callable[[Path], Any]:
            return lambda q: client.predict(handle_file(str(q)), "mobilenet", args.k, cluster,
                                            api_name="/search")

        def warm() -> None:
            for query in pool[:5]:
                via_api(bare)(query)

        results["api_results"] = percentiles_ms(timed(warm, queries, via_api(bare)))
        results["api_results_cluster_filter"] = percentiles_ms(
            timed(warm, queries, via_api(bare, "3")))
        results["api_results_and_images"] = percentiles_ms(
            timed(warm, queries, via_api(fetching)))
        results["in_process_search"] = percentiles_ms(timed(
            warm, queries, lambda q: searcher.search(q, "mobilenet", args.k)))
        results["points"] = store.count()
    finally:
        demo.close()
        store.close()
    report = {
        "benchmark": "ui_latency",
        "k": args.k,
        "space": "mobilenet",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
        **results,
    }
    print(f"machine: {report['machine']}; {results['points']:,} points, k={args.k}")
    print("| path | p50 | p95 | mean | queries |")
    print("|---|---|---|---|---|")
    for name, label in _ROWS.items():
        row = results[name]
        print(f"| {label} | {row['p50_ms']:.1f} ms | {row['p95_ms']:.1f} ms "
              f"| {row['mean_ms']:.1f} ms | {row['n']} |")
    print(json.dumps(report, indent=2))
    return 0


_ROWS = {
    "api_results": "API request -> results (gradio_client)",
    "api_results_cluster_filter": "same, with a cluster filter",
    "api_results_and_images": "API, plus downloading the result images",
    "in_process_search": "Searcher.search in-process (for comparison)",
}


if __name__ == "__main__":
    raise SystemExit(main())
