"""Every candidate retrieval configuration on several real labelled sets, in one table.

Sets (built once into ``--cache`` by benchmarks/datasets.py):

* ``openclipart``: clip-art, label = category, leave-one-out.
* ``fashion-mnist``: product photos, label = class, leave-one-out.
* ``icons``: the cross-style set: @tabler/icons (npm) drawn outlined (the collection) and
  filled (the queries); each query has exactly one right answer, the same icon, so P@1 is
  exact-match accuracy.

Candidates on the ``mobilenet`` space (same weights and preprocessing as the service; the
plain row is checked against the service's own embedder): GeM pooling, horizontal-flip
averaging, multi-scale, shrunk PCA whitening learned on the collection, alpha query
expansion; and the two spaces together: today's rank fusion (RRF) and a score-fused mode
(weighted sum of the two cosines) with an autoencoder trained on each collection.
images/s: decode + preprocess + model time per collection image (2 cores, shared).

    python -m benchmarks.retrieval_eval                     # all sets, all candidates
    python -m benchmarks.retrieval_eval --sets icons --ae-epochs 0   # mobilenet rows only
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.datasets import (
    ICON_CACHE,
    ICON_STYLES,
    fashion_mnist_labelled,
    icon_styles_labelled,
    openclipart_labelled,
)
from benchmarks.metrics import RetrievalScores, cosine_matrix, retrieval_scores, top_k, unit_rows
from service.autoencoder.preprocess import resize_square
from service.config import Settings
from service.embedders.preprocess import CenterCropPreprocess
from service.images import decode_image
from service.whitening import fit_whitening

BASE_SIZE = 224
MULTI_SCALES = (160, 224, 320)
GEM_P = 3.0
RRF_K = 60  # as service.search


@dataclass
class EvalSet:
    """Queries looked up in a collection; ``leave_one_out``: the queries are the collection."""

    name: str
    collection: list[Path]
    collection_labels: np.ndarray
    queries: list[Path]
    query_labels: np.ndarray
    leave_one_out: bool


def _labelled(name: str, folder: dict[str, list[Path]]) -> EvalSet:
    files = sorted(p for paths in folder.values() for p in paths)
    labels = np.array([p.parent.name for p in files])
    return EvalSet(name, files, labels, files, labels, leave_one_out=True)


def load_sets(names: list[str], cache: Path, per_category: int, count: int) -> list[EvalSet]:
    sets = []
    for name in names:
        if name == "openclipart":
            sets.append(_labelled(name, openclipart_labelled(cache / name, per_category)))
        elif name == "fashion-mnist":
            sets.append(_labelled(name, fashion_mnist_labelled(cache / name, count)))
        else:
            styles = icon_styles_labelled(cache / name, cache=ICON_CACHE)
            collection, queries = (sorted(styles[s]) for s in ICON_STYLES)
            sets.append(EvalSet(
                name,
                collection, np.array([p.stem for p in collection]),
                queries, np.array([p.stem for p in queries]),
                leave_one_out=False,
            ))
    return sets


# --------------------------------------------------------------------------- features


@dataclass
class Features:
    """Pooled MobileNet vectors per (input size, flipped, pooling) and the seconds each took."""

    vectors: dict[tuple[int, bool, str], np.ndarray] = field(default_factory=dict)
    seconds: dict[tuple[int, bool], float] = field(default_factory=dict)
    decode_seconds: float = 0.0


class FeatureMaps:
    """MobileNetV2 up to its last feature map, exported to ONNX with free input size."""

    def __init__(self, settings: Settings, cache: Path) -> None:
        import torch

        from service.embedders.onnx_export import make_session
        from service.weights import MODEL_NAME, build_mobilenet, resolve_weights

        path = cache / "mobilenet-feature-map.onnx"
        if not path.is_file():
            model = build_mobilenet(resolve_weights(settings.weights))

            class FeatureMap(torch.nn.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.net = model

                def forward(self, x: torch.Tensor) -> torch.Tensor:
                    return self.net.forward_features(x)

            torch.onnx.export(
                FeatureMap().eval(), torch.zeros(2, 3, BASE_SIZE, BASE_SIZE), str(path),
                input_names=["pixels"], output_names=["maps"], opset_version=17, dynamo=False,
                dynamic_axes={"pixels": {0: "n", 2: "h", 3: "w"}, "maps": {0: "n", 2: "h", 3: "w"}},
            )
        self.run = make_session(path)
        base = CenterCropPreprocess.from_timm(MODEL_NAME, BASE_SIZE)
        self.preprocess = {
            size: CenterCropPreprocess(size, base.crop_pct, base.mean, base.std,
                                       base.interpolation)
            for size in MULTI_SCALES
        }

    def extract(self, files: list[Path], max_pixels: int, sizes: tuple[int, ...],
                cache: Path | None = None, batch: int = 32) -> Features:
        """Pooled vectors of ``files`` at each input size; reused from ``cache`` (.npz)."""
        if cache is not None and cache.is_file():
            return _load_features(cache)
        out = Features()
        parts: dict[tuple[int, bool, str], list[np.ndarray]] = {}
        for start in range(0, len(files), batch):
            t0 = time.perf_counter()
            images = [
                decode_image(p.read_bytes(), max_pixels=max_pixels, source=str(p)).image
                for p in files[start : start + batch]
            ]
            out.decode_seconds += time.perf_counter() - t0
            for size in sizes:
                preprocess = self.preprocess[size]
                t0 = time.perf_counter()
                pixels = np.stack([preprocess(im) for im in images])
                prep = time.perf_counter() - t0
                for flipped in (False, True):
                    t0 = time.perf_counter()
                    maps = self.run(pixels[..., ::-1] if flipped else pixels)
                    key = (size, flipped)
                    out.seconds[key] = out.seconds.get(key, 0.0) + prep + time.perf_counter() - t0
                    parts.setdefault((size, flipped, "avg"), []).append(maps.mean(axis=(2, 3)))
                    gem = np.power(np.clip(maps, 1e-6, None), GEM_P).mean(axis=(2, 3))
                    parts.setdefault((size, flipped, "gem"), []).append(gem ** (1 / GEM_P))
        out.vectors = {key: np.concatenate(chunks) for key, chunks in parts.items()}
        if cache is not None:
            _save_features(cache, out)
        return out


def _save_features(path: Path, features: Features) -> None:
    arrays = {f"v-{s}-{int(f)}-{p}": v for (s, f, p), v in features.vectors.items()}
    arrays |= {f"t-{s}-{int(f)}": np.array(t) for (s, f), t in features.seconds.items()}
    np.savez(path, decode=np.array(features.decode_seconds), **arrays)


def _load_features(path: Path) -> Features:
    out = Features()
    with np.load(path) as data:
        out.decode_seconds = float(data["decode"])
        for name in data.files:
            kind, *key = name.split("-")
            if kind == "v":
                out.vectors[(int(key[0]), bool(int(key[1])), key[2])] = data[name]
            elif kind == "t":
                out.seconds[(int(key[0]), bool(int(key[1])))] = float(data[name])
    return out


def check_matches_service(features: Features, files: list[Path], settings: Settings) -> float:
    """Max abs difference between the plain row and the service's own embedder (first 8)."""
    from service.embedders.mobilenet import load_mobilenet
    from service.pipeline import EmbeddingPipeline

    pipeline = EmbeddingPipeline(settings, [load_mobilenet(settings)])
    prepared = [pipeline.prepare_file(p) for p in files[:8]]
    service = pipeline.embed(prepared)["mobilenet"]
    ours = unit_rows(features.vectors[(BASE_SIZE, False, "avg")][:8])
    return float(np.abs(service - ours).max())


