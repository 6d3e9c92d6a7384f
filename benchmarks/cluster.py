"""Clustering benchmark: quality on real labelled images, time and memory at 10k and 100k.

Data: the 70,000 Fashion-MNIST product photos (Debian ``dataset-fashion-mnist``, real
pixels, 10 labelled classes), embedded with simimg's MobileNet pipeline (ONNX). The arrays
are embedded directly (no PNG round trip) and cached in ``--cache`` (one .npy per
split), so only the first run pays for embedding (~75 s per 10k images on an idle machine).

* 10k: the 10,000 test-split images. NMI/ARI against the real class labels.
* 100k: the real vectors (10,000 test, plus the 60,000 train when their cache exists)
  topped up with copies of randomly chosen real vectors plus Gaussian noise (sigma 0.01
  per dimension, cosine ~0.94 to the source), labelled as their source. This measures
  scale (time, memory); the quality claim rests on the 10k real images.

Each run happens in a fresh subprocess so peak RSS (``ru_maxrss``) is that run's alone,
with the vectors loaded as the CLI would hold them (float32, n x 1280).

``python -m benchmarks.cluster [--only 10k|100k] [--min-samples 10] [--cache /tmp]``
(a single row: ``--worker SIZE ALGORITHM DIMS EPS``, prints its JSON)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from service.atomic import atomic_write

DEFAULT_CACHE = Path("/tmp")
NOISE_SIGMA = 0.01


def embed_split(split: str, cache_dir: Path, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(unit MobileNet vectors, labels) of a Fashion-MNIST split, cached as a .npy."""
    from benchmarks.datasets import fashion_mnist_arrays

    images, labels = fashion_mnist_arrays(split)
    labels = np.asarray(labels, np.int64)
    cache = cache_dir / f"simimg-fmnist-{split}-mobilenet.npy"
    if cache.exists():
        vectors = np.load(cache)
        if vectors.shape[0] == len(images):
            return vectors, labels
    from PIL import Image

    from service.config import Settings
    from service.embedders.mobilenet import load_mobilenet

    embedder = load_mobilenet(Settings.from_env())
    out = np.zeros((len(images), embedder.dim), np.float32)
    t0 = time.perf_counter()
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        inputs = np.stack(
            [embedder.preprocess(Image.fromarray(a, "L").convert("RGB")) for a in chunk]
        )
        out[start : start + len(chunk)] = embedder.embed(inputs)
        if start % (batch * 125) == 0:
            rate = (start + len(chunk)) / (time.perf_counter() - t0)
            print(
                f"{split}: embedded {start + len(chunk)}/{len(images)} ({rate:.0f}/s)",
                file=sys.stderr,
                flush=True,
            )
    with atomic_write(cache, "wb") as handle:
        np.save(handle, out)
    return out, labels


