"""Exercise 9, question 1: the channels at the end of a DenseNet, ``densenet_channels``.

A dense block of ``L`` layers with growth rate ``k`` turns ``C`` channels into ``C + L k``; a
transition with compression ``theta`` turns ``m`` channels into ``floor(theta m)`` (Huang et al.,
*Densely Connected Convolutional Networks*, CVPR 2017, https://arxiv.org/abs/1608.06993, section 3).
The reference walks the blocks as torchvision's ``DenseNet`` builds them (which always compresses by
0.5: ``tests/test_models_densenet_9.py`` checks the walk against it), with ``theta`` as a parameter.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import math

from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2


def walk(num_init_features, growth_rate, block_config, compression=0.5, *, rounding=math.floor,
         growth_once=False, keep_input=True, compress_last=False):
    """The channels after the last dense block, right with the defaults, or with one thing changed."""
    channels = num_init_features
    for i, n in enumerate(block_config):
        channels = (channels if keep_input else 0) + (growth_rate if growth_once else n * growth_rate)
        if i < len(block_config) - 1 or compress_last:
            channels = int(rounding(compression * channels))
    return channels


def reference(num_init_features, growth_rate, block_config, compression=0.5):
    return walk(num_init_features, growth_rate, block_config, compression)


def variant(**changes):
    def value(num_init_features, growth_rate, block_config, compression):
        return walk(num_init_features, growth_rate, block_config, compression, **changes)
    return value


def rounded_up(value, expected, args):
    """A transition that rounds theta * m up or to the nearest integer instead of down."""
    if type(value) is not int:
        return False
    return any(value == walk(*args, rounding=r) for r in (math.ceil, round))


# (num_init_features, growth_rate, block_config, compression): DenseNet-121, -169, -201 and -161,
# CIFAR DenseNet-BC networks, and other compressions (odd channel counts show the rounding).
SETTINGS = [
    (64, 32, (6, 12, 24, 16), 0.5), (64, 32, (6, 12, 32, 32), 0.5), (96, 48, (6, 12, 36, 24), 0.5),
    (24, 12, (16, 16, 16), 0.5), (16, 8, (6, 6), 0.5), (16, 12, (12, 12, 12), 1.0),
]


def cases(draw):
    found = [Case(s, f"densenet_channels({s[0]}, {s[1]}, {s[2]}, compression={s[3]})") for s in SETTINGS]
    for _ in range(6):  # random small networks, with odd channel counts and fractional compressions
        blocks = tuple(draw.int(1, 9) for _ in range(draw.int(2, 4)))
        setting = (draw.int(3, 40), draw.choice([5, 7, 9, 11, 12]), blocks, draw.choice([0.5, 0.6, 0.75, 0.3]))
        found.append(Case(setting, f"densenet_channels({setting[0]}, {setting[1]}, {setting[2]}, "
                                   f"compression={setting[3]})"))
    return found


QUESTION = Question(
    name="q1",
    function="densenet_channels",
    points=points,
    reference=reference,
    oracle="the channel walk of torchvision's DenseNet (C + L k per block, floor(theta m) per transition)",
    cases=cases,
    mistakes=(
        Mistake("the transitions do not compress: a transition turns m channels into floor(compression * m), "
                "not m.", value=lambda c, k, blocks, theta: walk(c, k, blocks, 1.0)),
        Mistake("the last block is compressed too: there is a transition between two blocks only, none after "
                "the last one.", value=variant(compress_last=True)),
        Mistake("the transition rounds up (or to the nearest integer): the 1x1 convolution has "
                "floor(compression * m) output channels, int(compression * m).", matches=rounded_up),
        Mistake("a block adds the growth rate only once: each of its L layers adds k channels, so a block adds "
                "L * k.", value=variant(growth_once=True)),
        Mistake("the block's input channels are lost: a dense block concatenates its input with the new "
                "features, C + L * k channels, not L * k.", value=variant(keep_input=False)),
    ),
    hints=(
        "Follow the channels through DenseNet-121 by hand: 64 after the stem, then block 1 (6 layers, k = 32), "
        "then transition 1, and so on. You should end with 1024.",
        "Which layers change the channel count, and by how much each? How many transitions does a network "
        "of B blocks have?",
        "compression * m is not always a whole number: the transition keeps the whole part.",
    ),
    forbidden=Forbidden(modules=("companion.models", "torchvision.models"),
                        names=("DenseNet", "densenet121", "densenet169", "densenet201", "densenet161"),
                        what="the channel count (without building the network)"),
)


@test_case(points=points)
def test_densenet_channels(densenet_channels):
    QUESTION.assert_passes(densenet_channels)
