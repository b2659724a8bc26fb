"""Exercise 2, question 2: find the bug in a colleague's max-pooling backward pass, ``max_pool2d_backward``.

The notebook shows a colleague's backward pass that sends each output's gradient to every input
of its window: the typical bug (that is the derivative of a sum, not of a maximum). The learner
writes the fixed ``max_pool2d_backward(grad_output, x, kernel_size, stride)``: each output's
gradient goes to the first maximum of its window in reading order, and an input that wins several
overlapping windows collects the sum. The reference is autograd through ``F.max_pool2d``. The
inputs are small integers, so that windows often hold tied maxima. Each known mistake is the
gradient routed by another rule (every input, every tied maximum, the last maximum, the average's
1/k^2 share, overlapping windows overwriting instead of adding).
CS231n, assignment 2.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 4


def by_autograd(grad_output, x, kernel_size, stride):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(F.max_pool2d(x, kernel_size, stride), x, grad_output)[0]


def routed(rule, *, accumulate=True):
    """The gradient routed window by window with ``rule``; ``accumulate=False`` overwrites instead of adding."""

    def backward(grad_output, x, kernel_size, stride):
        k, s = kernel_size, kernel_size if stride is None else stride
        grad = torch.zeros_like(x)
        n, c, out_h, out_w = grad_output.shape
        for i in range(out_h):
            for j in range(out_w):
                window = x[:, :, i * s:i * s + k, j * s:j * s + k].reshape(n, c, -1)  # (N, C, k*k)
                share = grad_output[:, :, i, j, None]  # (N, C, 1)
                if rule == "all":
                    routed_grad = share.expand(-1, -1, k * k)
                elif rule == "mean":
                    routed_grad = share.expand(-1, -1, k * k) / (k * k)
                elif rule == "ties":
                    routed_grad = share * (window == window.amax(dim=-1, keepdim=True))
                else:  # the first or the last maximum
                    flat = window.flip(-1) if rule == "last" else window
                    index = flat.argmax(dim=-1, keepdim=True)  # (N, C, 1): the first maximum
                    if rule == "last":
                        index = k * k - 1 - index
                    routed_grad = torch.zeros_like(window).scatter(-1, index, share)
                block = routed_grad.reshape(n, c, k, k)
                if accumulate:
                    grad[:, :, i * s:i * s + k, j * s:j * s + k] += block
                else:
                    target = grad[:, :, i * s:i * s + k, j * s:j * s + k]
                    target.copy_(torch.where(block != 0, block, target))
        return grad

    return backward


def overwrites(grad_output, x, kernel_size, stride):
    s = kernel_size if stride is None else stride
    return routed("first", accumulate=False)(grad_output, x, kernel_size, stride) if s < kernel_size else None


# (N, C, H, W, kernel, stride): non-overlapping windows (stride None or == kernel), overlapping ones
# (stride < kernel) and windows with a gap (stride > kernel).
SETTINGS = [(1, 1, 4, 4, 2, None), (2, 3, 6, 5, 2, 2), (1, 2, 7, 7, 3, 2), (2, 1, 6, 8, 3, 1),
            (1, 2, 5, 6, 2, 1), (2, 2, 9, 7, 3, None), (1, 1, 7, 8, 2, 3)]


def cases(draw):
    found = []
    for n, c, h, w, k, s in SETTINGS:
        x = torch.randint(0, 4, (n, c, h, w), generator=draw.generator).double()  # small integers: ties
        out = F.max_pool2d(x, k, s)
        grad_output = draw.normal(*out.shape)
        found.append(Case((grad_output, x, k, s), f"x of shape ({n}, {c}, {h}, {w}) with values in 0..3, "
                                                  f"kernel_size={k}, stride={s}"))
    return found


QUESTION = Question(
    name="q2",
    function="max_pool2d_backward",
    points=points,
    reference=by_autograd,
    oracle="autograd through torch.nn.functional.max_pool2d",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's bug: every input of a window gets the window's gradient. That "
                "is the derivative of a sum; a maximum depends on one input only, its argmax, so only that "
                "input gets the gradient and the others get 0.", value=routed("all")),
        Mistake("the gradient is shared equally, 1/k^2 each: that is average pooling's backward pass. Max "
                "pooling sends the whole gradient to the window's maximum.", value=routed("mean")),
        Mistake("every tied maximum gets the whole gradient: where a window holds equal maxima, the gradient "
                "goes to one of them only, the first in reading order (as argmax and PyTorch pick it), "
                "otherwise the window passes on more gradient than it received.", value=routed("ties")),
        Mistake("ties go to the last maximum: PyTorch gives the gradient to the *first* maximum of the window "
                "in reading order (row by row), as argmax returns it.", value=routed("last")),
        Mistake("overlapping windows overwrite each other: an input that is the maximum of two windows "
                "receives the sum of their gradients (add with +=, do not assign).", value=overwrites),
    ),
    hints=(
        "Run the colleague's function on a 4x4 input with 2x2 windows and a gradient of ones: how much gradient "
        "reaches the input in total, and how much should?",
        "For each window, find the position of its maximum (argmax of the flattened window gives the first "
        "one); only that input gets the window's gradient.",
        "Windows overlap when stride < kernel_size: add each window's contribution to the gradient, so that an "
        "input that wins two windows gets both.",
    ),
    forbidden=Forbidden(
        ops=("aten.max_pool2d_with_indices", "aten.max_pool2d_with_indices_backward", "aten.max_pool2d",
             "aten.max_unpool2d"),
        modules=("companion.pool", "companion.backward"),
        names=("backward", "grad", "autograd", "jacobian", "vjp", "max_pool2d", "MaxPool2d", "max_unpool2d",
               "MaxUnpool2d", "max_pool2d_backward", "adaptive_max_pool2d"),
        what="the backward pass of max pooling (without autograd or PyTorch's pooling)"),
)


@test_case(points=points)
def test_max_pool2d_backward(max_pool2d_backward):
    QUESTION.assert_passes(max_pool2d_backward)
