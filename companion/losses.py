"""Label smoothing: cross-entropy against a softened target, written out from its definition.

Szegedy, Vanhoucke, Ioffe, Shlens & Wojna, *Rethinking the Inception Architecture for Computer
Vision*, CVPR 2016 (https://arxiv.org/abs/1512.00567), section 7 ("Model regularization via label
smoothing"). With ``K`` classes and smoothing ``eps``, the one-hot target of label ``y`` is replaced
by the mixture of it and the uniform distribution::

    q_k = (1 - eps) * [k == y] + eps / K

and the loss is the cross-entropy ``H(q, p) = -sum_k q_k log p_k`` with ``p = softmax(z)``, which
splits into ``(1 - eps) * (-log p_y) + eps * mean_k(-log p_k)``. A network can no longer drive the
loss to 0 by letting its largest logit run away from the others, which the paper says makes the
model "less confident" and "more adaptable". Muller, Kornblith & Hinton, *When Does Label Smoothing
Help?*, NeurIPS 2019 (https://arxiv.org/abs/1906.02629), show that it also improves calibration.

The same loss as ``torch.nn.functional.cross_entropy(z, y, label_smoothing=eps)`` (without class
weights or ``ignore_index``), and the tests check it against that function, values and gradients.

Introduced in chapter 6, *GoogLeNet and Inception v1-v4*.
"""

from __future__ import annotations

import torch
from torch import Tensor

from companion._checks import check_positive_int

REDUCTIONS = ("mean", "sum", "none")


def smooth_targets(labels: Tensor, num_classes: int, label_smoothing: float = 0.1) -> Tensor:
    """The smoothed target distributions ``(1 - eps) * one_hot(y) + eps / K``.

    Args:
        labels (Tensor[N], int64): class indices in ``[0, num_classes)``.
        num_classes: ``K``.
        label_smoothing: ``eps`` in ``[0, 1]``; 0 gives the one-hot targets.

    Returns:
        Tensor[N, K] (float32): each row sums to 1, with ``1 - eps + eps / K`` at the label.

    Raises:
        TypeError, ValueError: labels not an int64 vector, labels out of range, ``eps`` outside [0, 1].
    """
    check_positive_int(num_classes, "num_classes")
    _check_labels(labels, num_classes)
    _check_smoothing(label_smoothing)
    one_hot = torch.zeros(len(labels), num_classes, device=labels.device)  # (N, K)
    one_hot[torch.arange(len(labels), device=labels.device), labels] = 1.0
    return (1 - label_smoothing) * one_hot + label_smoothing / num_classes  # (N, K)


def label_smoothing_cross_entropy(logits: Tensor, labels: Tensor, label_smoothing: float = 0.1,
                                  reduction: str = "mean") -> Tensor:
    """Cross-entropy of ``softmax(logits)`` against the smoothed targets of :func:`smooth_targets`.

    ``loss_i = (1 - eps) * (-log p_{i, y_i}) + (eps / K) * sum_k (-log p_{ik})``, with the log-softmax
    computed stably (``z - logsumexp(z)``).

    Args:
        logits (Tensor[N, K]): raw scores, floating point.
        labels (Tensor[N], int64): class indices in ``[0, K)``.
        label_smoothing: ``eps`` in ``[0, 1]``.
        reduction: ``"mean"`` (over the batch), ``"sum"`` or ``"none"`` (one loss per example).

    Returns:
        A scalar tensor, or Tensor[N] for ``reduction="none"``.

    Raises:
        TypeError, ValueError: wrong shapes or dtypes, labels out of range, ``eps`` outside [0, 1],
            an unknown reduction.
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        got = (f"shape {tuple(logits.shape)}, dtype {logits.dtype}" if isinstance(logits, Tensor)
               else type(logits).__name__)
        raise TypeError(f"logits must be a floating-point Tensor[N, K], got {got}")
    _check_labels(labels, logits.shape[1])
    if len(labels) != len(logits):
        raise ValueError(f"logits has {len(logits)} rows but labels has {len(labels)} entries; they must match")
    _check_smoothing(label_smoothing)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (N, K) - (N, 1) -> (N, K): log softmax
    nll = -log_p.gather(1, labels[:, None])[:, 0]  # (N, 1) -> (N,): -log p of the label
    uniform = -log_p.mean(dim=1)  # (N,): cross-entropy against the uniform distribution
    loss = (1 - label_smoothing) * nll + label_smoothing * uniform  # (N,)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _check_labels(labels: object, num_classes: int) -> None:
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.dtype != torch.int64:
        got = (f"shape {tuple(labels.shape)}, dtype {labels.dtype}" if isinstance(labels, Tensor)
               else type(labels).__name__)
        raise TypeError(f"labels must be an int64 Tensor[N] of class indices, got {got}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values from {int(labels.min())} "
                         f"to {int(labels.max())}")


def _check_smoothing(label_smoothing: object) -> None:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
            or not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")


__all__ = ["REDUCTIONS", "label_smoothing_cross_entropy", "smooth_targets"]
