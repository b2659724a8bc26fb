"""Exercise 12, question 1: how many parameters an optimiser trains after freezing, ``trainable_after_freezing``.

The network is chapter 12's: the backbone of ``companion.nets.fashion_cnn`` (stages of a 3x3
convolution without bias, batch norm, ReLU and a 2x2 max-pool) and a new head ``Flatten`` +
``Linear(features, num_classes)``. The backbone is frozen except its top ``unfrozen`` stages. The
reference builds that network on the ``meta`` device, freezes it with ``companion.transfer`` and
counts the parameters with ``requires_grad`` (the framework's own answer); each known mistake is the
count by formula with one thing changed. An otter-grader exception-based test file that also
defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torch import nn

from companion import nets, transfer
from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2


def reference(widths, image_size, num_classes, unfrozen):
    with torch.device("meta"):
        backbone = nets.fashion_cnn(num_classes, stages=[(w, True) for w in widths], image_size=image_size).backbone
        side = image_size // 2 ** len(widths)
        head = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * side * side, num_classes))
    transfer.freeze(backbone)
    if unfrozen:
        transfer.unfreeze_top(backbone, 2 * unfrozen)  # a stage: its convolution and its batch norm
    return transfer.trainable_parameters(backbone) + transfer.trainable_parameters(head)


def formula(widths, image_size, num_classes, unfrozen, *, frozen=True, bn_per_channel=2, conv_bias=False,
            head_bias=True, pool=True, from_top=True, bn_trained=True):
    """The count written out, right with the defaults, or with one thing changed."""
    side = image_size // 2 ** len(widths) if pool else image_size
    count = widths[-1] * side * side * num_classes + (num_classes if head_bias else 0)
    stages = list(zip((1,) + tuple(widths[:-1]), widths))  # (in, out) channels of each stage
    trained = stages if not frozen else (stages[len(stages) - unfrozen:] if from_top else stages[:unfrozen])
    for c_in, c_out in (trained if unfrozen or not frozen else []):
        count += 9 * c_in * c_out + (c_out if conv_bias else 0) + (bn_per_channel * c_out if bn_trained else 0)
    return count


def variant(**changes):
    def value(*args):
        wrong = formula(*args, **changes)
        return None if wrong == formula(*args) else wrong

    return value


def cases(draw):
    found = [Case(((16, 32), 28, 5, 0), "widths=(16, 32), image_size=28, num_classes=5, unfrozen=0"),
             Case(((16, 32), 28, 5, 1), "widths=(16, 32), image_size=28, num_classes=5, unfrozen=1")]
    for _ in range(6):
        depth = draw.int(1, 3)
        widths = tuple(draw.int(2, 24) for _ in range(depth))
        image_size, num_classes, unfrozen = draw.choice((20, 28, 30, 32)), draw.int(2, 10), draw.int(0, depth)
        found.append(Case((widths, image_size, num_classes, unfrozen),
                          f"widths={widths}, image_size={image_size}, num_classes={num_classes}, unfrozen={unfrozen}"))
    return found


QUESTION = Question(
    name="q1",
    function="trainable_after_freezing",
    points=points,
    reference=reference,
    oracle="the network built in PyTorch, frozen with companion.transfer, counted by requires_grad",
    cases=cases,
    mistakes=(
        Mistake("the frozen backbone is counted: a frozen parameter (requires_grad=False) is not trained, so only "
                "the head and the unfrozen top stages count.", value=variant(frozen=False)),
        Mistake("batch norm's running mean and variance are counted: they are buffers, not parameters; a batch "
                "norm trains 2 numbers per channel (gamma and beta).", value=variant(bn_per_channel=4)),
        Mistake("the convolutions are given a bias: a convolution followed by batch norm has none (the batch "
                "norm's beta replaces it).", value=variant(conv_bias=True)),
        Mistake("the head's bias is forgotten: the new Linear layer has num_classes biases.",
                value=variant(head_bias=False)),
        Mistake("the max-pools are forgotten: each stage's 2x2 max-pool halves the side of the feature maps "
                "(rounding down), so the head reads widths[-1] * s * s features with s = image_size // 2**stages.",
                value=variant(pool=False)),
        Mistake("the unfrozen stages are counted from the bottom: fine-tuning unfreezes the top stages, the last "
                "ones (nearest the head).", value=variant(from_top=False)),
        Mistake("the unfrozen stages' batch norms are forgotten: an unfrozen stage trains its batch norm's gamma "
                "and beta as well as its convolution.", value=variant(bn_trained=False)),
    ),
    hints=(
        "Count the head first: how many features does Flatten produce after len(widths) 2x2 max-pools?",
        "A 3x3 convolution from c_in to c_out channels without bias has 9 * c_in * c_out weights. Which of "
        "batch norm's four per-channel tensors are parameters, and which are buffers?",
        "Check your answer against PyTorch: build the network, call companion.transfer.freeze and "
        "unfreeze_top, and sum p.numel() over the parameters with requires_grad.",
    ),
    forbidden=Forbidden(
        modules=("companion.transfer", "companion.nets", "companion.count", "torchvision.models"),
        names=("Conv2d", "Linear", "BatchNorm2d", "parameters", "fashion_cnn", "trainable_parameters",
               "count_parameters"),
        what="the count (with the formula, not by building the network)",
    ),
)


@test_case(points=points)
def test_trainable_after_freezing(trainable_after_freezing):
    QUESTION.assert_passes(trainable_after_freezing)
