"""Exercise 17, question 4: the pixels a stack of dilated convolutions reads, ``reached_offsets``.

Layer ``l`` of a stack of stride-1 convolutions with kernel ``k`` and dilation ``d_l`` reads the
layer below at offsets ``0, d_l, ..., (k - 1) d_l``, so one output unit reads every sum of one
offset per layer. The learner returns, along one axis, a boolean tensor over the receptive field
(``1 + (k - 1) * sum(d)`` pixels) that is True at the pixels read. With equal rates above 1 it has
holes: the gridding effect (Wang et al., 2018, https://arxiv.org/abs/1702.08502). The reference
is ``companion.segmentation.reached_offsets``, tested against the gradient of one unit. The known
mistakes: every pixel of the field marked (the field's size only), the rates treated as if they
multiplied like strides, and the pixels of the last layer only.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question
from companion.segmentation import reached_offsets

OK_FORMAT = False
name = "q4"
points = 3


def size(dilations, kernel_size):
    return 1 + (kernel_size - 1) * sum(dilations)


def whole_field(dilations, kernel_size):
    return torch.ones(size(dilations, kernel_size), dtype=torch.bool)


def multiplied(dilations, kernel_size):
    """Layer l's taps spaced by d_1 * ... * d_l, as if the rates were strides, cut to the field."""
    reached, step = {0}, 1
    for d in dilations:
        step *= d
        reached = {r + t * step for r in reached for t in range(kernel_size)}
    out = torch.zeros(size(dilations, kernel_size), dtype=torch.bool)
    inside = [r for r in reached if r < len(out)]
    out[inside] = True
    return out


def last_layer(dilations, kernel_size):
    out = torch.zeros(size(dilations, kernel_size), dtype=torch.bool)
    half = (len(out) - 1) // 2 - (kernel_size - 1) // 2 * dilations[-1]
    out[half: half + (kernel_size - 1) * dilations[-1] + 1: dilations[-1]] = True
    return out


def cases(draw):
    found = []
    for dilations, kernel in [((1, 2, 4), 3), ((2, 2, 2), 3), ((1, 3), 3), ((2, 4), 3), ((3, 3), 5),
                              ((1, 2, 5), 3), ((4, 1), 3)]:
        found.append(Case((dilations, kernel), f"dilations={dilations}, kernel_size={kernel}"))
    return found


QUESTION = Question(
    name="q4",
    function="reached_offsets",
    points=points,
    reference=reached_offsets,
    oracle="the pixels where the gradient of one output unit is nonzero",
    cases=cases,
    mistakes=(
        Mistake("every pixel of the field is marked: the size is right, but with rates such as 2, 2, 2 the unit "
                "reads only some of them (the gridding effect). Mark only the sums of one offset per layer.",
                value=whole_field),
        Mistake("the rates are multiplied as if they were strides; a dilated layer spaces its taps by its own "
                "rate d_l, in pixels of the layer below, which has the input's resolution.", value=multiplied),
        Mistake("only the taps of the last layer are marked; each of them reads the whole pattern of the layers "
                "below, shifted by the tap's offset.", value=last_layer),
        Mistake("the tensor must have one entry per pixel of the receptive field, 1 + (k - 1) * sum(dilations), "
                "True where the unit reads the pixel.",
                matches=lambda got, expected, args: isinstance(got, torch.Tensor) and got.shape != expected.shape),
    ),
    hints=(
        "One layer with rate d reads offsets 0, d, ..., (k - 1) * d. Two layers: every sum of one offset of each.",
        "Keep a boolean tensor of the offsets reached so far; for the next layer, OR together copies of it shifted "
        "by each tap's offset, in a tensor (k - 1) * d longer.",
        "Check with dilations (2, 2, 2): 13 pixels, every other one read.",
    ),
    forbidden=Forbidden(modules=("companion.segmentation", "companion.pool"),
                        names=("reached_offsets", "gradient_map", "receptive_field"),
                        what="the pixels a unit reads"),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_reached_offsets(reached_offsets):
    QUESTION.assert_passes(reached_offsets)
