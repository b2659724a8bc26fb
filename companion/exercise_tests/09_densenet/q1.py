"""Exercise 9, question 1: predict, then measure, how the channels grow through a small DenseNet.

The learner writes down three numbers before building anything, for
``DenseNet(growth_rate=12, block_config=(5, 4), num_init_features=24)`` (a DenseNet-BC, compression
0.5): the channels that leave transition 1, the channels that layer 3 of block 2 reads, and the
channels that block 2 outputs. A dense block of ``L`` layers turns ``C`` channels into ``C + L k``,
its layer ``l`` reads ``C + (l - 1) k``, and a transition turns ``m`` into ``floor(theta m)``
(Huang et al., *Densely Connected Convolutional Networks*, CVPR 2017, https://arxiv.org/abs/1608.06993,
section 3). The reference measures the three numbers on torchvision's ``DenseNet``; the common
wrong predictions are known mistakes (no compression, ``C + l k``, the block's input forgotten, a
transition after the last block).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2
GROWTH, BLOCKS, INIT = 12, (5, 4), 24


def measured():
    """(after transition 1, read by layer 3 of block 2, out of block 2), measured on torchvision's DenseNet."""
    import torch
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.DenseNet(GROWTH, BLOCKS, INIT)
    return (model.features.transition1.conv.out_channels,
            model.features.denseblock2.denselayer3.conv1.in_channels,
            model.classifier.in_features)


def cases(draw):
    return [Case((), "DenseNet(growth_rate=12, block_config=(5, 4), num_init_features=24)")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    answer = function()
    if isinstance(answer, (tuple, list)) and len(answer) == 3:
        return tuple(answer)
    raise TypeError("predicted_channels must return three numbers: (after transition 1, "
                    "read by layer 3 of block 2, out of block 2)")


def part(index, value):
    def matches(got, expected, args):
        return isinstance(got, (tuple, list)) and len(got) == 3 and got[index] == value
    return matches


QUESTION = Question(
    name="q1",
    function="predicted_channels",
    points=points,
    reference=measured,
    oracle="the channels measured on torchvision's DenseNet(12, (5, 4), 24)",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the transition does not compress: block 1 ends with 24 + 5 * 12 = 84 channels, and the "
                "transition's 1x1 convolution keeps floor(0.5 * 84) of them.", matches=part(0, 84)),
        Mistake("the block's input is forgotten: a dense block concatenates its input with the new features, "
                "so block 1 ends with C + L k = 24 + 5 * 12 channels, not L k.", matches=part(0, 30)),
        Mistake("layer 3 reads the block's input and the outputs of layers 1 and 2 only: C + (l - 1) k = "
                "42 + 2 * 12, not C + l k (it cannot read its own output).", matches=part(1, 42 + 3 * 12)),
        Mistake("layer 3 reads the block's input too: [x_0, x_1, x_2] has C + 2k channels, not 2k.",
                matches=part(1, 2 * 12)),
        Mistake("there is no transition after the last block: block 2's output is 42 + 4 * 12, "
                "not compressed.", matches=part(2, (42 + 4 * 12) // 2)),
        Mistake("block 2's output keeps its input: C + L k = 42 + 4 * 12, not L k.", matches=part(2, 4 * 12)),
    ),
    hints=(
        "Walk the network: 24 channels after the stem, then block 1 (5 layers, each adds k = 12), then "
        "transition 1 (compression 0.5), then block 2.",
        "Layer l of a block reads [x_0, x_1, ..., x_{l-1}]: the block's input and the l - 1 outputs before it.",
        "Return a tuple of three whole numbers.",
    ),
    forbidden=Forbidden(modules=("companion.models", "torchvision.models"),
                        names=("DenseNet", "densenet121", "_DenseBlock", "_Transition"),
                        what="the prediction (without building the network)"),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_channels(predicted_channels):
    QUESTION.assert_passes(predicted_channels)
