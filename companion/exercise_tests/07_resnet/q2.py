"""Exercise 7, question 2: counting a bottleneck block's parameters by formula, ``bottleneck_parameters``.

The reference is torchvision: the number of elements of the parameters of
``torchvision.models.resnet.Bottleneck`` (built on the ``meta`` device, so nothing is allocated), with
the projection shortcut (1x1 convolution and batch norm) exactly when the block changes the shape.
The block is in He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016
(https://arxiv.org/abs/1512.03385), Figure 5 and Table 1. An otter-grader exception-based test file
that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torch import nn
from torchvision.models.resnet import Bottleneck

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2


def torchvision_parameters(in_channels, channels, stride):
    with torch.device("meta"):
        downsample = None
        if stride != 1 or in_channels != 4 * channels:
            downsample = nn.Sequential(nn.Conv2d(in_channels, 4 * channels, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(4 * channels))
        block = Bottleneck(in_channels, channels, stride, downsample)
    return sum(p.numel() for p in block.parameters())


def formula(in_channels, channels, stride, *, expansion=4, bn_per_channel=2, conv_bias=False, shortcut="rule"):
    """The count written out, right with the defaults, or with one thing changed."""
    out = expansion * channels
    convs = [(in_channels, channels, 1), (channels, channels, 3), (channels, out, 1)]  # (in, out, kernel)
    norms = [channels, channels, out]
    project = {"rule": stride != 1 or in_channels != out, "never": False, "always": True}[shortcut]
    if project:
        convs.append((in_channels, out, 1))
        norms.append(out)
    weights = sum(c_in * c_out * k * k + (c_out if conv_bias else 0) for c_in, c_out, k in convs)
    return weights + bn_per_channel * sum(norms)


def variant(**changes):
    def value(in_channels, channels, stride):
        wrong = formula(in_channels, channels, stride, **changes)
        return None if wrong == formula(in_channels, channels, stride) else wrong

    return value


# (in_channels, channels, stride): the blocks of ResNet-50 (first blocks of stages 1 to 4, a later
# block), plus blocks whose shortcut changes only the channels or only the resolution.
SETTINGS = [(64, 64, 1), (256, 64, 1), (256, 128, 2), (512, 128, 1), (512, 256, 2), (1024, 256, 1),
            (1024, 512, 2), (2048, 512, 1), ("random", None, 1), ("random", None, 2), ("4x", None, 2)]


def cases(draw):
    found = []
    for in_channels, channels, stride in SETTINGS:
        if in_channels == "random":
            in_channels, channels = draw.int(3, 200), draw.int(2, 100)
        elif in_channels == "4x":  # in == 4 * channels: only the stride asks for a projection
            channels = draw.int(2, 100)
            in_channels = 4 * channels
        found.append(Case((in_channels, channels, stride),
                          f"in_channels={in_channels}, channels={channels}, stride={stride}"))
    return found


QUESTION = Question(
    name="q2",
    function="bottleneck_parameters",
    points=points,
    reference=torchvision_parameters,
    oracle="the parameter count of torchvision.models.resnet.Bottleneck",
    cases=cases,
    mistakes=(
        Mistake("the expansion is missing: a bottleneck outputs 4 * channels (its last 1x1 convolution expands), "
                "and its shortcut must match that.", value=variant(expansion=1)),
        Mistake("the projection shortcut is missing: when stride != 1 or in_channels != 4 * channels the shortcut "
                "is a 1x1 convolution and a batch norm, and their parameters count too.",
                value=variant(shortcut="never")),
        Mistake("a projection is counted where the shortcut is the identity: with stride 1 and in_channels == "
                "4 * channels the shortcut has no parameters.", value=variant(shortcut="always")),
        Mistake("the batch norms are forgotten: each has 2 parameters per channel (gamma and beta).",
                value=variant(bn_per_channel=0)),
        Mistake("the batch norms' running mean and variance are counted: they are buffers, not parameters; a batch "
                "norm has 2 parameters per channel.", value=variant(bn_per_channel=4)),
        Mistake("the convolutions are counted with a bias: in a ResNet they have none (the batch norm after each "
                "one has its own shift).", value=variant(conv_bias=True)),
    ),
    hints=(
        "List the layers of the block and of its shortcut, with the input and output channels of each.",
        "A convolution with C_in inputs, C_out outputs and a k x k kernel has C_in * C_out * k * k weights; decide "
        "for each layer whether it has anything else.",
        "When is the shortcut more than the identity? Compare what goes into the block with what comes out.",
    ),
    forbidden=Forbidden(modules=("companion.count", "companion.models", "torchvision.models", "torch.nn.modules.conv"),
                        names=("Conv2d", "BatchNorm2d", "Bottleneck", "count_parameters"),
                        what="the count (without building the block)"),
)


@test_case(points=points)
def test_bottleneck_parameters(bottleneck_parameters):
    QUESTION.assert_passes(bottleneck_parameters)
