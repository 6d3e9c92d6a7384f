"""The training loop: seeded split, Adam with cosine decay, early stopping on validation loss."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from service.autoencoder.config import AutoencoderConfig
from service.autoencoder.model import ConvAutoencoder
from service.autoencoder.preprocess import to_model_input
from service.errors import ConfigError
from training.augment import augment_batch, random_view
from training.progress import EpochStats, TrainingObserver

MIN_IMAGES = 8
# A small collection still gets this many optimisation steps per epoch (its images are
# cycled through several times, each time with new augmentations); otherwise 20 images
# would mean one step per epoch and early stopping would end training before the model
# learnt anything. 60 rather than 30 (it changes collections below 1,920 images): on
# openclipart's 929 images P@6 went from 0.251 to 0.266 (raw pixels 0.213), see README.
MIN_STEPS_PER_EPOCH = 60


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the network's shape is in AutoencoderConfig)."""

    epochs: int = 25
    batch_size: int = 32
    learning_rate: float = 2e-3
    val_fraction: float = 0.1
    patience: int = 4  # epochs without a better validation loss before stopping
    min_improvement: float = 0.002  # relative drop in validation loss that counts as better
    seed: int = 0
    threads: int = 2
    augment: bool = True
    # Weight of the invariance term: two random views of each image (training.augment.
    # random_view) must map to matching latents (InfoNCE over the batch), so the latent
    # keeps what survives a crop or a colour change rather than exact pixel positions.
    # 0 trains a plain reconstruction autoencoder.
    invariance: float = 0.0
    temperature: float = 0.2
    # Weight of the teacher term: a training-only linear head on the latent must predict each
    # image's stored ``mobilenet`` vector (cosine loss), so the latent keeps what the
    # pretrained network sees in the user's images. 0, or no targets given: pixels only.
    # Default 10: measured (benchmarks/autoencoder_quality.py) +0.02 P@6 on openclipart and
    # +0.047 on Fashion-MNIST over the same training without it.
    distill: float = 10.0

    def __post_init__(self) -> None:
        if self.invariance < 0:
            raise ConfigError(f"invariance weight must be >= 0, got {self.invariance}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """The best model (by validation loss) and how training went."""

    model: ConvAutoencoder
    history: list[EpochStats]
    initial_val_loss: float
    best_epoch: int
    stopped_early: bool
    seconds: float
    n_train: int
    n_val: int

    @property
    def best_val_loss(self) -> float:
        if self.best_epoch == 0:
            return self.initial_val_loss
        return self.history[self.best_epoch - 1].val_loss

    def metrics(self) -> dict[str, Any]:
        return {
            "initial_val_loss": self.initial_val_loss,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.history),
            "stopped_early": self.stopped_early,
            "train_seconds": round(self.seconds, 2),
            "n_train": self.n_train,
            "n_val": self.n_val,
            "history": [asdict(s) for s in self.history],
        }


@contextmanager
def deterministic(seed: int, threads: int) -> Iterator[torch.Generator]:
    """Seed python, numpy and torch, fix the thread count, and restore torch's settings."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, threads))
    # CPU kernels used here are deterministic already; this makes any future op that is not
    # warn rather than silently vary.
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


def split_indices(n: int, val_fraction: float, generator: torch.Generator) -> tuple[
    torch.Tensor, torch.Tensor
]:
    """Seeded (train, validation) index split; at least one image on each side."""
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    order = torch.randperm(n, generator=generator)
    return order[n_val:], order[:n_val]


@dataclass
class Teacher:
    """The teacher term: a training-only linear head on the latent predicts each image's
    stored ``mobilenet`` vector; ``distance`` is one minus their cosine, per image."""

    head: torch.nn.Linear
    targets: torch.Tensor  # (n, d): one teacher vector per image, in image order
    weight: float

    def distance(self, model: ConvAutoencoder, batch: torch.Tensor,
                 image_indices: torch.Tensor) -> torch.Tensor:
        predicted = self.head(model.encode(batch))
        return 1 - F.cosine_similarity(predicted, self.targets[image_indices], dim=1)


def _mean_loss(model: ConvAutoencoder, images: torch.Tensor, batch_size: int,
               teacher: Teacher | None = None,
               image_indices: torch.Tensor | None = None) -> float:
    """Mean validation objective: reconstruction, plus the teacher term when there is one.

    Early stopping and the kept checkpoint follow the whole objective the model trains on:
    judged by reconstruction alone, training stopped while the latent was still learning
    what the teacher sees (measured: openclipart P@6 0.246 with reconstruction-only stopping
    against 0.257 when training ran its full course)."""
    model.eval()
    total, distance = 0.0, 0.0
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            total += F.mse_loss(model(batch), batch, reduction="sum").item()
            if teacher is not None and image_indices is not None:
                indices = image_indices[start : start + batch_size]
                distance += teacher.distance(model, batch, indices).sum().item()
    loss = total / images.numel()
    if teacher is not None:
        loss += teacher.weight * distance / len(images)
    return loss


def fit_whitening(
    model: ConvAutoencoder, images: torch.Tensor, batch_size: int = 256, shrinkage: float = 0.1
) -> None:
    """Set the model's ``latent_mean`` and shrunk PCA-whitening matrix from ``images``.

    Eigenvalues are regularised by ``shrinkage`` x their mean, so directions with little
    or no variance (few images, or n < latent_dim) are not blown up.
    """
    with torch.inference_mode():
        latents = torch.cat(
            [model.encode(images[s : s + batch_size]) for s in range(0, len(images), batch_size)]
        ).double()
    mean = latents.mean(dim=0)
    centred = latents - mean
    cov = centred.T @ centred / max(1, len(latents) - 1)
    eigenvalues, vectors = torch.linalg.eigh(cov)
    eigenvalues = eigenvalues.clamp(min=0)
    scale = (eigenvalues + shrinkage * eigenvalues.mean() + 1e-12).rsqrt()
    whitening = vectors @ torch.diag(scale) @ vectors.T
    model.latent_mean.copy_(mean.float())
    model.whitening.copy_(whitening.float())


def train_autoencoder(
    pixels: np.ndarray,
    config: AutoencoderConfig,
    train: TrainConfig,
    observer: TrainingObserver | None = None,
    targets: np.ndarray | None = None,
) -> TrainResult:
    """Train on ``pixels`` ((n, S, S, 3) uint8) and return the best model by validation loss.

    ``targets``: (n, d) teacher vectors, one per image (used when ``train.distill`` > 0).

    Afterwards the embedding's centring and whitening are fitted on all images, un-augmented.
    """
    observer = observer or TrainingObserver()
    n = len(pixels)
    if n < MIN_IMAGES:
        raise ConfigError(f"need at least {MIN_IMAGES} readable images to train, found {n}")
    if pixels.shape[1:] != (config.image_size, config.image_size, 3):
        raise ValueError(f"pixels of shape {pixels.shape[1:]} do not match {config}")
    started = time.perf_counter()
    with deterministic(train.seed, train.threads) as gen:
        images = torch.from_numpy(to_model_input(pixels))
        train_idx, val_idx = split_indices(n, train.val_fraction, gen)
        train_images, val_images = images[train_idx], images[val_idx]
        model = ConvAutoencoder(config)
        teacher = None
        parameters = list(model.parameters())
        if train.distill > 0 and targets is not None:
            vectors = torch.from_numpy(np.asarray(targets, np.float32))
            teacher = Teacher(torch.nn.Linear(config.latent_dim, vectors.shape[1]), vectors,
                              train.distill)
            parameters += list(teacher.head.parameters())
        optimiser = torch.optim.Adam(parameters, lr=train.learning_rate)
        batches = max(-(-len(train_images) // train.batch_size), MIN_STEPS_PER_EPOCH)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=train.epochs * batches, eta_min=train.learning_rate * 0.05
        )
        max_shift = config.image_size // 16
        initial = _mean_loss(model, val_images, 256, teacher, val_idx)
        best_loss, best_epoch, best_state = initial, 0, _copy_state(model)
        history: list[EpochStats] = []
        observer.stage("training", train.epochs * batches)
        stopped_early = False
        for epoch in range(1, train.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            running, seen = 0.0, 0
            for indices in _epoch_batches(len(train_images), train.batch_size, batches, gen):
                batch = train_images[indices]
                if train.augment:
                    batch = augment_batch(batch, gen, max_shift)
                loss = F.mse_loss(model(batch), batch)
                if teacher is not None:
                    loss = loss + teacher.weight * teacher.distance(
                        model, batch, train_idx[indices]).mean()
                if train.invariance > 0:
                    loss = loss + train.invariance * _invariance_loss(
                        model, train_images[indices], gen, train.temperature
                    )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                running += loss.item() * len(batch)
                seen += len(batch)
                observer.batch(epoch, loss.item())
            val_loss = _mean_loss(model, val_images, 256, teacher, val_idx)
            improved = val_loss < best_loss * (1 - train.min_improvement)
            if improved:
                best_loss, best_epoch, best_state = val_loss, epoch, _copy_state(model)
            stats = EpochStats(
                epoch, running / seen, val_loss, time.perf_counter() - t0, improved
            )
            history.append(stats)
            observer.epoch(stats, train.epochs)
            if epoch - best_epoch >= train.patience:
                stopped_early = epoch < train.epochs
                break
        model.load_state_dict(best_state)
        model.eval()
        fit_whitening(model, images)
    return TrainResult(
        model=model,
        history=history,
        initial_val_loss=initial,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - started,
        n_train=len(train_images),
        n_val=len(val_images),
    )


def _invariance_loss(
    model: ConvAutoencoder, images: torch.Tensor, generator: torch.Generator,
    temperature: float,
) -> torch.Tensor:
    """InfoNCE: each image's two random views must be each other's nearest latent."""
    first = F.normalize(model.encode(random_view(images, generator)), dim=1)
    second = F.normalize(model.encode(random_view(images, generator)), dim=1)
    logits = first @ second.T / temperature
    target = torch.arange(len(images))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _epoch_batches(
    n: int, batch_size: int, steps: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """``steps`` batches of indices, walking through fresh shuffles of ``range(n)``."""
    rounds = -(-steps * batch_size // n)
    order = torch.cat([torch.randperm(n, generator=generator) for _ in range(rounds)])
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]


def _copy_state(model: ConvAutoencoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
