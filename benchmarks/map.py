"""`simimg-admin map` time and Map-tab load time at 10,000 and 100,000 points.

``python -m benchmarks.map [--sizes 10000,100000] [--work /tmp/simimg-map-bench]``

The collection (embedded store, one per size): the 20 real ImageNet photos (foolbox) and
the scikit-image photos, ingested for real, then topped up with **derived** points: a real
MobileNet vector plus Gaussian noise (sigma 0.01 per dimension, cosine ~0.94 to its
source; :func:`benchmarks.query_latency.add_derived_points`), each labelled with its source's
cluster so the map is coloured. Derived points give the store the size of a real
collection; their layout is not a quality claim (they form one tight blob per source).

Per size, each step in order:

* ``map``: :func:`service.map_layout.build_map` in a fresh process (as the CLI runs it; its
  import of umap/numba is timed apart): read the vectors, UMAP, write ``map_x``/``map_y``.
* page: the Gradio page served in-process, opened in Debian's Chromium (Playwright); time
  from clicking the Map tab until every dot is drawn, the server's share of it (reading
  the positions and packing them), the bytes sent, one full redraw (as during a zoom or a
  pan), and a hover until its thumbnail shows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.ingest import (
    bench_settings,
    cpu_seconds,
    load_average,
    machine_description,
    peak_rss_mib,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NOISE = 0.01
CLUSTERS = 12


def build_collection(data_dir: Path, models_dir: Path, size: int) -> None:
    """Real photos ingested, then derived points up to ``size``, labelled by source."""
    from benchmarks.datasets import foolbox_imagenet, skimage_photos
    from benchmarks.query_latency import add_derived_points
    from ingest.runner import FolderIngester
    from service.pipeline import build_pipeline
    from service.store import open_store
    from service.store.schema import PAYLOAD_CLUSTER
    from service.walker import iter_image_files

    settings = bench_settings(data_dir, models_dir)
    photos = data_dir.parent / "photos"
    if not photos.exists():
        foolbox_imagenet(photos / "imagenet")
        skimage_photos(photos / "skimage")
    store = open_store(settings)
    try:
        ingester = FolderIngester(store, build_pipeline(settings))
        ingester.ingest(photos, list(iter_image_files(photos)))
        add_derived_points(store, size, NOISE)
        real = {r.id: i for i, r in enumerate(r for page in store.scroll(1024) for r in page
                                              if "derived_from" not in r.payload)}
        groups: dict[int, list[str]] = {}
        for page in store.scroll(4096):
            for record in page:
                source = record.payload.get("derived_from", record.id)
                groups.setdefault(real[source] % CLUSTERS, []).append(record.id)
        for label, ids in groups.items():
            for start in range(0, len(ids), 1000):
                store.set_payload({PAYLOAD_CLUSTER: label}, ids[start : start + 1000])
        store.flush()
    finally:
        store.close()


def run_map(data_dir: Path, models_dir: Path, method: str = "auto") -> dict[str, Any]:
    """One ``map`` run (call in a fresh process)."""
    t0 = time.perf_counter()
    import umap  # noqa: F401

    imported = time.perf_counter() - t0
    from service.map_layout import build_map
    from service.store import open_store

    settings = bench_settings(data_dir, models_dir)
    store = open_store(settings)
    phases: dict[str, float] = {}
    marks = {"start": time.perf_counter()}

    def progress(phase: str, done: int, total: int) -> None:
        if done == total and phase not in phases:
            phases[phase] = time.perf_counter() - marks["start"]

    try:
        report = build_map(store, method=method, progress=progress)
    finally:
        store.close()
    return {**report.to_json(), "seconds_import": round(imported, 2),
            "seconds_read": round(phases.get("read", 0.0), 2),
            "seconds_write": round(report.seconds_total - phases.get("read", 0.0)
                                   - report.seconds_layout, 2),
            "peak_rss_mib": round(peak_rss_mib()), "cpu_seconds": round(cpu_seconds(), 1)}


def measure_page(data_dir: Path, models_dir: Path, size: int) -> dict[str, Any]:
    """Open the page in Chromium and time the Map tab (the store is opened here)."""
    from playwright.sync_api import sync_playwright

    import ui  # noqa: F401
    from service.pipeline import build_pipeline
    from service.search import Searcher
    from service.store import open_store
    from tests.processes import free_port
    from ui.app import build_app, launch
    from ui.map_tab import MapView

    settings = bench_settings(data_dir, models_dir)
    store = open_store(settings)
    timings: dict[str, float] = {}
    original = MapView.map_data

    def timed_map_data(self: MapView) -> dict[str, Any]:
        t0 = time.perf_counter()
        answer = original(self)
        timings["server_s"] = time.perf_counter() - t0
        timings["bytes"] = len(json.dumps(answer))
        return answer

    MapView.map_data = timed_map_data  # type: ignore[method-assign]
    demo = build_app(Searcher(store, build_pipeline(settings)), settings)
    port = free_port()
    try:
        launch(demo, settings, port=port, prevent_thread_lock=True, quiet=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(300_000)
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("tab", name="Map").wait_for()
            ready = time.perf_counter() - t0
            t1 = time.perf_counter()
            page.get_by_role("tab", name="Map").click()
            page.wait_for_function(
                f"document.querySelector('#map .simimg-map')?.dataset.drawn === '{size}'",
                polling=20)
            drawn = time.perf_counter() - t1
            hook = "document.querySelector('#map .simimg-map').simimgMap"
            redraws = [page.evaluate(f"{hook}.redrawMs()") for _ in range(5)]
            x, y = page.evaluate(f"{hook}.pagePosition(0)")
            t2 = time.perf_counter()
            page.mouse.move(x, y)
            page.wait_for_selector("#map .map-tip:not([hidden])")
            hover = time.perf_counter() - t2
            browser.close()
    finally:
        demo.close()
        store.close()
        MapView.map_data = original  # type: ignore[method-assign]
    return {"page_ready_s": round(ready, 2), "map_tab_drawn_s": round(drawn, 2),
            "server_map_data_s": round(timings.get("server_s", 0.0), 2),
            "map_data_mb": round(timings.get("bytes", 0) / 1e6, 2),
            "redraw_ms": round(sorted(redraws)[len(redraws) // 2], 1),
            "hover_s": round(hover, 2)}


def _in_subprocess(step: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "benchmarks.map", "--worker", step, *args],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--work", type=Path, default=None, help="kept between runs if given")
    ap.add_argument("--method", default="auto", help="map --method (auto: UMAP here)")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        step, data_dir, models_dir, size = args.worker
        fn = {"build": lambda: build_collection(Path(data_dir), Path(models_dir), int(size)),
              "map": lambda: run_map(Path(data_dir), Path(models_dir), args.method),
              "page": lambda: measure_page(Path(data_dir), Path(models_dir), int(size))}[step]
        print(json.dumps(fn() or {}))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="simimg-map-bench-"))
    models = work / "models-root" / "models"
    if not (models / "mobilenet").exists():
        from service.config import Settings
        from service.embedders.mobilenet import load_mobilenet

        load_mobilenet(Settings(data_dir=work / "models-root"))
    print(f"machine: {json.dumps(machine_description())}, load before: {load_average()}")
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        data_dir = work / f"data-{size}"
        common = [str(data_dir), str(models), str(size)]
        if not (data_dir / "qdrant-edge").exists():
            _in_subprocess("build", *common)
        mapped = _in_subprocess("map", *common, "--method", args.method)
        page = _in_subprocess("page", *common)
        rows.append({"points": size, **mapped, **page})
        print(json.dumps(rows[-1]), flush=True)
    print(f"load after: {load_average()}")
    print("\n| points | method | import umap | read | layout | write | map total | map CPU "
          "| peak RSS | Map tab drawn | of which server | sent | redraw | hover |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['points']:,} | {r['method']} | {r['seconds_import']} s | "
              f"{r['seconds_read']} s | {r['seconds_layout']:.1f} s | {r['seconds_write']} s | "
              f"{r['seconds_total']:.1f} s | {r['cpu_seconds']} s | {r['peak_rss_mib']} MiB | "
              f"{r['map_tab_drawn_s']} s | "
              f"{r['server_map_data_s']} s | {r['map_data_mb']} MB | {r['redraw_ms']} ms | "
              f"{r['hover_s']} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
