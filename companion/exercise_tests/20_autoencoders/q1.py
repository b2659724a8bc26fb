"""Exercise 20, question 1 (predict, then verify): the output size of a transposed convolution, ``transposed_output_size``.

A convolutional autoencoder's decoder upsamples with transposed convolutions (Masci et al., *Stacked
Convolutional Auto-Encoders for Hierarchical Feature Extraction*, ICANN 2011; Dumoulin & Visin, *A
guide to convolution arithmetic for deep learning*, https://arxiv.org/abs/1603.07285, section 4).
The learner predicts the sizes of the chapter's decoder by hand, then writes the formula
``(n - 1) s - 2p + d (k - 1) + output_padding + 1`` for any configuration. The reference is the
size of what ``nn.ConvTranspose2d`` returns; each known mistake is the formula with one thing
changed, or the formula of the forward convolution. An otter-grader exception-based test file that
also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torch import nn

from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2


def reference(n, kernel, stride, padding, output_padding, dilation):
    layer = nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding, output_padding=output_padding,
                               dilation=dilation, bias=False)
    with torch.no_grad():
        return int(layer(torch.zeros(1, 1, n, n)).shape[-1])


def formula(n, kernel, stride, padding, output_padding, dilation, *, use_output_padding=True, pads=2,
            use_dilation=True, steps="n - 1"):
    span = dilation * (kernel - 1) + 1 if use_dilation else kernel
    base = (n - 1) * stride if steps == "n - 1" else n * stride
    return base - pads * padding + span + (output_padding if use_output_padding else 0)


def forward_conv(n, kernel, stride, padding, output_padding, dilation):
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def variant(**changes):
    return lambda *args: formula(*args, **changes)


def only_if(condition, value):
    """The mistake's value where ``condition(args)`` holds (elsewhere it cannot show)."""
    return lambda *args: value(*args) if condition(*args) else None


# (n, kernel, stride, padding, output_padding, dilation)
SETTINGS = [(7, 3, 2, 1, 1, 1), (14, 3, 2, 1, 1, 1), (7, 3, 2, 1, 0, 1), (7, 4, 2, 1, 0, 1), (5, 5, 3, 2, 2, 1),
            (4, 3, 2, 0, 1, 2), (6, 3, 1, 1, 0, 3), (9, 2, 2, 0, 0, 1)]


def cases(draw):
    found = []
    for setting in SETTINGS + [None, None]:
        if setting is None:
            stride, dilation = draw.int(1, 4), draw.int(1, 3)
            kernel = draw.int(1, 5)
            padding = draw.int(0, (dilation * (kernel - 1)) // 2)
            output_padding = draw.int(0, max(stride, dilation) - 1)
            setting = (draw.int(2, 12), kernel, stride, padding, output_padding, dilation)
        n, k, s, p, op, d = setting
        found.append(Case(setting, f"n={n}, kernel={k}, stride={s}, padding={p}, output_padding={op}, "
                                   f"dilation={d}"))
    return found


QUESTION = Question(
    name="q1",
    function="transposed_output_size",
    points=points,
    reference=reference,
    oracle="the side of nn.ConvTranspose2d's output",
    cases=cases,
    mistakes=(
        Mistake("this is the output size of the forward convolution, which shrinks or keeps the size: a "
                "transposed convolution goes the other way, n_out = (n - 1) s - 2p + d (k - 1) + "
                "output_padding + 1.", value=forward_conv),
        Mistake("output_padding is missing: it adds that many rows (and columns) at the end of the output.",
                value=only_if(lambda *a: a[4] > 0, variant(use_output_padding=False))),
        Mistake("the padding is subtracted once: a transposed convolution with padding p crops p rows at the top "
                "and p at the bottom, so subtract 2p.",
                value=only_if(lambda *a: a[3] > 0, variant(pads=1))),
        Mistake("the dilation is ignored: a dilated kernel spans d (k - 1) + 1 pixels, not k.",
                value=only_if(lambda *a: a[5] > 1, variant(use_dilation=False))),
        Mistake("the input is stretched to n * stride: n inputs placed stride apart span (n - 1) * stride + 1 "
                "positions, and the kernel's span adds the rest.",
                value=only_if(lambda *a: a[2] > 1, variant(steps="n"))),
    ),
    hints=(
        "Scatter view (chapter 4): input pixel i writes a kernel-sized patch starting at output position i * s. "
        "Where does the last patch end, before any padding is cropped?",
        "Padding p crops p positions from each end of the full output.",
        "A kernel with dilation d covers d (k - 1) + 1 positions; output_padding adds rows at the end.",
    ),
    forbidden=CONVOLUTION.extended(modules=("companion.upsample", "companion.autoencoder"),
                                   names=("ConvTranspose2d", "conv_transpose2d", "conv_transpose_output_size"),
                                   what="the output-size formula"),
    rtol=0,
    atol=0,
)


@test_case(points=points)
def test_transposed_output_size(transposed_output_size):
    QUESTION.assert_passes(transposed_output_size)
