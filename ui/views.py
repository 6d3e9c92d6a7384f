"""Turn service data (results, cluster labels, status) into what the page displays."""

from __future__ import annotations

from collections import Counter
from typing import Any

from service.config import Settings
from service.search import SearchResult
from service.store.base import VectorStore
from service.store.schema import PAYLOAD_CLUSTER

ALL = "all"
ALL_LABEL = "All images"
NOISE = -1


def stored_cluster_sizes(store: VectorStore) -> Counter[int | None]:
    """Number of stored points per ``cluster`` label (None = not labelled yet)."""
    sizes: Counter[int | None] = Counter()
    for page in store.scroll(batch_size=2048):
        for record in page:
            label = record.payload.get(PAYLOAD_CLUSTER)
            sizes[int(label) if label is not None else None] += 1
    return sizes


def cluster_label(label: int, size: int, name: str | None = None) -> str:
    noun = "image" if size == 1 else "images"
    title = "Noise" if label == NOISE else f"Cluster {label}"
    if name:
        title += f" · {name}"
    return f"{title} ({size} {noun})"


def cluster_choices(sizes: Counter[int | None], with_all: bool = True,
                    names: dict[int, str] | None = None) -> list[tuple[str, str]]:
    """Dropdown choices: all / each cluster with its name and size / noise; values are
    strings (the label: a name can change, the label of a run cannot)."""
    names = names or {}
    labels = sorted(label for label in sizes if label is not None and label != NOISE)
    choices = [(ALL_LABEL, ALL)] if with_all else []
    choices += [(cluster_label(label, sizes[label], names.get(label)), str(label))
                for label in labels]
    if sizes.get(NOISE):
        choices.append((cluster_label(NOISE, sizes[NOISE]), str(NOISE)))
    return choices


def result_caption(result: SearchResult) -> str:
    cluster = "" if result.cluster is None else f" · cluster {result.cluster}"
    if result.cluster_name:
        cluster += f" ({result.cluster_name})"
    copies = len(result.locations) - 1
    more = f" (+{copies} cop{'y' if copies == 1 else 'ies'})" if copies > 0 else ""
    return f"{result.score:.4f} · {result.path}{more}{cluster}"


def result_rows(results: list[SearchResult]) -> list[dict[str, Any]]:
    """Results as the API returns them: the CLI's fields, without absolute paths.

    The relative path is under ``image_path``: gradio_client treats any dict with a
    ``path`` key as a file to download.
    """
    return [
        {"id": r.id, "score": r.score, "image_path": r.path, "cluster": r.cluster,
         "cluster_name": r.cluster_name}
        for r in results
    ]


def clusters_markdown(run: dict[str, Any] | None, sizes: Counter[int | None]) -> str:
    """The Clusters tab summary: the current run and each cluster's size."""
    if run is None and not any(label is not None for label in sizes):
        return "**No clustering run yet.** Run `simimg-admin cluster` to group the collection."
    lines = ["### Current clustering run", ""]
    if run:
        lines += [f"- **{key}**: {_plain(value)}" for key, value in sorted(run.items())
                  if value is not None and not isinstance(value, dict | list)]
    else:
        lines.append("- no run record found; labels come from the stored payloads")
    unlabelled = sizes.get(None, 0)
    if unlabelled:
        lines.append(f"- **unlabelled** (added since the run): {unlabelled}")
    lines += ["", "| cluster | images |", "|---:|---:|"]
    labels = sorted(label for label in sizes if label is not None and label != NOISE)
    lines += [f"| {label} | {sizes[label]} |" for label in labels]
    if sizes.get(NOISE):
        lines.append(f"| noise | {sizes[NOISE]} |")
    return "\n".join(lines)


def status_markdown(
    info: dict[str, Any], settings: Settings, models: dict[str, str | None]
) -> str:
    """The Status tab: image count, filled vectors, models and store in use."""
    store = info.get("store", "?")
    where = settings.qdrant_url if settings.uses_server else str(settings.data_dir)
    lines = [
        "### Collection",
        "",
        f"- **images**: {info.get('points', '?')}",
    ]
    for space, count in (info.get("vectors") or {}).items():
        lines.append(f"- **{space} vectors filled**: {count}")
    lines += [
        "",
        "### Models and store",
        "",
        f"- **store**: {store} (collection `{settings.collection}` at `{where}`)",
    ]
    for space, model_id in models.items():
        lines.append(f"- **{space} model**: {model_id or 'not trained'}")
    lines.append(f"- **runtime**: {settings.runtime}, input {settings.image_size}px")
    run = info.get("clustering")
    lines.append(f"- **clustering**: {_run_summary(run) if run else 'never run'}")
    return "\n".join(lines)


def _run_summary(run: dict[str, Any]) -> str:
    keys = ("clusters", "noise", "space", "eps", "finished_at", "run_id")
    return ", ".join(f"{key} {run[key]}" for key in keys if key in run) or "recorded"


def _plain(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
