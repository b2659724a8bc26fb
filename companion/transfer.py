"""Transfer learning helpers: freezing, batch norm in inference mode, k-shot subsets.

A network trained on one task (the *source*) is reused on another (the *target*) in one of
three ways, compared in chapter 12:

* **feature extraction**: the pretrained backbone is frozen (:func:`freeze`) and only a new head
  is trained on its features;
* **fine-tuning**: after feature extraction, the top layers of the backbone are unfrozen
  (:func:`unfreeze_top`) and trained too, with a lower learning rate;
* **training from scratch**: the same architecture from random weights, for comparison.

Yosinski et al., *How transferable are features in deep neural networks?*, NeurIPS 2014
(https://arxiv.org/abs/1411.1792), measure how the features of each layer transfer; the Keras
guide *Transfer learning & fine-tuning* (https://keras.io/guides/transfer_learning/) gives the
workflow both frameworks follow here.

Batch norm needs care under transfer (Kolesnikov et al., *Big Transfer (BiT)*, ECCV 2020,
https://arxiv.org/abs/1912.11370, who replace it by group norm for that reason): its running
statistics were measured on the source data, and a frozen backbone put in training mode
(``model.train()``, which every training loop calls) normalises with the target batch's
statistics and overwrites the running ones. :func:`batchnorm_eval` and
:class:`TransferClassifier` keep the backbone's batch norms in inference mode, which is what
Keras does for a batch norm layer whose ``trainable`` is ``False`` (in Keras 3 a base called with
``training=False`` is not enough once it is unfrozen: ``fit`` overrides it, keras-team/keras#20285); :func:`recompute_batchnorm_stats`
instead re-estimates the statistics on target images, on purpose (AdaBN: Li et al., 2016,
https://arxiv.org/abs/1603.04779).

Introduced in chapter 12, *Transfer learning, PyTorch and Keras 3*.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from companion._checks import check_positive_int, check_tensor
from companion.norm import BatchNorm2d as ScratchBatchNorm2d

__all__ = ["TransferClassifier", "batchnorm_eval", "batchnorm_layers", "extract_features", "few_shot_subset",
           "freeze", "recompute_batchnorm_stats", "trainable_parameters", "unfreeze", "unfreeze_top"]

#: The batch-norm classes whose running statistics the helpers manage: torch's (1d, 2d, 3d, sync)
#: and the companion's own (chapter 3).
BATCHNORM_TYPES: tuple[type[nn.Module], ...] = (_BatchNorm, ScratchBatchNorm2d)


def _check_module(module: object, name: str = "module") -> nn.Module:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
    return module


def freeze(module: nn.Module) -> nn.Module:
    """Stop training every parameter of ``module`` (``requires_grad = False``); returns ``module``.

    The PyTorch counterpart of Keras's ``base.trainable = False``, except for batch norm: freezing
    does not change the mode a layer runs in (see :func:`batchnorm_eval`).
    """
    for p in _check_module(module).parameters():
        p.requires_grad_(False)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Train every parameter of ``module`` again (``requires_grad = True``); returns ``module``."""
    for p in _check_module(module).parameters():
        p.requires_grad_(True)
    return module


def unfreeze_top(module: nn.Module, n: int) -> nn.Module:
    """Freeze ``module``, then unfreeze its last ``n`` direct children that have parameters.

    For a backbone ``nn.Sequential(conv, bn, relu, pool, conv, bn, relu, pool)``, ``n=2`` unfreezes
    the last convolution and its batch norm: layers without parameters (ReLU, pooling) are not
    counted, as in Keras's ``for layer in base.layers[-n:]`` over the layers with weights.

    Raises:
        ValueError: when ``n`` is not a positive int, or larger than the number of children with
            parameters.
    """
    check_positive_int(n, "n")
    layers = [child for child in _check_module(module).children() if any(True for _ in child.parameters())]
    if n > len(layers):
        raise ValueError(f"n={n}, but the module has only {len(layers)} direct children with parameters "
                         f"({', '.join(type(c).__name__ for c in layers)})")
    freeze(module)
    for child in layers[-n:]:
        unfreeze(child)
    return module


def trainable_parameters(module: nn.Module) -> int:
    """The number of parameters that an optimiser would update (``requires_grad=True``)."""
    return sum(p.numel() for p in _check_module(module).parameters() if p.requires_grad)


def batchnorm_layers(module: nn.Module) -> list[nn.Module]:
    """Every batch-norm layer inside ``module`` (itself included), in order."""
    return [m for m in _check_module(module).modules() if isinstance(m, BATCHNORM_TYPES)]


