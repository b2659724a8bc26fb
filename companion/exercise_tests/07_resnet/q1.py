"""Exercise 7, question 1: a residual block as a module, ``basic_block``.

The learner's ``basic_block(in_channels, channels, stride)`` returns an ``nn.Module``. The grader
builds it, loads into it the state dict of torchvision's ``BasicBlock`` (random weights and
batch-norm statistics, with the 1x1 projection shortcut ``downsample`` when the shape changes) and
runs it in evaluation mode; only the output tensor (and whether the block has a projection) comes
back. The reference is ``torchvision.models.resnet.BasicBlock`` itself (He et al., *Deep Residual
Learning for Image Recognition*, CVPR 2016, https://arxiv.org/abs/1512.03385, Figure 2 and the
projection shortcut "option B"); each known mistake is the block written with ``F.conv2d`` and
``F.batch_norm`` with one thing changed. An otter-grader exception-based test file that also
defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case
from torch import nn
from torchvision.models.resnet import BasicBlock

from companion.grade import Case, Forbidden, Mistake, Question, modules
from companion.grade.compare import difference, to_plain

OK_FORMAT = False
name = "q1"
points = 4

#: The shortcut's parameters and buffers when it is a projection (torchvision's names).
SHORTCUT = {"downsample.0.weight", "downsample.1.weight", "downsample.1.bias", "downsample.1.running_mean",
            "downsample.1.running_var"}


def reshapes(in_channels, channels, stride):
    return stride != 1 or in_channels != channels


def torchvision_block(in_channels, channels, stride):
    """torchvision's BasicBlock, with the projection shortcut (1x1 convolution and batch norm) when the shape changes."""
    downsample = None
    if reshapes(in_channels, channels, stride):
        downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(channels))
    return BasicBlock(in_channels, channels, stride, downsample)


def _names(module_or_state):
    keys = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    return {k for k in keys if not k.endswith("num_batches_tracked")}


def build_and_run(basic_block, state, x, in_channels, channels, stride):
    """How the learner's function is called: build the block, load the weights by name, run it in eval mode."""
    block = basic_block(in_channels, channels, stride)
    if not isinstance(block, nn.Module):
        raise TypeError(f"basic_block must return an nn.Module (the block), got {type(block).__name__}")
    names, reference = _names(block), _names(state)
    unexpected, missing = sorted(names - reference - SHORTCUT), sorted(reference - names - SHORTCUT)
    if unexpected or missing:
        raise ValueError("the grader loads torchvision's weights by name: the block needs conv1, bn1, conv2, bn2 "
                         "(and downsample = nn.Sequential(1x1 conv, batch norm) as a projection shortcut), with "
                         f"convolutions without bias; missing {missing}, unexpected {unexpected}")
    shortcut = "projection" if "downsample.0.weight" in names else "identity"
    if names - reference or ("downsample.0.weight" in reference and shortcut == "identity"):
        return {"shortcut": shortcut, "output": None}  # a shortcut the weights do not fit: nothing to run
    block.load_state_dict(state, strict=False)  # strict but for a projection without its batch norm
    block.eval()
    with torch.no_grad():
        out = block(x.clone())
    return {"shortcut": shortcut, "output": out}


def reference(state, x, in_channels, channels, stride):
    return build_and_run(torchvision_block, state, x, in_channels, channels, stride)


def functional_block(state, x, stride, *, relu_before_add=False, final_relu=True, stride_on_second=False,
                     shortcut_bn=True):
    """The block written with F.conv2d and F.batch_norm (eval mode), right with the defaults."""

    def bn(t, prefix):
        return F.batch_norm(t, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                            state[f"{prefix}.weight"], state[f"{prefix}.bias"], training=False)

    first, second = (1, stride) if stride_on_second else (stride, 1)
    out = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=first, padding=1), "bn1"))
    out = bn(F.conv2d(out, state["conv2.weight"], stride=second, padding=1), "bn2")
    if relu_before_add:
        out = F.relu(out)
    shortcut = x
    if "downsample.0.weight" in state:
        shortcut = F.conv2d(x, state["downsample.0.weight"], stride=stride)
        if shortcut_bn:
            shortcut = bn(shortcut, "downsample.1")
    out = out + shortcut
    return F.relu(out) if final_relu else out