def dataset(size: int, cache_dir: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """``size`` vectors with labels, and a description of where they came from."""
    test, test_labels = embed_split("test", cache_dir)
    if size <= len(test):
        return test[:size], test_labels[:size], f"{size} real (Fashion-MNIST test split)"
    real, labels = test, test_labels
    if (cache_dir / "simimg-fmnist-train-mobilenet.npy").exists():
        train, train_labels = embed_split("train", cache_dir)
        real, labels = np.concatenate([train, test]), np.concatenate([train_labels, test_labels])
    n_real = min(size, len(real))
    extra = size - n_real
    rng = np.random.default_rng(0)
    source = rng.integers(0, n_real, extra)
    noisy = real[source] + rng.normal(0, NOISE_SIGMA, (extra, real.shape[1])).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    vectors = np.concatenate([real[:n_real], noisy]).astype(np.float32)
    what = f"{n_real} real + {extra} noisy copies (sigma {NOISE_SIGMA})"
    return vectors, np.concatenate([labels[:n_real], labels[source]]), what


def measure(size: int, cache_dir: Path, algorithm: str, eps: str, min_samples: int,
            dims: str) -> dict[str, Any]:
    """One clustering run (call in a fresh process: peak RSS is the process's)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from service.clustering.vectors import cluster_vectors

    vectors, labels, what = dataset(size, cache_dir)
    dims_value = None if dims == "none" else dims if dims == "auto" else int(dims)
    eps_value: float | str = eps
    if eps == "knee":  # the earlier --eps auto rule, for comparison
        eps_value = _knee(vectors, min_samples, dims_value)
    elif eps != "auto":
        eps_value = float(eps)
    result = cluster_vectors(
        vectors, eps=eps_value, min_samples=min_samples, algorithm=algorithm, dims=dims_value,
    )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        **result.summary(),
        "data": what,
        "nmi": round(float(normalized_mutual_info_score(labels, result.labels)), 4),
        "ari": round(float(adjusted_rand_score(labels, result.labels)), 4),
        "largest": result.sizes()[:3],
        "peak_rss_mib": round(peak_kib / 1024),
    }


def _knee(vectors: np.ndarray, min_samples: int, dims: int | str | None) -> float:
    """The k-distance knee eps (``knee_eps``) in the space ``cluster_vectors`` will use."""
    from service.clustering.eps import knee_eps
    from service.clustering.vectors import reduce_dimensions, resolve_dims, unit_rows

    x = unit_rows(vectors)
    target = resolve_dims(dims, *x.shape)
    if target is not None:
        x, _ = reduce_dimensions(x, target)
    return knee_eps(x, min_samples).eps


def _size(text: str) -> int:
    return int(text[:-1]) * 1000 if text.endswith("k") else int(text)


RUNS: tuple[tuple[str, str, str, str], ...] = (
    # (size, algorithm, dims, eps): the quality grid at 10k, then scale. eps "auto" is
    # density_eps (sampled silhouette), "knee" the earlier k-distance knee rule.
    ("10k", "dbscan", "none", "auto"),
    ("10k", "dbscan", "128", "knee"),
    ("10k", "dbscan", "128", "auto"),
    ("10k", "dbscan", "64", "auto"),
    ("10k", "dbscan", "128", "0.08"),
    ("10k", "hdbscan", "128", "auto"),
    ("100k", "dbscan", "auto", "auto"),
    ("100k", "dbscan", "auto", "0.05"),  # denser: more pairs than kept, pass 2 recomputes
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="folder of cached .npy")
    ap.add_argument("--min-samples", type=int, default=10)
    ap.add_argument("--only", default=None, help="comma list of sizes to run, e.g. 10k")
    ap.add_argument("--worker", nargs=4, metavar=("SIZE", "ALGORITHM", "DIMS", "EPS"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--embed-only", action="store_true", help="embed and cache, then exit")
    args = ap.parse_args(argv)
    if args.embed_only:
        for split in ("test", "train"):
            embed_split(split, args.cache)
        return 0
    if args.worker:
        size, algorithm, dims, eps = args.worker
        print(json.dumps(measure(_size(size), args.cache, algorithm, eps, args.min_samples,
                                 dims)))
        return 0
    embed_split("test", args.cache)  # embed once, before timing anything
    wanted = set(args.only.split(",")) if args.only else None
    print("| points | data | algorithm | dims (variance kept) | eps chosen | clusters | noise "
          "| NMI | ARI | time s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size, algorithm, dims, eps in RUNS:
        if wanted and size not in wanted:
            continue
        cmd = [sys.executable, "-m", "benchmarks.cluster", "--cache", str(args.cache),
               "--min-samples", str(args.min_samples), "--worker", size, algorithm, dims, eps]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        kept = f" ({r['explained_variance']:.2f})" if r["explained_variance"] else ""
        eps_text = f"{r['eps']:.4f}" if r["eps"] is not None else "-"
        print(f"| {size} | {r['data']} | {algorithm} | {r['dims']}{kept} | {eps_text} "
              f"| {r['clusters']} | {r['noise']} | {r['nmi']:.3f} | {r['ari']:.3f} "
              f"| {r['seconds']:.1f} | {r['peak_rss_mib']} |", flush=True)
        if r["eps_reason"]:
            print(f"<!-- {size} {algorithm} {dims}: eps {r['eps_reason']}; "
                  f"largest clusters {r['largest']} -->", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
