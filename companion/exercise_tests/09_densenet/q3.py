"""Exercise 9, question 3: a DenseNet-BC layer as a module, ``dense_layer``.

The learner's ``dense_layer(in_channels, growth_rate, bn_size)`` returns an ``nn.Module``. The
grader builds it, loads into it the state dict of torchvision's ``_DenseLayer`` (random weights and
batch-norm statistics) and runs it in evaluation mode on a concatenation of feature maps; only the
output tensor comes back. The reference is ``torchvision.models.densenet._DenseLayer`` itself
(Huang et al., *Densely Connected Convolutional Networks*, CVPR 2017,
https://arxiv.org/abs/1608.06993: BN-ReLU-conv1x1 to ``bn_size * k``, BN-ReLU-conv3x3 to ``k``);
each known mistake is the layer written with ``F.conv2d`` and ``F.batch_norm`` with one thing
changed. An otter-grader exception-based test file that also defines ``QUESTION`` for
``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case
from torchvision.models.densenet import _DenseLayer

from companion.grade import Case, Forbidden, Mistake, Question, modules

OK_FORMAT = False
name = "q3"
points = 3


def torchvision_layer(in_channels, growth_rate, bn_size):
    return _DenseLayer(in_channels, growth_rate, bn_size, drop_rate=0.0)


def build_and_run(dense_layer, state, x, in_channels, growth_rate, bn_size):
    """How the learner's function is called: build the layer, load the weights by name, run it in eval mode."""
    layer = modules.load_named_state(dense_layer(in_channels, growth_rate, bn_size), state, function="dense_layer",
                             layout="norm1, conv1, norm2, conv2, with convolutions without bias")
    with torch.no_grad():
        return layer(x.clone())


def reference(state, x, in_channels, growth_rate, bn_size):
    return build_and_run(torchvision_layer, state, x, in_channels, growth_rate, bn_size)


def functional_layer(state, x, *, concatenate=False, final_relu=False, padding=1, relu_before_bn=False,
                     second_relu=True):
    """The layer written with F.conv2d and F.batch_norm (eval mode), right with the defaults."""

    def bn(t, prefix):
        return F.batch_norm(t, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                            state[f"{prefix}.weight"], state[f"{prefix}.bias"], training=False)

    def bn_relu(t, prefix, relu=True):
        if not relu:
            return bn(t, prefix)
        return bn(F.relu(t), prefix) if relu_before_bn else F.relu(bn(t, prefix))

    out = F.conv2d(bn_relu(x, "norm1"), state["conv1.weight"])  # (N, bn_size * k, H, W)
    out = F.conv2d(bn_relu(out, "norm2", second_relu), state["conv2.weight"], padding=padding)  # (N, k, H', W')
    if final_relu:
        out = F.relu(out)
    return torch.cat([x, out], dim=1) if concatenate else out


def random_state(draw, in_channels, growth_rate, bn_size):
    """torchvision's state dict for the layer, filled with random weights and batch-norm statistics."""
    with torch.device("meta"):
        template = torchvision_layer(in_channels, growth_rate, bn_size)  # names and shapes only
    return modules.random_state(draw, template)


# (in_channels, growth_rate, bn_size)
SETTINGS = [(4, 2, 4), (6, 3, 2), (10, 4, 4), (3, 5, 1), (8, 2, 3), (12, 4, 2)]


def cases(draw):
    found = []
    for in_channels, growth_rate, bn_size in SETTINGS:
        h, w = draw.int(3, 8), draw.int(3, 8)
        x = draw.normal(2, in_channels, h, w, dtype=torch.float32)
        found.append(Case((random_state(draw, in_channels, growth_rate, bn_size), x, in_channels, growth_rate, bn_size),
                          f"dense_layer({in_channels}, {growth_rate}, bn_size={bn_size}) on x of shape "
                          f"(2, {in_channels}, {h}, {w})"))
    return found


def variant(**changes):
    return lambda state, x, in_channels, growth_rate, bn_size: functional_layer(state, x, **changes)


LAYERS = Forbidden(
    modules=("companion.models", "torchvision.models"),
    names=("_DenseLayer", "_DenseBlock", "DenseLayer", "DenseBlock", "DenseNet", "densenet121"),
    what="the dense layer",
)

QUESTION = Question(
    name="q3",
    function="dense_layer",
    points=points,
    reference=reference,
    oracle="torchvision.models.densenet._DenseLayer",
    cases=cases,
    call=build_and_run,
    mistakes=(
        Mistake("the layer returns the concatenation [x, new features]: a dense layer outputs only its k new "
                "channels; the block concatenates them with its input.", value=variant(concatenate=True)),
        Mistake("the output goes through a ReLU: the layer ends with the 3x3 convolution (pre-activation order, "
                "BN-ReLU-conv), and the next layer's BN-ReLU comes first.", value=variant(final_relu=True)),
        Mistake("the 3x3 convolution has no padding: use padding=1 so the new features keep the input's height "
                "and width (the block concatenates them with the input).", value=variant(padding=0)),
        Mistake("the ReLU comes before the batch norm: each half of the layer is BN, then ReLU, then the "
                "convolution.", value=variant(relu_before_bn=True)),
        Mistake("the ReLU between norm2 and conv2 is missing: both convolutions are preceded by BN and ReLU.",
                value=variant(second_relu=False)),
    ),
    hints=(
        "Write the layer as two halves of the same shape: normalise, apply the nonlinearity, convolve. What are "
        "the input and output channels of each convolution, and what is its kernel size?",
        "The new features must have the same height and width as x, or the block could not concatenate them.",
        "The grader loads torchvision's weights by name: norm1, conv1, norm2, conv2 (no biases in the convolutions). "
        "Compare your layer's state_dict().keys() with those names.",
    ),
    forbidden=LAYERS,
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_dense_layer(dense_layer):
    QUESTION.assert_passes(dense_layer)
