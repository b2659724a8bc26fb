"""Exercise 8, question 1: find the bug in a colleague's pre-activation block and fix it, ``preact_block``.

The notebook shows a colleague's block whose two shortcuts are swapped: the identity shortcut
carries the pre-activated input relu(bn1(x)) and the projection shortcut reads x. The learner writes a function that returns an ``nn.Module`` with the parameter names of
``companion.models.preact.PreActBlock`` (``bn1``, ``conv1``, ``bn2``, ``conv2`` and, where the block
changes shape, ``shortcut``). The grader builds it, loads random weights and batch-norm statistics
into it, and runs it in evaluation and in training mode; only the outputs come back. The reference
is the companion's block (torch has none); each known mistake is the same block computed with
``torch.nn.functional`` in a wrong order. The block is the "full pre-activation" unit of He, Zhang,
Ren & Sun, *Identity Mappings in Deep Residual Networks* (2016), https://arxiv.org/abs/1603.05027,
Figure 4(e). An otter-grader exception-based test file that also defines ``QUESTION`` for
``companion.grade``.
"""

import torch
import torch.nn.functional as F
from torch import nn
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question
from companion.models.preact import PreActBlock

OK_FORMAT = False
name = "q1"
points = 4


def reshapes(in_channels, channels, stride):
    return stride != 1 or in_channels != channels


def parameter_shapes(in_channels, channels, stride):
    """The state dict's tensors and their shapes (bn* also have running_mean, running_var, num_batches_tracked)."""
    shapes = {"bn1": in_channels, "conv1": (channels, in_channels, 3, 3), "bn2": channels,
              "conv2": (channels, channels, 3, 3)}
    if reshapes(in_channels, channels, stride):
        shapes["shortcut"] = (channels, in_channels, 1, 1)
    return shapes


def random_state(draw, in_channels, channels, stride):
    """Random convolution weights, batch-norm affine parameters and running statistics (float64)."""
    state = {}
    for layer, shape in parameter_shapes(in_channels, channels, stride).items():
        if layer.startswith("conv") or layer == "shortcut":
            fan_in = shape[1] * shape[2] * shape[3]
            state[f"{layer}.weight"] = draw.normal(*shape, scale=(2 / fan_in) ** 0.5)
        else:
            uniform = lambda low, high: low + (high - low) * torch.rand(shape, generator=draw.generator,
                                                                         dtype=torch.float64)
            state[f"{layer}.weight"] = uniform(0.5, 1.5)
            state[f"{layer}.bias"] = draw.normal(shape, scale=0.3)
            state[f"{layer}.running_mean"] = draw.normal(shape, scale=0.3)
            state[f"{layer}.running_var"] = uniform(0.5, 1.5)
            state[f"{layer}.num_batches_tracked"] = torch.tensor(0)
    return state


def run_block(build, in_channels, channels, stride, state, x):
    """Build a block with ``build(in_channels, channels, stride)``, load ``state``, run it on ``x``.

    Evaluation mode first (the running statistics of ``state``), then training mode (batch statistics).
    """
    block = build(in_channels, channels, stride)
    if not isinstance(block, nn.Module):
        raise TypeError(f"preact_block must return an nn.Module, got {type(block).__name__}")
    block = block.double()
    have = {k: tuple(v.shape) for k, v in block.state_dict().items()}
    want = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if "shortcut.weight" in missing:
        raise ValueError(f"the block has no shortcut.weight: with in_channels={in_channels}, channels={channels} "
                         f"and stride={stride} the block changes the shape, so the shortcut must be a 1x1 "
                         f"convolution (bias=False) named shortcut")
    if missing or unexpected:
        raise ValueError(f"the block's parameters and buffers must be exactly {sorted(want)}; missing {missing}, "
                         f"unexpected {unexpected} (convolutions without bias, batch norms named bn1 and bn2)")
    wrong = [f"{k} is {have[k]}, expected {want[k]}" for k in want if have[k] != want[k]]
    if wrong:
        raise ValueError("wrong parameter shapes: " + "; ".join(wrong))
    block.load_state_dict(state)
    block.eval()
    evaluation = block(x.clone())
    block.train()
    training = block(x.clone())
    return {"the output in evaluation mode": evaluation.detach(), "the output in training mode": training.detach()}


def companion_block(in_channels, channels, stride):
    return PreActBlock(in_channels, channels, stride)


def reference(in_channels, channels, stride, state, x):
    return run_block(companion_block, in_channels, channels, stride, state, x)


