"""Exercise 2, question 2: counting the parameters of a convolution by hand, ``conv2d_parameters``.

The reference is torch: the number of elements of the parameters of ``nn.Conv2d`` (built on the
``meta`` device, so nothing is allocated). An otter-grader exception-based test file that also
defines ``QUESTION`` for ``companion.grade``.
"""

from torch import nn
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2


def torch_parameters(in_channels, out_channels, kernel_size, bias=True, groups=1):
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias, groups=groups, device="meta")
    return sum(p.numel() for p in layer.parameters())


# (kernel_size is a tuple?, bias, groups) of each case; channels and sizes are random.
SETTINGS = [(False, True, 1), (False, False, 1), (True, True, 1), (False, True, 2), (True, False, 4),
            (False, True, "depthwise"), (True, True, 1), (False, True, 1), (True, True, 2)]


def cases(draw):
    found = []
    for as_tuple, bias, groups in SETTINGS:
        g = draw.choice([3, 8, 16]) if groups == "depthwise" else groups
        in_channels = g * draw.int(1, 8) if groups != "depthwise" else g
        out_channels = g * draw.int(2, 8)
        while out_channels == in_channels:
            out_channels += g
        kernel = (draw.int(1, 5), draw.int(2, 5)) if as_tuple else draw.int(2, 7)
        found.append(Case((in_channels, out_channels, kernel, bias, g),
                          f"in_channels={in_channels}, out_channels={out_channels}, kernel_size={kernel}, "
                          f"bias={bias}, groups={g}"))
    return found


def one_bias_per_input_channel(c_in, c_out, k, bias, groups):
    return torch_parameters(c_in, c_out, k, False, groups) + c_in if bias else None


def kernel_not_squared(c_in, c_out, k, bias, groups):
    return torch_parameters(c_in, c_out, (k, 1), bias, groups) if isinstance(k, int) else None


QUESTION = Question(
    name="q2",
    function="conv2d_parameters",
    points=points,
    reference=torch_parameters,
    oracle="sum(p.numel() for p in nn.Conv2d(...).parameters())",
    cases=cases,
    mistakes=(
        Mistake("the biases are forgotten: with bias=True each output channel has one bias.",
                value=lambda c_in, c_out, k, bias, g: torch_parameters(c_in, c_out, k, False, g) if bias else None),
        Mistake("biases are counted although bias=False.",
                value=lambda c_in, c_out, k, bias, g: torch_parameters(c_in, c_out, k, True, g) if not bias else None),
        Mistake("one bias per *input* channel: there is one bias per output channel (one per filter).",
                value=one_bias_per_input_channel),
        Mistake("the input channels are forgotten: each filter spans all the input channels of its group, "
                "in_channels // groups of them, not one.",
                value=lambda c_in, c_out, k, bias, g: torch_parameters(g, c_out, k, bias, g)),
        Mistake("groups are ignored: with groups=g each filter sees only in_channels // g input channels.",
                value=lambda c_in, c_out, k, bias, g: torch_parameters(c_in, c_out, k, bias, 1) if g > 1 else None),
        Mistake("an int kernel_size k means a k x k kernel: k * k weights per channel, not k.",
                value=kernel_not_squared),
    ),
    hints=(
        "Count one filter first: how many weights does one output channel's kernel have, over all the "
        "input channels it sees?",
        "kernel_size may be an int k (a k x k kernel) or a tuple (kh, kw).",
        "With groups=g, the input channels are split into g groups and each filter sees one group. "
        "Then add the biases, if any: one per output channel.",
    ),
    forbidden=Forbidden(modules=("companion.count", "torch.nn.modules.conv"),
                        names=("Conv2d", "LazyConv2d", "count_parameters"),
                        what="the count (without building the layer)"),
)


@test_case(points=points)
def test_conv2d_parameters(conv2d_parameters):
    QUESTION.assert_passes(conv2d_parameters)