def batchnorm_eval(module: nn.Module) -> nn.Module:
    """Put every batch norm inside ``module`` in inference mode; the other layers keep their mode.

    In inference mode a batch norm normalises with its running statistics and does not update
    them, whatever the batch. Call it *after* ``model.train()`` (which sets every layer to
    training mode); :class:`TransferClassifier` does so by itself. Returns ``module``.
    """
    for m in batchnorm_layers(module):
        m.eval()
    return module


class TransferClassifier(nn.Module):
    """A pretrained ``backbone`` and a new ``head``, whose backbone batch norms stay in inference mode.

    ``model.train()`` puts the head (and the backbone's other layers, e.g. dropout) in training
    mode, but leaves the backbone's batch norms in inference mode when ``freeze_batchnorm`` is
    true: their running statistics stay those of the source data, both while the backbone is
    frozen (feature extraction) and after its top is unfrozen (fine-tuning). This is what Keras
    does for batch norm layers left frozen (``trainable = False``).

    Like every classifier of the course it has the halves ``features(x)`` and ``head(z)``.

    Args:
        backbone: maps images ``(N, C, H, W)`` to features.
        head: maps features to logits ``(N, num_classes)``.
        freeze_batchnorm: keep the backbone's batch norms in inference mode.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, freeze_batchnorm: bool = True) -> None:
        super().__init__()
        self.backbone = _check_module(backbone, "backbone")
        self.classifier = _check_module(head, "head")
        self.freeze_batchnorm = freeze_batchnorm

    def train(self, mode: bool = True) -> TransferClassifier:
        super().train(mode)
        if self.freeze_batchnorm:
            batchnorm_eval(self.backbone)
        return self

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def head(self, z: Tensor) -> Tensor:
        return self.classifier(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@torch.no_grad()
def extract_features(backbone: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    """The backbone's features of ``images`` in inference mode, batch by batch, without gradients.

    Args:
        backbone: maps ``(N, C, H, W)`` to features ``(N, ...)``.
        images: ``(N, C, H, W)``, floating point.

    Returns:
        ``(N, ...)``: the features, on the images' device.
    """
    _check_module(backbone, "backbone")
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_positive_int(batch_size, "batch_size")
    was_training = backbone.training
    backbone.eval()
    try:
        return torch.cat([backbone(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    finally:
        backbone.train(was_training)


@torch.no_grad()
def recompute_batchnorm_stats(module: nn.Module, images: Tensor, batch_size: int = 256) -> nn.Module:
    """Re-estimate every batch norm's running statistics on ``images`` (AdaBN); returns ``module``.

    The running statistics are reset and replaced by the cumulative average of the batch
    statistics over ``images`` (``momentum=None`` for the pass); parameters are not touched and
    the module is left in inference mode. With one batch holding all the images, each running
    mean is the mean of its layer's input over the images (and each running variance the
    unbiased variance).

    Args:
        images: ``(N, C, H, W)``, floating point, e.g. unlabelled images of the target task.
    """
    layers = batchnorm_layers(module)
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_positive_int(batch_size, "batch_size")
    if not layers:
        raise ValueError("the module has no batch-norm layer: there are no statistics to recompute")
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches of this pass
    module.eval()
    for m in layers:
        m.train()
    try:
        for i in range(0, len(images), batch_size):
            module(images[i:i + batch_size])
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        module.eval()
    return module


def few_shot_subset(labels: Tensor, k: int, seed: int = 0) -> Tensor:
    """Indices of ``k`` examples of every class in ``labels``, drawn at random with ``seed``.

    The draw of each class is a fixed random order of its examples, so for one seed the subsets
    are nested: the ``k=5`` subset contains the ``k=1`` subset, and learning curves over ``k``
    compare the same images plus more.

    Args:
        labels: ``(N,)`` integer class labels.
        k: examples per class.
        seed: the seed of the draw.

    Returns:
        ``(k * num_classes,)`` int64 indices into ``labels``, class by class (classes in increasing
        order).

    Raises:
        ValueError: when ``k`` is not a positive int, or a class has fewer than ``k`` examples.
    """
    check_tensor(labels, "labels", ndim=1, shape_hint="(N,)")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got {labels.dtype}")
    check_positive_int(k, "k")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    chosen = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()  # (n_c,) indices of class c
        if len(members) < k:
            raise ValueError(f"class {c} has only {len(members)} examples, fewer than k={k}")
        order = torch.randperm(len(members), generator=generator)  # the same for every k
        chosen.append(members[order[:k]])
    return torch.cat(chosen)
