"""Exercise 5, question 1: the parameters of a VGG, counted by hand, ``vgg_parameters``.

The reference builds the network from the configuration (``companion.models.vgg.VGG``, whose
layers and parameter shapes are torchvision's) on the meta device, where no memory is allocated,
and adds up ``p.numel()`` over its parameters. The learner must get the same number from the
configuration list alone, with a formula per layer. Each known mistake is the right formula with
one term changed (a forgotten bias, the running statistics of batch norm counted as parameters,
the 7x7 map of the first linear layer forgotten, ...).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.count import count_parameters
from companion.grade import Case, Forbidden, Mistake, Question
from companion.models.vgg import VGG, VGG11, VGG16

OK_FORMAT = False
name = "q1"
points = 2


def built_and_counted(config, in_channels, num_classes, batch_norm):
    """sum(p.numel()) of the VGG built from the config (on the meta device: shapes only)."""
    with torch.device("meta"):
        model = VGG(list(config), num_classes, in_channels=in_channels, batch_norm=batch_norm)
    return count_parameters(model)


def formula(config, in_channels, num_classes, batch_norm, *, conv_bias=True, linear_bias=True, kernel_taps=True,
            bn_per_channel=2, map_7x7=True, classifier=True):
    """The count written out, with the variants the known mistakes use."""
    total, channels = 0, in_channels
    for entry in config:
        if entry == "M":
            continue
        taps = 9 * channels if kernel_taps else 9  # one 3x3 kernel per (input channel, output channel)
        total += (taps + conv_bias) * entry
        total += bn_per_channel * entry if batch_norm else 0
        channels = entry
    if classifier:
        first = channels * (49 if map_7x7 else 1)
        for n_in, n_out in ((first, 4096), (4096, 4096), (4096, num_classes)):
            total += (n_in + linear_bias) * n_out
    return total


def variant(**changes):
    return lambda *args: formula(*args, **changes)


def random_config(draw):
    config = []
    for _ in range(draw.int(1, 5)):  # stages
        width = draw.choice([8, 16, 24, 32, 48, 64, 96, 128])
        config += [width] * draw.int(1, 3) + ["M"]
    return tuple(config)


def cases(draw):
    found = [Case((VGG11, 3, 1000, False), "VGG11 (configuration A), in_channels=3, num_classes=1000"),
             Case((VGG16, 3, 1000, True), "VGG16 (configuration D) with batch norm, in_channels=3, num_classes=1000")]
    for k in range(6):
        config, in_channels = random_config(draw), draw.int(1, 3)
        num_classes, batch_norm = draw.int(2, 20), k % 2 == 0
        found.append(Case((config, in_channels, num_classes, batch_norm),
                          f"config={list(config)}, in_channels={in_channels}, num_classes={num_classes}, "
                          f"batch_norm={batch_norm}"))
    return found


COUNTING = Forbidden(
    modules=("companion.models", "companion.count", "torchvision", "torch.nn.modules"),
    names=("Conv2d", "Linear", "BatchNorm2d", "Sequential", "make_layers", "VGG", "vgg11", "vgg13", "vgg16", "vgg19",
           "count_parameters", "parameters", "state_dict"),
    what="the count (with a formula, without building the layers)",
)

QUESTION = Question(
    name="q1",
    function="vgg_parameters",
    points=points,
    reference=built_and_counted,
    oracle="sum(p.numel() for p in model.parameters()) of the VGG built from the configuration",
    cases=cases,
    mistakes=(
        Mistake("the running mean and variance of batch norm are counted: they are buffers, not parameters; a "
                "batch norm has 2 parameters per channel (its weight gamma and bias beta).",
                value=variant(bn_per_channel=4)),
        Mistake("batch norm is not counted: with batch_norm=True each convolution is followed by a batch norm "
                "with 2 parameters per channel (gamma and beta).", value=variant(bn_per_channel=0)),
        Mistake("the biases of the convolutions are forgotten: each output channel has one bias, so a 3x3 "
                "convolution has (9 * C_in + 1) * C_out parameters.", value=variant(conv_bias=False)),
        Mistake("the biases of the linear layers are forgotten: a linear layer has (n_in + 1) * n_out parameters.",
                value=variant(linear_bias=False)),
        Mistake("the biases are forgotten everywhere: each output channel of a convolution, and each output of a "
                "linear layer, has one bias.", value=variant(conv_bias=False, linear_bias=False)),
        Mistake("the input channels are left out of the convolutions: each output channel has one 3x3 kernel "
                "per input channel, 9 * C_in weights.", value=variant(kernel_taps=False)),
        Mistake("the first linear layer reads C values instead of C * 7 * 7: the feature map is average-pooled "
                "to 7x7 and flattened before the classifier.", value=variant(map_7x7=False)),
        Mistake("the classifier is missing: a VGG ends with three linear layers, C*7*7 -> 4096 -> 4096 -> "
                "num_classes, which hold most of its parameters.", value=variant(classifier=False)),
    ),
    hints=(
        "Walk through the config keeping track of the current number of channels, which starts at in_channels. "
        "A max-pool has no parameters.",
        "A convolution has one kernel per (input channel, output channel) pair and one bias per output channel; "
        "a linear layer has one weight per (input, output) pair and one bias per output. Check your formula on "
        "VGG11, which has 132,863,336 parameters.",
        "Batch norm keeps 4 numbers per channel, but only 2 of them are learned.",
    ),
    forbidden=COUNTING,
)


@test_case(points=points)
def test_vgg_parameters(vgg_parameters):
    QUESTION.assert_passes(vgg_parameters)
