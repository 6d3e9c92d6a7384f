"""Checking the options of a clustering run, for the CLI and for cluster jobs alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.errors import ConfigError


@dataclass(frozen=True)
class ClusterOptions:
    space: str = "mobilenet"
    eps: float | str = "auto"
    min_samples: int = 5
    algorithm: str = "dbscan"
    dims: int | str | None = "auto"

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "eps": self.eps, "min_samples": self.min_samples,
                "algorithm": self.algorithm, "dims": self.dims}


def parse_cluster_options(
    space: str = "mobilenet",
    eps: str | float = "auto",
    min_samples: int = 5,
    algorithm: str = "dbscan",
    dims: str | int | None = "auto",
) -> ClusterOptions:
    """Validated options; ConfigError names the option that is wrong."""
    from service.clustering.vectors import ALGORITHMS
    from service.store.schema import SPACES

    if space not in SPACES:
        raise ConfigError(f"--space must be one of {', '.join(SPACES)}, got {space!r}")
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"--algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}"
        )
    if not isinstance(min_samples, int) or min_samples < 1:
        raise ConfigError(f"--min-samples must be at least 1, got {min_samples}")
    eps_value = _parse_eps(eps)
    if algorithm == "hdbscan" and eps_value != "auto":
        raise ConfigError("--eps applies to dbscan only; hdbscan needs no radius")
    return ClusterOptions(space, eps_value, min_samples, algorithm, _parse_dims(dims))


def _parse_eps(eps: str | float) -> float | str:
    if eps == "auto":
        return eps
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise ConfigError(f"--eps must be 'auto' or a number, got {eps!r}") from None
    if not 0 < value < 2:
        raise ConfigError(f"--eps is a cosine distance and must be in (0, 2), got {value}")
    return value


def _parse_dims(dims: str | int | None) -> int | str | None:
    if dims is None or dims == "none":
        return None
    if dims == "auto":
        return dims
    try:
        return int(dims)
    except (TypeError, ValueError):
        raise ConfigError(f"--dims must be 'auto', 'none' or an integer, got {dims!r}") from None
