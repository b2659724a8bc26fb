"""Exercise 10, question 3: SqueezeNet's Fire module as an ``nn.Module``, ``Fire``.

The grader draws the weights of a Fire module, loads them into the learner's ``Fire`` (so its
convolutions must be named ``squeeze``, ``expand1x1`` and ``expand3x3``, like torchvision's and the
companion's), runs it in evaluation mode on random images and compares the output with the
companion's ``Fire`` (:mod:`companion.models.squeezenet`, weight-compatible with torchvision's)
holding the same weights. It also feeds ``expand3x3`` alone a 5x5 map, so that a 3x3 convolution
without padding (whose output cannot be concatenated with the 1x1 branch's) is named. Each other
known mistake is the module written out with ``F.conv2d`` with one thing changed. Iandola et al.,
*SqueezeNet* (2016), Section 3.2, https://arxiv.org/abs/1602.07360.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question, modules
from companion.models.squeezenet import Fire as ReferenceFire

OK_FORMAT = False
name = "q3"
points = 4
PROBE = 5  # expand3x3 alone on a PROBE x PROBE map must keep its size


def run_fire(fire_class, in_channels, squeeze, expand1x1, expand3x3, state, x):
    """How the learner's class is used: built, loaded with the grader's weights, run in evaluation mode."""
    fire = modules.load_named_state(fire_class(in_channels, squeeze, expand1x1, expand3x3), state, function="Fire",
                                    layout="three convolutions with biases, named squeeze, expand1x1 and expand3x3")
    with torch.no_grad():
        size = tuple(fire.expand3x3(torch.zeros(1, squeeze, PROBE, PROBE)).shape[-2:])
        # A 3x3 branch that shrinks the map cannot be concatenated with the 1x1 branch: skip the forward.
        out = fire(x) if size == (PROBE, PROBE) else torch.zeros(0)
    return {"output": out, f"the size of expand3x3's output on a {PROBE}x{PROBE} map": torch.tensor(size)}


def written_out(in_channels, squeeze, expand1x1, expand3x3, state, x, *, relu_squeeze=True, relu_expand=True,
                swapped=False):
    """The Fire module with F.conv2d, right with the defaults, or with one thing changed."""
    s = F.conv2d(x, state["squeeze.weight"], state["squeeze.bias"])  # (N, squeeze, H, W)
    s = F.relu(s) if relu_squeeze else s
    e1 = F.conv2d(s, state["expand1x1.weight"], state["expand1x1.bias"])  # (N, e1, H, W)
    e3 = F.conv2d(s, state["expand3x3.weight"], state["expand3x3.bias"], padding=1)  # (N, e3, H, W)
    e1, e3 = (F.relu(e1), F.relu(e3)) if relu_expand else (e1, e3)
    out = torch.cat([e3, e1] if swapped else [e1, e3], dim=1)  # (N, e1 + e3, H, W)
    return {"output": out, f"the size of expand3x3's output on a {PROBE}x{PROBE} map": torch.tensor((PROBE, PROBE))}


def variant(**changes):
    return lambda *args: written_out(*args, **changes)


def no_padding(value, expected, args):
    key = f"the size of expand3x3's output on a {PROBE}x{PROBE} map"
    return type(value) is dict and isinstance(value.get(key), torch.Tensor) and value[key].tolist() == [PROBE - 2] * 2


# (in_channels, squeeze, expand1x1, expand3x3) of each case, squeeze ratios 1/8 to 1/2, and
# unequal expand widths, so that branches in the wrong order change the channel layout.
SETTINGS = [(8, 2, 4, 4), (16, 4, 8, 8), (12, 3, 4, 8), (6, 2, 6, 2), (32, 4, 16, 16), (10, 5, 3, 7)]


def random_state(draw, in_channels, squeeze, expand1x1, expand3x3):
    """Random weights and biases for the companion's Fire(in_channels, squeeze, expand1x1, expand3x3)."""
    with torch.device("meta"):
        template = ReferenceFire(in_channels, squeeze, expand1x1, expand3x3)  # names and shapes only
    return modules.random_state(draw, template)


def cases(draw):
    found = []
    for c, s, e1, e3 in SETTINGS:
        n, h, w = draw.int(1, 3), draw.int(3, 7), draw.int(3, 7)
        x = draw.normal(n, c, h, w, dtype=torch.float32)
        found.append(Case((c, s, e1, e3, random_state(draw, c, s, e1, e3), x),
                          f"Fire({c}, {s}, {e1}, {e3}) on images of shape ({n}, {c}, {h}, {w})"))
    return found


QUESTION = Question(
    name="q3",
    function="Fire",
    points=points,
    reference=lambda *args: run_fire(ReferenceFire, *args),
    oracle="the companion's Fire module (torchvision's layout) with the same weights",
    cases=cases,
    call=run_fire,
    mistakes=(
        Mistake("the 3x3 expand convolution has no padding: it shrinks the map by 2 pixels, and its output can no "
                "longer be concatenated with the 1x1 branch's; give it padding=1.", matches=no_padding),
        Mistake("the two expand branches are concatenated in the wrong order: the 1x1 branch's channels come "
                "first, then the 3x3 branch's (torch.cat([e1, e3], dim=1)), as in the pretrained models.",
                value=variant(swapped=True)),
        Mistake("the ReLU after the squeeze convolution is missing: the squeeze layer is a 1x1 convolution "
                "followed by a ReLU, like every convolution of SqueezeNet.", value=variant(relu_squeeze=False)),
        Mistake("the ReLU after the expand convolutions is missing: each expand branch is a convolution followed "
                "by a ReLU, before the concatenation.", value=variant(relu_expand=False)),
        Mistake("there is no ReLU at all: the squeeze convolution and both expand convolutions are each followed "
                "by a ReLU.", value=variant(relu_squeeze=False, relu_expand=False)),
    ),
    hints=(
        "Three nn.Conv2d layers, named squeeze, expand1x1 and expand3x3 (the grader loads weights by these "
        "names): which of them read the input, and which read the squeezed map?",
        "Both expand branches must return maps of the same height and width as their input, so that they can "
        "be stacked along the channel axis.",
        "forward: squeeze, ReLU; then both expand branches on the result, each with a ReLU; then concatenate "
        "along dim=1, the 1x1 branch first.",
    ),
    forbidden=Forbidden(modules=("companion.models.squeezenet", "torchvision.models.squeezenet"),
                        names=("squeezenet1_0", "squeezenet1_1", "SqueezeNet"), what="the Fire module"),
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_fire(Fire):
    QUESTION.assert_passes(Fire)
