"""What each job kind does: the same entry functions the CLI commands call.

``validate_*`` turns a request body into checked parameters (ConfigError -> 400) before
anything is queued; ``run_*`` runs in the job thread with the service's open store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from api.jobs import JobContext
from service.errors import ConfigError
from service.store.schema import VECTOR_AUTOENCODER
from training.progress import EpochStats, TrainingObserver

if TYPE_CHECKING:
    from service.config import Settings
    from service.pipeline import EmbeddingPipeline
    from service.store.base import VectorStore

class JobHost(Protocol):
    """What a job needs of the service that runs it (:class:`api.service.SimimgService`)."""

    store: VectorStore
    settings: Settings

    def write_pipeline(self) -> EmbeddingPipeline: ...

    def check_allowed(self, folder: Path) -> None: ...

    def note_root(self, folder: Path) -> None: ...


TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 25, "image_size": 64, "batch_size": 32, "patience": 4, "seed": 0, "folder": None,
}


def _only(body: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = set(body) - allowed - {"kind"}
    if unknown:
        raise ConfigError(f"unknown job parameter(s): {', '.join(sorted(unknown))}")
    return {key: value for key, value in body.items() if key != "kind"}


def _folder(value: Any, what: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a folder path (string)")
    folder = Path(value).expanduser()
    if not folder.is_absolute():
        raise ConfigError(f"{what} must be an absolute path, got {value!r}")
    if not folder.is_dir():
        raise ConfigError(f"{what} not found or not a directory: {value}")
    return folder.resolve()


# -- ingest -------------------------------------------------------------------------------


def validate_ingest(
    service: JobHost, body: dict[str, Any], trusted: bool
) -> dict[str, Any]:
    """``{"folder": ABSOLUTE_PATH (or "folders": [...]), "shard": "i/n"?, "keep_missing":
    bool?, "allow_empty": bool?}``: a sync of the folders, as ``simimg-admin ingest`` runs
    it; each folder must lie under an allowed root unless the caller is trusted (the local
    CLI, which can read the data dir)."""
    from service.walker import Shard

    body = _only(body, {"folder", "folders", "shard", "keep_missing", "allow_empty"})
    given = body.get("folders") if "folders" in body else [body.get("folder")]
    if not isinstance(given, list) or not given:
        raise ConfigError("folders must be a non-empty list of folder paths")
    folders = [_folder(value, "folder") for value in given]
    if not trusted:
        for folder in folders:
            service.check_allowed(folder)
    params: dict[str, Any] = {"folders": [str(folder) for folder in folders]}
    for flag in ("keep_missing", "allow_empty"):
        value = body.get(flag, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{flag} must be true or false")
        params[flag] = value
    if body.get("shard") is not None:
        try:
            Shard.parse(str(body["shard"]))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        params["shard"] = str(body["shard"])
    return params


def run_ingest(service: JobHost, params: dict[str, Any], job: JobContext) -> Any:
    from ingest.runner import FolderIngester
    from ingest.sync import sync_roots
    from service.walker import Shard

    shard = Shard.parse(params["shard"]) if params.get("shard") else None
    ingester = FolderIngester(service.store, service.write_pipeline())
    job.stage("ingest", None)
    folders = [Path(folder) for folder in params["folders"]]
    report = sync_roots(
        ingester, folders, shard=shard,
        keep_missing=params.get("keep_missing", False),
        allow_empty=params.get("allow_empty", False),
        on_total=job.set_total, on_progress=job.advance,
    )
    for folder in folders:
        service.note_root(folder)
    from service.indexing import index_if_due

    index_if_due(service.settings, service.store, keep_serving=True, notify=job.message)
    return report.to_json()


# -- optimize -----------------------------------------------------------------------------


def validate_optimize(
    service: JobHost, body: dict[str, Any], trusted: bool
) -> dict[str, Any]:
    """``{}``: build the vector index; searches are answered meanwhile."""
    return _only(body, set())


def run_optimize(service: JobHost, params: dict[str, Any], job: JobContext) -> Any:
    from service.indexing import build_index

    job.stage("index", None)
    return build_index(service.store, keep_serving=True).to_json()


# -- train --------------------------------------------------------------------------------


def validate_train(
    service: JobHost, body: dict[str, Any], trusted: bool
) -> dict[str, Any]:
    from service.autoencoder.config import AutoencoderConfig
    from training.loop import TrainConfig

    body = _only(body, set(TRAIN_DEFAULTS))
    params = {**TRAIN_DEFAULTS, **body}
    for key in ("epochs", "image_size", "batch_size", "patience", "seed"):
        if not isinstance(params[key], int) or isinstance(params[key], bool):
            raise ConfigError(f"{key} must be an integer, got {params[key]!r}")
    if params["folder"] is not None:
        folder = _folder(params["folder"], "folder")
        if not trusted:
            service.check_allowed(folder)
        params["folder"] = str(folder)
    AutoencoderConfig(image_size=params["image_size"], latent_dim=service.settings.latent_dim)
    TrainConfig(epochs=params["epochs"], batch_size=params["batch_size"],
                patience=params["patience"], seed=params["seed"])
    return params


def run_train(service: JobHost, params: dict[str, Any], job: JobContext) -> Any:
    from service.autoencoder.config import AutoencoderConfig
    from training.driver import train_and_activate
    from training.loop import TrainConfig

    settings = service.settings
    outcome = train_and_activate(
        settings,
        service.store,
        AutoencoderConfig(image_size=params["image_size"], latent_dim=settings.latent_dim),
        TrainConfig(epochs=params["epochs"], batch_size=params["batch_size"],
                    patience=params["patience"], seed=params["seed"]),
        Path(params["folder"]) if params.get("folder") else None,
        _JobTrainingObserver(job),
    )
    return outcome.to_json()


class _JobTrainingObserver(TrainingObserver):
    """Training progress into the job record; cancel stops between batches.

    Once the re-embed starts the new model is committed as pending, so the job runs to the
    end (a cancel then would only leave work for the next open).
    """

    def __init__(self, job: JobContext) -> None:
        self.job = job

    def stage(self, description: str, total: int | None) -> None:
        if description.startswith("re-embed"):
            self.job.cancellable = False
        self.job.stage(description, total)

    def advance(self, n: int = 1) -> None:
        self.job.advance(n)

    def batch(self, epoch: int, loss: float) -> None:
        self.job.advance(1)

    def epoch(self, stats: EpochStats, epochs: int) -> None:
        self.job.message(
            f"epoch {stats.epoch:3d}/{epochs}  train loss {stats.train_loss:.5f}  "
            f"val loss {stats.val_loss:.5f}  ({stats.seconds:.1f}s)"
        )

    def message(self, text: str) -> None:
        self.job.message(text)


# -- cluster ------------------------------------------------------------------------------


def validate_cluster(
    service: JobHost, body: dict[str, Any], trusted: bool
) -> dict[str, Any]:
    from service.cluster_options import parse_cluster_options

    body = _only(body, {"space", "eps", "min_samples", "algorithm", "dims"})
    return parse_cluster_options(**body).to_json()


def run_cluster(service: JobHost, params: dict[str, Any], job: JobContext) -> Any:
    from service.cluster_labels import cluster_collection
    from service.cluster_options import parse_cluster_options

    options = parse_cluster_options(**params)
    model_id = None
    if options.space == VECTOR_AUTOENCODER:
        from service.embedders.autoencoder import require_autoencoder_embedder

        model_id = require_autoencoder_embedder(service.settings).model_id

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "write":
            job.cancellable = False  # the run is committed: labels are written to the end
        job.update(phase, done, total)

    run = cluster_collection(
        service.settings, service.store, space=options.space, eps=options.eps,
        min_samples=options.min_samples, algorithm=options.algorithm, dims=options.dims,
        model_id=model_id, progress=progress,
        on_eps=lambda choice: job.message(f"eps = {choice.eps:.4f}: {choice.reason}"),
    )
    return {**run.record, "sizes": run.result.sizes(), "labelled": len(run.ids)}


VALIDATORS = {"ingest": validate_ingest, "train": validate_train, "cluster": validate_cluster,
              "optimize": validate_optimize}
RUNNERS = {"ingest": run_ingest, "train": run_train, "cluster": run_cluster,
           "optimize": run_optimize}
