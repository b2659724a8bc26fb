"""Training a zoo checkpoint and writing its record: what ``python -m companion.zoo train NAME`` runs.

The supervised trainer is chapter 3's recipe (:func:`companion.train.fit` with AdamW, warm-up + cosine,
label smoothing) on the Fashion-MNIST classes the recipe names. The record is a small JSON file
next to the checkpoint with the recorded metric (test accuracy), the training time, the parameter
count, the file's size and its sha256, which :func:`companion.zoo.load` checks.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # recipes.py imports this module's trainer and metric
    from companion.zoo.recipes import ZooRecipe

#: Where the checkpoints and their records live (shipped in the package).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Record:
    """What training a recipe produced, as written to ``weights/NAME.json``.

    Attributes:
        name: the recipe's name.
        metric: the recorded number (test accuracy in [0, 1] for the supervised recipes).
        metric_name: what ``metric`` measures.
        test_images: how many test images the metric used.
        seconds: wall-clock training time.
        parameters: the network's parameter count.
        bytes: the checkpoint file's size.
        sha256: the checkpoint file's hash, checked on loading.
        trained_on: machine, threads, torch version and date of the run.
    """

    name: str
    metric: float
    metric_name: str
    test_images: int
    seconds: float
    parameters: int
    bytes: int
    sha256: str
    trained_on: str

    @property
    def test_acc(self) -> float:
        return self.metric


def weights_path(name: str, directory: Path | None = None) -> Path:
    return (directory or WEIGHTS_DIR) / f"{name}.pt"


def record_path(name: str, directory: Path | None = None) -> Path:
    return (directory or WEIGHTS_DIR) / f"{name}.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_record(name: str, directory: Path | None = None) -> Record | None:
    """The record of ``name``, or ``None`` when it has not been trained yet."""
    path = record_path(name, directory)
    if not path.is_file():
        return None
    return Record(**json.loads(path.read_text()))


def fashion_subset(train: bool, classes: tuple[int, ...], limit: int | None = None,
                   seed: int = 0) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST images of some classes, relabelled ``0..len(classes)-1`` in the order given.

    Returns:
        ``images`` float32 ``(N, 1, 28, 28)`` in [0, 1] and ``labels`` int64 ``(N,)``.
    """
    from companion import data

    if not classes or len(set(classes)) != len(classes) or not all(0 <= c < 10 for c in classes):
        raise ValueError(f"classes must be distinct Fashion-MNIST classes in 0..9, got {classes!r}")
    images, labels = data.tensors(data.fashion_mnist(train=train))
    lookup = torch.full((10,), -1, dtype=torch.long)
    lookup[list(classes)] = torch.arange(len(classes))
    keep = lookup[labels] >= 0
    images, labels = images[keep], lookup[labels[keep]]
    if limit is not None and limit < len(labels):
        index = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:limit]
        images, labels = images[index], labels[index]
    return images, labels


def supervised(recipe: ZooRecipe) -> nn.Module:
    """Train ``recipe.build()`` on its classes with :func:`companion.train.fit`; return the network."""
    from companion import train

    images, labels = fashion_subset(True, recipe.classes, recipe.train_images, recipe.seed)
    torch.manual_seed(recipe.seed)
    model = recipe.build()
    train.fit(model, (images, labels), epochs=recipe.epochs, seed=recipe.seed, device="cpu",
              **recipe.fit_recipe().fit_kwargs())
    return model


def test_accuracy(model: nn.Module, recipe: ZooRecipe) -> tuple[float, int]:
    """Accuracy on the test images of ``recipe.classes``, evaluated in float32 on the CPU."""
    from companion import train

    images, labels = fashion_subset(False, recipe.classes)
    return train.evaluate(model, (images, labels), device="cpu", bf16=False)["acc"], len(labels)


def measure(name: str, model: nn.Module | None = None) -> tuple[float, int]:
    """Re-compute the recorded metric of checkpoint ``name`` (the zoo test compares it to the record):
    ``(metric, images used)``."""
    from companion.zoo import get, load

    recipe = get(name)
    return recipe.metric(model if model is not None else load(name), recipe)


def _load() -> str:
    """The machine's load when training ended (the seconds depend on it)."""
    try:
        return f", load average {os.getloadavg()[1]:.1f} over 5 min"
    except OSError:
        return ""


def train_and_record(recipe: ZooRecipe | str, directory: Path | None = None) -> Record:
    """Train a recipe (or the recipe called so), save its state dict to ``NAME.pt`` and its
    :class:`Record` to ``NAME.json`` in ``directory`` (default :data:`WEIGHTS_DIR`)."""
    from companion.zoo.recipes import get

    recipe = get(recipe) if isinstance(recipe, str) else recipe
    name = recipe.name
    directory = directory or WEIGHTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = recipe.trainer(recipe)
    seconds = time.perf_counter() - start
    model = model.cpu().eval()
    path = weights_path(name, directory)
    partial = path.with_suffix(".partial")
    torch.save({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, partial)
    partial.replace(path)
    metric, count = recipe.metric(model, recipe)
    metric_name = ("test accuracy (float32)" if recipe.metric is test_accuracy
                   else getattr(recipe.metric, "__name__", repr(recipe.metric)))
    machine = f"{platform.machine()} {platform.processor() or ''}".strip()
    record = Record(
        name=name, metric=round(float(metric), 6), metric_name=metric_name, test_images=int(count),
        seconds=round(seconds, 1), parameters=sum(p.numel() for p in model.parameters()),
        bytes=path.stat().st_size, sha256=sha256(path),
        trained_on=(f"{machine}, {torch.get_num_threads()} threads "
                    f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), torch "
                    f"{torch.__version__}, {datetime.date.today().isoformat()}{_load()}"),
    )
    record_path(name, directory).write_text(json.dumps(asdict(record), indent=1) + "\n")
    return record


__all__ = ["Record", "WEIGHTS_DIR", "fashion_subset", "measure", "read_record", "record_path", "sha256",
           "supervised", "test_accuracy", "train_and_record", "weights_path"]
