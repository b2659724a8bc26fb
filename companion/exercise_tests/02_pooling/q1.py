"""Exercise 2, question 1: the receptive field of a stack of convolutions, ``receptive_field``.

The reference is autograd: in a stack of 1-D convolutions with all-ones kernels, the gradient of
the first output with respect to the input is non-zero exactly on the input positions that output
sees; the receptive field is the span of those positions (Araujo, Norris & Sim, "Computing
receptive fields of convolutional neural networks", Distill 2019,
https://distill.pub/2019/computing-receptive-fields/). An otter-grader exception-based test file
that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2

#: Long enough for every stack drawn below (at most 5 layers, kernels <= 7, strides multiplying to <= 12).
INPUT_LENGTH = 1024


def torch_receptive_field(layers):
    """The span of input positions the first output of the stack depends on, found by autograd."""
    x = torch.ones(1, 1, INPUT_LENGTH, dtype=torch.float64, requires_grad=True)  # (N, C, L)
    y = x
    for kernel_size, stride in layers:
        y = F.conv1d(y, torch.ones(1, 1, kernel_size, dtype=torch.float64), stride=stride)
    y[0, 0, 0].backward()
    seen = x.grad[0, 0].nonzero()  # with a stride larger than the kernel the field has gaps: measure its span
    return int(seen.max() - seen.min()) + 1


# The strides of each stack (kernels are random); several have a stride > 1 before the last layer,
# where the jump matters.
STRIDES = [(1,), (2,), (1, 1, 1), (2, 1), (1, 2, 1), (2, 2, 1), (3, 1, 2), (2, 1, 2, 1), (1, 3, 1, 1, 2)]


def cases(draw):
    found = []
    for strides in STRIDES:
        layers = [(draw.int(1, 7), s) for s in strides]
        found.append(Case((layers,), f"layers={layers}"))
    return found


def jump_includes_own_stride(layers):
    """As if each layer's own stride already multiplied its kernel: shift every stride one layer earlier."""
    shifted = [(1, layers[0][1])] + [(k, s_next) for (k, _), (_, s_next) in zip(layers, layers[1:] + [(1, 1)])]
    return torch_receptive_field(shifted)


def off_by_one(value, expected, args):
    return type(value) is int and abs(value - expected) == 1


QUESTION = Question(
    name="q1",
    function="receptive_field",
    points=points,
    reference=torch_receptive_field,
    oracle="the receptive field measured with autograd",
    cases=cases,
    mistakes=(
        Mistake("the jump is forgotten: after a layer with stride s, neighbouring positions of its output are s "
                "input positions apart, so every later kernel widens the field by (k - 1) times the product of "
                "the strides *before* it.",
                value=lambda layers: torch_receptive_field([(k, 1) for k, _ in layers])),
        Mistake("each layer's kernel is multiplied by its own stride too: the jump of layer l is the product of "
                "the strides of the layers before it, not including layer l.",
                value=jump_includes_own_stride),
        Mistake("off by one: a single layer with kernel size k sees k positions; start from 1 (one output "
                "position sees itself) and add (k - 1) * jump per layer.", matches=off_by_one),
    ),
    hints=(
        "Work one layer at a time from the input: keep the receptive field r and the jump j (how many input "
        "positions apart two neighbouring positions of the current layer are).",
        "Start with r = 1 and j = 1. A layer with kernel k widens r by (k - 1) positions of its *input*, "
        "each j input pixels apart.",
        "A layer with stride s multiplies the jump for the layers after it.",
    ),
    forbidden=Forbidden(modules=("companion.pool",), names=("receptive_field",), what="the receptive field"),
)


@test_case(points=points)
def test_receptive_field(receptive_field):
    QUESTION.assert_passes(receptive_field)
