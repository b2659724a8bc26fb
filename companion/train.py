"""The training loop: ``fit`` and ``evaluate``, with progress bars, a history and lr schedules.

``fit`` is the loop of chapter 3 written once, so that later chapters spend their lines on ideas
rather than on bookkeeping. It does what a hand-written loop does (forward, loss, backward, step)
plus the things people forget: ``model.train()``/``model.eval()``, a learning-rate schedule,
optional batch augmentation, bf16 autocast on the CPU, a wall-clock budget, and a ``History`` that
``companion.plot.learning_curves`` can draw.

Schedules are plain functions of training progress ``p`` in [0, 1] returning a multiplier of the
base learning rate: by default a linear warm-up followed by a cosine decay (Goyal et al., 2017,
https://arxiv.org/abs/1706.02677; Loshchilov & Hutter, 2017, https://arxiv.org/abs/1608.03983).
It is not Smith & Topin's one-cycle policy (2017, https://arxiv.org/abs/1708.07120), which rises
and falls linearly and ends with a short annihilation phase; chapter 3 draws both. With a
``time_budget`` the progress is the fraction of the budget spent, so the schedule ends exactly when
the time does.

Introduced in chapter 3, *Training a CNN*.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from companion._checks import check_positive_int

Schedule = Callable[[float], float]
#: What ``fit`` and ``evaluate`` accept as data: ``(images, labels)`` tensors, a Dataset, or a DataLoader.
Data = Union[tuple[Tensor, Tensor], Dataset, DataLoader]


# --- learning-rate schedules: progress in [0, 1] -> multiplier of the base lr -----------------------

def constant() -> Schedule:
    """The base learning rate throughout."""
    return lambda progress: 1.0


def cosine(final: float = 0.0) -> Schedule:
    """Cosine decay from 1 to ``final`` (SGDR without restarts)."""
    return lambda progress: final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def warmup_cosine(warmup: float = 0.25, start: float = 0.04, final: float = 0.0) -> Schedule:
    """Linear warm-up from ``start`` to 1 over the first ``warmup`` of training, then cosine decay to ``final``."""
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup}")
    decay = cosine(final)

    def schedule(progress: float) -> float:
        if progress < warmup:
            return start + (1 - start) * progress / warmup
        return decay((progress - warmup) / (1 - warmup))

    return schedule


# --- recipes -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """A named set of ``fit`` hyper-parameters: ``fit(model, data, **recipe.fit_kwargs())``."""

    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    warmup: float = 0.25
    flip_crop: bool = False  # augment every batch with companion.augment.random_flip_crop

    def fit_kwargs(self) -> dict:
        from companion.augment import random_flip_crop

        return dict(batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                    label_smoothing=self.label_smoothing, schedule=warmup_cosine(self.warmup),
                    augment=random_flip_crop if self.flip_crop else None)


#: Chapter 3's recipe for ``companion.nets.fashion_cnn``, the Fashion-MNIST speed run (60 s on two
#: CPU cores): AdamW with a warm-up + cosine schedule and label smoothing 0.1. No augmentation: in the
#: four epochs a minute allows, the network underfits, and flips and shifts cost accuracy; they help
#: in longer runs (``flip_crop=True``).
FASHION_SPEEDRUN = Recipe(batch_size=128, lr=3e-3, weight_decay=5e-4, label_smoothing=0.1, warmup=0.2)


# --- history ---------------------------------------------------------------------------------------

@dataclass
class History:
    """What ``fit`` measured, one entry per epoch (``val_*`` stay empty without validation data)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    steps: int = 0  # optimiser steps taken in all

    def plot(self, alt: str = "Learning curves: loss and accuracy per epoch, training solid, validation dashed") -> None:
        """Draw the learning curves (see :func:`companion.plot.learning_curves`)."""
        from companion.plot import learning_curves

        learning_curves(self, alt=alt)


# --- batching ----------------------------------------------------------------------------------------

class TensorBatches:
    """Mini-batches of in-memory ``(images, labels)`` tensors: no DataLoader overhead, optional shuffling."""

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, shuffle: bool = False,
                 drop_last: bool = False, generator: torch.Generator | None = None) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.drop_last, self.generator = batch_size, shuffle, drop_last, generator

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last and n >= self.batch_size else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.images[index], self.labels[index]


def _batches(data: Data, name: str, batch_size: int, shuffle: bool,
             generator: torch.Generator | None) -> Iterable:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, tuple):
        if len(data) != 2 or not all(isinstance(t, Tensor) for t in data):
            raise TypeError(f"{name} as a tuple must be (images, labels) tensors, got {tuple(type(t).__name__ for t in data)}")
        images, labels = data
        if images.dim() < 2 or labels.dim() != 1 or len(images) != len(labels):
            raise ValueError(f"{name} must be images (N, ...) and labels (N,), got shapes "
                             f"{tuple(images.shape)} and {tuple(labels.shape)}")
        if not images.is_floating_point():
            raise TypeError(f"{name} images must be floating point (e.g. scaled to [0, 1]), got {images.dtype}")
        if labels.dtype != torch.long:
            raise TypeError(f"{name} labels must be int64 class indices, got {labels.dtype}")
        return TensorBatches(images, labels, batch_size, shuffle, drop_last=shuffle, generator=generator)
    if isinstance(data, Dataset):
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)
    raise TypeError(f"{name} must be an (images, labels) tuple of tensors, a Dataset or a DataLoader, "
                    f"got {type(data).__name__}")


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); without it bf16 is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def _use_bf16(device: torch.device, bf16: bool | None) -> bool:
    """bfloat16 autocast: as asked, or by default on CPUs that compute it natively (there it halves conv steps)."""
    return (device.type == "cpu" and cpu_has_native_bf16()) if bf16 is None else bf16


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