def functional_block(in_channels, channels, stride, state, x, *, relu_after=False, post_activation=False,
                     identity_preactivated=False, projection_from_x=False, stride_second=False):
    """The block with torch.nn.functional, in both modes; the flags are the known mistakes."""

    def bn(layer, t, training):
        return F.batch_norm(t, state[f"{layer}.running_mean"].clone(), state[f"{layer}.running_var"].clone(),
                            state[f"{layer}.weight"], state[f"{layer}.bias"], training=training)

    def conv(layer, t, s, padding=1):
        return F.conv2d(t, state[f"{layer}.weight"], stride=s, padding=padding)

    s1, s2 = (1, stride) if stride_second else (stride, 1)
    outputs = {}
    for key, training in (("the output in evaluation mode", False), ("the output in training mode", True)):
        pre = F.relu(bn("bn1", x, training))
        if post_activation:  # the original order inside the branch: conv-BN-ReLU-conv-BN
            branch = bn("bn2", conv("conv2", F.relu(bn("bn1", conv("conv1", x, s1), training)), s2), training)
        else:
            branch = conv("conv2", F.relu(bn("bn2", conv("conv1", pre, s1), training)), s2)
        if reshapes(in_channels, channels, stride):
            shortcut = conv("shortcut", x if projection_from_x or post_activation else pre, stride, padding=0)
        else:
            shortcut = pre if identity_preactivated else x
        out = branch + shortcut
        outputs[key] = F.relu(out) if relu_after else out
    return outputs


def mistake(**flags):
    def value(in_channels, channels, stride, state, x):
        if flags.get("post_activation") and in_channels != channels:
            return None  # bn1 then has the wrong size: this order cannot load these weights
        if (flags.get("identity_preactivated") and reshapes(in_channels, channels, stride)) or (
                flags.get("projection_from_x") and not reshapes(in_channels, channels, stride)) or (
                flags.get("stride_second") and stride == 1):
            return None
        return functional_block(in_channels, channels, stride, state, x, **flags)
    return value


# (in_channels, channels, stride) of each case: identity shortcuts, and projections for a change of
# channels, of resolution, or both. Batch and image sizes are random.
SETTINGS = [(4, 4, 1), (3, 6, 1), (4, 4, 2), (3, 5, 2), (6, 6, 1), (2, 4, 2), (5, 5, 1)]


def cases(draw):
    found = []
    for in_channels, channels, stride in SETTINGS:
        n, h, w = draw.int(3, 5), draw.int(4, 7), draw.int(4, 7)
        state = random_state(draw, in_channels, channels, stride)
        x = draw.normal(n, in_channels, h, w)
        found.append(Case((in_channels, channels, stride, state, x),
                          f"preact_block({in_channels}, {channels}, stride={stride}) on x of shape "
                          f"({n}, {in_channels}, {h}, {w})"))
    return found


FORBIDDEN = Forbidden(
    modules=("companion.models.preact", "companion.models.wrn", "companion.models.resnet", "torchvision.models.resnet"),
    names=("PreActBlock", "PreActResNet", "preact_resnet18", "wide_resnet", "BasicBlock"),
    what="the pre-activation block (with nn.Conv2d, nn.BatchNorm2d and ReLU)",
)

QUESTION = Question(
    name="q1",
    function="preact_block",
    points=points,
    reference=reference,
    oracle="companion.models.preact.PreActBlock (He et al., 2016, full pre-activation)",
    cases=cases,
    call=run_block,
    mistakes=(
        Mistake("this is still the colleague's bug: the two shortcuts are swapped. The identity shortcut must carry "
                "x itself (not relu(bn1(x))), so that the path from block to block stays clean; only the projection "
                "shortcut reads the pre-activated input relu(bn1(x)).",
                value=lambda *args: functional_block(*args, identity_preactivated=True, projection_from_x=True)),
        Mistake("ReLU is applied after the addition: a pre-activation block ends with the addition, "
                "x + F(x), so that the identity path stays clean; the ReLUs sit inside the branch, before "
                "each convolution.", value=mistake(relu_after=True)),
        Mistake("the branch uses the original order, conv-BN-ReLU: pre-activation puts batch norm and ReLU "
                "*before* each convolution (BN-ReLU-conv, BN-ReLU-conv).", value=mistake(post_activation=True)),
        Mistake("the identity shortcut carries relu(bn1(x)) instead of x: when the shape does not change, the "
                "shortcut is x itself, untouched (only the projection shortcut reads the pre-activated input).",
                value=mistake(identity_preactivated=True)),
        Mistake("the projection shortcut reads x: as in the paper, the 1x1 convolution of the shortcut takes "
                "the pre-activated input relu(bn1(x)), like conv1.", value=mistake(projection_from_x=True)),
        Mistake("the stride is on the second convolution: the first 3x3 convolution (conv1) and the 1x1 "
                "shortcut carry the stride, conv2 has stride 1.", value=mistake(stride_second=True)),
    ),
    hints=(
        "Write the forward pass as one equation first: out = shortcut + conv2(relu(bn2(conv1(relu(bn1(x)))))). "
        "Which operations come before each convolution, and what comes after the addition?",
        "bn1 normalises the block's input (in_channels features), bn2 the output of conv1 (channels features). "
        "Both 3x3 convolutions have padding 1 and bias=False.",
        "The shortcut is a 1x1 convolution (bias=False, with the block's stride) only when the stride is not 1 or "
        "the channels change; otherwise it is the identity. Use torch.relu (not in place) where x is still needed.",
    ),
    forbidden=FORBIDDEN,
    rtol=1e-6,
    atol=1e-8,
)


@test_case(points=points)
def test_preact_block(preact_block):
    QUESTION.assert_passes(preact_block)
