"""Exercise 5, question 5: predict, then measure, the size of VGG-16's class score map at a larger test scale.

The learner writes down, before running anything, the shape (rows, columns) of the class score
map that VGG-16, with its fully connected layers rewritten as convolutions (a 7x7 one and two 1x1
ones: the dense evaluation of Simonyan & Zisserman, 2015, Section 3.2,
https://arxiv.org/abs/1409.1556), computes for a 384 x 512 image. Five 2x2 max-pools divide the
size by 32 (12 x 16), and the 7x7 window fits 12 - 7 + 1 = 6 times down and 16 - 7 + 1 = 10 times
across: (6, 10). The reference measures it with torchvision's VGG-16 and a 7x7 convolution on
PyTorch's ``meta`` device (shapes only). The common wrong predictions are known mistakes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torchvision
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q5"
points = 2
HEIGHT, WIDTH = 384, 512


def measured():
    """(rows, columns) of the score map, measured: VGG-16's features, then fc6 as a 7x7 convolution."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        features = torchvision.models.vgg16(weights=None).features
        fc6 = nn.Conv2d(512, 4096, kernel_size=7)  # fc7 and fc8 are 1x1: they keep the size
        scores = fc6(features(torch.zeros(1, 3, HEIGHT, WIDTH)))  # (1, 4096, rows, columns)
    return (int(scores.shape[2]), int(scores.shape[3]))


def cases(draw):
    return [Case((), "VGG-16 with its classifier as convolutions, on a 384 x 512 (height x width) image")]


def predict(function):
    """How the learner's answer is called: it takes no arguments and returns a pair of numbers."""
    answer = function()
    if isinstance(answer, torch.Size):
        answer = tuple(answer)
    if isinstance(answer, (tuple, list)) and len(answer) == 2 and all(
            isinstance(a, (int, float)) and not isinstance(a, bool) for a in answer):
        return tuple(int(a) if float(a).is_integer() else float(a) for a in answer)
    raise TypeError("predicted_score_map must return a pair (rows, columns) of numbers")


def equals(pair):
    return lambda got, expected, args: isinstance(got, tuple) and got == pair


def off_by_one(got, expected, args):
    return (isinstance(got, tuple) and len(got) == 2 and got != expected
            and all(abs(g - e) <= 1 for g, e in zip(got, expected)))


QUESTION = Question(
    name="q5",
    function="predicted_score_map",
    points=points,
    reference=measured,
    oracle="torchvision's VGG-16 features and a 7x7 convolution, run on the meta device",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("that is the size of the feature map, 384 / 32 by 512 / 32: the 7x7 convolution that replaces "
                "the first fully connected layer has no padding, so it shrinks the map.", matches=equals((12, 16))),
        Mistake("the windows do not jump by 7: the 7x7 convolution slides one position at a time (stride 1), "
                "so the windows overlap.", matches=equals((1, 2))),
        Mistake("rows and columns are swapped: the image is 384 pixels high and 512 wide.", matches=equals((10, 6))),
        Mistake("VGG-16 has five max-pools, not four: the feature map is 1/32 of the image.",
                matches=equals((18, 26))),
        Mistake("the count is off by one: a k x k window fits n - k + 1 times along n positions.",
                matches=off_by_one),
    ),
    hints=(
        "How many 2x2 max-pools does VGG-16 have, and what does each do to the height and the width?",
        "The first fully connected layer read a 7x7 map; as a convolution it has a 7x7 kernel, stride 1, no "
        "padding. On an n x m map, how many positions does a 7x7 window have?",
        "The two 1x1 convolutions that follow keep the size. Return (rows, columns).",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_score_map(predicted_score_map):
    QUESTION.assert_passes(predicted_score_map)
