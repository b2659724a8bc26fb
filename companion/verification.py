"""Face verification and recognition with a Siamese embedding network.

A *Siamese* network runs the same network, with the same weights, on two (or three) images and
compares the outputs (Bromley et al., *Signature Verification using a "Siamese" Time Delay Neural
Network*, NIPS 1993; Chopra, Hadsell & LeCun, *Learning a Similarity Metric Discriminatively,
with Application to Face Verification*, CVPR 2005; Koch, Zemel & Salakhutdinov, *Siamese Neural
Networks for One-shot Image Recognition*, ICML deep learning workshop 2015). Trained with the
contrastive loss (Hadsell, Chopra & LeCun, CVPR 2006) on pairs or the triplet loss (Schroff,
Kalenichenko & Philbin, *FaceNet*, CVPR 2015, https://arxiv.org/abs/1503.03832) on triplets, it
maps every image to an embedding in which the Euclidean distance says "same identity" or not;
the losses are in :mod:`companion.losses`. This module has the rest of the pipeline:

* :func:`embedding_net`: the embedding network, a small CNN whose output rows are L2-normalised
  (FaceNet's embeddings live on the unit hypersphere), and :class:`Siamese`, which applies it to
  both images of a pair;
* samplers: :func:`sample_pairs` (half same-identity, half different), :func:`sample_triplets`,
  and :class:`PKBatchSampler`, batches of P identities x K images each, the batches that the
  batch-hard triplet loss of Hermans, Beyer & Leibe (*In Defense of the Triplet Loss for Person
  Re-Identification*, 2017, https://arxiv.org/abs/1703.07737) mines its triplets from;
* :func:`fit_embedding`: training with the batch-hard triplet loss on P x K batches;
* verification: :func:`best_threshold` chooses the distance threshold on *validation* pairs,
  :func:`verification_accuracy` applies it, and :func:`roc_curve`, :func:`auc` and
  :func:`roc_auc` measure all thresholds at once (written from scratch; the tests check them
  against scikit-learn's ``roc_curve`` and ``roc_auc_score``, ties included);
* recognition: :func:`nearest_embedding` (one-shot classification by the nearest reference
  embedding) and :func:`one_shot_accuracy` (N-way one-shot episodes).

Introduced in chapter 19, *Face verification and recognition*.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Sampler

from companion._checks import check_positive_int, check_tensor
from companion.losses import batch_hard_triplet_loss
from companion.nets import FASHION_CNN_STAGES, Classifier, fashion_cnn


# --- the embedding network ----------------------------------------------------------------------

class Embedder(nn.Module):
    """A network whose output is an embedding: ``features(x)`` then ``head(x)``, rows L2-normalised.

    Args:
        net: a :class:`~companion.nets.Classifier` (any backbone with ``features`` and ``head``)
            whose ``head`` outputs ``dim`` numbers instead of class scores.
        normalize: divide each embedding by its norm (FaceNet's ``||f(x)|| = 1``), so that distances
            lie in ``[0, 2]`` and a margin means the same thing throughout training.
    """

    def __init__(self, net: Classifier, normalize: bool = True) -> None:
        super().__init__()
        self.net = net
        self.normalize = normalize

    def features(self, x: Tensor) -> Tensor:
        return self.net.features(x)

    def head(self, h: Tensor) -> Tensor:
        z = self.net.head(h)  # (N, dim)
        return F.normalize(z, dim=1) if self.normalize else z

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def embedding_net(dim: int = 32, stages: Sequence[tuple[int, bool]] = FASHION_CNN_STAGES,
                  hidden: int = 64, image_size: int = 28, normalize: bool = True) -> Embedder:
    """Chapter 3's ``fashion_cnn`` with ``dim`` outputs, as an :class:`Embedder`.

    The same layers as the zoo's classifiers, so that a trained classifier's ``features`` can be
    loaded into it (transfer learning, chapter 12): only the last linear layer differs.

    Args:
        dim: the embedding's size (FaceNet: 128).
        stages, hidden, image_size: as in :func:`companion.nets.fashion_cnn`.
        normalize: L2-normalise the embeddings.

    Returns:
        An :class:`Embedder` mapping ``(N, 1, image_size, image_size)`` to ``(N, dim)``.
    """
    check_positive_int(dim, "dim")
    return Embedder(fashion_cnn(num_classes=dim, stages=stages, hidden=hidden, image_size=image_size),
                    normalize=normalize)


class Siamese(nn.Module):
    """One embedding network applied to both images of each pair: the two "twins" share every weight.

    ``forward(x1, x2)`` returns the two embeddings; :meth:`distance` their Euclidean distance.
    """

    def __init__(self, embedder: nn.Module) -> None:
        super().__init__()
        self.embedder = embedder

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        if x1.shape != x2.shape:
            raise ValueError(f"x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} must have the same shape: "
                             "row i of each is one pair")
        both = self.embedder(torch.cat([x1, x2]))  # (2N, D): one pass, the same weights for both
        return both[:len(x1)], both[len(x1):]  # (N, D), (N, D)

    def distance(self, x1: Tensor, x2: Tensor) -> Tensor:
        """``Tensor[N]``: the Euclidean distance between the embeddings of each pair."""
        e1, e2 = self(x1, x2)
        return (e1 - e2).norm(dim=1)


@torch.no_grad()
def embed(net: nn.Module, images: Tensor, batch_size: int = 1024) -> Tensor:
    """The embeddings of ``images`` ``(N, C, H, W)`` in eval mode: ``Tensor[N, D]`` on the CPU."""
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_positive_int(batch_size, "batch_size")
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    out = torch.cat([net(images[i:i + batch_size].to(device)).cpu()
                     for i in range(0, len(images), batch_size)])
    net.train(was_training)
    return out


# --- samplers ---------------------------------------------------------------------------------------

def _check_labels(labels: object) -> Tensor:
    check_tensor(labels, "labels", ndim=1, shape_hint="(N,)")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer identities, got {labels.dtype}")
    return labels


def _generator(generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(0)


def _pick(options: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` entries of ``options`` drawn uniformly with replacement."""
    if count == 0:
        return options[:0]
    return options[torch.randint(len(options), (count,), generator=generator)]


def sample_pairs(labels: Tensor, n_pairs: int, *, generator: torch.Generator | None = None,
                 positive_fraction: float = 0.5) -> tuple[Tensor, Tensor, Tensor]:
    """Random pairs of indices, a given fraction of them of the same identity.

    A same-identity pair is two *different* images of one identity (an image is never paired with
    itself); identities are drawn in proportion to their number of images.

    Args:
        labels (Tensor[N], int): the identity of each image.
        n_pairs: how many pairs.
        generator: the random source (default: seed 0).
        positive_fraction: the share of same-identity pairs, rounded to a whole number of pairs.

    Returns:
        ``(i, j, same)``: ``i, j`` (Tensor[n_pairs], int64) index ``labels``; ``same``
        (Tensor[n_pairs], float32) is 1 where ``labels[i] == labels[j]``, else 0. The positives
        come first.

    Raises:
        ValueError: ``n_pairs`` not positive, ``positive_fraction`` outside [0, 1], no identity with
            two images (no same pair exists) or a single identity (no different pair exists).
    """
    labels = _check_labels(labels)
    check_positive_int(n_pairs, "n_pairs")
    if isinstance(positive_fraction, bool) or not 0 <= positive_fraction <= 1:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction!r}")
    g = _generator(generator)
    n_pos = round(n_pairs * positive_fraction)
    n_neg = n_pairs - n_pos
    same_matrix = labels[:, None] == labels[None, :]  # (N, N)
    if n_pos and int(same_matrix.sum()) == len(labels):
        raise ValueError("no identity has two images: a same-identity pair needs two different images "
                         "of one identity")
    if n_neg and bool(same_matrix.all()):
        raise ValueError("all images show one identity: a different-identity pair needs two identities")
    anchors_pos = _pick(torch.nonzero(same_matrix.sum(dim=1) > 1).flatten(), n_pos, g)  # (n_pos,)
    i, j = [anchors_pos], [_partner(labels, anchors_pos, same=True, generator=g)]
    anchors_neg = _pick(torch.nonzero(~same_matrix.all(dim=1)).flatten(), n_neg, g)  # (n_neg,)
    i.append(anchors_neg)
    j.append(_partner(labels, anchors_neg, same=False, generator=g))
    first, second = torch.cat(i), torch.cat(j)
    return first, second, (labels[first] == labels[second]).float()


