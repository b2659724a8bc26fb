"""Exercise 6, question 2: the cost of an Inception module, with and without the 1x1 reductions, ``inception_cost``.

The reference builds the module of the GoogLeNet paper (Szegedy et al., "Going Deeper with
Convolutions", CVPR 2015, https://arxiv.org/abs/1409.4842, Figure 2) from ``nn.Conv2d`` layers with
biases (as in the paper: no batch norm), and counts it with ``companion.count``: the parameters
(``sum(p.numel())``) and the multiply-adds of one forward pass on a ``size x size`` input. The
"naive" module (Figure 2a) has no reductions: its 3x3 and 5x5 convolutions read all the input
channels, and its pooling branch passes the input channels through. Each known mistake is the same
count on a changed module (no biases, a 3x3 kernel in the 5x5 branch, ...) or a wrong convention.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from torch import nn
from otter.test_files import test_case

from companion.count import count_flops, count_parameters
from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 3


def convolutions(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, bottleneck, *,
                 kernel_5x5=5, reduced_input=True, bias=True):
    """The module's convolutions as (C_in, C_out, k) rows, and its output channels."""
    if not bottleneck:  # Figure 2a: every convolution reads the input; the pool passes it through
        rows = [(in_channels, ch1x1, 1), (in_channels, ch3x3, 3), (in_channels, ch5x5, kernel_5x5)]
        return rows, ch1x1 + ch3x3 + ch5x5 + in_channels
    reads3, reads5 = (ch3x3red, ch5x5red) if reduced_input else (in_channels, in_channels)
    rows = [(in_channels, ch1x1, 1), (in_channels, ch3x3red, 1), (reads3, ch3x3, 3),
            (in_channels, ch5x5red, 1), (reads5, ch5x5, kernel_5x5), (in_channels, pool_proj, 1)]
    return rows, ch1x1 + ch3x3 + ch5x5 + pool_proj


class Branches(nn.Module):
    """The convolutions of one module side by side, each run on an input of its channels (for counting)."""

    def __init__(self, rows, bias=True):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias) for c_in, c_out, k in rows)

    def forward(self, x):
        size = x.shape[-1]
        return [conv(x.new_zeros(1, conv.in_channels, size, size)) for conv in self.convs]


def torch_inception_cost(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, size, bottleneck=True,
                         **changes):
    """(output channels, parameters, multiply-adds), counted on nn.Conv2d layers by companion.count."""
    bias = changes.pop("bias", True)
    rows, out_channels = convolutions(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, bottleneck,
                                      **changes)
    model = Branches(rows, bias=bias)
    return out_channels, count_parameters(model), count_flops(model, (1, size, size))


def cost_with(**changes):
    return lambda *args: torch_inception_cost(*args, **changes)


def out_channels_without_pool(*args):
    out, params, macs = torch_inception_cost(*args)
    return (out - args[0], params, macs) if not args[8] else None  # the pooled input channels forgotten


def flops_doubled(*args):
    out, params, macs = torch_inception_cost(*args)
    return out, params, 2 * macs


def per_pixel(*args):
    out, params, macs = torch_inception_cost(*args)
    return out, params, macs // (args[7] * args[7])


def macs_with_bias(*args):
    out, params, macs = torch_inception_cost(*args)
    rows, _ = convolutions(*args[:7], args[8])
    return out, params, macs + sum(c_out for _, c_out, _ in rows) * args[7] ** 2


# Rows of GoogLeNet's Table 1 (in_channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj,
# input size), then random small modules; each with and without the reductions.
TABLE_1 = [(192, 64, 96, 128, 16, 32, 32, 28), (480, 192, 96, 208, 16, 48, 64, 14),
           (832, 384, 192, 384, 48, 128, 128, 7)]


def cases(draw):
    rows = list(TABLE_1)
    for _ in range(3):
        rows.append(tuple(draw.int(2, 24) for _ in range(7)) + (draw.int(3, 12),))
    found = []
    for k, row in enumerate(rows):
        for bottleneck in ((True, False) if k % 2 == 0 else (False, True)):
            found.append(Case((*row, bottleneck), f"in_channels={row[0]}, ch1x1={row[1]}, ch3x3red={row[2]}, "
                                                  f"ch3x3={row[3]}, ch5x5red={row[4]}, ch5x5={row[5]}, "
                                                  f"pool_proj={row[6]}, size={row[7]}, bottleneck={bottleneck}"))
    return found


FORBIDDEN = Forbidden(
    ops=("aten.convolution", "aten._convolution", "aten.conv2d", "aten.mkldnn_convolution"),
    modules=("companion.count", "companion.models", "torchvision.models"),
    names=("Conv2d", "conv2d", "count_parameters", "count_flops", "layer_table", "InceptionBlock",
           "parameters"),
    what="the count (with the formulas, not by building the layers)",
)

QUESTION = Question(
    name="q2",
    function="inception_cost",
    points=points,
    reference=torch_inception_cost,
    oracle="companion.count on the module built from nn.Conv2d layers (with biases)",
    cases=cases,
    mistakes=(
        Mistake("the biases are forgotten: a k x k convolution from C_in to C_out channels has "
                "(k * k * C_in + 1) * C_out parameters, one bias per output channel.", value=cost_with(bias=False)),
        Mistake("the 5x5 branch is counted with a 3x3 kernel (torchvision's port of GoogLeNet made that slip, but "
                "the paper's module has a real 5x5 convolution there).", value=cost_with(kernel_5x5=3)),
        Mistake("the 3x3 and 5x5 convolutions are counted as reading all in_channels: in the module with "
                "bottlenecks they read the ch3x3red and ch5x5red channels of their 1x1 reductions.",
                value=cost_with(reduced_input=False)),
        Mistake("without the bottleneck, the pooling branch's channels are forgotten: the 3x3 max-pool passes all "
                "in_channels through, and they are concatenated too.", value=out_channels_without_pool),
        Mistake("multiply-adds are counted as two operations: count one multiply-add per weight per output "
                "position, C_out * H * W * C_in * k * k for a convolution (the papers' convention).",
                value=flops_doubled),
        Mistake("the multiply-adds are those of one output position: multiply by the size * size positions "
                "(padding keeps the input size in every branch).", value=per_pixel),
        Mistake("the biases are counted as multiply-adds: a bias is an addition, not a multiply-add, and the "
                "papers' count leaves it out.", value=macs_with_bias),
    ),
    hints=(
        "List the module's convolutions as (C_in, C_out, k): four in the naive module (counting the pool as none), "
        "six with the reductions. The 1x1 projection after the pool is one of them.",
        "A k x k convolution has (k * k * C_in + 1) * C_out parameters and C_out * H * W * C_in * k * k "
        "multiply-adds when its output is H x W.",
        "The output channels are the sum of what the four branches produce; without the projection, the "
        "pooling branch produces in_channels.",
    ),
    forbidden=FORBIDDEN,
)


@test_case(points=points)
def test_inception_cost(inception_cost):
    QUESTION.assert_passes(inception_cost)
