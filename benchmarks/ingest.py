"""Ingest throughput: end-to-end ingest vs model-only vs a naive eager-PyTorch loop.

``python -m benchmarks.ingest [--count 3000] [--side 512] [--fashion-mnist 70000]``

All rows are measured in one run on the same machine, each in its own fresh process (so
every peak RSS belongs to that measurement alone):

* **end-to-end ingest**: :class:`~ingest.runner.FolderIngester` on a folder of real
  camera-roll JPEGs (``benchmarks.datasets.camera_roll_jpegs``: clip-art and photos,
  re-encoded with the long side ``--side`` px): read, hash, decode, preprocess, MobileNet
  through the verified ONNX export, upsert into the embedded qdrant-edge store, flush;
* **model only**: the ONNX Runtime session on already-preprocessed real images (batch 16
  and batch 1): the ceiling ingest can approach;
* **naive loop**: what a first version would do: for each file, PIL open, timm's eval
  transform, eager PyTorch forward at batch 1, upsert of that one point;
* optionally **large folder** (``--fashion-mnist N``): Fashion-MNIST written as N PNGs,
  ingested with the file list streamed from the walker, for peak memory at scale;
* optionally **flatness** (``--flatness 10000 100000``): the same kind of camera-roll
  JPEGs, ingested into a fresh store once per folder size (the smaller folders hold the
  first files of the largest, hard-linked), for whether the cost per image grows with the
  library.

The ONNX export's max abs difference from eager PyTorch (checked when it was built) is
printed with the machine description. Other processes on the machine skew every number;
the load average before and after is printed so a noisy run can be recognised.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Result = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def machine_description() -> dict[str, str]:
    """``lscpu`` model name, core count, RAM and the Python / ONNX Runtime versions."""
    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in lscpu.splitlines()
            if line.startswith("Model name:")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    ram_kib = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                ram_kib = int(line.split()[1])
    import onnxruntime

    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "ram": f"{ram_kib / 2**20:.1f} GiB",
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def peak_rss_mib() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_jiffies() -> tuple[int, int]:
    """(stolen, total) clock ticks of every CPU since boot (``/proc/stat``): stolen time is
    the hypervisor running other guests, which slows wall time but not CPU time."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def steal_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return 100.0 * (after[0] - before[0]) / total if total else 0.0


class SliceClock:
    """Images/s, CPU ms/image and stolen CPU for each ``size`` files of one ingest."""

    def __init__(self, size: int) -> None:
        self.size, self.files = size, 0
        self.slices: list[Result] = []
        self._mark = (time.perf_counter(), cpu_seconds(), cpu_jiffies())

    def __call__(self, files: int) -> None:
        self.files += files
        if self.size and self.files % self.size == 0:
            wall, cpu, jiffies = time.perf_counter(), cpu_seconds(), cpu_jiffies()
            self.slices.append({
                "files": self.files,
                "images_per_s": self.size / (wall - self._mark[0]),
                "cpu_ms_per_image": (cpu - self._mark[1]) * 1000 / self.size,
                "steal_pct": steal_percent(self._mark[2], jiffies),
            })
            self._mark = (wall, cpu, jiffies)


