"""timm-style eval preprocessing (resize shorter side, centre crop, normalise) in PIL + numpy.

Doing it without torch lets decode workers run it in threads and lets the ONNX query path
skip importing torch entirely.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class CenterCropPreprocess:
    """Resize the shorter side to ``floor(size / crop_pct)``, centre-crop ``size``, normalise."""

    size: int
    crop_pct: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    @classmethod
    def from_timm(cls, model_name: str, size: int) -> CenterCropPreprocess:
        """Read the eval transform from timm's data config for ``model_name``."""
        import timm
        from timm.data import resolve_data_config

        cfg = resolve_data_config(
            {"input_size": (3, size, size)},
            pretrained_cfg=timm.models.get_pretrained_cfg(model_name).to_dict(),
        )
        return cls(
            size=size,
            crop_pct=float(cfg["crop_pct"]),
            mean=tuple(cfg["mean"]),
            std=tuple(cfg["std"]),
            interpolation=str(cfg["interpolation"]),
        )

    @property
    def resize_to(self) -> int:
        return math.floor(self.size / self.crop_pct)

    @property
    def min_side(self) -> int:
        return self.resize_to

    def __call__(self, image: Image.Image) -> np.ndarray:
        width, height = image.size
        scale = self.resize_to / min(width, height)
        new_size = (max(self.size, round(width * scale)), max(self.size, round(height * scale)))
        left = (new_size[0] - self.size) // 2
        top = (new_size[1] - self.size) // 2
        # Resize only the part the centre crop keeps, for the cost of the crop alone. PIL's
        # filter still reads past the box's edges, so the pixels are those of resizing the
        # whole image and then cropping (on real photos a few in 10,000 differ by one level).
        step_x, step_y = width / new_size[0], height / new_size[1]
        box = (left * step_x, top * step_y,
               (left + self.size) * step_x, (top + self.size) * step_y)
        cropped = image.resize((self.size, self.size), _RESAMPLE[self.interpolation], box=box)
        array = np.asarray(cropped, dtype=np.float32)
        return np.ascontiguousarray((array * self._scale - self._shift).transpose(2, 0, 1))

    @cached_property
    def _scale(self) -> np.ndarray:
        # (pixel / 255 - mean) / std as one multiply and one subtract
        return (1.0 / (255.0 * np.asarray(self.std, np.float64))).astype(np.float32)

    @cached_property
    def _shift(self) -> np.ndarray:
        return (np.asarray(self.mean, np.float64) / np.asarray(self.std, np.float64)).astype(
            np.float32)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CenterCropPreprocess:
        return cls(
            size=int(data["size"]),
            crop_pct=float(data["crop_pct"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            interpolation=str(data["interpolation"]),
        )
