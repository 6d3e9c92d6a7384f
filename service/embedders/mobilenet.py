"""The ``mobilenet`` space: pooled 1280-d features of ImageNet-pretrained timm MobileNetV2."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PIL import Image

from service.config import Settings
from service.embedders.base import l2_normalise
from service.embedders.onnx_export import (
    ExportMismatchError,
    cached_export,
    export_verified,
    make_session,
)
from service.embedders.preprocess import CenterCropPreprocess
from service.store.schema import MOBILENET_DIM, VECTOR_MOBILENET
from service.weights import MODEL_NAME, build_mobilenet, resolve_weights, weights_fingerprint

log = logging.getLogger(__name__)


class MobileNetEmbedder:
    """Preprocess with timm's eval transform; run through ONNX Runtime or eager PyTorch."""

    space = VECTOR_MOBILENET
    dim = MOBILENET_DIM

    def __init__(
        self,
        preprocess: CenterCropPreprocess,
        run: Callable[[np.ndarray], np.ndarray],
        model_id: str,
        runtime: str,
    ) -> None:
        self._preprocess = preprocess
        self._run = run
        self.model_id = model_id
        self.runtime = runtime

    @property
    def min_side(self) -> int:
        return self._preprocess.min_side

    @property
    def input_size(self) -> int:
        return self._preprocess.size

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self._preprocess(image)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return l2_normalise(self._run(batch))


def load_mobilenet(settings: Settings) -> MobileNetEmbedder:
    """Build the embedder; with the ONNX runtime, reuse or create a verified cached export."""
    source = resolve_weights(settings.weights)
    model_id = f"{MODEL_NAME}-{settings.image_size}px-{weights_fingerprint(source)}"
    cache_dir = settings.models_dir / "mobilenet"
    if settings.runtime == "onnx":
        cached = cached_export(cache_dir, model_id)
        if cached is not None:
            preprocess = CenterCropPreprocess.from_dict(cached.meta["preprocess"])
            return MobileNetEmbedder(preprocess, make_session(cached.path), model_id, "onnx")
    preprocess = CenterCropPreprocess.from_timm(MODEL_NAME, settings.image_size)
    model = build_mobilenet(source)
    if settings.runtime == "onnx":
        try:
            export = export_verified(
                model, (3, settings.image_size, settings.image_size), cache_dir, model_id,
                {"preprocess": preprocess.to_dict(), "weights": str(source)},
            )
            return MobileNetEmbedder(preprocess, make_session(export.path), model_id, "onnx")
        except ExportMismatchError as exc:
            log.warning("%s; falling back to eager PyTorch", exc)
    return MobileNetEmbedder(preprocess, _torch_runner(model), model_id, "torch")


def _torch_runner(model: object) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(batch, np.float32))).numpy()

    return run
