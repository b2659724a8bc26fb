"""Exercise 26, question 1: predict, then verify, the size of a Grad-CAM map, ``predicted_map_size``.

Grad-CAM at VGG-16's last convolution (``features[28]``, conv5_3, before the fifth max-pool) for an
input of 3 x 300 x 200 pixels: the 3 x 3 convolutions keep the size (padding 1), and each of the
four 2 x 2 max-pools before the layer halves it, rounding down: 300 -> 150 -> 75 -> 37 -> 18 and
200 -> 100 -> 50 -> 25 -> 12, so the map is 18 x 12. The reference runs torchvision's VGG-16 on the
``meta`` device (shapes only). Simonyan and Zisserman (2014), https://arxiv.org/abs/1409.1556;
Selvaraju et al. (2017), https://arxiv.org/abs/1610.02391.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torchvision.models import vgg16

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2


def measured():
    with torch.device("meta"):
        features = vgg16().features
        out = features[:29](torch.empty(1, 3, 300, 200))  # up to conv5_3, features[28]
    return tuple(int(s) for s in out.shape[-2:])


def cases(draw):
    return [Case((), "VGG-16, input 3 x 300 x 200, Grad-CAM at features[28] (conv5_3)")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


QUESTION = Question(
    name="q1",
    function="predicted_map_size",
    points=points,
    reference=measured,
    oracle="torchvision's VGG-16 run on the meta device up to features[28]",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("one max-pool too many: conv5_3 comes before the fifth pool, so the map has been halved four "
                "times, not five.", value=lambda: (9, 6)),
        Mistake("max-pooling with a 2 x 2 window and stride 2 rounds down: 75 -> 37 and 25 -> 12, not up.",
                value=lambda: (19, 13)),
        Mistake("7 x 7 is what VGG's adaptive average pool makes after the features, for the classifier; the "
                "convolutions before it keep the input's proportions: 300 x 200 is not square.",
                value=lambda: (7, 7)),
        Mistake("14 x 14 is conv5_3's size for a 224 x 224 image; this input is 300 x 200.",
                value=lambda: (14, 14)),
        Mistake("the map has one value per position: return (height, width), without the 512 channels (Grad-CAM "
                "sums over them).", value=lambda: (512, 18, 12)),
        Mistake("the height and width are swapped: the input is 300 pixels high and 200 wide, so the map is "
                "(height, width) = (18, 12).", value=lambda: (12, 18)),
    ),
    hints=(
        "Which layers of VGG-16 change the size? The 3 x 3 convolutions have padding 1.",
        "Count the max-pools before features[28]: one after each block of convolutions.",
        "Each 2 x 2 max-pool with stride 2 maps n to floor(n / 2). Return a tuple (height, width) of ints.",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_map_size(predicted_map_size):
    QUESTION.assert_passes(predicted_map_size)
