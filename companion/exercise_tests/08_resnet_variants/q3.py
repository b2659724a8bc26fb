"""Exercise 8, question 3: the parameters of a wide residual network WRN-d-k, ``wrn_parameters``.

torch and torchvision have no CIFAR-style wide ResNet, so the reference is the companion's
``companion.models.wrn.wide_resnet`` (built on the ``meta`` device, so nothing is allocated), whose
parameter counts match the paper's (Zagoruyko & Komodakis, *Wide Residual Networks*, 2016,
https://arxiv.org/abs/1605.07146, Table 4: WRN-28-10 36.5M, WRN-16-8 11.0M, WRN-40-4 8.9M).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question
from companion.models.wrn import wide_resnet

OK_FORMAT = False
name = "q3"
points = 3


def companion_parameters(depth, widen_factor, num_classes=10, in_channels=3):
    with torch.device("meta"):  # shapes only
        model = wide_resnet(depth, widen_factor, num_classes, in_channels=in_channels)
    return sum(p.numel() for p in model.parameters())


def formula(depth, k, num_classes, in_channels, *, projections=True, first_projection=True, final_bn=True,
            bn=True, stem_widened=False):
    """The count written out, with the variants the known mistakes use."""
    n = (depth - 4) // 6
    stem = 16 * k if stem_widened else 16
    total = 9 * in_channels * stem
    channels = stem
    for group, width in enumerate((16 * k, 32 * k, 64 * k)):
        for block in range(n):
            total += (2 * channels if bn else 0) + 9 * channels * width + (2 * width if bn else 0) + 9 * width * width
            if block == 0 and channels != width and projections and (group > 0 or first_projection):
                total += channels * width  # the 1x1 projection shortcut
            channels = width
    return total + (2 * channels if bn and final_bn else 0) + (channels + 1) * num_classes


def variant(**changes):
    def value(depth, k, num_classes=10, in_channels=3):
        if changes.get("first_projection") is False and k == 1:
            return None  # with k = 1 the first group has no projection to forget
        return formula(depth, k, num_classes, in_channels, **changes)
    return value


# (depth, widen_factor) of each case; the paper's networks and smaller ones; classes and input channels random.
SETTINGS = [(28, 10), (16, 8), (40, 4), (16, 4), (10, 1), (22, 2), (10, 3), (16, 1)]


def cases(draw):
    found = []
    for depth, k in SETTINGS:
        num_classes, in_channels = draw.choice([10, 100]), draw.choice([1, 3])
        found.append(Case((depth, k, num_classes, in_channels),
                          f"depth={depth}, widen_factor={k}, num_classes={num_classes}, in_channels={in_channels}"))
    return found


QUESTION = Question(
    name="q3",
    function="wrn_parameters",
    points=points,
    reference=companion_parameters,
    oracle="sum(p.numel() for p in companion.models.wrn.wide_resnet(...).parameters())",
    cases=cases,
    mistakes=(
        Mistake("the projection shortcuts are forgotten: the first block of a group whose width differs from its "
                "input has a 1x1 convolution (no bias) on its shortcut.", value=variant(projections=False)),
        Mistake("the first group's projection is forgotten: the stem gives 16 channels and the first group has "
                "16 * k, so with k > 1 its first block needs a 1x1 projection too (with k = 1 it does not).",
                value=variant(first_projection=False)),
        Mistake("the final batch norm is forgotten: a pre-activation network ends with BN-ReLU after its last block "
                "(2 parameters per channel), before pooling.", value=variant(final_bn=False)),
        Mistake("the batch norms are forgotten: every convolution of a block is preceded by a batch norm with 2 "
                "parameters per channel of its input.", value=variant(bn=False)),
        Mistake("the stem is widened: the first 3x3 convolution has 16 output channels whatever k is; only the "
                "three groups are k times wider.", value=variant(stem_widened=True)),
    ),
    hints=(
        "First turn the depth into blocks per group: d = 6n + 4. WRN-28-10 has n = 4 blocks in each of its "
        "three groups.",
        "List the layers: a 3x3 stem to 16 channels; three groups of n pre-activation blocks (BN-ReLU-conv3x3, "
        "BN-ReLU-conv3x3) with 16k, 32k and 64k channels; BN-ReLU; global pooling; a linear classifier.",
        "A block's shortcut is a 1x1 convolution where its input and output widths differ. Convolutions have no "
        "bias; batch norms have 2 parameters per channel; the classifier has a bias.",
    ),
    forbidden=Forbidden(modules=("companion.count", "companion.models.wrn", "companion.models.preact",
                                 "torch.nn.modules.conv"),
                        names=("wide_resnet", "PreActResNet", "PreActBlock", "Conv2d", "count_parameters"),
                        what="the count (by formula, without building the network)"),
)


@test_case(points=points)
def test_wrn_parameters(wrn_parameters):
    QUESTION.assert_passes(wrn_parameters)