def run_isolated(fn: Callable[..., Result], *args: Any) -> Result:
    """Run ``fn(*args)`` in a fresh spawned process and return its result dict."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def bench_settings(data_dir: Path, models_dir: Path, **overrides: Any) -> Any:
    """Settings on a fresh ``data_dir`` that reuse the verified export in ``models_dir``."""
    from service.config import Settings

    data_dir.mkdir(parents=True, exist_ok=True)
    link = data_dir / "models"
    if not link.exists():
        link.symlink_to(models_dir.resolve(), target_is_directory=True)
    return Settings.from_env({}, data_dir=data_dir, **overrides)


def load_pipeline(settings: Any) -> Any:
    from service.embedders.mobilenet import load_mobilenet
    from service.pipeline import EmbeddingPipeline

    return EmbeddingPipeline(settings, [load_mobilenet(settings)])


# --------------------------------------------------------------------------- measurements


def measure_export(data_dir: Path) -> Result:
    """Build (or reuse) the verified ONNX export; report its recorded disagreement."""
    from service.config import Settings
    from service.embedders.mobilenet import load_mobilenet

    started = time.perf_counter()
    embedder = load_mobilenet(Settings.from_env({}, data_dir=data_dir))
    return {
        "runtime": embedder.runtime,
        "model_id": embedder.model_id,
        "max_abs_diff": embedder.max_abs_diff,
        "load_seconds": time.perf_counter() - started,
    }


def measure_ingest(
    folder: Path, data_dir: Path, models_dir: Path, decode_workers: int | None = None,
    plain: bool = False, slice_size: int = 0,
) -> Result:
    """End-to-end ingest of every image under ``folder`` into a fresh embedded store.

    ``plain``: without labels and photo metadata, as before issue 17 (see
    :mod:`benchmarks.ingest_labels`). ``slice_size``: also time each that many files."""
    from ingest.runner import FolderIngester
    from service.store import open_store
    from service.walker import iter_image_files

    settings = bench_settings(data_dir, models_dir, decode_workers=decode_workers)
    if plain:
        from benchmarks.features_only import plain_pipeline

        pipeline = plain_pipeline(settings, models_dir)
    else:
        pipeline = load_pipeline(settings)
    rss_before = peak_rss_mib()
    store = open_store(settings)
    try:
        ingester = FolderIngester(store, pipeline)
        cpu_before, jiffies_before = cpu_seconds(), cpu_jiffies()
        clock = SliceClock(slice_size)
        report = ingester.ingest(folder, iter_image_files(folder), on_progress=clock)
        cpu_ms = (cpu_seconds() - cpu_before) * 1000 / max(report.added, 1)
        steal = steal_percent(jiffies_before, cpu_jiffies())
        stored = store.count()
    finally:
        store.close()
    if report.failed or stored != report.added:
        raise RuntimeError(f"ingest incomplete: {stored} stored, {report.to_json()}")
    return {
        "images": report.added,
        "seconds": report.seconds,
        "images_per_s": report.images_per_second,
        "decode_workers": settings.decode_workers,
        "batch_size": settings.batch_size,
        "window": ingester.window,
        "cpu_ms_per_image": cpu_ms,
        "steal_pct": steal,
        "slices": clock.slices,
        "peak_rss_before_ingest_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
    }


def measure_model_only(folder: Path, models_dir: Path, seconds: float) -> Result:
    """ONNX Runtime alone on preprocessed real images, batch 16 and batch 1."""
    from service.walker import iter_image_files

    settings = bench_settings(Path(tempfile.mkdtemp(prefix="simimg-model-")), models_dir)
    pipeline = load_pipeline(settings)
    files = [path for _, path in zip(range(16), iter_image_files(folder), strict=False)]
    prepared = [pipeline.prepare_file(path) for path in files]
    out: Result = {}
    for batch_size in (16, 1):
        items = prepared[:batch_size]
        pipeline.embed(items)  # warm-up
        done, started, cpu_before = 0, time.perf_counter(), cpu_seconds()
        while (elapsed := time.perf_counter() - started) < seconds:
            pipeline.embed(items)
            done += batch_size
        out[f"batch{batch_size}_images_per_s"] = done / elapsed
        out[f"batch{batch_size}_cpu_ms_per_image"] = (cpu_seconds() - cpu_before) * 1000 / done
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def measure_naive(folder: Path, data_dir: Path, models_dir: Path, count: int) -> Result:
    """Eager PyTorch, one image at a time: PIL open, timm transform, forward, upsert."""
    import timm
    import torch
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    from service.images import sha256_hex
    from service.store import open_store
    from service.store.base import PointRecord
    from service.store.schema import VECTOR_MOBILENET, point_id_for
    from service.walker import iter_image_files
    from service.weights import MODEL_NAME, build_mobilenet, resolve_weights

    settings = bench_settings(data_dir, models_dir)
    model = build_mobilenet(resolve_weights(None))
    config = resolve_data_config({}, pretrained_cfg=timm.models.get_pretrained_cfg(MODEL_NAME)
                                 .to_dict())
    transform = create_transform(**config)
    files = [path for _, path in zip(range(count), iter_image_files(folder), strict=False)]
    store = open_store(settings)
    try:
        started, cpu_before = time.perf_counter(), cpu_seconds()
        for path in files:
            data = path.read_bytes()
            with Image.open(path) as image:
                pixels = transform(image.convert("RGB")).unsqueeze(0)
            with torch.inference_mode():
                vector = model(pixels)[0].numpy()
            vector = vector / np.linalg.norm(vector)
            point_id = point_id_for(sha256_hex(data))
            store.upsert([PointRecord(point_id, {VECTOR_MOBILENET: vector}, {"path": path.name})])
        store.flush()
        seconds = time.perf_counter() - started
        cpu_ms = (cpu_seconds() - cpu_before) * 1000 / len(files)
    finally:
        store.close()
    return {
        "images": len(files),
        "cpu_ms_per_image": cpu_ms,
        "seconds": seconds,
        "images_per_s": len(files) / seconds,
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mib": peak_rss_mib(),
    }


# --------------------------------------------------------------------------- report


Row = tuple[str, str, str, str, str]


def format_table(rows: list[Row]) -> str:
    header = ("measurement", "images", "images/s", "CPU ms/image", "peak RSS")
    lines = [f"| {' | '.join(header)} |", f"|{'|'.join('---' for _ in header)}|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def table_row(label: str, result: Result, prefix: str = "") -> Row:
    """One table row from a measurement (``prefix`` selects e.g. the batch-16 keys)."""
    images = result.get("images")
    rss = result.get("peak_rss_mib")
    return (
        label,
        f"{images:,}" if images else "-",
        f"{result[prefix + 'images_per_s']:.1f}",
        f"{result[prefix + 'cpu_ms_per_image']:.1f}",
        f"{rss:,.0f} MiB" if rss and not prefix.endswith("1_") else "-",
    )


def _ingest_label(what: str, result: Result) -> str:
    return f"end-to-end ingest, {what} (workers {result['decode_workers']}, " \
        f"batch {result['batch_size']})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "simimg-bench",
                    help="data sets, the ONNX export cache and the stores go here")
    ap.add_argument("--count", type=int, default=3000, help="camera-roll JPEGs to ingest")
    ap.add_argument("--side", type=int, default=512, help="camera-roll long side, px")
    ap.add_argument("--naive-count", type=int, default=100, help="images for the naive loop")
    ap.add_argument("--model-seconds", type=float, default=10.0)
    ap.add_argument("--decode-workers", type=int, nargs="*", default=[],
                    help="also ingest with these worker counts (default: settings only)")
    ap.add_argument("--fashion-mnist", type=int, default=0, metavar="N",
                    help="also ingest N Fashion-MNIST PNGs (split 'all': up to 70,000)")
    ap.add_argument("--large-only", action="store_true",
                    help="only the --fashion-mnist and --flatness runs")
    ap.add_argument("--flatness", type=int, nargs="*", default=[], metavar="N",
                    help="also ingest N camera-roll JPEGs for each N (cost per image vs size)")
    args = ap.parse_args(argv)
    if args.large_only and not (args.fashion_mnist or args.flatness):
        ap.error("--large-only needs --fashion-mnist N or --flatness N [N ...]")

    from benchmarks.datasets import camera_roll_jpegs, fashion_mnist_labelled

    work = args.work_dir.resolve()
    runs = Path(tempfile.mkdtemp(prefix="runs-", dir=work if work.exists() else None))
    machine = machine_description()
    print("machine:", ", ".join(f"{k} {v}" for k, v in machine.items()))
    print("load average at start:", load_average())

    export = run_isolated(measure_export, work / "export")
    models_dir = work / "export" / "models"
    print(f"MobileNetV2 runtime {export['runtime']}, ONNX vs eager PyTorch max abs diff "
          f"{export['max_abs_diff']:.2e} (raw 1280-d features), "
          f"load {export['load_seconds']:.1f} s")

    rows: list[Row] = []
    results: Result = {"export": export}
    if not args.large_only:
        camera = work / f"camera-{args.side}"
        camera_roll_jpegs(camera, args.count, side=args.side)
        rows += compare(camera, runs, models_dir, args, results)
    if args.fashion_mnist:
        fashion = work / f"fashion-mnist-{args.fashion_mnist}"
        fashion_mnist_labelled(fashion, args.fashion_mnist, split="all")
        large = run_isolated(measure_ingest, fashion, runs / "fashion", models_dir, None)
        rows.append(table_row(_ingest_label("Fashion-MNIST 28px PNG", large), large))
        results["fashion_mnist"] = large
    if args.flatness:
        rows += flatness(work, runs, models_dir, args, results)
    print("load average at end:", load_average())
    print()
    print(format_table(rows))
    print()
    if not args.large_only:
        summarise(results)
    print(json.dumps({"machine": machine, **results}, default=str))
    return 0


def compare(camera: Path, runs: Path, models_dir: Path, args: argparse.Namespace,
            results: Result) -> list[Row]:
    """End-to-end ingest, model only and the naive loop on the camera-roll folder."""
    rows: list[Row] = []
    ingest = run_isolated(measure_ingest, camera, runs / "ingest", models_dir, None)
    rows.append(table_row(_ingest_label(f"{args.side}px JPEG", ingest), ingest))
    for workers in args.decode_workers:
        extra = run_isolated(measure_ingest, camera, runs / f"ingest-w{workers}", models_dir,
                             workers)
        rows.append(table_row(_ingest_label(f"{args.side}px JPEG", extra), extra))
    model = run_isolated(measure_model_only, camera, models_dir, args.model_seconds)
    rows.append(table_row("model only, ONNX Runtime batch 16", model, "batch16_"))
    rows.append(table_row("model only, ONNX Runtime batch 1", model, "batch1_"))
    naive = run_isolated(measure_naive, camera, runs / "naive", models_dir, args.naive_count)
    rows.append(table_row("naive loop: eager PyTorch, 1 image at a time", naive))
    results.update(ingest=ingest, model=model, naive=naive)
    return rows


def first_files(folder: Path, files: list[Path], count: int) -> Path:
    """A folder of hard links to the first ``count`` of ``files`` (made once)."""
    if count == len(files):
        return folder
    subset = folder.with_name(f"{folder.name}-first-{count}")
    if not subset.is_dir() or sum(1 for _ in subset.iterdir()) != count:
        shutil.rmtree(subset, ignore_errors=True)
        subset.mkdir(parents=True)
        for path in files[:count]:
            os.link(path, subset / path.name)
    return subset


def flatness(work: Path, runs: Path, models_dir: Path, args: argparse.Namespace,
             results: Result) -> list[Row]:
    """End-to-end ingest of the first N camera-roll JPEGs, each N into a fresh store."""
    from benchmarks.datasets import camera_roll_jpegs

    sizes = sorted(set(args.flatness))
    folder = work / f"camera-{args.side}-{sizes[-1]}"
    files = camera_roll_jpegs(folder, sizes[-1], side=args.side)
    rows: list[Row] = []
    runs_by_size: Result = {}
    for count in sizes:
        run = run_isolated(measure_ingest, first_files(folder, files, count),
                           runs / f"flat-{count}", models_dir, None, False, sizes[0])
        runs_by_size[str(count)] = run
        rows.append(table_row(_ingest_label(f"{count:,} {args.side}px JPEG", run), run))
        print(f"  {count:,} files: {run['images_per_s']:.1f} images/s, "
              f"{run['cpu_ms_per_image']:.1f} CPU ms/image, {run['steal_pct']:.1f}% of the "
              f"CPUs stolen by other guests (load {load_average()})", flush=True)
        for part in run["slices"]:
            print(f"    to {part['files']:>7,} files: {part['images_per_s']:6.1f} images/s, "
                  f"{part['cpu_ms_per_image']:5.1f} CPU ms/image, steal {part['steal_pct']:4.1f}%")
    small, large = runs_by_size[str(sizes[0])], runs_by_size[str(sizes[-1])]
    change = large["images_per_s"] / small["images_per_s"] - 1
    cpu_change = large["cpu_ms_per_image"] / small["cpu_ms_per_image"] - 1
    print(f"images/s at {sizes[-1]:,} vs {sizes[0]:,} files: {change:+.1%} "
          f"(CPU ms/image {cpu_change:+.1%}); flat within 15%: {abs(change) <= 0.15}")
    if len(large["slices"]) > 1:
        first, last = large["slices"][0], large["slices"][-1]
        print(f"same run, last {sizes[0]:,} files vs first: "
              f"{last['images_per_s'] / first['images_per_s'] - 1:+.1%} images/s, "
              f"{last['cpu_ms_per_image'] / first['cpu_ms_per_image'] - 1:+.1%} CPU ms/image")
    results["flatness"] = {"runs": runs_by_size, "images_per_s_change": change,
                           "cpu_ms_per_image_change": cpu_change}
    return rows


def summarise(results: Result) -> None:
    """Print the ratios the acceptance criteria ask about."""
    ingest, model, naive = results["ingest"], results["model"], results["naive"]
    speedup = ingest["images_per_s"] / naive["images_per_s"]
    share = ingest["images_per_s"] / model["batch16_images_per_s"]
    print(f"end-to-end ingest / naive loop: {speedup:.1f}x; "
          f"end-to-end ingest / model-only batch 16: {share:.0%}")
    cpu_ratio = naive["cpu_ms_per_image"] / ingest["cpu_ms_per_image"]
    print(f"CPU time per image, naive loop / end-to-end ingest: {cpu_ratio:.1f}x "
          "(less sensitive to other processes than images/s)")


if __name__ == "__main__":
    raise SystemExit(main())
