"""Search latency through the REST API beside the page's API, same service, same run.

``python -m benchmarks.service_latency [--sizes 10000 100000] [--queries 100] [--work DIR]``

The collection: the ui_latency one (``--sizes[0]`` real Fashion-MNIST test images ingested
for real, :func:`benchmarks.ui_latency.build_collection`); each larger size is a copy of it
topped up with derived points (a real vector plus noise,
:func:`benchmarks.query_latency.add_derived_points`; their files do not exist, so the page
shows them as grey "unavailable" tiles). For each size a real ``simimg-admin serve``
process is started on 127.0.0.1 and timed, one request at a time, k=6, MobileNet:

* REST: ``POST /api/v1/search`` (multipart upload) -> JSON results;
* page: the page's ``/search`` API through ``gradio_client`` (upload, queue, results and
  gallery thumbnails named; images not downloaded), the path ui_latency measures;
* REST during an ingest job: the same REST search while the service runs an ingest job
  of ``--ingest-images`` new Fashion-MNIST train images (only samples taken while the job
  was running count).

Queries cycle through held-out Fashion-MNIST images and scikit-image photos.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ui_latency import DEFAULT_WORK, build_collection


def _ms(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples or [float("nan")]) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "n": len(samples)}


def _sized_copy(settings: Any, points: int, work: Path) -> Any:
    """``settings``'s collection copied and topped up to ``points`` (reused between runs)."""
    from dataclasses import replace

    from benchmarks.query_latency import add_derived_points
    from service.store import open_store

    target = replace(settings, data_dir=work / f"data-{points}")
    if not target.data_dir.exists():
        shutil.copytree(settings.data_dir, target.data_dir, symlinks=True)
    store = open_store(target)
    try:
        if store.count() < points:
            add_derived_points(store, points, noise=0.012)
    finally:
        store.close()
    return target


def measure(url: str, queries: list[Path], rounds: int, ingest_folder: Path) -> dict[str, Any]:
    import httpx
    from gradio_client import Client, handle_file

    rest = httpx.Client(base_url=url, timeout=120)
    page = Client(url + "/", verbose=False, download_files=False)

    def rest_search(query: Path) -> None:
        answer = rest.post("/api/v1/search", data={"k": "6"},
                           files={"image": (query.name, query.read_bytes())})
        answer.raise_for_status()

    def page_search(query: Path) -> None:
        page.predict(handle_file(str(query)), "mobilenet", 6, "all", api_name="/search")

    def timed(call: Any, n: int) -> list[float]:
        samples = []
        for i in range(n):
            started = time.perf_counter()
            call(queries[i % len(queries)])
            samples.append(time.perf_counter() - started)
        return samples

    for query in queries[:5]:  # warm-up both paths
        rest_search(query)
        page_search(query)
    results = {"rest": _ms(timed(rest_search, rounds)), "page": _ms(timed(page_search, rounds))}

    job = rest.post("/api/v1/jobs", json={"kind": "ingest", "folder": str(ingest_folder)}).json()
    during: list[float] = []
    while len(during) < rounds:
        state = rest.get(f"/api/v1/jobs/{job['id']}").json()
        if state["state"] == "queued":
            time.sleep(0.05)
            continue
        if state["state"] != "running":
            break
        during += timed(rest_search, 1)
    results["rest_during_ingest"] = _ms(during)
    while rest.get(f"/api/v1/jobs/{job['id']}").json()["state"] in ("queued", "running"):
        time.sleep(0.5)
    rest.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--ingest-images", type=int, default=3000)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    args = parser.parse_args(argv)

    from benchmarks.datasets import fashion_mnist_labelled
    from benchmarks.serving import serve_process

    base, queries = build_collection(args.work, args.sizes[0])
    report: dict[str, Any] = {"benchmark": "service_latency", "sizes": {}}
    for size in args.sizes:
        settings = base if size == args.sizes[0] else _sized_copy(base, size, args.work)
        # new images for the ingest job: a fresh folder per size, so the job has work to do
        folder = args.work / f"ingest-{size}"
        shutil.rmtree(folder, ignore_errors=True)
        fashion_mnist_labelled(folder, args.ingest_images, seed=7 + size, split="train")
        env = {"SIMIMG_ALLOWED_ROOTS": str(args.work)}
        with serve_process(settings, env=env) as url:
            report["sizes"][size] = measure(url, queries, args.queries, folder)
        print(f"{size:,} points: {json.dumps(report['sizes'][size])}", flush=True)
    report["machine"] = (f"{platform.machine()}, {os.cpu_count()} CPUs, "
                         f"load {os.getloadavg()[0]:.2f}")
    print(f"machine: {report['machine']}; k=6, mobilenet, {args.queries} queries per path")
    print("| points | REST p50 | REST p95 | page p50 | page p95 | page/REST p50 "
          "| REST during ingest p50 | p95 |")
    print("|---|---|---|---|---|---|---|---|")
    for size, row in report["sizes"].items():
        ratio = row["page"]["p50_ms"] / row["rest"]["p50_ms"]
        print(f"| {size:,} | {row['rest']['p50_ms']} ms | {row['rest']['p95_ms']} ms "
              f"| {row['page']['p50_ms']} ms | {row['page']['p95_ms']} ms | {ratio:.1f}x "
              f"| {row['rest_during_ingest']['p50_ms']} ms "
              f"| {row['rest_during_ingest']['p95_ms']} ms |")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
