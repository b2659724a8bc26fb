"""Exercise 9, question 2: the parameters of a DenseNet-BC layer, ``dense_layer_parameters``.

A DenseNet-BC layer (Huang et al., *Densely Connected Convolutional Networks*, CVPR 2017,
https://arxiv.org/abs/1608.06993, section 3, "Bottleneck layers") is BN-ReLU-conv1x1 from ``m`` to
``bn_size * k`` channels, then BN-ReLU-conv3x3 to ``k``, with no biases. The reference counts the
parameters of torchvision's ``_DenseLayer``, built on the meta device. An otter-grader
exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from otter.test_files import test_case
from torchvision.models.densenet import _DenseLayer

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2


def torchvision_parameters(in_channels, growth_rate, bn_size=4):
    layer = _DenseLayer(in_channels, growth_rate, bn_size, drop_rate=0.0).to("meta")
    return sum(p.numel() for p in layer.parameters())


def formula(m, k, bn_size=4, *, bn=2, bias=False, kernel=9, bottleneck=True):
    """The count, right with the defaults, or with one thing changed."""
    if not bottleneck:  # BN-ReLU-conv3x3 straight from m to k channels
        return bn * m + m * k * kernel + (k if bias else 0)
    wide = bn_size * k
    return bn * m + m * wide + (wide if bias else 0) + bn * wide + wide * k * kernel + (k if bias else 0)


def variant(**changes):
    return lambda m, k, bn_size: formula(m, k, bn_size, **changes)


def cases(draw):
    found = [Case((64, 32, 4), "dense_layer_parameters(64, 32, bn_size=4): the first layer of DenseNet-121"),
             Case((24 + 5 * 12, 12, 4), "dense_layer_parameters(84, 12, bn_size=4): layer 6 of DenseNet-BC-100")]
    for bn_size in (4, 4, 2, 1, 3, 4):
        m, k = draw.int(1, 300), draw.int(1, 48)
        found.append(Case((m, k, bn_size), f"dense_layer_parameters({m}, {k}, bn_size={bn_size})"))
    return found


QUESTION = Question(
    name="q2",
    function="dense_layer_parameters",
    points=points,
    reference=torchvision_parameters,
    oracle="sum(p.numel() for p in torchvision.models.densenet._DenseLayer(...).parameters())",
    cases=cases,
    mistakes=(
        Mistake("the batch norms are not counted: each nn.BatchNorm2d(c) has 2c parameters, a scale and a shift "
                "per channel.", value=variant(bn=0)),
        Mistake("the batch norms' running statistics are counted: running_mean and running_var are buffers, "
                "not parameters; a batch norm has 2 parameters per channel.", value=variant(bn=4)),
        Mistake("the convolutions have a bias here: DenseNet's convolutions have none (bias=False), the batch "
                "norm that follows provides the shift.", value=variant(bias=True)),
        Mistake("the 3x3 kernel is forgotten: the second convolution has bn_size * k * k * 3 * 3 weights.",
                value=variant(kernel=1)),
        Mistake("the bottleneck is missing: a DenseNet-BC layer first reduces the m input channels to "
                "bn_size * k with a 1x1 convolution (after BN-ReLU), and only then applies the 3x3 convolution.",
                value=variant(bottleneck=False)),
        Mistake("bn_size is ignored: the bottleneck has bn_size * k channels (4k by default, but not always).",
                value=lambda m, k, bn_size: None if bn_size == 4 else formula(m, k, 4)),
    ),
    hints=(
        "List the layer's modules in order, with their input and output channels: BN, ReLU, 1x1 conv, BN, ReLU, "
        "3x3 conv. Which of them have parameters?",
        "A convolution from a to b channels with an h x w kernel and no bias has a * b * h * w weights; a batch "
        "norm over c channels has c scales and c shifts (its running statistics are buffers).",
        "Check your formula on DenseNet-121's first layer, dense_layer_parameters(64, 32, 4) = 45,440.",
    ),
    forbidden=Forbidden(modules=("companion.count", "companion.models", "torchvision.models",
                                 "torch.nn.modules.conv", "torch.nn.modules.batchnorm"),
                        names=("Conv2d", "BatchNorm2d", "LazyConv2d", "count_parameters", "_DenseLayer",
                               "DenseLayer"),
                        what="the count (without building the layer)"),
)


@test_case(points=points)
def test_dense_layer_parameters(dense_layer_parameters):
    QUESTION.assert_passes(dense_layer_parameters)
