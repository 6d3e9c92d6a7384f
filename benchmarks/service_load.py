"""Many clients at once: the page's API and the REST API of one `simimg-admin serve`.

``python -m benchmarks.service_load [--points 10000] [--page-clients 8] [--rest-clients 8]
[--searches 10] [--work DIR]``

The collection is the ui_latency one (real Fashion-MNIST test images, ingested for real;
:func:`benchmarks.ui_latency.build_collection`), served by a real ``simimg-admin serve``
process on 127.0.0.1. Each page client (``gradio_client``) and each REST client (``httpx``)
runs ``--searches`` searches, cycling through a mix of query images (held-out Fashion-MNIST
images and scikit-image photos), and downloads every result image, decoding each one fully
(a truncated image counts as a failure). Reported: failed requests, requests/s and
searches/s per API, and p50/p95 of one search including its image downloads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

K = 6


def _check_image(data: bytes) -> None:
    with Image.open(BytesIO(data)) as image:
        image.load()  # raises on a truncated file


def _page_client(url: str, queries: list[Path], searches: int, offset: int, api_key: str | None,
                 out: dict[str, Any]) -> None:
    from gradio_client import Client

    import ui  # noqa: F401  (disables Gradio analytics before gradio is imported)

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    with tempfile.TemporaryDirectory(prefix="simimg-load-") as downloads:
        client = Client(url + "/", headers=headers, verbose=False, download_files=downloads)
        _page_searches(client, queries, searches, offset, out)


def _page_searches(client: Any, queries: list[Path], searches: int, offset: int,
                   out: dict[str, Any]) -> None:
    from gradio_client import handle_file

    for i in range(searches):
        query = queries[(offset + i) % len(queries)]
        started = time.perf_counter()
        try:
            gallery, *_ = client.predict(handle_file(str(query)), "mobilenet", K, "all",
                                         api_name="/search")
            out["requests"] += 1  # the search (upload and queue calls not counted)
            for tile in gallery:
                _check_image(Path(tile["image"]).read_bytes())
                out["requests"] += 1
        except Exception as exc:
            out["failures"].append(f"page {query.name}: {type(exc).__name__}: {exc}")
            continue
        out["latencies"].append(time.perf_counter() - started)


def _rest_client(url: str, queries: list[Path], searches: int, offset: int,
                 api_key: str | None, out: dict[str, Any]) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for i in range(searches):
            query = queries[(offset + i) % len(queries)]
            started = time.perf_counter()
            try:
                answer = client.post("/api/v1/search", data={"k": str(K)},
                                     files={"image": (query.name, query.read_bytes())})
                out["requests"] += 1
                answer.raise_for_status()
                for result in answer.json()["results"]:
                    image = client.get(f"/api/v1/points/{result['id']}/thumbnail")
                    out["requests"] += 1
                    image.raise_for_status()
                    _check_image(image.content)
            except Exception as exc:
                out["failures"].append(f"rest {query.name}: {type(exc).__name__}: {exc}")
                continue
            out["latencies"].append(time.perf_counter() - started)


def _summary(outs: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    latencies = [x for out in outs for x in out["latencies"]]
    requests = sum(out["requests"] for out in outs)
    ms = np.asarray(latencies or [0.0]) * 1000
    return {
        "clients": len(outs),
        "searches": len(latencies),
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1),
        "searches_per_s": round(len(latencies) / seconds, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
    }


def run_load(url: str, queries: list[Path], page_clients: int = 8, rest_clients: int = 8,
             searches: int = 10, api_key: str | None = None) -> dict[str, Any]:
    """Run every client at once against ``url``; returns per-API figures and failures."""
    outs = {kind: [{"requests": 0, "latencies": [], "failures": []} for _ in range(n)]
            for kind, n in (("page", page_clients), ("rest", rest_clients))}
    threads = []
    for kind, target in (("page", _page_client), ("rest", _rest_client)):
        for index, out in enumerate(outs[kind]):
            threads.append(threading.Thread(
                target=target, args=(url, queries, searches, index, api_key, out), daemon=True))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 1),
        "page": _summary(outs["page"], seconds),
        "rest": _summary(outs["rest"], seconds),
        "failures": [f for kind in outs.values() for out in kind for f in out["failures"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--page-clients", type=int, default=8)
    parser.add_argument("--rest-clients", type=int, default=8)
    parser.add_argument("--searches", type=int, default=10)
    parser.add_argument("--work", type=Path, default=Path("/tmp/simimg-ui-latency"))
    args = parser.parse_args(argv)

    from benchmarks.serving import serve_process
    from benchmarks.ui_latency import build_collection

    settings, queries = build_collection(args.work, args.points)
    with serve_process(settings) as url:
        report = run_load(url, queries, args.page_clients, args.rest_clients, args.searches)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    print(f"machine: {machine}; {args.points:,} points; {args.searches} searches per client, "
          f"k={K}, every result image downloaded; {report['seconds']} s")
    print("| clients | searches | requests | failed | requests/s | searches/s | p50 | p95 |")
    print("|---|---|---|---|---|---|---|---|")
    failed = {kind: sum(f.startswith(kind) for f in report["failures"])
              for kind in ("page", "rest")}
    for kind, label in (("page", "page API (gradio_client)"), ("rest", "REST API (httpx)")):
        row = report[kind]
        print(f"| {row['clients']} x {label} | {row['searches']} | {row['requests']} | "
              f"{failed[kind]} | {row['requests_per_s']} | {row['searches_per_s']} | "
              f"{row['p50_ms']} ms | {row['p95_ms']} ms |")
    print(json.dumps({"benchmark": "service_load", "machine": machine, **report}, indent=2))
    return 0 if not report["failures"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
