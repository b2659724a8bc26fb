"""Exercise 9, question 2: predict, then measure, the parameters of a dense layer and of a transition.

For the network of question 1, ``DenseNet(growth_rate=12, block_config=(5, 4), num_init_features=24)``,
the learner predicts the trainable parameters of layer 3 of block 2 (BN-ReLU-conv1x1 to ``4k``,
BN-ReLU-conv3x3 to ``k``, no biases, reading ``m = 66`` channels) and of transition 1 (BN-ReLU-conv1x1
from 84 to 42 channels, then average pooling). The reference counts them on torchvision's modules;
the common wrong predictions are known mistakes (batch norms forgotten or their running statistics
counted, biases, no bottleneck, the 3x3 kernel forgotten, the wrong ``m``, no compression).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2
K, M, WIDE = 12, 66, 48  # growth rate, channels layer 3 of block 2 reads, its bottleneck (4k)
BLOCK_OUT, COMPRESSED = 84, 42  # transition 1: in and out


def measured():
    """(parameters of denselayer3 of block 2, parameters of transition 1), counted on torchvision's DenseNet."""
    import torchvision

    model = torchvision.models.DenseNet(K, (5, 4), 24)
    layer, transition = model.features.denseblock2.denselayer3, model.features.transition1
    return (sum(p.numel() for p in layer.parameters()), sum(p.numel() for p in transition.parameters()))


def cases(draw):
    return [Case((), "DenseNet(growth_rate=12, block_config=(5, 4), num_init_features=24): "
                     "denselayer3 of block 2 and transition 1")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    answer = function()
    if isinstance(answer, (tuple, list)) and len(answer) == 2:
        return tuple(answer)
    raise TypeError("predicted_parameters must return two numbers: (the dense layer's, the transition's)")


def part(index, *values):
    def matches(got, expected, args):
        return isinstance(got, (tuple, list)) and len(got) == 2 and got[index] in values
    return matches


def layer(m=M, bn=2, bias=0, kernel=9):
    """A dense layer's parameters, right with the defaults, or with one thing changed."""
    return bn * m + m * WIDE + bias * WIDE + bn * WIDE + WIDE * K * kernel + bias * K


QUESTION = Question(
    name="q2",
    function="predicted_parameters",
    points=points,
    reference=measured,
    oracle="sum(p.numel()) of torchvision's denselayer3 (block 2) and transition1",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the transition is counted without compression: its 1x1 convolution maps 84 channels to "
                "floor(0.5 * 84) = 42, not to 84.", matches=part(1, 2 * 84 + 84 * 84, 84 * 84)),
        Mistake("the batch norms are not counted: each has a scale and a shift per channel (2 m, then 2 * 4k).",
                matches=part(0, layer(bn=0))),
        Mistake("the running statistics are counted: running_mean and running_var are buffers, not trainable "
                "parameters; a batch norm has 2 parameters per channel.", matches=part(0, layer(bn=4))),
        Mistake("the convolutions have a bias here: DenseNet's convolutions have none (bias=False), the batch "
                "norm after each one makes it redundant.", matches=part(0, layer(bias=1))),
        Mistake("the bottleneck is missing: the layer is BN-ReLU-conv1x1 to 4k = 48 channels, then "
                "BN-ReLU-conv3x3 to k, not one 3x3 convolution from m to k.",
                matches=part(0, 2 * M + M * K * 9)),
        Mistake("the 3x3 kernel is forgotten: the second convolution has 4k * k * 3 * 3 weights.",
                matches=part(0, layer(kernel=1))),
        Mistake("the layer's input is wrong: layer 3 of block 2 reads m = C + (l - 1) k = 42 + 2 * 12 = 66 "
                "channels.", matches=part(0, layer(m=42 + 3 * K), layer(m=2 * K), layer(m=42))),
    ),
    hints=(
        "Question 1 gives the channels: layer 3 of block 2 reads m = 66, transition 1 maps 84 to 42.",
        "Count each piece: a batch norm over c channels has 2c parameters; a convolution without bias from a to "
        "b channels with a k x k kernel has a * b * k * k.",
        "The dense layer: BN(m), conv1x1 m -> 4k, BN(4k), conv3x3 4k -> k. The transition: BN(84), conv1x1 84 -> 42; "
        "the average pooling has no parameters.",
    ),
    forbidden=Forbidden(modules=("companion.models", "torchvision.models", "companion.count",
                                 "torch.nn.modules.conv", "torch.nn.modules.batchnorm"),
                        names=("DenseNet", "densenet121", "_DenseLayer", "_Transition", "BatchNorm2d", "Conv2d",
                               "LazyConv2d", "count_parameters"),
                        what="the prediction (without building the layers)"),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_parameters(predicted_parameters):
    QUESTION.assert_passes(predicted_parameters)
