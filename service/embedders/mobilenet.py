"""The ``mobilenet`` space: pooled 1280-d features of ImageNet-pretrained timm MobileNetV2.

One forward pass gives the features and the ImageNet logits (the labels' source).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from service.config import Settings
from service.embedders.base import l2_normalise
from service.embedders.onnx_export import (
    MAX_ABS_DIFF,
    ExportMismatchError,
    cached_export,
    export_verified,
    make_session,
)
from service.embedders.preprocess import CenterCropPreprocess
from service.store.schema import MOBILENET_DIM, VECTOR_MOBILENET
from service.weights import MODEL_NAME, build_mobilenet, resolve_weights, weights_fingerprint

log = logging.getLogger(__name__)

# Version of the exported graph's form, recorded in the cached export's sidecar; an export of
# an older form is rebuilt. 2: two outputs, pooled features and ImageNet logits.
EXPORT_VERSION = 2
OUTPUTS = ("features", "logits")


class MobileNetEmbedder:
    """Preprocess with timm's eval transform; run through ONNX Runtime or eager PyTorch.

    ``max_abs_diff``: with ONNX Runtime, the export's measured max abs difference from
    eager PyTorch (raw features, checked when the export was built); None for torch.
    """

    space = VECTOR_MOBILENET
    dim = MOBILENET_DIM

    def __init__(
        self,
        preprocess: CenterCropPreprocess,
        run: Callable[[np.ndarray], Sequence[np.ndarray]],
        model_id: str,
        runtime: str,
        max_abs_diff: float | None = None,
    ) -> None:
        self._preprocess = preprocess
        self._run = run
        self.model_id = model_id
        self.runtime = runtime
        self.max_abs_diff = max_abs_diff

    @property
    def min_side(self) -> int:
        return self._preprocess.min_side

    @property
    def input_size(self) -> int:
        return self._preprocess.size

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self._preprocess(image)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self.embed_and_classify(batch)[0]

    def embed_and_classify(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit-length features and ImageNet logits, from one forward pass."""
        features, logits = self._run(batch)
        return l2_normalise(features), np.asarray(logits, np.float32)


def mobilenet_model_id(settings: Settings) -> str:
    """Identifies weights and input size; keys the cached ONNX export."""
    source = resolve_weights(settings.weights)
    return f"{MODEL_NAME}-{settings.image_size}px-{weights_fingerprint(source)}"


def mobilenet_model_info(settings: Settings) -> dict[str, object]:
    """What `status` shows about the MobileNet space, without loading the model."""
    model_id = mobilenet_model_id(settings)
    cached = cached_export(settings.models_dir / "mobilenet", model_id)
    diff = _verified_diff(cached.meta) if cached is not None else None
    return {
        "model_id": model_id,
        "runtime": settings.runtime,
        "onnx_export": str(cached.path) if cached is not None else None,
        "onnx_max_abs_diff": diff,
    }


def load_mobilenet(settings: Settings) -> MobileNetEmbedder:
    """Build the embedder; with the ONNX runtime, reuse or create a verified cached export."""
    source = resolve_weights(settings.weights)
    model_id = mobilenet_model_id(settings)
    cache_dir = settings.models_dir / "mobilenet"
    if settings.runtime == "onnx":
        cached = cached_export(cache_dir, model_id)
        diff = _verified_diff(cached.meta) if cached is not None else None
        if cached is not None and diff is not None:
            preprocess = CenterCropPreprocess.from_dict(cached.meta["preprocess"])
            return MobileNetEmbedder(
                preprocess, make_session(cached.path), model_id, "onnx", diff
            )
    preprocess = CenterCropPreprocess.from_timm(MODEL_NAME, settings.image_size)
    model = build_mobilenet(source)
    if settings.runtime == "onnx":
        try:
            export = export_verified(
                model, (3, settings.image_size, settings.image_size), cache_dir, model_id,
                {"preprocess": preprocess.to_dict(), "weights": str(source),
                 "export_version": EXPORT_VERSION},
                OUTPUTS,
            )
            return MobileNetEmbedder(
                preprocess, make_session(export.path), model_id, "onnx",
                float(export.meta["max_abs_diff"]),
            )
        except ExportMismatchError as exc:
            log.warning("%s; falling back to eager PyTorch", exc)
    return MobileNetEmbedder(preprocess, _torch_runner(model), model_id, "torch")


def _verified_diff(meta: dict[str, object]) -> float | None:
    """The recorded ONNX-vs-PyTorch difference if the sidecar proves a passing check."""
    if meta.get("export_version") != EXPORT_VERSION:
        log.info("cached ONNX export is of an older form; re-exporting")
        return None
    diff = meta.get("max_abs_diff")
    if not isinstance(diff, int | float) or not diff <= MAX_ABS_DIFF or "preprocess" not in meta:
        log.warning("cached ONNX export has no passing verification record; re-exporting")
        return None
    return float(diff)


def _torch_runner(model: object) -> Callable[[np.ndarray], Sequence[np.ndarray]]:
    import torch

    def run(batch: np.ndarray) -> Sequence[np.ndarray]:
        with torch.inference_mode():
            outputs = model(torch.from_numpy(np.ascontiguousarray(batch, np.float32)))
            return [tensor.numpy() for tensor in outputs]

    return run
