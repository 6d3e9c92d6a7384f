"""The autoencoder's shape, stored in every checkpoint and validated on load."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from service.errors import ConfigError

ARCHITECTURE = "conv-ae-v1"
DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = (16, 32, 64, 128)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Everything needed to rebuild the network and its preprocessing."""

    image_size: int = DEFAULT_IMAGE_SIZE
    latent_dim: int = 256
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    architecture: str = ARCHITECTURE

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.architecture != ARCHITECTURE:
            raise ConfigError(f"unknown autoencoder architecture {self.architecture!r}")
        if self.image_size % 16 or not 32 <= self.image_size <= 256:
            raise ConfigError(
                f"autoencoder image size must be a multiple of 16 from 32 to 256, "
                f"got {self.image_size}"
            )
        if not 2 <= self.latent_dim <= 4096:
            raise ConfigError(f"latent dim must be between 2 and 4096, got {self.latent_dim}")
        if len(self.channels) != 4 or min(self.channels) < 1:
            raise ConfigError(f"channels must be four positive widths, got {self.channels}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoencoderConfig:
        return cls(
            image_size=int(data["image_size"]),
            latent_dim=int(data["latent_dim"]),
            channels=tuple(data["channels"]),
            architecture=str(data.get("architecture", ARCHITECTURE)),
        )