def random_state(draw, in_channels, channels, stride):
    """torchvision's state dict for the block, filled with random weights and batch-norm statistics."""
    with torch.device("meta"):
        template = torchvision_block(in_channels, channels, stride)  # names and shapes only
    return modules.random_state(draw, template)


# (in_channels, channels, stride): identity shortcuts, and projections for a new resolution, new
# channels, or both (the first block of a stage).
SETTINGS = [(3, 3, 1), (4, 4, 2), (2, 5, 1), (3, 6, 2), (4, 4, 1), (2, 4, 2), (5, 3, 1), (3, 3, 2)]


def cases(draw):
    found = []
    for in_channels, channels, stride in SETTINGS:
        h, w = draw.int(4, 9), draw.int(4, 9)
        x = draw.normal(2, in_channels, h, w, dtype=torch.float32)
        found.append(Case((random_state(draw, in_channels, channels, stride), x, in_channels, channels, stride),
                          f"basic_block({in_channels}, {channels}, stride={stride}) on x of shape "
                          f"(2, {in_channels}, {h}, {w})"))
    return found


def variant(**changes):
    """A mistake's output: the functional block with one thing changed (None where it cannot show)."""

    def value(state, x, in_channels, channels, stride):
        if changes.get("stride_on_second") and stride == 1:
            return None
        if "shortcut_bn" in changes and not reshapes(in_channels, channels, stride):
            return None
        return {"shortcut": "projection" if reshapes(in_channels, channels, stride) else "identity",
                "output": functional_block(state, x, stride, **changes)}

    return value


def _shortcut_is(kind):
    """A wrong output whose block has the other kind of shortcut (on the cases where the learner is wrong)."""

    def matches(value, expected, args):
        return type(value) is dict and value.get("shortcut") == kind != expected["shortcut"]

    return matches


def relu_before_addition(value, expected, args):
    state, x, in_channels, channels, stride = args
    return any(difference(value, to_plain(variant(relu_before_add=True, final_relu=final)(*args)),
                          rtol=1e-4, atol=1e-5) is None for final in (False, True))


BLOCKS = Forbidden(
    modules=("companion.models", "torchvision.models"),
    names=("BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50"),
    what="the residual block",
)

QUESTION = Question(
    name="q1",
    function="basic_block",
    points=points,
    reference=reference,
    oracle="torchvision.models.resnet.BasicBlock (with a 1x1 convolution and batch norm as the projection shortcut)",
    cases=cases,
    call=build_and_run,
    mistakes=(
        Mistake("the projection shortcut is missing where the shape changes: when stride != 1 or in_channels != "
                "channels, x cannot be added to F(x) as it is; the shortcut must then be a 1x1 convolution with "
                "the block's stride, followed by batch norm, stored as downsample.", matches=_shortcut_is("identity")),
        Mistake("a projection shortcut is used where the shape does not change: when stride == 1 and in_channels "
                "== channels the shortcut is the identity, with no parameters (downsample = None).",
                matches=_shortcut_is("projection")),
        Mistake("the shortcut has no batch norm: the projection is a 1x1 convolution followed by batch norm "
                "(downsample = nn.Sequential(conv, nn.BatchNorm2d)).", value=variant(shortcut_bn=False)),
        Mistake("the ReLU comes before the addition: the branch ends with bn2 (no ReLU), F(x) and the shortcut are "
                "added, and the ReLU is applied to the sum.", matches=relu_before_addition),
        Mistake("the final ReLU is missing: the block returns relu(F(x) + shortcut(x)), not the bare sum.",
                value=variant(final_relu=False)),
        Mistake("the stride is on the wrong convolution: the first 3x3 convolution (conv1) has the block's stride, "
                "the second (conv2) has stride 1.", value=variant(stride_on_second=True)),
    ),
    hints=(
        "Draw the block as two paths from x to an addition. The two tensors added must have the same shape: which "
        "arguments tell you when they would not?",
        "Count the nonlinearities: one inside the branch, between the two convolutions, and one more somewhere "
        "after the branch. Where exactly does the paper's Figure 2 put it?",
        "The grader loads torchvision's weights by name: conv1, bn1, conv2, bn2 and, for a projection, "
        "downsample (an nn.Sequential of two modules). Compare your block's state_dict().keys() with those names.",
    ),
    forbidden=BLOCKS,
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_basic_block(basic_block):
    QUESTION.assert_passes(basic_block)
