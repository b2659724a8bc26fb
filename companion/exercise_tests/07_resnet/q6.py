"""Exercise 7, question 6: find the bug in a colleague's zero-init and fix it, ``zero_last_bn``.

Zero-init (Goyal et al., *Accurate, Large Minibatch SGD*, 2017, section 5.1,
https://arxiv.org/abs/1706.02677; torchvision's ``zero_init_residual=True``) sets gamma of the *last*
batch norm of every residual branch to 0 (``bn2`` of a ``BasicBlock``, ``bn3`` of a ``Bottleneck``), so
that every block starts as the identity and still learns from the first step. The colleague zeroes
``bn1`` instead: the block also starts as the identity, but its branch is dead for good (relu of 0 has
no gradient, so nothing before bn2 ever changes).

The grader builds small networks of torchvision blocks (basic blocks, bottlenecks, projections, a stem
with its own batch norm) from a seed, calls the learner's ``zero_last_bn`` on them, and compares every
parameter (the sum of its absolute values) with the same network after torchvision's own zero-init.
Each known mistake is the same network zeroed the wrong way.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q6"
points = 3


def projection(c_in, c_out, stride):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


def build(kind, seed):
    """A small network of torchvision blocks: a stem (conv, batch norm, ReLU), then two or three blocks."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        stem = [nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()]
        if kind == "basic":
            blocks = [BasicBlock(8, 8), BasicBlock(8, 16, 2, projection(8, 16, 2))]
        elif kind == "bottleneck":
            blocks = [Bottleneck(8, 4, downsample=projection(8, 16, 1)), Bottleneck(16, 4),
                      Bottleneck(16, 8, 2, projection(16, 32, 2))]
        else:
            blocks = [BasicBlock(8, 16, 1, projection(8, 16, 1)), Bottleneck(16, 4)]
        return nn.Sequential(*stem, *blocks)


def summary(model):
    """What the check compares: the sum of the absolute values of every parameter."""
    return {name: float(p.detach().double().abs().sum()) for name, p in model.named_parameters()}


def run(zero_last_bn, kind, seed):
    """How the learner's function is called: on a fresh network, which it changes in place."""
    model = build(kind, seed)
    zero_last_bn(model)
    return summary(model)


def zero_variant(*, which="last", shortcut=False, weight_of="bn"):
    """A zero-init, right with the defaults, or with one thing changed."""

    def zero(model):
        for m in model.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                last = "bn3" if isinstance(m, Bottleneck) else "bn2"
                names = {"last": [last], "first": ["bn1"], "bn2": ["bn2"],
                         "all": ["bn1", "bn2"] + (["bn3"] if isinstance(m, Bottleneck) else [])}[which]
                if weight_of == "conv":
                    names = ["conv3" if isinstance(m, Bottleneck) else "conv2"]
                for layer in names:
                    nn.init.zeros_(getattr(m, layer).weight)
                if shortcut and m.downsample is not None:
                    nn.init.zeros_(m.downsample[1].weight)

    return zero


def variant(**changes):
    return lambda kind, seed: run(zero_variant(**changes), kind, seed)


def cases(draw):
    return [Case((kind, draw.int(0, 2**30)), f"a small network of torchvision blocks ({what}) with a stem")
            for kind, what in [("basic", "two BasicBlocks, one with a projection"),
                               ("bottleneck", "three Bottlenecks, two with a projection"),
                               ("mixed", "a BasicBlock with a projection and a Bottleneck")]]


QUESTION = Question(
    name="q6",
    function="zero_last_bn",
    points=points,
    reference=variant(),
    oracle="torchvision's zero_init_residual (gamma of bn2 in BasicBlock, of bn3 in Bottleneck, set to 0)",
    cases=cases,
    call=run,
    mistakes=(
        Mistake("this is still the colleague's bug: bn1 is zeroed. The block starts as the identity, but relu of "
                "a zero signal passes no gradient, so conv1, bn1 and conv2 never learn. Zero the *last* batch norm "
                "of the branch, the one just before the addition.", value=variant(which="first")),
        Mistake("a Bottleneck's last batch norm is bn3, not bn2: zeroing bn2 kills its 3x3 path for good, as "
                "in the colleague's version.", value=variant(which="bn2")),
        Mistake("every batch norm of the branch is zeroed: only the last one should be, or the branch can never "
                "learn.", value=variant(which="all")),
        Mistake("the shortcut's batch norm is zeroed too: a projection shortcut must carry the input, or the block "
                "outputs nothing at the start instead of starting as a (projected) identity.",
                value=variant(shortcut=True)),
        Mistake("the last convolution's weight is zeroed instead of the last batch norm's gamma: the block starts "
                "as the identity, but in training mode that batch norm then normalises an all-zero input, divides "
                "by sqrt(eps), and the first gradients through it are about 300 times too large. Set gamma = 0 "
                "and keep the convolution random.", value=variant(weight_of="conv")),
    ),
    hints=(
        "Which batch norm's output is added to the shortcut? If its gamma is 0 (and its beta is 0, as "
        "initialised), the branch adds nothing.",
        "Walk over model.modules(), and treat BasicBlock (two convolutions) and Bottleneck (three) separately.",
        "Change the model in place with nn.init.zeros_(...) or under torch.no_grad(); leave everything else "
        "as it is.",
    ),
    forbidden=Forbidden(names=("zero_init_residual",), what="the zero-init (without rebuilding the network)"),
)


@test_case(points=points)
def test_zero_last_bn(zero_last_bn):
    QUESTION.assert_passes(zero_last_bn)
