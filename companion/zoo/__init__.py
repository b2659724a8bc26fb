"""The course's model zoo: small checkpoints trained on the course's offline data, shipped in the package.

Several chapters need a trained network (the teacher of chapter 14, the pretrained backbone of
chapter 12, the classifier of later chapters), and no pretrained weights install offline. Each
checkpoint here is trained by a committed recipe (:data:`RECIPES`, in ``recipes.py``) with
``python -m companion.zoo train NAME``, which writes the state dict ``weights/NAME.pt`` and its
record ``weights/NAME.json`` (test accuracy, training time, parameters, size, sha256). A test
re-measures every recorded accuracy on the Fashion-MNIST test set.

* ``load(name)``: the trained network, in eval mode, on the CPU (its file's sha256 checked).
* ``record(name)``: what its training run recorded.
* ``imagenet(arch)``: torchvision's ImageNet weights where a network exists (Colab, Kaggle); offline
  it fails at once with a message naming the zoo checkpoint to use instead.
* ``python -m companion.zoo list``: the checkpoints and their records.

Introduced in chapter 12 (transfer learning) and chapter 14 (knowledge distillation).
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from companion.zoo.recipes import NAMES, RECIPES, ZooRecipe, get
from companion.zoo.training import WEIGHTS_DIR, Record, fashion_subset, read_record, sha256, weights_path


def train_command(name: str) -> str:
    return f"python -m companion.zoo train {name}"


def record(name: str) -> Record:
    """The record of checkpoint ``name`` (its test accuracy, training seconds, parameters, bytes, sha256).

    Raises:
        KeyError: no recipe of that name.
        FileNotFoundError: the checkpoint has not been trained; the message gives the command.
    """
    get(name)
    found = read_record(name)
    if found is None:
        raise FileNotFoundError(f"zoo checkpoint {name!r} has no record in {WEIGHTS_DIR}; "
                                f"train it with `{train_command(name)}`")
    return found


def load(name: str, *, check: bool = True) -> nn.Module:
    """The trained network ``name`` (see :data:`RECIPES`), in eval mode, on the CPU.

    Args:
        name: e.g. ``"fmnist_cnn"`` or ``"fmnist5_backbone"``.
        check: compare the file's sha256 with its record first.

    Raises:
        KeyError: no recipe of that name (the message lists the zoo).
        FileNotFoundError: the checkpoint file is missing; the message names it and the command
            that trains it.
        RuntimeError: the file's sha256 differs from its record (a partial copy, a Git LFS
            pointer, or a retrained file without its new record).
    """
    recipe = get(name)
    path = weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"zoo checkpoint {name!r} is missing: no file {path}. Train it with "
                                f"`{train_command(name)}` (from the repository root), or reinstall "
                                "the companion package, which ships it")
    if check:
        expected = record(name).sha256
        actual = sha256(path)
        if actual != expected:
            raise RuntimeError(f"{path} does not match its record {path.with_suffix('.json')} "
                               f"(sha256 {actual[:12]}... instead of {expected[:12]}...); retrain it "
                               f"with `{train_command(name)}`, which rewrites both")
    model = recipe.build()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


# --- torchvision's ImageNet weights, where a network exists ----------------------------------------

#: What to use instead of ImageNet weights offline.
OFFLINE_ALTERNATIVES = {
    "fmnist5_backbone": "a backbone pretrained on Fashion-MNIST classes 5-9, to transfer to 0-4",
    "fmnist_cnn": "a classifier of all 10 Fashion-MNIST classes",
}


def _reachable(url: str, timeout: float) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_message(arch: str, why: str, alternative: str | None) -> str:
    names = [alternative] if alternative else list(OFFLINE_ALTERNATIVES)
    options = " or ".join(f"companion.zoo.load({n!r}) ({OFFLINE_ALTERNATIVES.get(n, get(n).description)})"
                          for n in names)
    return (f"torchvision's ImageNet weights for {arch!r} are not available: {why}. Offline, use the "
            f"course's zoo instead: {options}. With a network (Colab, Kaggle) the same call "
            "downloads the weights once into torch's hub cache.")


def imagenet(arch: str, *, alternative: str | None = None, timeout: float = 3.0) -> nn.Module:
    """torchvision's ImageNet-trained ``arch`` (e.g. ``"resnet18"``), in eval mode, with its default weights.

    Uses the copy in torch's hub cache when there is one; otherwise downloads it, after checking
    within ``timeout`` seconds that the download server answers, so that an offline machine fails
    at once instead of hanging.

    Args:
        arch: a torchvision classification model name (``torchvision.models.list_models()``).
        alternative: the zoo checkpoint the error message recommends offline (default: all of them).
        timeout: seconds to wait for the download server.

    Raises:
        ValueError: ``arch`` is not a torchvision model with weights, or ``alternative`` is unknown.
        RuntimeError: the weights are not cached and cannot be downloaded; the message names the
            zoo checkpoint to use instead.
    """
    from torchvision import models

    if alternative is not None:
        get(alternative)
    try:
        weights = models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError) as error:
        raise ValueError(f"{arch!r} is not a torchvision model with pretrained weights; see "
                         "torchvision.models.list_models()") from error
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if not cached.is_file() and not _reachable(weights.url, timeout):
        raise RuntimeError(_offline_message(arch, f"no copy in {cached.parent} and "
                                                  f"{urlparse(weights.url).hostname} cannot be reached",
                                            alternative))
    try:
        return models.get_model(arch, weights=weights).eval()
    except Exception as error:  # a proxy, a truncated download, a full disk
        raise RuntimeError(_offline_message(arch, f"loading them failed ({error})", alternative)) from error


__all__ = ["NAMES", "OFFLINE_ALTERNATIVES", "RECIPES", "Record", "WEIGHTS_DIR", "ZooRecipe", "fashion_subset",
           "get", "imagenet", "load", "record", "train_command"]
