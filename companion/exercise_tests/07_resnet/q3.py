"""Exercise 7, question 3: the shape after each stage of an ImageNet ResNet, ``stage_shapes``.

The reference is torchvision: ``torchvision.models.resnet18`` (basic blocks) or ``resnet50``
(bottlenecks) run on the ``meta`` device, which computes shapes without any arithmetic, recording
the output of ``conv1``, ``maxpool`` and ``layer1`` to ``layer4``. The layout is the paper's Table 1
(He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016,
https://arxiv.org/abs/1512.03385). An otter-grader exception-based test file that also defines
``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torchvision.models import resnet18, resnet50

from companion.grade import CONVOLUTION, Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 2

STAGES = ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4")


def torchvision_shapes(height, width, bottleneck):
    with torch.device("meta"):
        model = resnet50() if bottleneck else resnet18()
        x = torch.empty(1, 3, height, width)
        shapes = []
        for stage in STAGES:
            x = getattr(model, stage)(x)
            shapes.append(tuple(x.shape[1:]))  # (C, H, W)
    return shapes


def formula(height, width, bottleneck, *, expansion=None, halve=None, pool=True, first_stage_stride=1, swap=False):
    """The shapes written out, right with the defaults, or with one thing changed."""
    expansion = (4 if bottleneck else 1) if expansion is None else expansion
    halve = halve or (lambda n: (n + 1) // 2)  # a stride-2 layer with "same" padding: ceil(n / 2)
    h, w = height, width
    h, w = halve(h), halve(w)
    shapes = [(64, h, w)]
    if pool:
        h, w = halve(h), halve(w)
    shapes.append((64, h, w))
    for i, channels in enumerate((64, 128, 256, 512)):
        if (first_stage_stride if i == 0 else 2) == 2:
            h, w = halve(h), halve(w)
        shapes.append((channels * expansion, h, w))
    return [(c, b, a) for c, a, b in shapes] if swap else shapes


def variant(**changes):
    def value(height, width, bottleneck):
        wrong = formula(height, width, bottleneck, **changes)
        return None if wrong == formula(height, width, bottleneck) else wrong

    return value


# (bottleneck, height, width): square and not, odd and even sizes, the classic 224.
SETTINGS = [(False, 224, 224), (True, 224, 224), (False, "odd", "odd"), (True, "odd", "any"), (False, "any", "any"),
            (True, "any", "odd"), (True, "any", "any"), (False, "odd", "any")]


def cases(draw):
    found = []
    for bottleneck, height, width in SETTINGS:
        sizes = []
        for size in (height, width):
            if size == "odd":
                size = 2 * draw.int(16, 150) + 1
            elif size == "any":
                size = draw.int(32, 300)
            sizes.append(size)
        while sizes[0] == sizes[1] and height != 224:
            sizes[1] += 1
        found.append(Case((sizes[0], sizes[1], bottleneck),
                          f"height={sizes[0]}, width={sizes[1]}, bottleneck={bottleneck}"))
    return found


QUESTION = Question(
    name="q3",
    function="stage_shapes",
    points=points,
    reference=torchvision_shapes,
    oracle="torchvision's resnet18 / resnet50 run on the meta device",
    cases=cases,
    mistakes=(
        Mistake("the sizes are halved by rounding down: a stride-2 layer with padding (7x7 with padding 3, 3x3 "
                "with padding 1) gives floor((n + 2p - k) / 2) + 1 outputs, which is n / 2 rounded up.",
                value=variant(halve=lambda n: n // 2)),
        Mistake("the max-pool after conv1 is forgotten: it halves the resolution once more (3x3, stride 2, "
                "padding 1), so layer1 runs at a quarter of the input's size.", value=variant(pool=False)),
        Mistake("layer1 halves the resolution too: the first stage keeps the max-pool's resolution; only layer2, "
                "layer3 and layer4 start with a stride-2 block.", value=variant(first_stage_stride=2)),
        Mistake("the expansion is missing: bottleneck blocks output 4 times their base width (256, 512, 1024, 2048 "
                "channels).", value=variant(expansion=1)),
        Mistake("basic blocks are given the expansion: a BasicBlock outputs its base width (64, 128, 256, 512 "
                "channels); only the bottleneck expands by 4.", value=variant(expansion=4)),
        Mistake("height and width are swapped: each entry is (channels, height, width).", value=variant(swap=True)),
    ),
    hints=(
        "Write the output size of one convolution or pooling layer as a function of n, k, the stride and the "
        "padding, and try it on n = 7 and n = 8.",
        "Table 1 of the paper lists the layers before the first stage and the output size of each stage; which "
        "of them change the resolution?",
        "The channels depend on the block type; the sizes do not.",
    ),
    forbidden=Forbidden(ops=CONVOLUTION.ops + ("aten.max_pool2d_with_indices", "aten.max_pool2d"),
                        modules=("companion.models", "torchvision.models"),
                        names=("resnet18", "resnet34", "resnet50", "ResNet", "Conv2d", "MaxPool2d", "conv2d",
                               "max_pool2d"),
                        what="the shapes (with the output-size formula, not by running a network)"),
)


@test_case(points=points)
def test_stage_shapes(stage_shapes):
    QUESTION.assert_passes(stage_shapes)
