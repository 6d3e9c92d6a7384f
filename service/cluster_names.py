"""Names people give to clusters, so "cluster 3" can read "beach".

A name belongs to one clustering run (the next run renumbers the clusters): the data dir
holds ``<collection>.cluster_names.json`` = ``{"run_id": ..., "names": {"3": "beach"}}``,
written atomically; names of another run are ignored. Each named cluster's points also carry
the name as their ``cluster_name`` payload (keyword index), so anyone querying Qdrant can
filter on it; a new clustering run removes those (see :func:`clear_stale_names`).

Wherever a cluster can be given (``search --cluster``, the REST API, the page) a name works
as well as the number: :func:`resolve_cluster` turns either into the label.
"""

from __future__ import annotations

from pathlib import Path

from service.atomic import read_json, write_json_atomic
from service.clustering_runs import current_run
from service.config import Settings
from service.errors import ConfigError
from service.store.base import PointFilter, VectorStore
from service.store.schema import PAYLOAD_CLUSTER_NAME

MAX_NAME_LENGTH = 80
_WRITE_BATCH = 1000


def names_path(settings: Settings) -> Path:
    return settings.state_dir / f"{settings.collection}.cluster_names.json"


def _run_id(settings: Settings) -> str | None:
    run = current_run(settings)
    return None if run is None else run.get("run_id")


def cluster_names(settings: Settings) -> dict[int, str]:
    """Names of the current run's clusters: label -> name."""
    stored = read_json(names_path(settings)) or {}
    if stored.get("run_id") != _run_id(settings):
        return {}
    return {int(label): str(name) for label, name in (stored.get("names") or {}).items()}


def check_name(name: str) -> str:
    """A name as stored: trimmed, one line, not a number (numbers are labels)."""
    cleaned = " ".join(str(name).split())
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ConfigError(f"a cluster name has at most {MAX_NAME_LENGTH} characters")
    if _as_label(cleaned) is not None or cleaned.lower() == "all":
        raise ConfigError(f"a cluster name cannot be a number or 'all', got {name!r}")
    return cleaned


def name_cluster(settings: Settings, store: VectorStore, label: int, name: str) -> dict[int, str]:
    """Give cluster ``label`` the name ``name`` ("" removes it); returns every name.

    The name must be unique within the run and the cluster must exist. The data-dir record
    is written first, then the payload of the cluster's points."""
    label = int(label)
    if label < 0:
        raise ConfigError("noise is not a cluster: only clusters 0, 1, ... can be named")
    if store.count(PointFilter(cluster=label)) == 0:
        raise ConfigError(f"there is no cluster {label} in the collection")
    names = cluster_names(settings)
    cleaned = check_name(name) if name.strip() else ""
    if cleaned:
        taken = [other for other, existing in names.items()
                 if existing.lower() == cleaned.lower() and other != label]
        if taken:
            raise ConfigError(f"cluster {taken[0]} is already named {cleaned!r}")
        names[label] = cleaned
    else:
        names.pop(label, None)
    write_json_atomic(names_path(settings), {
        "run_id": _run_id(settings),
        "names": {str(key): value for key, value in sorted(names.items())},
    })
    ids = [r.id for page in store.scroll(_WRITE_BATCH, where=PointFilter(cluster=label),
                                          with_payload=False) for r in page]
    for start in range(0, len(ids), _WRITE_BATCH):
        part = ids[start : start + _WRITE_BATCH]
        if cleaned:
            store.set_payload({PAYLOAD_CLUSTER_NAME: cleaned}, part)
        else:
            store.delete_payload_key(PAYLOAD_CLUSTER_NAME, part)
    store.flush()
    return names


def clear_stale_names(store: VectorStore, ids: list[str]) -> None:
    """Remove ``cluster_name`` from ``ids``: a new labelling makes old names wrong."""
    for start in range(0, len(ids), _WRITE_BATCH):
        store.delete_payload_key(PAYLOAD_CLUSTER_NAME, ids[start : start + _WRITE_BATCH])


def resolve_cluster(settings: Settings, value: str | int | None) -> int | None:
    """A cluster given as a label (``3``, ``-1``), a name (``beach``), or nothing / ``all``."""
    if value is None:
        return None
    text = str(value).strip()
    if text == "" or text.lower() == "all":
        return None
    label = _as_label(text)
    if label is not None:
        return label
    names = cluster_names(settings)
    for known, name in names.items():
        if name.lower() == text.lower():
            return known
    known_names = ", ".join(sorted(names.values())) or "none yet"
    raise ConfigError(
        f"cluster must be a number or a cluster name, got {text!r} (names: {known_names})"
    )


def cluster_title(label: int | None, names: dict[int, str]) -> str:
    """How a cluster reads to people: ``3 (beach)``, ``3``, ``noise``."""
    if label is None:
        return ""
    if label < 0:
        return "noise"
    name = names.get(label)
    return f"{label} ({name})" if name else str(label)


def _as_label(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
