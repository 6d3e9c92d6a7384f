"""All configuration in one place.

Every setting comes from an environment variable with the ``SIMIMG_`` prefix (the server
connection keeps Qdrant's own names, ``QDRANT_URL`` and ``QDRANT_API_KEY``) and can be
overridden by a CLI flag, which passes it to :meth:`Settings.from_env` as an override.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "SIMIMG_"

# Settings read from variables outside the SIMIMG_ prefix: Qdrant's own names.
_UNPREFIXED = {"qdrant_url": "QDRANT_URL", "qdrant_api_key": "QDRANT_API_KEY"}


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Field ``foo_bar`` is read from ``SIMIMG_FOO_BAR``."""

    data_dir: Path = field(default=Path("./simimg-data"))
    collection: str = "images"
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    # MobileNet input size (timm's data config scales resize and crop with it).
    image_size: int = 224
    latent_dim: int = 256
    batch_size: int = 16
    # Decompression-bomb guard: images with more pixels than this are refused.
    max_pixels: int = 50_000_000
    # Largest accepted file (bytes); larger files are skipped without being read.
    max_file_bytes: int = 100_000_000
    # Explicit MobileNetV2 weights file (torchvision or timm state dict).
    weights: Path | None = None
    # Inference runtime for MobileNet: "onnx" (fast, exported and verified) or "torch".
    runtime: str = "onnx"
    # Threads decoding images in parallel with inference.
    decode_workers: int = 2
    # How vectors are stored: "float16" halves memory and exact-search time (cosine scores
    # stay within ~1e-3 of float32); "float32" keeps full precision. Fixed at creation.
    vector_datatype: str = "float16"
    # Vector index (HNSW), both backends; m / ef_construct / full scan / quantization are
    # fixed when the collection is created. Chosen by measurement: docs/benchmarks-scale.md
    # (m 12 against 16 at 1M points: index built in 16.7 instead of 22.3 minutes, recall@10
    # 0.998 against 0.999).
    hnsw_m: int = 12
    hnsw_ef_construct: int = 100
    # Candidates a search explores in the graph (recall against speed), at search time.
    hnsw_ef: int = 128
    # ... in the all-points neighbour scans (duplicates, DBSCAN from the index): one query
    # per stored point, and each pair is looked for from both of its points, so a narrower
    # search keeps 97% of the groups in 41% of the time at 1M points
    # (measured: docs/benchmarks-duplicates.md).
    scan_hnsw_ef: int = 32
    # Below this many KB of vectors (a small segment, or what a filter leaves) Qdrant's
    # planner scans exactly instead of walking the graph.
    hnsw_full_scan_kb: int = 10_000
    # "int8": scalar-quantized copies searched first, rescored from the original vectors.
    quantization: str = "none"  # "none" or "int8"
    # Original vectors memory-mapped from disk instead of held in RAM (little-memory hosts).
    vectors_on_disk: bool = False
    # Build the index after an ingest once this many points are not indexed (0: never;
    # `simimg-admin optimize` builds it on demand).
    index_after: int = 10_000
    # Server-only collection options (see docs/schema.md).
    shard_number: int = 1
    replication_factor: int = 1
    # `serve`: the key every API call and the page must send (Authorization: Bearer KEY);
    # required when binding to an address other than loopback.
    api_key: str | None = None
    # `serve`: folders (separated by os.pathsep) that ingest jobs may read; empty = the
    # roots given to `serve --watch` plus those already in the collection.
    allowed_roots: str = ""
    # `search` in the mobilenet space (and fused): shrinkage of the PCA whitening learned on
    # the collection (service/query_whitening.py, chosen by benchmarks/retrieval_eval.py);
    # 0 turns whitening off (plain cosine).
    whiten_shrinkage: float = 4.0
    # ... used once the collection has this many images: learned from fewer, the whitening
    # spreads everything apart (at 60 images, two sandals scored 0.17) and scores mean little.
    whiten_min_points: int = 1000

    def __post_init__(self) -> None:
        # Accept plain strings for paths (tests and callers often pass them).
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        if self.weights is not None and not isinstance(self.weights, Path):
            object.__setattr__(self, "weights", Path(self.weights).expanduser())

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Build settings from ``env`` (default ``os.environ``), then apply non-None overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = _UNPREFIXED.get(f.name, ENV_PREFIX + f.name.upper())
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, raw, var)
        settings = cls(**values)
        applied = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(applied) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = replace(settings, **applied)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the setting when a value is out of range."""
        from service.errors import ConfigError

        if self.image_size < 32 or self.image_size > 1024:
            raise ConfigError(f"image_size must be between 32 and 1024, got {self.image_size}")
        if self.latent_dim < 2 or self.latent_dim > 4096:
            raise ConfigError(f"latent_dim must be between 2 and 4096, got {self.latent_dim}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.runtime not in ("onnx", "torch"):
            raise ConfigError(f"runtime must be 'onnx' or 'torch', got {self.runtime!r}")
        if self.vector_datatype not in ("float16", "float32"):
            raise ConfigError(
                f"vector_datatype must be 'float16' or 'float32', got {self.vector_datatype!r}"
            )
        if self.quantization not in ("none", "int8"):
            raise ConfigError(f"quantization must be 'none' or 'int8', got {self.quantization!r}")
        for name in ("hnsw_m", "hnsw_ef_construct", "hnsw_ef", "scan_hnsw_ef"):
            if getattr(self, name) < 4:
                raise ConfigError(f"{name} must be at least 4, got {getattr(self, name)}")
        if self.index_after < 0:
            raise ConfigError(f"index_after must be 0 or more, got {self.index_after}")
        if self.whiten_shrinkage < 0:
            raise ConfigError(f"whiten_shrinkage must be >= 0, got {self.whiten_shrinkage}")
        if self.whiten_min_points < 2:
            raise ConfigError(f"whiten_min_points must be at least 2, got {self.whiten_min_points}")
        if self.decode_workers < 1:
            raise ConfigError(f"decode_workers must be at least 1, got {self.decode_workers}")

    @property
    def uses_server(self) -> bool:
        return bool(self.qdrant_url)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def allowed_root_list(self) -> list[Path]:
        """``allowed_roots`` as absolute paths (empty when not set)."""
        parts = [part.strip() for part in self.allowed_roots.split(os.pathsep)]
        return [Path(part).expanduser().resolve() for part in parts if part]

    def describe(self) -> dict[str, Any]:
        """Settings as plain JSON-able values, with the API key masked."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("qdrant_api_key", "api_key") and value:
                value = "***"
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


_INT_FIELDS = {f.name for f in fields(Settings) if f.type in ("int", int)}
_BOOL_FIELDS = {f.name for f in fields(Settings) if f.type in ("bool", bool)}
_PATH_FIELDS = {"data_dir", "weights"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce(name: str, raw: str, var: str) -> Any:
    from service.errors import ConfigError

    if name in _INT_FIELDS:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{var} must be an integer, got {raw!r}") from None
    if name in _BOOL_FIELDS:
        if raw.strip().lower() not in _TRUE + _FALSE:
            raise ConfigError(f"{var} must be true or false, got {raw!r}")
        return raw.strip().lower() in _TRUE
    if name in _PATH_FIELDS:
        return Path(raw).expanduser()
    return raw
