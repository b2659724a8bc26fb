"""Exercise 8, question 2: the parameters of a ResNeXt bottleneck block, ``bottleneck_parameters``.

The reference is torchvision: the number of elements of the parameters of
``torchvision.models.resnet.Bottleneck`` (with the projection shortcut torchvision's ``ResNet`` gives
it when the shape changes), built on the ``meta`` device so that nothing is allocated. The block is
the aggregated residual transformation of Xie, Girshick, Dollár, Tu & He, *Aggregated Residual
Transformations for Deep Neural Networks* (2017), https://arxiv.org/abs/1611.05431, Figure 3(c).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 3


def torchvision_parameters(in_channels, channels, groups, width_per_group, *, conv_groups=None):
    """sum(numel) of torchvision's Bottleneck; ``conv_groups`` overrides the 3x3's groups (for a mistake)."""
    out_channels = channels * Bottleneck.expansion
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        downsample = None
        if in_channels != out_channels:  # as torchvision's ResNet._make_layer builds it
            downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                       nn.BatchNorm2d(out_channels))
        block = Bottleneck(in_channels, channels, downsample=downsample, groups=groups, base_width=width_per_group)
    total = sum(p.numel() for p in block.parameters())
    if conv_groups is not None:  # the same block with the 3x3 convolution's groups changed
        conv = block.conv2
        total += conv.weight.numel() * groups // conv_groups - conv.weight.numel()
    return total


def inner_width(channels, groups, width_per_group):
    return channels * width_per_group // 64 * groups


def with_change(change):
    def value(in_channels, channels, groups, width_per_group):
        return change(torchvision_parameters(in_channels, channels, groups, width_per_group), in_channels,
                      channels, groups, width_per_group)
    return value


def bn_forgotten(total, c_in, c, g, wpg):
    width, out = inner_width(c, g, wpg), 4 * c
    return total - 2 * (width + width + out) - (2 * out if c_in != out else 0)


def projection_forgotten(total, c_in, c, g, wpg):
    return total - (c_in * 4 * c + 2 * 4 * c) if c_in != 4 * c else None


def biases_counted(total, c_in, c, g, wpg):
    width, out = inner_width(c, g, wpg), 4 * c
    return total + width + width + out + (out if c_in != out else 0)


def width_not_scaled(c_in, c, g, wpg):
    """The count with the inner width taken as groups * width_per_group, whatever channels is."""
    if c == 64:
        return None  # then groups * width_per_group is the right width
    width, out = g * wpg, 4 * c
    return (c_in * width + 9 * width * (width // g) + width * out + 2 * (width + width + out)
            + ((c_in * out + 2 * out) if c_in != out else 0))


# (in_channels, channels, groups, width_per_group) of each case: ResNeXt-50's stages (32x4d), their first
# blocks (projection), other cardinalities, ResNet-50 (1x64d) and wide ResNet-50-2 (1x128d).
SETTINGS = [(256, 64, 32, 4), (64, 64, 32, 4), (512, 128, 32, 4), (256, 128, 32, 4), (1024, 256, 32, 4),
            (256, 64, 8, 14), (256, 64, 1, 64), (512, 128, 1, 128), (128, 32, 4, 16), (2048, 512, 64, 4)]


def cases(draw):
    found = []
    for k, (in_channels, channels, groups, width_per_group) in enumerate(SETTINGS):
        if k >= 8:  # two more with random channels (a multiple of 16, so that the inner width is whole)
            channels = 16 * draw.int(1, 8)
            in_channels = draw.choice([4 * channels, 2 * channels])
        found.append(Case((in_channels, channels, groups, width_per_group),
                          f"in_channels={in_channels}, channels={channels}, groups={groups}, "
                          f"width_per_group={width_per_group}"))
    return found


QUESTION = Question(
    name="q2",
    function="bottleneck_parameters",
    points=points,
    reference=torchvision_parameters,
    oracle="sum(p.numel() for p in torchvision.models.resnet.Bottleneck(...).parameters()), with its projection shortcut",
    cases=cases,
    mistakes=(
        Mistake("groups are ignored in the 3x3 convolution: with groups=g each of its filters sees only "
                "width // g input channels, so it has 9 * width * width / g weights, not 9 * width * width.",
                value=lambda c_in, c, g, wpg: torchvision_parameters(c_in, c, g, wpg, conv_groups=1) if g > 1 else None),
        Mistake("the batch norms are forgotten: each of the three convolutions (and the projection) is followed by "
                "a batch norm with 2 parameters per channel (its weight and its bias).", value=with_change(bn_forgotten)),
        Mistake("the projection shortcut is forgotten: when in_channels != 4 * channels the shortcut is a 1x1 "
                "convolution to 4 * channels, followed by a batch norm.", value=with_change(projection_forgotten)),
        Mistake("biases are counted on the convolutions: in a ResNet every convolution is followed by batch norm, "
                "which has its own shift, so the convolutions have bias=False.", value=with_change(biases_counted)),
        Mistake("the inner width is not scaled with channels: it is width = channels * width_per_group / 64 * groups "
                "(width_per_group is given for channels = 64, the first stage; later stages are 2, 4, 8 times wider).",
                value=width_not_scaled),
    ),
    hints=(
        "Draw the block: 1x1 conv in_channels -> width, 3x3 conv width -> width in `groups` groups, 1x1 conv "
        "width -> 4 * channels; each followed by batch norm. Then the shortcut.",
        "A grouped convolution with g groups has g banks of C_out / g filters, each filter over C_in / g "
        "input channels (chapter 2's count).",
        "Check your function on ResNeXt-50's first block (in_channels=64, channels=64, groups=32, "
        "width_per_group=4) against torchvision's resnext50_32x4d().layer1[0].",
    ),
    forbidden=Forbidden(modules=("companion.count", "torch.nn.modules.conv", "torchvision.models.resnet",
                                 "companion.models.resnet"),
                        names=("Conv2d", "Bottleneck", "count_parameters", "resnext50_32x4d", "ResNet"),
                        what="the count (by formula, without building the block)"),
)


@test_case(points=points)
def test_bottleneck_parameters(bottleneck_parameters):
    QUESTION.assert_passes(bottleneck_parameters)
