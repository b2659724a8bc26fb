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

NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR: Chen, Kornblith, Norouzi &
Hinton, *A Simple Framework for Contrastive Learning of Visual Representations*, ICML 2020
(https://arxiv.org/abs/2002.05709), equation (1). Each of the 2N views of a batch must pick out its
partner among the other 2N - 1 views by cosine similarity over a temperature; :func:`nt_xent` writes
it out, and the tests check it against ``F.cross_entropy`` on the masked similarity matrix. Introduced
in chapter 13, *Self-supervised learning: SimCLR*.

Knowledge distillation: Hinton, Vinyals & Dean, *Distilling the Knowledge in a Neural Network*,
2015 (https://arxiv.org/abs/1503.02531). A small student learns from a trained teacher's softened
probabilities (its "soft targets" at a temperature T) as well as from the labels;
:func:`distillation_loss` writes it out, and the tests check it against ``F.kl_div`` and
``F.cross_entropy``. Introduced in chapter 14, *Knowledge distillation*.

Metric learning for faces: the contrastive loss of Hadsell, Chopra & LeCun, *Dimensionality
Reduction by Learning an Invariant Mapping*, CVPR 2006 (pairs: pull same-identity embeddings
together, push others beyond a margin), the triplet loss of Schroff, Kalenichenko & Philbin,
*FaceNet*, CVPR 2015 (https://arxiv.org/abs/1503.03832), and its batch-hard form of Hermans, Beyer
& Leibe, *In Defense of the Triplet Loss for Person Re-Identification*, 2017
(https://arxiv.org/abs/1703.07737). Introduced in chapter 19, *Face verification and recognition*.

The KL term of the variational autoencoder (Kingma & Welling, *Auto-Encoding Variational Bayes*,
ICLR 2014, https://arxiv.org/abs/1312.6114, appendix B), :func:`kl_divergence_normal`. Introduced
in chapter 21, *Variational autoencoders*.

Class weights for imbalanced data, :func:`balanced_class_weights`: ``n / (C n_c)``, scikit-learn's
"balanced" heuristic (King & Zeng, 2001). Introduced in chapter 25, *Medical imaging*.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from companion._checks import check_positive_int, check_same_device_dtype, check_tensor

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


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """SimCLR's NT-Xent loss on two batches of projections, the two views of the same N images.

    The 2N projections are L2-normalised, so that their dot products are cosine similarities
    ``s_ij``. Anchor ``i`` (one of the 2N) has one positive, the other view of its image, ``p(i)``;
    the other 2N - 2 projections are its negatives, and ``i`` itself takes no part::

        loss_i = -log( exp(s_{i,p(i)} / T) / sum_{k != i} exp(s_ik / T) )

    averaged over the 2N anchors (the paper's equation (1) and its Algorithm 1). It is the
    cross-entropy of a (2N - 1)-way classification whose logits are the similarities over ``T``.

    Args:
        z1 (Tensor[N, D]): projections of the first view; row ``i`` is image ``i``.
        z2 (Tensor[N, D]): projections of the second view, in the same order.
        temperature: ``T`` > 0; lower values weigh the hardest negatives more.

    Returns:
        A scalar tensor: the mean over the 2N anchors.

    Raises:
        TypeError, ValueError: inputs that are not floating-point ``(N, D)`` tensors, shapes that
            differ, N < 2 (no negatives), ``temperature <= 0``.
    """
    check_tensor(z1, "z1", ndim=2, shape_hint="(N, D)", floating=True)
    check_tensor(z2, "z2", ndim=2, shape_hint="(N, D)", floating=True)
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape (N, D), the two views of the same N images; "
                         f"got {tuple(z1.shape)} and {tuple(z2.shape)}")
    check_same_device_dtype(z1, z2, "z1", "z2")
    n = z1.shape[0]
    if n < 2:
        raise ValueError(f"NT-Xent needs N >= 2 images (an anchor's negatives are the other images' views), got N = {n}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    z = torch.cat([z1, z2])  # (2N, D): views 1 of all images, then views 2
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (2N, D), unit rows
    logits = z @ z.T / temperature  # (2N, D) @ (D, 2N) -> (2N, 2N): s_ij / T
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)  # (2N, 2N)
    logits = logits.masked_fill(self_mask, float("-inf"))  # the anchor is not its own candidate
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # (2N,): p(i)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (2N, 2N) - (2N, 1) -> (2N, 2N)
    return -log_prob[torch.arange(2 * n, device=z.device), positive].mean()


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor,
                      temperature: float = 4.0, alpha: float = 0.9) -> Tensor:
    """Hinton et al.'s knowledge-distillation loss: soft targets at a temperature plus the hard labels.

    With ``T`` the temperature, ``p^T = softmax(z_teacher / T)`` and ``q^T = softmax(z_student / T)``::

        loss = alpha * T**2 * KL(p^T || q^T) + (1 - alpha) * cross_entropy(z_student, y)

    where ``KL(p || q) = sum_k p_k (log p_k - log q_k)`` is summed over the classes and averaged
    over the batch, and the cross-entropy (temperature 1) is averaged over the batch. The gradient
    of the soft term with respect to a student logit is ``(q^T_k - p^T_k) / T``, which shrinks like
    ``1 / T**2`` once the logits are small next to ``T``; the factor ``T**2`` undoes that, so the two
    terms keep their relative weight when ``T`` changes (Hinton, Vinyals & Dean, *Distilling the
    Knowledge in a Neural Network*, 2015, https://arxiv.org/abs/1503.02531, section 2).
    ``teacher_logits`` is detached: no gradient flows into the teacher.

    Args:
        student_logits (Tensor[N, K]): the student's raw scores, floating point.
        teacher_logits (Tensor[N, K]): the teacher's raw scores for the same images (cast to the
            student's dtype).
        labels (Tensor[N], int64): the true classes, in ``[0, K)``.
        temperature: ``T`` > 0; 1 gives the teacher's ordinary probabilities, larger values softer ones.
        alpha: weight of the soft term in ``[0, 1]``; 0 gives the plain cross-entropy.

    Returns:
        A scalar tensor.

    Raises:
        TypeError, ValueError: logits that are not floating-point ``(N, K)`` tensors of the same
            shape, an empty batch, labels that are not int64 ``(N,)`` in ``[0, K)``, ``temperature``
            not a finite number > 0, ``alpha`` outside ``[0, 1]``.
    """
    check_tensor(student_logits, "student_logits", ndim=2, shape_hint="(N, K)", floating=True)
    check_tensor(teacher_logits, "teacher_logits", ndim=2, shape_hint="(N, K)", floating=True)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits and teacher_logits must have the same shape (N, K), the same "
                         f"images and classes; got {tuple(student_logits.shape)} and "
                         f"{tuple(teacher_logits.shape)}")
    if student_logits.device != teacher_logits.device:
        raise ValueError(f"student_logits and teacher_logits must be on the same device, got "
                         f"{student_logits.device} and {teacher_logits.device}")
    n, k = student_logits.shape
    if n == 0:
        raise ValueError("student_logits is an empty batch (N = 0): nothing to average over")
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64:
        got = f"dtype {labels.dtype}" if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"labels must be an int64 Tensor[N] of class indices, got {got}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape (N,) = ({n},) to match the logits, got {tuple(labels.shape)}")
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise ValueError(f"labels must lie in [0, {k}), got values from {int(labels.min())} to {int(labels.max())}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or not temperature > 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1] (the weight of the soft term), got {alpha!r}")
    t = float(temperature)
    teacher = teacher_logits.detach().to(student_logits.dtype)  # no gradient into the teacher

    def log_softmax(z: Tensor) -> Tensor:  # (N, K) -> (N, K), computed stably
        return z - torch.logsumexp(z, dim=1, keepdim=True)

    log_p = log_softmax(teacher / t)  # (N, K): the teacher's soft targets, log p^T
    log_q = log_softmax(student_logits / t)  # (N, K): the student at the same temperature, log q^T
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()  # sum over classes, mean over the batch
    log_q1 = log_softmax(student_logits)  # (N, K): temperature 1 for the hard labels
    hard = -log_q1[torch.arange(n, device=labels.device), labels].mean()
    return alpha * t * t * kl + (1 - alpha) * hard


__all__ = ["REDUCTIONS", "distillation_loss", "label_smoothing_cross_entropy", "nt_xent", "smooth_targets"]


# --- metric learning (chapter 19) -------------------------------------------------------------------

def _check_pair(x1: object, x2: object, name1: str, name2: str) -> None:
    check_tensor(x1, name1, ndim=2, shape_hint="(N, D)", floating=True)
    check_tensor(x2, name2, ndim=2, shape_hint="(N, D)", floating=True)
    if x1.shape != x2.shape:
        raise ValueError(f"{name1} {tuple(x1.shape)} and {name2} {tuple(x2.shape)} must have the same shape (N, D)")


def contrastive_loss(x1: Tensor, x2: Tensor, same: Tensor, margin: float = 1.0) -> Tensor:
    """Hadsell et al.'s contrastive loss over pairs of embeddings.

    With ``d`` the Euclidean distance between rows, ``mean(same * d**2 + (1 - same) *
    relu(margin - d)**2) / 2``: a pair of the same identity is pulled together, a pair of different
    identities is pushed apart until it is ``margin`` away (then it costs nothing).

    Args:
        x1, x2 (Tensor[N, D]): the two embeddings of each pair.
        same (Tensor[N]): 1 (or True) where the pair shows the same identity, else 0.
        margin: how far apart different identities must be.

    Returns:
        Tensor: the mean loss, a scalar.
    """
    _check_pair(x1, x2, "x1", "x2")
    check_tensor(same, "same", ndim=1, shape_hint="(N,)")
    if len(same) != len(x1):
        raise ValueError(f"same must have one 0/1 entry per pair ({len(x1)}), got {len(same)}")
    if not bool(((same == 0) | (same == 1)).all()):
        raise ValueError("same must hold only 0 and 1 (or bool): 1 for a pair of the same identity")
    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    y = same.to(x1.dtype)
    d = (x1 - x2).pow(2).sum(dim=1).sqrt()  # (N,) Euclidean distances
    return (y * d.pow(2) + (1 - y) * torch.relu(margin - d).pow(2)).mean() / 2


def triplet_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0) -> Tensor:
    """FaceNet's triplet loss: ``mean(relu(d(a, p) - d(a, n) + margin))`` with Euclidean ``d``.

    Equal to ``F.triplet_margin_loss(anchor, positive, negative, margin=margin)`` (which adds
    ``eps = 1e-6`` to the differences before the norm, as here, so that the gradient at ``d = 0`` is
    finite).

    Args:
        anchor, positive, negative (Tensor[N, D]): embeddings; ``positive`` shows the anchor's
            identity, ``negative`` another one.
        margin: how much closer the positive must be than the negative.
    """
    _check_pair(anchor, positive, "anchor", "positive")
    _check_pair(anchor, negative, "anchor", "negative")
    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    d_pos = (anchor - positive + 1e-6).pow(2).sum(dim=1).sqrt()  # (N,)
    d_neg = (anchor - negative + 1e-6).pow(2).sum(dim=1).sqrt()  # (N,)
    return torch.relu(d_pos - d_neg + margin).mean()


