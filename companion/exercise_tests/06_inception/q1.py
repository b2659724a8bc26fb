"""Exercise 6, question 1: find the bug in a colleague's label smoothing and fix it, ``label_smoothing_cross_entropy``.

The notebook shows a colleague's version that writes ``1 - eps`` at the label over a target filled with
``eps / K``, so the true class misses its share ``eps / K`` and the target sums to ``1 - eps / K``.

The reference is ``torch.nn.functional.cross_entropy(logits, labels, label_smoothing=eps)``; each
known mistake is the same loss against a wrongly smoothed target (the smoothing spread over the
other classes only, ``eps`` and ``1 - eps`` swapped, ``eps / K`` forgotten on the true class), the
plain cross-entropy, probabilities in place of log-probabilities, or a sum over the batch.
Label smoothing: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
CVPR 2016, https://arxiv.org/abs/1512.00567, section 7. An otter-grader exception-based test file
that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 3


def torch_label_smoothing(logits, labels, label_smoothing):
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def against(targets_of, *, log=True, reduce="mean"):
    """The mean cross-entropy of softmax(logits) against the targets ``targets_of(one_hot, eps, K)`` (a mistake)."""

    def loss(logits, labels, eps):
        k = logits.shape[1]
        one_hot = F.one_hot(labels, k).to(logits.dtype)  # (N, K)
        q = targets_of(one_hot, eps, k)  # (N, K)
        scores = logits.log_softmax(1) if log else logits.softmax(1)  # (N, K)
        per_example = -(q * scores).sum(1)  # (N,)
        return per_example.mean() if reduce == "mean" else per_example.sum()

    return loss


def smoothed(one_hot, eps, k):
    return (1 - eps) * one_hot + eps / k


# (N, K) of each case; the logits, labels and eps are random. K = 2 is included (the smallest
# number of classes), large logits too (a naive log(softmax) underflows there).
SETTINGS = [(4, 10), (7, 3), (1, 5), (5, 2), (8, 10), (3, 7), (6, 4), (2, 10)]


def cases(draw):
    found = []
    for k, (n, classes) in enumerate(SETTINGS):
        scale = 30.0 if k == 4 else 2.0
        logits = draw.normal(n, classes, scale=scale)
        labels = torch.randint(0, classes, (n,), generator=draw.generator)
        eps = round(draw.uniform(0.05, 0.45), 3)
        found.append(Case((logits, labels, eps), f"logits of shape ({n}, {classes}) (scale {scale:g}), "
                                                 f"labels {labels.tolist()}, label_smoothing={eps}"))
    return found


FORBIDDEN = Forbidden(
    ops=("aten.cross_entropy_loss", "aten.nll_loss", "aten.nll_loss_forward", "aten.nll_loss_nd",
         "aten.nll_loss2d_forward", "aten.kl_div"),
    functions=("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss", "torch.nn.functional.kl_div"),
    modules=("companion.losses", "companion.train"),
    names=("cross_entropy", "CrossEntropyLoss", "nll_loss", "NLLLoss", "label_smoothing_cross_entropy",
           "smooth_targets"),
    what="the smoothed cross-entropy (with log_softmax or logsumexp, but no ready-made loss)",
)

QUESTION = Question(
    name="q1",
    function="label_smoothing_cross_entropy",
    points=points,
    reference=torch_label_smoothing,
    oracle="torch.nn.functional.cross_entropy(logits, labels, label_smoothing=eps)",
    cases=cases,
    mistakes=(
        Mistake("the smoothing is ignored: this is the plain cross-entropy -log p_y. The target puts 1 - eps on the "
                "label and spreads eps evenly over all K classes.",
                value=lambda z, y, eps: F.cross_entropy(z, y)),
        Mistake("the smoothing is spread over the other K - 1 classes only (eps / (K - 1) each). PyTorch and the "
                "paper spread eps over all K classes, the label included, so the label gets 1 - eps + eps / K.",
                value=against(lambda h, eps, k: (1 - eps) * h + eps / (k - 1) * (1 - h))),
        Mistake("this is still the colleague's bug: the true class misses its share eps / K (writing 1 - eps at the "
                "label overwrites it). The target is (1 - eps) * one_hot + eps / K for every class, so it sums "
                "to 1.", value=against(lambda h, eps, k: (1 - eps) * h + eps / k * (1 - h))),
        Mistake("eps and 1 - eps are swapped: the one-hot target keeps the weight 1 - eps and the uniform "
                "distribution gets eps.", value=against(lambda h, eps, k: eps * h + (1 - eps) / k)),
        Mistake("probabilities are used where log-probabilities belong: the cross-entropy is "
                "-sum_k q_k log p_k, with log p = log_softmax(logits).",
                value=against(smoothed, log=False)),
        Mistake("the loss is summed over the batch: return the mean over the N examples (cross_entropy's default).",
                value=against(smoothed, reduce="sum")),
    ),
    hints=(
        "Write the target first: a (N, K) tensor with 1 - eps + eps / K at each label and eps / K elsewhere. "
        "Each row sums to 1.",
        "log_softmax(logits, dim=1) gives log p stably (z - logsumexp(z)); log(softmax(z)) can give -inf for "
        "large logits.",
        "The loss of one example is -sum_k q_k log p_k; the loss of the batch is the mean of those.",
    ),
    forbidden=FORBIDDEN,
)


@test_case(points=points)
def test_label_smoothing_cross_entropy(label_smoothing_cross_entropy):
    QUESTION.assert_passes(label_smoothing_cross_entropy)
