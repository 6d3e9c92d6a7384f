"""The ingest path as it was before labels and photo metadata (issue 17), for comparison:
a features-only ONNX export and no EXIF fields (see :mod:`benchmarks.ingest_labels`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLAIN_EXPORT_DIR = "mobilenet-features-only"


def plain_pipeline(settings: Any, models_dir: Path) -> Any:
    """A pipeline as before labels and metadata: features-only export, no EXIF fields.

    Runs in its own benchmark process: the EXIF readers are switched off by replacing the
    two functions ingest calls, which affects that process only.
    """
    import ingest.runner
    import service.pipeline
    from service.embedders.base import l2_normalise
    from service.embedders.mobilenet import load_mobilenet
    from service.embedders.onnx_export import cached_export, export_verified, make_session
    from service.weights import resolve_weights

    service.pipeline.exif_metadata = lambda exif: {}
    ingest.runner.modified_at = lambda mtime_ns: {}
    full = load_mobilenet(settings)
    cache_dir = models_dir / PLAIN_EXPORT_DIR
    export = cached_export(cache_dir, full.model_id)
    if export is None:
        import torch

        from service.weights import build_mobilenet

        class FeaturesOnly(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.inner(x)[0]

        model = FeaturesOnly(build_mobilenet(resolve_weights(settings.weights))).eval()
        export = export_verified(model, (3, full.input_size, full.input_size), cache_dir,
                                 full.model_id, {})
    run = make_session(export.path)

    class FeaturesOnlyEmbedder:
        space, dim, model_id, min_side = full.space, full.dim, full.model_id, full.min_side
        preprocess = staticmethod(full.preprocess)

        @staticmethod
        def embed(batch: Any) -> Any:
            return l2_normalise(run(batch)[0])

    from service.pipeline import EmbeddingPipeline

    return EmbeddingPipeline(settings, [FeaturesOnlyEmbedder()])
