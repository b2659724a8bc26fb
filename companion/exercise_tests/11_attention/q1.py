"""Exercise 11, question 1: a squeeze-and-excitation block, ``se_block``.

A module question: the learner's ``se_block(channels, reduction)`` returns an ``nn.Module``; the
grader loads into it the random weights of a ``torchvision.ops.SqueezeExcitation`` (``fc1``,
``fc2``), runs it on a random feature map, and compares the output with torchvision's. Each known
mistake is the block computed with one step changed (softmax for sigmoid, max for average, ...).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case
from torch import nn
from torchvision.ops import SqueezeExcitation

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 3

KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")


def build_and_run(se_block, channels, reduction, state, x):
    """How the learner's se_block is called: build it, load torchvision-style weights, run it."""
    module = se_block(channels, reduction)
    if not isinstance(module, nn.Module):
        raise TypeError(f"se_block must return an nn.Module, got {type(module).__name__}")
    module = module.to(x.dtype)  # the cases are float64, so that small differences show
    own = module.state_dict()
    if set(own) != set(KEYS):
        raise ValueError(f"the module's parameters must be exactly {', '.join(KEYS)} (as torchvision's "
                         f"SqueezeExcitation names them), got {', '.join(own) or 'none'}")
    loaded = {}
    for key in KEYS:  # a Linear's (S, C) weight and a 1x1 convolution's (S, C, 1, 1) are the same numbers
        if own[key].numel() != state[key].numel():
            raise ValueError(f"{key} has shape {tuple(own[key].shape)}; for channels={channels} and "
                             f"reduction={reduction} it should hold {tuple(state[key].shape)}")
        loaded[key] = state[key].reshape(own[key].shape)
    module.load_state_dict(loaded)
    module.eval()
    with torch.no_grad():
        return module(x)


def reference(channels, reduction, state, x):
    block = SqueezeExcitation(channels, channels // reduction).double()
    block.load_state_dict(state)
    with torch.no_grad():
        return block(x)


def variant(*, pool="avg", hidden="relu", gate="sigmoid", scale=True, axis="channels"):
    """The block with one step changed (the defaults give the right block)."""

    def block(channels, reduction, state, x):
        z = x.amax((2, 3), keepdim=True) if pool == "max" else x.mean((2, 3), keepdim=True)  # (N, C, 1, 1)
        h = F.conv2d(z, state["fc1.weight"], state["fc1.bias"])
        h = F.relu(h) if hidden == "relu" else h
        s = F.conv2d(h, state["fc2.weight"], state["fc2.bias"])                           # (N, C, 1, 1)
        s = torch.softmax(s, dim=1) if gate == "softmax" else torch.sigmoid(s)
        if not scale:
            return s
        if axis == "width":  # (N, C) gates laid along the last axis: only possible when W == C
            if x.shape[-1] != channels:
                return None
            return x * s.view(x.shape[0], 1, 1, channels)
        return x * s

    return block


SETTINGS = [(16, 4, (2, 5, 7)), (32, 16, (3, 4, 4)), (8, 2, (2, 6, 8)), (24, 8, (1, 3, 5)), (12, 3, (2, 12, 12)),
            (64, 16, (2, 2, 3))]


def cases(draw):
    found = []
    for channels, reduction, (n, h, w) in SETTINGS:
        squeezed = channels // reduction
        state = {"fc1.weight": draw.normal(squeezed, channels, 1, 1, scale=0.5),
                 "fc1.bias": draw.normal(squeezed, scale=0.5),
                 "fc2.weight": draw.normal(channels, squeezed, 1, 1),
                 "fc2.bias": draw.normal(channels, scale=0.5)}
        x = draw.normal(n, channels, h, w) + draw.normal(1, channels, 1, 1)  # channels with different means
        found.append(Case((channels, reduction, state, x),
                          f"channels={channels}, reduction={reduction}, x of shape {(n, channels, h, w)}"))
    return found


SQUEEZE_EXCITATION = Forbidden(
    modules=("companion.models.se", "torchvision.ops.misc"),
    names=("SqueezeExcitation", "SEBlock", "SEBasicBlock", "SEBottleneck", "se_resnet50"),
    what="the squeeze-and-excitation block",
)

QUESTION = Question(
    name="q1",
    function="se_block",
    points=points,
    reference=reference,
    oracle="torchvision.ops.SqueezeExcitation with the same weights",
    cases=cases,
    call=build_and_run,
    mistakes=(
        Mistake("the gates come from a softmax: a softmax makes the C gates compete (they sum to 1, so each is "
                "about 1/C); squeeze-and-excitation gives every channel its own gate in (0, 1) with a sigmoid.",
                value=variant(gate="softmax")),
        Mistake("the squeeze takes the maximum: squeeze-and-excitation summarises each channel by its average "
                "over all H x W positions (global average pooling), not its maximum.", value=variant(pool="max")),
        Mistake("the ReLU between the two layers is missing: without it fc2(fc1(z)) is one linear map, and the "
                "excitation can no longer model non-linear interactions between channels.",
                value=variant(hidden="none")),
        Mistake("the block returns the gates, not the rescaled feature map: the last step (scale) multiplies "
                "every channel of x by its gate, so the output has the shape of x.", value=variant(scale=False)),
        Mistake("the gates multiply the wrong axis: they must be shaped (N, C, 1, 1), one per channel, "
                "broadcast over the H x W positions; shaped (N, 1, 1, C) they scale the columns of the image.",
                value=variant(axis="width")),
    ),
    hints=(
        "Three steps: squeeze each channel of x to one number, excite (a small two-layer network turns those "
        "C numbers into C gates), scale (multiply each channel by its gate).",
        "torchvision stores the two layers as 1x1 convolutions named fc1 and fc2; nn.Linear works too if you "
        "flatten the summary first, but then reshape the gates back before multiplying.",
        "Check the shapes: the summary and the gates are (N, C, 1, 1) (or (N, C)), the output (N, C, H, W); "
        "every gate lies strictly between 0 and 1.",
    ),
    forbidden=SQUEEZE_EXCITATION,
)


@test_case(points=points)
def test_se_block(se_block):
    QUESTION.assert_passes(se_block)
