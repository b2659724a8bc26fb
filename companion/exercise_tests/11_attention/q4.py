"""Exercise 11, question 4: predict, then measure, the size of a SAGAN attention map, ``predicted_entries``.

The learner writes down one number before running anything: how many numbers the attention map
of the chapter's ``SelfAttention2d(64)`` holds for a batch of 8 feature maps of 32 x 32 positions.
Every position attends to every position, so the map is ``(N, HW, HW)``: 8 * 1024^2 = 8,388,608
numbers, quadratic in the number of positions (SAGAN, Zhang et al., ICML 2019,
https://arxiv.org/abs/1805.08318, section 3). The reference measures it with the layer itself on
the ``meta`` device (shapes only); the common wrong predictions are known mistakes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question
from companion.models.attention import SelfAttention2d

OK_FORMAT = False
name = "q4"
points = 2
BATCH, CHANNELS, SIZE = 8, 64, 32


def measured(batch, channels, size):
    """The number of entries of the attention map SelfAttention2d returns, computed on the meta device."""
    with torch.device("meta"):
        layer = SelfAttention2d(channels)
        _, attention = layer(torch.empty(batch, channels, size, size), return_attention=True)
    return attention.numel()


def cases(draw):
    return [Case((BATCH, CHANNELS, SIZE), f"SelfAttention2d({CHANNELS}) on x of shape "
                                          f"({BATCH}, {CHANNELS}, {SIZE}, {SIZE})")]


def predict(function, *args):
    """How the learner's answer is called: it takes no arguments."""
    return function()


def equals(value):
    return lambda got, expected, args: isinstance(got, (int, float)) and got == value


M = SIZE * SIZE  # positions

QUESTION = Question(
    name="q4",
    function="predicted_entries",
    points=points,
    reference=measured,
    oracle="the attention map's numel(), measured",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the map has no channel axis: the C / 8 channels of the queries and keys are summed in each dot "
                "product f(x_i) . g(x_j), which gives one weight per (query, key) pair of positions.",
                matches=equals(BATCH * (CHANNELS // 8) * M * M)),
        Mistake(f"{BATCH * M:,} is one number per position: every position attends to *every* position, so an "
                f"image has (H W)^2 weights, not H W.", matches=equals(BATCH * M)),
        Mistake(f"{M * M:,} is the map of one image: the batch holds {BATCH} of them, one map each.",
                matches=equals(M * M)),
        Mistake("the channels do not set the map's size: the map mixes the C channels of the values, but it holds "
                "one weight per pair of positions.", matches=equals(BATCH * CHANNELS * M)),
    ),
    hints=(
        "Flatten the 32 x 32 feature map into a list of positions. How many positions are there?",
        "Each position (a query) gives a weight to each position (a key). How many weights per image?",
        "Return one Python int: the number of entries of the (N, ?, ?) map for the whole batch.",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_entries(predicted_entries):
    QUESTION.assert_passes(predicted_entries)