# --- evaluate and fit -----------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: nn.Module, data: Data, *, batch_size: int = 512, device: torch.device | str | None = None,
             bf16: bool | None = None) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy of a classifier on a data set, in eval mode.

    Args:
        model: maps images ``(N, ...)`` to logits ``(N, num_classes)``.
        data: ``(images, labels)`` tensors, a Dataset of ``(image, label)`` pairs, or a DataLoader.
        bf16: bfloat16 autocast (default: on CPUs with native bfloat16, where it is about twice as fast).

    Returns:
        ``{"loss": float, "acc": float}`` with the accuracy in [0, 1].
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_positive_int(batch_size, "batch_size")
    device = torch.device(device) if device is not None else _default_device()
    bf16 = _use_bf16(device, bf16)
    was_training = model.training
    model.to(device).eval()
    total_loss, correct, count = 0.0, 0, 0
    for images, labels in _batches(data, "data", batch_size, shuffle=False, generator=None):
        images, labels = images.to(device), labels.to(device)
        with _autocast(device, bf16):
            logits = model(images)
        total_loss += nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        count += len(labels)
    model.train(was_training)
    if count == 0:
        raise ValueError("data is empty: nothing to evaluate")
    return {"loss": total_loss / count, "acc": correct / count}


def fit(model: nn.Module, train_data: Data, val_data: Data | None = None, *, epochs: int = 1,
        batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 5e-4,
        optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.AdamW,
        schedule: Schedule | None = None, label_smoothing: float = 0.0,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        augment: Callable[[Tensor], Tensor] | None = None, time_budget: float | None = None,
        device: torch.device | str | None = None, bf16: bool | None = None, progress: bool = True,
        seed: int | None = 0) -> History:
    """Train a classifier and return its :class:`History`.

    Args:
        model: maps images ``(N, ...)`` to logits ``(N, num_classes)``; trained in place.
        train_data: ``(images, labels)`` tensors (fast in-memory batches), a Dataset or a DataLoader.
        val_data: evaluated after every epoch, when given.
        epochs: passes over ``train_data`` (an upper bound when ``time_budget`` is set).
        batch_size: examples per step (ignored for a DataLoader, which has its own).
        lr: the peak learning rate; the schedule multiplies it.
        weight_decay: passed to the optimiser (decoupled in AdamW).
        optimizer: a constructor called as ``optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)``.
        schedule: progress in [0, 1] -> lr multiplier (default :func:`warmup_cosine`).
        label_smoothing: of the default cross-entropy loss (Szegedy et al., 2016).
        loss_fn: ``loss_fn(logits, labels)``; replaces the default cross-entropy.
        augment: applied to every training batch of images on the device, e.g.
            :func:`companion.augment.random_flip_crop`.
        time_budget: stop after this many seconds of training (validation time not counted); the
            schedule then runs on the fraction of the budget spent.
        device: default ``cuda`` when present, else ``cpu``.
        bf16: bfloat16 autocast (default: on CPUs with native bfloat16, where it about halves the step
            time of conv nets; elsewhere off, since emulated bfloat16 is slower than float32).
        progress: show progress bars.
        seed: seeds the shuffling and the augmentation (``None``: not seeded).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds or None, got {time_budget}")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    device = torch.device(device) if device is not None else _default_device()
    bf16 = _use_bf16(device, bf16)
    schedule = schedule or warmup_cosine()
    loss_fn = loss_fn or nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    if seed is not None:
        torch.manual_seed(seed)  # the augmentation's random draws
    batches = _batches(train_data, "train_data", batch_size, shuffle=True, generator=generator)
    if len(batches) == 0:
        raise ValueError("train_data is empty (or smaller than one batch): nothing to train on")

    model.to(device)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = History()
    total_steps, step, trained = epochs * len(batches), 0, 0.0
    epoch_bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not progress, unit="epoch")
    for epoch in epoch_bar:
        model.train()
        loss_sum, correct, count, start = 0.0, 0, 0, time.perf_counter()
        for images, labels in tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=not progress):
            spent = trained + time.perf_counter() - start
            fraction = spent / time_budget if time_budget else step / total_steps
            if time_budget and fraction >= 1:
                break
            for group in opt.param_groups:
                group["lr"] = lr * schedule(fraction)
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if augment is not None:
                images = augment(images)
            with _autocast(device, bf16):
                logits = model(images)
            loss = loss_fn(logits.float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            count += len(labels)
        trained += time.perf_counter() - start
        if count == 0:  # the budget ran out before this epoch took a step
            break
        history.epoch.append(epoch)
        history.train_loss.append(loss_sum / count)
        history.train_acc.append(correct / count)
        history.lr.append(opt.param_groups[0]["lr"])
        history.seconds.append(trained)
        if val_data is not None:
            metrics = evaluate(model, val_data, batch_size=max(batch_size, 256), device=device, bf16=bf16)
            history.val_loss.append(metrics["loss"])
            history.val_acc.append(metrics["acc"])
        epoch_bar.set_postfix({k: f"{getattr(history, k)[-1]:.3f}"
                               for k in ("train_loss", "train_acc", "val_acc") if getattr(history, k)})
        if time_budget and trained >= time_budget:
            break
    epoch_bar.close()
    history.steps = step
    return history
