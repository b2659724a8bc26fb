"""Exercise 1, question 6: the weight gradient of a convolution by hand, ``conv2d_weight_grad``.

For ``Y = F.conv2d(X, W)`` (stride 1, no padding, no bias) and an upstream gradient ``dY``, the
learner computes ``dL/dW[o, c, u, v] = sum over n, i, j of dY[n, o, i, j] * X[n, c, i + u, j + v]``:
a correlation of the input with the upstream gradient, summed over the batch. The reference is
autograd through ``F.conv2d``; the learner may not use autograd or a convolution. Each known
mistake is the right gradient changed in one way (flipped, one image only, averaged over the
batch, the output and input channels swapped).
CS231n, assignment 2; Goodfellow, Bengio & Courville (2016), section 9.5.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q6"
points = 4


def by_autograd(x, grad_output, kernel_size):
    """dL/dW of F.conv2d(x, W) for the upstream gradient grad_output, with autograd."""
    weight = torch.zeros(grad_output.shape[1], x.shape[1], kernel_size, kernel_size, dtype=x.dtype,
                         requires_grad=True)  # (C_out, C_in, k, k): the gradient does not depend on W
    return torch.autograd.grad(F.conv2d(x, weight), weight, grad_output)[0]


def swapped(got, expected, args):
    """The gradient with its first two axes swapped: (C_in, C_out, k, k)."""
    flipped_axes = expected.transpose(0, 1)
    return (isinstance(got, torch.Tensor) and got.shape == flipped_axes.shape
            and torch.allclose(got.to(flipped_axes.dtype), flipped_axes, rtol=1e-5, atol=1e-6))


SETTINGS = [(1, 1, 1, 2), (2, 1, 3, 3), (2, 3, 2, 2), (3, 2, 4, 3), (1, 2, 3, 1), (4, 3, 2, 3)]  # N, C_in, C_out, k


def cases(draw):
    found = []
    for n, c_in, c_out, k in SETTINGS:
        h, w = draw.int(k + 1, 7), draw.int(k + 2, 8)
        x = draw.normal(n, c_in, h, w)
        grad_output = draw.normal(n, c_out, h - k + 1, w - k + 1)
        found.append(Case((x, grad_output, k), f"x of shape ({n}, {c_in}, {h}, {w}), grad_output of shape "
                                               f"({n}, {c_out}, {h - k + 1}, {w - k + 1}), kernel_size={k}"))
    return found


QUESTION = Question(
    name="q6",
    function="conv2d_weight_grad",
    points=points,
    reference=by_autograd,
    oracle="autograd through torch.nn.functional.conv2d",
    cases=cases,
    mistakes=(
        Mistake("the gradient is flipped: dW[o, c, u, v] pairs dY[n, o, i, j] with X[n, c, i + u, j + v], "
                "the same offset (u, v) the forward pass used, a correlation with no flip.",
                value=lambda x, g, k: by_autograd(x, g, k).flip(-2, -1) if k > 1 else None),
        Mistake("only the first image counts: the weights are shared by every image of the batch, so their "
                "gradient is the sum over the batch.",
                value=lambda x, g, k: by_autograd(x[:1], g[:1], k) if len(x) > 1 else None),
        Mistake("the gradient is averaged over the batch: it is the sum over the images (and the positions), "
                "as autograd computes it; any averaging belongs in the loss, which is already in dY.",
                value=lambda x, g, k: by_autograd(x, g, k) / len(x) if len(x) > 1 else None),
        Mistake("the channel axes are swapped: the result has the weight's shape (C_out, C_in, k, k), with "
                "dW[o, c] pairing output channel o of dY with input channel c of X.",
                matches=swapped),
    ),
    hints=(
        "The result has the shape of the weight, (C_out, C_in, k, k). For one image, one output channel o, "
        "one input channel c and one kernel offset (u, v), it is the sum over positions (i, j) of "
        "dY[o, i, j] * X[c, i + u, j + v].",
        "For fixed (u, v), X[:, :, u:u + H', v:v + W'] lines up with dY: multiply and sum over the batch and "
        "the positions (torch.einsum('noij,ncij->oc', ...) does it for all o and c at once).",
        "Check it against torch.autograd.grad(F.conv2d(x, w), w, dy) on small inputs.",
    ),
    forbidden=CONVOLUTION.extended(
        modules=("companion.backward",),
        names=("backward", "grad", "autograd", "jacobian", "vjp", "functional_call", "func",
               "conv_transpose2d", "conv2d_backward"),
        what="the weight gradient (with the formula, without autograd or a convolution)"),
)


@test_case(points=points)
def test_conv2d_weight_grad(conv2d_weight_grad):
    QUESTION.assert_passes(conv2d_weight_grad)
