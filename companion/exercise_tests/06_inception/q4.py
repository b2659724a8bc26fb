"""Exercise 6, question 4: an Inception v1 module as an ``nn.Module``, built by ``inception_module``.

The grader calls the learner's ``inception_module(in_channels, ch1x1, ...)``, loads into the module
it returns the state dict of the companion's ``InceptionBlock(..., kernel_5x5=5)`` (random weights
and batch-norm statistics), and runs it in evaluation mode on a random input; only the output
tensor comes back. The reference is that ``InceptionBlock``. Each known mistake is the same module
written out with ``F.conv2d`` and ``F.batch_norm`` on the same weights, with one thing changed
(average pooling, no ReLU, ReLU before batch norm, batch norm's default ``eps``, the branches in
another order). GoogLeNet: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015,
https://arxiv.org/abs/1409.4842, Figure 2b. An otter-grader exception-based test file that also
defines ``QUESTION`` for ``companion.grade``.
"""

import itertools

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question, modules
from companion.models.googlenet import InceptionBlock

OK_FORMAT = False
name = "q4"
points = 4

#: The units of the module, in order, by the prefix of their state-dict keys.
UNITS = ("branch1", "branch2.0", "branch2.1", "branch3.0", "branch3.1", "branch4.1")


def random_state(draw, channels):
    """A random state dict of InceptionBlock(*channels, kernel_5x5=5): weights, and batch-norm statistics."""
    with torch.device("meta"):
        template = InceptionBlock(*channels, kernel_5x5=5)  # names and shapes only
    return modules.random_state(draw, template)


def build_and_run(inception_module, channels, state, x):
    """How the learner's inception_module is called: build, load the reference weights, run in eval mode."""
    model = modules.load_named_state(inception_module(*channels), state, function="inception_module",
                                     layout="the InceptionBlock's names: branch1 a unit, branch2 and branch3 "
                                            "nn.Sequential(unit, unit), branch4 nn.Sequential(pool, unit), each unit "
                                            "with conv and bn")
    with torch.no_grad():
        return model(x)


def reference(channels, state, x):
    with torch.device("meta"):
        block = InceptionBlock(*channels, kernel_5x5=5)
    block.load_state_dict(state, assign=True)
    block.eval()
    with torch.no_grad():
        return block(x)


def written_out(channels, state, x, *, pool="max", relu=True, relu_first=False, eps=1e-3, order=(0, 1, 2, 3)):
    """The module with F.conv2d and F.batch_norm on the same weights, with the variants the mistakes use."""

    def unit(prefix, z):
        weight = state[f"{prefix}.conv.weight"]
        z = F.conv2d(z, weight, padding=weight.shape[-1] // 2)
        if relu_first:
            z = F.relu(z)
        z = F.batch_norm(z, state[f"{prefix}.bn.running_mean"], state[f"{prefix}.bn.running_var"],
                         state[f"{prefix}.bn.weight"], state[f"{prefix}.bn.bias"], training=False, eps=eps)
        return F.relu(z) if relu and not relu_first else z

    pooled = (F.max_pool2d(x, 3, stride=1, padding=1) if pool == "max"
              else F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=pool == "avg"))
    branches = [unit("branch1", x), unit("branch2.1", unit("branch2.0", x)), unit("branch3.1", unit("branch3.0", x)),
                unit("branch4.1", pooled)]  # each (N, c_i, H, W)
    return torch.cat([branches[i] for i in order], dim=1)  # (N, sum c_i, H, W)


def variant(**changes):
    return lambda channels, state, x: written_out(channels, state, x, **changes)


def average_pool(value, expected, args):
    channels, state, x = args
    return any(isinstance(value, torch.Tensor) and value.shape == expected.shape
               and torch.allclose(value.double(), written_out(channels, state, x, pool=pool).double(),
                                  rtol=1e-4, atol=1e-4) for pool in ("avg", "avg_no_pad"))


def branches_reordered(value, expected, args):
    channels = args[0]
    sizes = [channels[1], channels[3], channels[5], channels[6]]
    if not isinstance(value, torch.Tensor) or value.shape != expected.shape:
        return False
    blocks = expected.split(sizes, dim=1)  # four (N, c_i, H, W)
    return any(torch.allclose(value.double(), torch.cat([blocks[i] for i in order], 1).double(), rtol=1e-4, atol=1e-4)
               for order in itertools.permutations(range(4)) if order != (0, 1, 2, 3))


# (in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) of each case: all different, so that
# a wrong branch shows in the shapes; the input size and values are random.
SETTINGS = [(3, 2, 3, 4, 2, 3, 2), (6, 4, 3, 5, 2, 4, 3), (5, 3, 4, 6, 2, 2, 4), (4, 5, 2, 3, 3, 4, 2),
            (8, 2, 5, 3, 4, 5, 1)]


def cases(draw):
    found = []
    for channels in SETTINGS:
        n, h, w = draw.int(1, 3), draw.int(3, 8), draw.int(3, 8)
        state = random_state(draw, channels)
        x = draw.normal(n, channels[0], h, w, dtype=torch.float32)
        found.append(Case((channels, state, x), f"inception_module{channels} on an input of shape ({n}, {channels[0]}, "
                                                f"{h}, {w}), random weights and batch-norm statistics, eval mode"))
    return found


FORBIDDEN = Forbidden(
    modules=("companion.models", "torchvision.models"),
    names=("InceptionBlock", "BasicConv2d", "Inception", "googlenet", "GoogLeNet", "inception_v3"),
    what="the Inception module (with nn.Conv2d, nn.BatchNorm2d and nn.MaxPool2d)",
)

QUESTION = Question(
    name="q4",
    function="inception_module",
    points=points,
    reference=reference,
    oracle="the companion's InceptionBlock(..., kernel_5x5=5) with the same weights, in eval mode",
    cases=cases,
    call=lambda function, *args: build_and_run(function, *args),
    mistakes=(
        Mistake("the pooling branch averages: GoogLeNet's fourth branch is a 3x3 max-pool (stride 1, padding 1) "
                "followed by the 1x1 projection.", matches=average_pool),
        Mistake("the ReLU is missing: every unit is convolution, batch norm, then ReLU.", value=variant(relu=False)),
        Mistake("the ReLU comes before the batch norm: every unit is convolution, batch norm, then ReLU.",
                value=variant(relu_first=True)),
        Mistake("batch norm's eps is the default 1e-5: these units use eps=0.001, the value of the TensorFlow "
                "models whose weights torchvision ported.", value=variant(eps=1e-5)),
        Mistake("the branches are concatenated in another order: 1x1, then 3x3, then 5x5, then the pooling "
                "branch, along the channels.", matches=branches_reordered),
    ),
    hints=(
        "Write the unit first: a small nn.Module with attributes conv (nn.Conv2d without bias) and bn "
        "(nn.BatchNorm2d), whose forward applies them and a ReLU.",
        "The attribute names decide the state-dict keys: branch2 = nn.Sequential(unit, unit) gives "
        "branch2.0.conv.weight, and the max-pool is element 0 of branch4 (it has no weights).",
        "Padding keeps the size in every branch: k // 2 for a k x k kernel, and the pool needs stride 1 and padding 1.",
    ),
    rtol=1e-4,
    atol=1e-5,
    forbidden=FORBIDDEN,
)


@test_case(points=points)
def test_inception_module(inception_module):
    QUESTION.assert_passes(inception_module)