def _partner(labels: Tensor, anchors: Tensor, *, same: bool, generator: torch.Generator) -> Tensor:
    """For each anchor, a random other image of the same identity (``same``) or of another one."""
    if len(anchors) == 0:
        return anchors.clone()
    eligible = labels[anchors][:, None] == labels[None, :]  # (A, N)
    if same:
        eligible[torch.arange(len(anchors)), anchors] = False  # never the anchor itself
    else:
        eligible = ~eligible
    # a uniform choice among the eligible columns of each row: the largest of random keys
    keys = torch.rand(eligible.shape, generator=generator).masked_fill(~eligible, -1.0)  # (A, N)
    return keys.argmax(dim=1)


def sample_triplets(labels: Tensor, n_triplets: int, *,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Random triplets of indices ``(anchor, positive, negative)``.

    ``positive`` shows the anchor's identity but is another image; ``negative`` shows another
    identity. Anchors are drawn among the images whose identity has at least two images.

    Returns:
        Three ``Tensor[n_triplets]`` (int64) of indices into ``labels``.

    Raises:
        ValueError: ``n_triplets`` not positive, no identity with two images, a single identity.
    """
    labels = _check_labels(labels)
    check_positive_int(n_triplets, "n_triplets")
    g = _generator(generator)
    same_matrix = labels[:, None] == labels[None, :]  # (N, N)
    if int(same_matrix.sum()) == len(labels):
        raise ValueError("no identity has two images: a triplet's positive must be another image of the "
                         "anchor's identity")
    if bool(same_matrix.all()):
        raise ValueError("all images show one identity: a triplet's negative needs another identity")
    anchors = _pick(torch.nonzero(same_matrix.sum(dim=1) > 1).flatten(), n_triplets, g)
    return (anchors, _partner(labels, anchors, same=True, generator=g),
            _partner(labels, anchors, same=False, generator=g))


class PKBatchSampler(Sampler[list[int]]):
    """Batches of P identities x K images each, for batch-hard mining (Hermans et al., 2017).

    Each batch draws ``p`` identities without replacement among those with at least ``k`` images,
    then ``k`` different images of each; the batch lists the ``k`` images of the first identity,
    then those of the second, and so on. Every anchor then has ``k - 1`` positives and
    ``(p - 1) k`` negatives in its batch. Pass it to a ``DataLoader`` as ``batch_sampler``, or
    iterate over it for index lists. (Hermans et al. use P = 18, K = 4 on person images.)

    Args:
        labels (Tensor[N], int): the identity of each image.
        p: identities per batch (at least 2, so that negatives exist).
        k: images per identity (at least 2, so that positives exist).
        batches: how many batches one pass yields (``len(sampler)``).
        generator: the random source (default: seed 0).

    Raises:
        ValueError: ``p`` or ``k`` below 2, or fewer than ``p`` identities with ``k`` images.
    """

    def __init__(self, labels: Tensor, p: int, k: int, batches: int,
                 generator: torch.Generator | None = None) -> None:
        labels = _check_labels(labels)
        for name, value in (("p", p), ("k", k)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an int >= 2 (P identities x K images), got {value!r}")
        check_positive_int(batches, "batches")
        identities, counts = torch.unique(labels, return_counts=True)
        eligible = identities[counts >= k]
        if len(eligible) < p:
            raise ValueError(f"a P x K batch needs p = {p} identities with at least k = {k} images each; "
                             f"only {len(eligible)} of the {len(identities)} identities have {k}")
        self.labels, self.p, self.k, self.batches = labels, p, k, batches
        self.members = {int(c): torch.nonzero(labels == c).flatten() for c in eligible}
        self.identities = eligible
        self.generator = _generator(generator)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        g = self.generator
        for _ in range(self.batches):
            chosen = self.identities[torch.randperm(len(self.identities), generator=g)[:self.p]]  # (P,)
            batch = [self.members[int(c)][torch.randperm(len(self.members[int(c)]), generator=g)[:self.k]]
                     for c in chosen]  # P tensors of (K,)
            yield torch.cat(batch).tolist()  # P*K indices


def fit_embedding(net: nn.Module, images: Tensor, labels: Tensor, *, steps: int, p: int = 8, k: int = 8,
                  margin: float = 0.2, lr: float = 3e-3, weight_decay: float = 5e-4, seed: int = 0,
                  device: torch.device | str = "cpu") -> list[float]:
    """Train an embedding network with the batch-hard triplet loss on P x K batches.

    AdamW with a cosine-decaying learning rate; ``net`` is trained in place.

    Args:
        net: maps ``(B, C, H, W)`` images to ``(B, D)`` embeddings.
        images (Tensor[N, C, H, W]) and labels (Tensor[N], int): the training identities.
        steps: how many batches.
        p, k, margin: the batches and the loss (:class:`PKBatchSampler`,
            :func:`companion.losses.batch_hard_triplet_loss`).
        lr, weight_decay: the optimiser's.
        seed: seeds the batches.
        device: where to train.

    Returns:
        The loss at every step.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    labels = _check_labels(labels)
    if len(images) != len(labels):
        raise ValueError(f"images ({len(images)}) and labels ({len(labels)}) must have one entry per image")
    check_positive_int(steps, "steps")
    sampler = PKBatchSampler(labels, p, k, steps, generator=torch.Generator().manual_seed(seed))
    net.to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    losses = []
    for index in sampler:
        batch = torch.tensor(index)
        loss = batch_hard_triplet_loss(net(images[batch].to(device)), labels[batch].to(device), margin)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(loss.item())
    net.eval()
    return losses


# --- verification: a threshold, ROC and AUC ---------------------------------------------------------

def _check_scores(scores: object, same: object, name: str = "scores") -> tuple[Tensor, Tensor]:
    check_tensor(scores, name, ndim=1, shape_hint="(N,)")
    check_tensor(same, "same", ndim=1, shape_hint="(N,)")
    if len(scores) != len(same):
        raise ValueError(f"{name} ({len(scores)}) and same ({len(same)}) must have one entry per pair")
    if len(scores) == 0:
        raise ValueError(f"{name} is empty: no pairs to measure")
    if not bool(torch.isfinite(scores.double()).all()):
        raise ValueError(f"{name} must be finite numbers (no NaN or inf)")
    if not bool(((same == 0) | (same == 1)).all()):
        raise ValueError("same must hold only 0 and 1 (or bool): 1 for a pair of the same identity")
    return scores.double(), same.bool()


def _check_both_kinds(same: Tensor) -> None:
    if bool(same.all()) or not bool(same.any()):
        kind = "same-identity" if bool(same.all()) else "different-identity"
        raise ValueError(f"every pair is a {kind} pair: ROC and AUC need pairs of both kinds")


def verification_accuracy(distances: Tensor, same: Tensor, threshold: float) -> float:
    """The share of pairs decided correctly by "same identity when ``distance <= threshold``".

    Args:
        distances (Tensor[N]): the embedding distance of each pair.
        same (Tensor[N]): 1 (or True) for same-identity pairs, else 0.
        threshold: the largest distance still called "same".
    """
    distances, same = _check_scores(distances, same, "distances")
    return float(((distances <= threshold) == same).double().mean())


def best_threshold(distances: Tensor, same: Tensor) -> float:
    """The threshold with the highest :func:`verification_accuracy` on these pairs.

    Choose it on *validation* pairs, never on the test pairs it will be judged on: a threshold
    fitted to the test pairs reports an accuracy no new pair will see. The candidates are the
    midpoints between consecutive distinct distances, and one below the smallest and one above
    the largest (call every pair "different", or every pair "same"); ties in accuracy go to the
    smallest threshold.

    Args:
        distances (Tensor[N]): the validation pairs' embedding distances.
        same (Tensor[N]): 1 (or True) for same-identity pairs, else 0.

    Returns:
        The threshold, a float.
    """
    distances, same = _check_scores(distances, same, "distances")
    values = torch.unique(distances)  # sorted, distinct
    midpoints = (values[1:] + values[:-1]) / 2
    candidates = torch.cat([values[:1] - 1.0, midpoints, values[-1:] + 1.0])  # (M,)
    said_same = distances[None, :] <= candidates[:, None]  # (M, N)
    accuracy = (said_same == same[None, :]).double().mean(dim=1)  # (M,)
    return float(candidates[int(accuracy.argmax())])  # argmax: the first of equal maxima


def roc_curve(scores: Tensor, same: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The ROC curve: true- and false-positive rates at every threshold, from scratch.

    A pair is called positive ("same identity") when its score is ``>= threshold``; for
    distances, pass ``-distances`` (a smaller distance means "more alike"). The thresholds are
    the distinct scores from the largest down, after ``+inf`` (nothing called positive). Tied
    scores form one step, so the curve moves diagonally through a tie. Equal to scikit-learn's
    ``roc_curve(same, scores, drop_intermediate=False)``.

    Args:
        scores (Tensor[N]): higher means "more likely the same identity".
        same (Tensor[N]): 1 (or True) for same-identity pairs, else 0; both kinds must occur.

    Returns:
        ``(fpr, tpr, thresholds)``, three ``Tensor[M + 1]`` (float64) for ``M`` distinct scores,
        ``fpr`` and ``tpr`` rising from 0 to 1.
    """
    scores, same = _check_scores(scores, same)
    _check_both_kinds(same)
    order = torch.argsort(scores, descending=True, stable=True)
    scores, hits = scores[order], same[order].double()  # (N,)
    tp, fp = torch.cumsum(hits, 0), torch.cumsum(1 - hits, 0)  # (N,): positives called at each cut
    # the last position of every run of equal scores: a threshold cannot split a tie
    last = torch.ones(len(scores), dtype=torch.bool)
    last[:-1] = scores[1:] != scores[:-1]
    zero = torch.zeros(1, dtype=torch.float64)
    tpr = torch.cat([zero, tp[last] / tp[-1]])
    fpr = torch.cat([zero, fp[last] / fp[-1]])
    thresholds = torch.cat([torch.tensor([math.inf], dtype=torch.float64), scores[last]])
    return fpr, tpr, thresholds


def auc(x: Tensor, y: Tensor) -> float:
    """The area under a curve given by points ``(x, y)`` with ``x`` sorted, by the trapezoidal rule."""
    check_tensor(x, "x", ndim=1, shape_hint="(M,)")
    check_tensor(y, "y", ndim=1, shape_hint="(M,)")
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"x and y must have the same length >= 2, got {len(x)} and {len(y)}")
    x, y = x.double(), y.double()
    if bool((x[1:] < x[:-1]).any()):
        raise ValueError("x must be sorted in increasing order (as the fpr of roc_curve is)")
    return float(((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2).sum())


def roc_auc(scores: Tensor, same: Tensor) -> float:
    """The area under the ROC curve of :func:`roc_curve`: equal to scikit-learn's ``roc_auc_score``.

    It is also the probability that a random same-identity pair scores higher than a random
    different-identity pair, a tie counting 1/2 (the Mann-Whitney statistic): 0.5 is chance,
    1 a perfect ranking.
    """
    fpr, tpr, _ = roc_curve(scores, same)
    return auc(fpr, tpr)


# --- recognition: one-shot by the nearest embedding -------------------------------------------------

def nearest_embedding(references: Tensor, reference_labels: Tensor, queries: Tensor) -> Tensor:
    """One-shot classification: each query takes the label of its nearest reference embedding.

    With one reference image per identity (a photo on file), recognising a new photo is a
    nearest-neighbour search among the references, Euclidean distance; ties go to the first
    reference.

    Args:
        references (Tensor[R, D]): embeddings of the reference images.
        reference_labels (Tensor[R], int): their identities.
        queries (Tensor[Q, D]): embeddings to recognise.

    Returns:
        Tensor[Q] (the dtype of ``reference_labels``): the predicted identities.
    """
    check_tensor(references, "references", ndim=2, shape_hint="(R, D)", floating=True)
    check_tensor(queries, "queries", ndim=2, shape_hint="(Q, D)", floating=True)
    reference_labels = _check_labels(reference_labels)
    if len(reference_labels) != len(references):
        raise ValueError(f"reference_labels ({len(reference_labels)}) must have one entry per reference "
                         f"({len(references)})")
    if len(references) == 0:
        raise ValueError("references is empty: nothing to compare the queries with")
    if references.shape[1] != queries.shape[1]:
        raise ValueError(f"references have {references.shape[1]} dimensions and queries "
                         f"{queries.shape[1]}: they must be embeddings of the same network")
    d = torch.cdist(queries.double(), references.double())  # (Q, R)
    return reference_labels[d.argmin(dim=1)]


def one_shot_accuracy(embeddings: Tensor, labels: Tensor, *, episodes: int, shots: int = 1,
                      generator: torch.Generator | None = None) -> float:
    """N-way ``shots``-shot accuracy, averaged over random episodes.

    In each episode every identity present gets ``shots`` random reference images; all its other
    images are queries, recognised by :func:`nearest_embedding` against the references of every
    identity.

    Args:
        embeddings (Tensor[N, D]), labels (Tensor[N], int): the images to draw from.
        episodes: how many episodes to average.
        shots: references per identity (1: one-shot).
        generator: the random source (default: seed 0).

    Raises:
        ValueError: an identity with ``shots`` images or fewer (it would have no query).
    """
    check_tensor(embeddings, "embeddings", ndim=2, shape_hint="(N, D)", floating=True)
    labels = _check_labels(labels)
    if len(labels) != len(embeddings):
        raise ValueError(f"labels ({len(labels)}) must have one entry per embedding ({len(embeddings)})")
    check_positive_int(episodes, "episodes")
    check_positive_int(shots, "shots")
    identities, counts = torch.unique(labels, return_counts=True)
    if bool((counts <= shots).any()):
        raise ValueError(f"every identity needs more than shots = {shots} images (the rest are its "
                         f"queries); the smallest has {int(counts.min())}")
    g = _generator(generator)
    correct = 0.0
    for _ in range(episodes):
        is_reference = torch.zeros(len(labels), dtype=torch.bool)
        for c in identities:
            members = torch.nonzero(labels == c).flatten()
            is_reference[members[torch.randperm(len(members), generator=g)[:shots]]] = True
        predicted = nearest_embedding(embeddings[is_reference], labels[is_reference], embeddings[~is_reference])
        correct += float((predicted == labels[~is_reference]).double().mean())
    return correct / episodes


# --- the whole protocol -----------------------------------------------------------------------------

def verification_scores(val_embeddings: Tensor, val_labels: Tensor, test_embeddings: Tensor,
                        test_labels: Tensor, *, n_pairs: int, episodes: int = 20,
                        generator: torch.Generator | None = None) -> dict[str, float]:
    """Verification and one-shot scores of one embedding (or of raw pixels) on unseen identities.

    Draws ``n_pairs`` validation pairs (half same-identity) and chooses the threshold on them
    (:func:`best_threshold`), then draws ``n_pairs`` test pairs and measures the accuracy at that
    threshold and the ROC AUC (distances as scores, negated); last, the N-way one-shot accuracy on
    the test images (:func:`one_shot_accuracy`). The test pairs never influence the threshold.

    Args:
        val_embeddings (Tensor[V, D]), val_labels (Tensor[V], int): the validation images.
        test_embeddings (Tensor[T, D]), test_labels (Tensor[T], int): the test images.
        n_pairs: pairs drawn on each side.
        episodes: one-shot episodes.
        generator: the random source of the pairs and the episodes (default: seed 0).

    Returns:
        ``{"threshold", "accuracy", "AUC", "one-shot accuracy"}``.
    """
    check_tensor(val_embeddings, "val_embeddings", ndim=2, shape_hint="(V, D)", floating=True)
    check_tensor(test_embeddings, "test_embeddings", ndim=2, shape_hint="(T, D)", floating=True)
    g = _generator(generator)
    i, j, same = sample_pairs(val_labels, n_pairs, generator=g)
    threshold = best_threshold((val_embeddings[i] - val_embeddings[j]).norm(dim=1), same)
    i, j, same = sample_pairs(test_labels, n_pairs, generator=g)
    distances = (test_embeddings[i] - test_embeddings[j]).norm(dim=1)  # (n_pairs,)
    return {"threshold": threshold,
            "accuracy": verification_accuracy(distances, same, threshold),
            "AUC": roc_auc(-distances, same),
            "one-shot accuracy": one_shot_accuracy(test_embeddings, test_labels, episodes=episodes,
                                                   generator=g)}


__all__ = ["Embedder", "PKBatchSampler", "Siamese", "auc", "best_threshold", "embed", "embedding_net",
           "fit_embedding", "nearest_embedding", "one_shot_accuracy", "roc_auc", "roc_curve", "sample_pairs",
           "sample_triplets", "verification_accuracy", "verification_scores"]
