"""The zoo's recipes: how each checkpoint is trained, as data.

One :class:`ZooRecipe` per checkpoint, in :data:`RECIPES`. A recipe holds the network's builder
(a plain callable, e.g. ``functools.partial(nets.fashion_cnn, num_classes=5)``), the data (the
Fashion-MNIST classes it uses, how many training images), the training budget and seed, and two
more functions: the trainer, which builds and trains the network, and the metric that is
recorded and re-checked by the tests (by default the test accuracy on those classes).

To add a checkpoint, append a recipe to :data:`RECIPES` and run
``python -m companion.zoo train NAME``; the command writes ``weights/NAME.pt`` and the record
``weights/NAME.json`` (metric, seconds, parameters, bytes, sha256) next to it. A recipe trained
differently (self-supervised, say) sets ``trainer`` and ``metric`` to its own functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from torch import nn

from companion import nets, simclr
from companion.zoo.training import supervised, test_accuracy

ALL_CLASSES: tuple[int, ...] = tuple(range(10))


@dataclass(frozen=True)
class ZooRecipe:
    """How one zoo checkpoint is trained.

    Attributes:
        name: the checkpoint's name (``weights/NAME.pt``).
        description: one line on what it is and where the course uses it.
        builder: called with no arguments, returns the untrained network.
        classes: the Fashion-MNIST classes used, relabelled ``0..len(classes)-1`` in this order.
        train_images: a random subset of the training images of those classes (``None``: all).
        epochs, batch_size, lr, weight_decay, label_smoothing, warmup, flip_crop: as in
            :class:`companion.train.Recipe` and :func:`companion.train.fit`.
        seed: seeds the initialisation, the subset, the shuffling and the augmentation.
        trainer: called as ``trainer(recipe)``, returns the trained network.
        metric: called as ``metric(model, recipe)``, returns the recorded
            ``(number, images used)`` (default: accuracy on the test images of ``classes``, in
            float32).
        extra: anything else a custom trainer needs.
    """

    name: str
    description: str
    builder: Callable[[], nn.Module]
    classes: tuple[int, ...] = ALL_CLASSES
    train_images: int | None = None
    epochs: int = 8
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup: float = 0.2
    flip_crop: bool = False
    seed: int = 0
    trainer: Callable[[ZooRecipe], nn.Module] = supervised
    metric: Callable[[nn.Module, ZooRecipe], tuple[float, int]] = test_accuracy
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def build(self) -> nn.Module:
        """The untrained network (call ``torch.manual_seed`` first for a given initialisation)."""
        return self.builder()

    def fit_recipe(self):
        """The :class:`companion.train.Recipe` of this recipe's optimiser settings."""
        from companion.train import Recipe

        return Recipe(batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                      label_smoothing=self.label_smoothing, warmup=self.warmup, flip_crop=self.flip_crop)

    def replace(self, **changes: Any) -> ZooRecipe:
        """A copy with some fields changed (e.g. fewer epochs for a quick trial)."""
        return dataclasses.replace(self, **changes)


#: Every checkpoint of the zoo, in the order ``python -m companion.zoo list`` shows them.
RECIPES: tuple[ZooRecipe, ...] = (
    ZooRecipe(
        name="fmnist_cnn",
        description="chapter 3's fashion_cnn on all 10 classes: the teacher of chapter 14",
        builder=partial(nets.fashion_cnn, num_classes=10),
        epochs=8,
    ),
    ZooRecipe(
        name="fmnist5_backbone",
        description="fashion_cnn on classes 5-9 only: the pretrained backbone of chapter 12",
        builder=partial(nets.fashion_cnn, num_classes=5),
        classes=(5, 6, 7, 8, 9),
        epochs=8,
    ),
    ZooRecipe(
        name="simclr_encoder",
        description="SimCLR pre-training without labels on the 60,000 training images: chapter 13's encoder",
        builder=simclr.SimCLR,
        epochs=2,
        batch_size=128,
        lr=1e-3,
        weight_decay=1e-4,
        label_smoothing=0.0,
        trainer=simclr.zoo_pretrain,
        metric=simclr.probe_accuracy_1pct_labels,
        extra={"temperature": 0.5},
    ),
)

NAMES: tuple[str, ...] = tuple(recipe.name for recipe in RECIPES)


def get(name: str) -> ZooRecipe:
    """The recipe called ``name``; ``KeyError`` lists the known names."""
    for recipe in RECIPES:
        if recipe.name == name:
            return recipe
    raise KeyError(f"no zoo checkpoint called {name!r}; the zoo has {', '.join(NAMES)}")


__all__ = ["ALL_CLASSES", "NAMES", "RECIPES", "ZooRecipe", "get"]