@dataclass(frozen=True)
class Embedding:
    """How a mobilenet vector is made: input sizes, flip averaging, pooling."""

    sizes: tuple[int, ...] = (BASE_SIZE,)
    flip: bool = False
    pool: str = "avg"

    def vectors(self, features: Features) -> np.ndarray:
        flips = (False, True) if self.flip else (False,)
        parts = [unit_rows(features.vectors[(s, f, self.pool)]) for s in self.sizes for f in flips]
        return unit_rows(np.sum(parts, axis=0))

    def seconds(self, features: Features) -> float:
        flips = (False, True) if self.flip else (False,)
        return features.decode_seconds + sum(
            features.seconds[(s, f)] for s in self.sizes for f in flips
        )


# --------------------------------------------------------------------------- autoencoder


def autoencoder_vectors(
    collection: list[Path], queries: list[Path], epochs: int, max_pixels: int,
    image_size: int = 64, latent_dim: int = 256,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Train the service's autoencoder on the collection; (collection, query) vectors, secs."""
    import torch

    from service.autoencoder.config import AutoencoderConfig
    from service.embedders.autoencoder import AutoencoderEmbedder
    from training.loop import TrainConfig, train_autoencoder

    def pixels(files: list[Path]) -> np.ndarray:
        return np.stack([
            resize_square(decode_image(p.read_bytes(), max_pixels=max_pixels).image, image_size)
            for p in files
        ])

    train = pixels(collection)
    config = AutoencoderConfig(image_size=image_size, latent_dim=latent_dim)
    started = time.perf_counter()
    result = train_autoencoder(train, config, TrainConfig(epochs=epochs))
    seconds = time.perf_counter() - started
    embedder = AutoencoderEmbedder(result.model, "eval", {})
    torch.set_num_threads(2)

    def embed(pix: np.ndarray) -> np.ndarray:
        from service.autoencoder.preprocess import to_model_input

        return np.concatenate([
            embedder.embed(to_model_input(pix[i : i + 256])) for i in range(0, len(pix), 256)
        ])

    coll = embed(train)
    query = coll if queries is collection else embed(pixels(queries))
    return coll, query, seconds


# --------------------------------------------------------------------------- candidates


@dataclass
class SetVectors:
    """One set's vectors for every embedding and the autoencoder (None: not trained)."""

    eval_set: EvalSet
    collection: dict[Embedding, np.ndarray]
    queries: dict[Embedding, np.ndarray]
    rate: dict[Embedding, float]
    ae: tuple[np.ndarray, np.ndarray] | None


Similarity = Callable[[SetVectors], np.ndarray]


def plain(embedding: Embedding, whiten: float | None = None, qe: tuple[int, float] | None = None
          ) -> Similarity:
    """Cosine in one mobilenet embedding, optionally whitened and/or query-expanded."""

    def similarity(sv: SetVectors) -> np.ndarray:
        coll, query = sv.collection[embedding], sv.queries[embedding]
        if whiten is not None:
            w = fit_whitening(coll, shrinkage=whiten)
            coll, query = w.apply(coll), w.apply(query)
        sim = cosine_matrix(query, coll)
        if qe is not None:
            sim = alpha_query_expansion(sim, query, coll, *qe, sv.eval_set.leave_one_out)
        return sim

    return similarity


def query_side_whitened(embedding: Embedding, shrinkage: float, rerank: int = 0) -> Similarity:
    """Whitening applied to the query only: rank stored unit vectors x by (q - mean) W^2 . x.

    Equals the whitened inner product up to a per-query constant, without each stored
    vector's whitened norm, so the collection's vectors stay as they are. ``rerank``: then
    re-score the top ``rerank`` by the full whitened cosine (their stored vectors whitened).
    """

    def similarity(sv: SetVectors) -> np.ndarray:
        coll, query = sv.collection[embedding], sv.queries[embedding]
        w = fit_whitening(coll, shrinkage=shrinkage)
        sim = cosine_matrix(w.query_side(query), coll)
        if not rerank:
            return sim
        if sv.eval_set.leave_one_out:
            np.fill_diagonal(sim, -np.inf)
        shortlist = top_k(sim, rerank)
        whitened_query, whitened_coll = w.apply(query), w.apply(coll)
        exact = np.einsum("qd,qnd->qn", whitened_query, whitened_coll[shortlist])
        out = np.full_like(sim, -np.inf)
        np.put_along_axis(out, shortlist, exact, axis=1)
        return out

    return similarity


def alpha_query_expansion(sim: np.ndarray, query: np.ndarray, coll: np.ndarray, n: int,
                          alpha: float, leave_one_out: bool) -> np.ndarray:
    """alpha-QE (Radenovic et al.): q' = q + sum of top-n neighbours weighted by sim^alpha."""
    masked = sim.copy()
    if leave_one_out:
        np.fill_diagonal(masked, -np.inf)
    neighbours = top_k(masked, n)
    weights = np.clip(np.take_along_axis(sim, neighbours, axis=1), 0, None) ** alpha
    expanded = unit_rows(query) + np.einsum("qn,qnd->qd", weights, unit_rows(coll)[neighbours])
    return cosine_matrix(expanded, coll)


def autoencoder_only(sv: SetVectors) -> np.ndarray:
    assert sv.ae is not None
    return cosine_matrix(sv.ae[1], sv.ae[0])


def score_fused(weight: float, base: Similarity) -> Similarity:
    """weight x mobilenet cosine + (1 - weight) x autoencoder cosine."""

    def similarity(sv: SetVectors) -> np.ndarray:
        return weight * base(sv) + (1 - weight) * autoencoder_only(sv)

    return similarity


def rank_fused(base: Similarity, depth: int = 50) -> Similarity:
    """Today's fused mode: reciprocal-rank fusion of each space's top ``depth``."""

    def similarity(sv: SetVectors) -> np.ndarray:
        fused = np.zeros((len(sv.eval_set.queries), len(sv.eval_set.collection)), np.float32)
        for sim in (base(sv), autoencoder_only(sv)):
            sim = sim.copy()
            if sv.eval_set.leave_one_out:
                np.fill_diagonal(sim, -np.inf)
            ranked = top_k(sim, depth)
            np.put_along_axis(
                fused, ranked,
                np.take_along_axis(fused, ranked, axis=1) + 1 / (RRF_K + np.arange(1, depth + 1)),
                axis=1,
            )
        return fused

    return similarity


PLAIN = Embedding()


def candidates(shrinkages: list[float]) -> list[tuple[str, Embedding, Similarity, bool]]:
    """(name, embedding whose speed counts, similarity, needs autoencoder)."""
    gem, flip = Embedding(pool="gem"), Embedding(flip=True)
    multi, flip_multi = Embedding(sizes=MULTI_SCALES), Embedding(sizes=MULTI_SCALES, flip=True)
    rows: list[tuple[str, Embedding, Similarity, bool]] = [
        ("mobilenet (today)", PLAIN, plain(PLAIN), False),
        ("GeM pooling", gem, plain(gem), False),
        ("flip averaging", flip, plain(flip), False),
        ("multi-scale 160/224/320", multi, plain(multi), False),
        ("flip + multi-scale", flip_multi, plain(flip_multi), False),
        ("alpha-QE n=2 a=3", PLAIN, plain(PLAIN, qe=(2, 3.0)), False),
    ]
    for s in shrinkages:
        rows.append((f"whitened (shrink {s:g})", PLAIN, plain(PLAIN, whiten=s), False))
    best = shrinkages[0]
    rows += [
        (f"whitened {best:g}, query side only", PLAIN, query_side_whitened(PLAIN, best), False),
        (f"whitened {best:g}, query side + re-rank top 50", PLAIN,
         query_side_whitened(PLAIN, best, rerank=50), False),
        (f"whitened {best:g} + flip", flip, plain(flip, whiten=best), False),
        (f"whitened {best:g} + GeM", gem, plain(gem, whiten=best), False),
        (f"whitened {best:g} + alpha-QE", PLAIN, plain(PLAIN, whiten=best, qe=(2, 3.0)), False),
        ("autoencoder", PLAIN, autoencoder_only, True),
        ("rank fusion (today's fused)", PLAIN, rank_fused(plain(PLAIN)), True),
    ]
    for w in (0.5, 0.7, 0.85):
        rows.append((f"score fused w={w:g}", PLAIN, score_fused(w, plain(PLAIN)), True))
        rows.append((f"whitened + score fused w={w:g}", PLAIN,
                     score_fused(w, plain(PLAIN, whiten=best)), True))
    return rows


# --------------------------------------------------------------------------- main


def set_vectors(eval_set: EvalSet, maps: FeatureMaps, settings: Settings, ae_epochs: int,
                sizes: tuple[int, ...], cache: Path, console: Console) -> SetVectors:
    t0 = time.perf_counter()
    tag = f"{eval_set.name}-{len(eval_set.collection)}-{'-'.join(map(str, sizes))}"
    coll_features = maps.extract(eval_set.collection, settings.max_pixels, sizes,
                                 cache / f"features-{tag}-collection.npz")
    query_features = (coll_features if eval_set.leave_one_out
                      else maps.extract(eval_set.queries, settings.max_pixels, sizes,
                                        cache / f"features-{tag}-queries.npz"))
    diff = check_matches_service(coll_features, eval_set.collection, settings)
    if diff > 1e-3:
        raise SystemExit(f"{eval_set.name}: plain row differs from the service by {diff:.1e}")
    console.print(f"{eval_set.name}: features in {time.perf_counter() - t0:.0f}s "
                  f"(plain row = service embedder within {diff:.1e})")
    embeddings = {Embedding(), Embedding(pool="gem"), Embedding(flip=True)}
    if sizes == MULTI_SCALES:
        embeddings |= {Embedding(sizes=MULTI_SCALES), Embedding(sizes=MULTI_SCALES, flip=True)}
    ae = None
    if ae_epochs > 0:
        saved = cache / f"autoencoder-{tag}-{ae_epochs}.npz"
        if saved.is_file():
            with np.load(saved) as data:
                ae = (data["collection"], data["queries"])
        else:
            queries = eval_set.collection if eval_set.leave_one_out else eval_set.queries
            coll_ae, query_ae, secs = autoencoder_vectors(
                eval_set.collection, queries, ae_epochs, settings.max_pixels
            )
            ae = (coll_ae, query_ae)
            np.savez(saved, collection=coll_ae, queries=query_ae)
            console.print(f"{eval_set.name}: autoencoder trained in {secs:.0f}s")
    n = len(eval_set.collection)
    return SetVectors(
        eval_set,
        {e: e.vectors(coll_features) for e in embeddings},
        {e: e.vectors(query_features) for e in embeddings},
        {e: n / e.seconds(coll_features) for e in embeddings},
        ae,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["openclipart", "fashion-mnist", "icons"],
                        choices=["openclipart", "fashion-mnist", "icons"])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "simimg-eval")
    parser.add_argument("--per-category", type=int, default=40, help="openclipart")
    parser.add_argument("--count", type=int, default=2000, help="fashion-mnist")
    parser.add_argument("--ae-epochs", type=int, default=10, help="0: no autoencoder rows")
    parser.add_argument("--shrinkage", type=float, nargs="+", default=[4.0, 0.5, 16.0],
                        help="whitening shrinkages to try; the first is combined with the rest")
    parser.add_argument("--no-multi-scale", action="store_true",
                        help="224 px only (multi-scale costs 3.5x the model time)")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env({}, data_dir=args.cache / "data")
    maps = FeatureMaps(settings, args.cache)
    sets = load_sets(args.sets, args.cache, args.per_category, args.count)
    sizes = (BASE_SIZE,) if args.no_multi_scale else MULTI_SCALES
    vectors = [set_vectors(s, maps, settings, args.ae_epochs, sizes, args.cache, console)
               for s in sets]

    table = Table(title="Retrieval candidates (P@1 / P@6 / mAP@10; images/s of the slowest set)")
    table.add_column("configuration")
    for s in sets:
        kind = "leave-one-out" if s.leave_one_out else f"{len(s.queries)} queries"
        table.add_column(f"{s.name} ({len(s.collection)}, {kind})", justify="right")
    table.add_column("images/s", justify="right")
    baseline: list[RetrievalScores] = []
    for name, embedding, similarity, needs_ae in candidates(args.shrinkage):
        if (needs_ae and args.ae_epochs <= 0) or any(embedding not in sv.rate for sv in vectors):
            continue
        cells = []
        for i, sv in enumerate(vectors):
            es = sv.eval_set
            scores = retrieval_scores(similarity(sv), es.query_labels, es.collection_labels,
                                      es.leave_one_out)
            if not baseline or len(baseline) <= i:
                baseline.append(scores)
            delta = scores.precision_at_1 - baseline[i].precision_at_1
            cells.append(f"{scores.precision_at_1:.3f} / {scores.precision_at_6:.3f} / "
                         f"{scores.map_at_10:.3f} ({delta:+.3f})")
        rate = min(sv.rate[embedding] for sv in vectors)
        table.add_row(name, *cells, f"{rate:.0f}")
    Console().print(table)
    console.print("(+x): P@1 change against the first row. Machine: 2-core Xeon, shared load.")


if __name__ == "__main__":
    main()