def pairwise_distances(embeddings: Tensor) -> Tensor:
    """Euclidean distances between all rows, ``Tensor[N, N]``, with an exact 0 on the diagonal
    (and a finite gradient there: the square root is taken of a value clamped above 0)."""
    check_tensor(embeddings, "embeddings", ndim=2, shape_hint="(N, D)", floating=True)
    diff = embeddings[:, None, :] - embeddings[None, :, :]  # (N, N, D)
    squared = diff.pow(2).sum(dim=-1)  # (N, N)
    eye = torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    return torch.where(eye, torch.zeros_like(squared), squared.clamp(min=1e-12).sqrt())


def batch_hard_triplet_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.2) -> Tensor:
    """Hermans et al.'s batch-hard triplet loss.

    For each anchor with at least one positive (same label, not itself) and one negative in the
    batch: ``relu(hardest positive distance - hardest negative distance + margin)``, the hardest
    positive being the farthest one and the hardest negative the closest; the mean over those
    anchors. 0 (still differentiable) when no anchor qualifies.

    Args:
        embeddings (Tensor[N, D]): one embedding per image.
        labels (Tensor[N]): the identity of each image.
        margin: as in :func:`triplet_loss`.
    """
    check_tensor(embeddings, "embeddings", ndim=2, shape_hint="(N, D)", floating=True)
    check_tensor(labels, "labels", ndim=1, shape_hint="(N,)")
    if len(labels) != len(embeddings):
        raise ValueError(f"labels must have one entry per embedding ({len(embeddings)}), got {len(labels)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    d = pairwise_distances(embeddings)  # (N, N)
    same = labels[:, None] == labels[None, :]  # (N, N)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive, negative = same & ~eye, ~same  # the anchor is never its own positive
    hardest_pos = torch.where(positive, d, torch.zeros_like(d)).amax(dim=1)  # (N,) farthest positive
    hardest_neg = torch.where(negative, d, torch.full_like(d, float("inf"))).amin(dim=1)  # (N,) closest negative
    valid = positive.any(dim=1) & negative.any(dim=1)  # (N,)
    if not bool(valid.any()):
        return embeddings.sum() * 0.0  # no triplet in this batch: 0, connected to the graph
    return torch.relu(hardest_pos[valid] - hardest_neg[valid] + margin).mean()


# --- the VAE's KL term (chapter 21) -----------------------------------------------------------------

def kl_divergence_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per sample, summed over the latent dimensions.

    In closed form, ``-1/2 * sum_j (1 + logvar_j - mu_j**2 - exp(logvar_j))``: 0 when the encoder
    outputs the prior itself (``mu = 0``, ``logvar = 0``), positive otherwise.

    Args:
        mu, logvar (Tensor[N, D]): the encoder's mean and log-variance of each latent coordinate.

    Returns:
        Tensor[N]: one KL per sample (average it over the batch for the ELBO's mean).
    """
    _check_pair(mu, logvar, "mu", "logvar")
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


# --- class imbalance (chapter 25) -------------------------------------------------------------------

def balanced_class_weights(labels: Tensor, num_classes: int) -> Tensor:
    """Weights ``n / (C * n_c)`` that give every class the same total weight in a loss.

    Equal to scikit-learn's ``compute_class_weight("balanced", classes=range(C), y=labels)``: a
    class with half the average frequency weighs twice as much. Pass them as
    ``F.cross_entropy(logits, y, weight=w)``.

    Args:
        labels (Tensor[n]): integer class labels in ``[0, num_classes)``.
        num_classes: ``C``.

    Returns:
        Tensor[C] (float32).

    Raises:
        ValueError: a class has no example (its weight would be infinite), or a label is out of range.
    """
    check_positive_int(num_classes, "num_classes")
    check_tensor(labels, "labels", ndim=1, shape_hint="(n,)")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got {labels.dtype}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got values from {int(labels.min())} "
                         f"to {int(labels.max())}")
    counts = torch.bincount(labels, minlength=num_classes)  # (C,)
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(f"class{'es' if len(missing) > 1 else ''} {missing} ha{'ve' if len(missing) > 1 else 's'} "
                         "no example: a balanced weight would be infinite")
    return (len(labels) / (num_classes * counts.double())).float()
