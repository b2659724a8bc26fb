"""Backward passes by hand against autograd (values) and finite differences (gradcheck)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from companion import backward
from companion.conv import im2col


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


CONV_CASES = [  # (N, C_in, H, W, C_out, k, stride, padding, dilation, groups)
    (2, 3, 7, 8, 4, 3, 1, 0, 1, 1),
    (1, 4, 9, 9, 6, 3, 2, 1, 1, 2),
    (2, 2, 10, 7, 2, (2, 3), (2, 1), (1, 2), (2, 1), 1),
    (1, 6, 8, 8, 6, 3, 1, 1, 1, 6),  # depthwise
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_backward_equals_autograd(case):
    n, c_in, h, w, c_out, k, s, p, d, groups = case
    kh, kw = (k, k) if isinstance(k, int) else k
    g = _g(0)
    x = torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(c_out, c_in // groups, kh, kw, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(c_out, generator=g, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(x, weight, bias, s, p, d, groups)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    expected = torch.autograd.grad(y, (x, weight, bias), dy)
    ours = backward.conv2d_backward(dy, x.detach(), weight.detach(), s, p, d, groups)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b)


def test_conv2d_backward_is_a_correlation_and_a_transposed_convolution():
    g = _g(1)
    x = torch.randn(1, 1, 6, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(1, 1, 3, 3, generator=g, dtype=torch.float64)
    dy = torch.randn(1, 1, 4, 4, generator=g, dtype=torch.float64)
    dx, dw, _ = backward.conv2d_backward(dy, x, weight)
    torch.testing.assert_close(dw, F.conv2d(x, dy))  # dW: the input correlated with dY
    torch.testing.assert_close(dx, F.conv_transpose2d(dy, weight))  # dX: dY through the transposed convolution


def test_col2im_is_the_adjoint_of_im2col_and_equals_fold():
    g = _g(2)
    x = torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64)
    cols = torch.randn(2, 3 * 6, 4 * 5, generator=g, dtype=torch.float64)
    settings = dict(kernel_size=(2, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1))
    folded = backward.col2im(cols, (7, 9), **settings)
    torch.testing.assert_close(folded, F.fold(cols, (7, 9), **settings))
    # <im2col(x), cols> == <x, col2im(cols)>: the adjoint, which is why it carries the gradient back.
    torch.testing.assert_close((im2col(x, **settings) * cols).sum(), (x * folded).sum())


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0)), (3, 1, 0)])
def test_pooling_backward_equals_autograd(kernel, stride, padding):
    g = _g(3)
    x = torch.randn(2, 3, 8, 9, generator=g, dtype=torch.float64, requires_grad=True)
    for forward, ours in ((F.max_pool2d, backward.max_pool2d_backward), (F.avg_pool2d, backward.avg_pool2d_backward)):
        y = forward(x, kernel, stride, padding)
        dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
        torch.testing.assert_close(ours(dy, x.detach(), kernel, stride, padding), torch.autograd.grad(y, x, dy)[0])


def test_max_pool_backward_routes_ties_to_the_first_maximum_like_torch():
    x = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]], requires_grad=True)  # a tie in the only window
    y = F.max_pool2d(x, 2)
    expected = torch.autograd.grad(y, x, torch.ones_like(y))[0]
    ours = backward.max_pool2d_backward(torch.ones(1, 1, 1, 1), x.detach(), 2)
    torch.testing.assert_close(ours, expected)
    assert ours.sum() == 1  # one input gets the whole gradient, not each of the tied ones


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 5)])
@pytest.mark.parametrize("staged", [False, True])
def test_batch_norm_backward_equals_autograd(shape, staged):
    g = _g(4)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True) * 3 + 1
    gamma = torch.randn(shape[1], generator=g, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(shape[1], generator=g, dtype=torch.float64, requires_grad=True)
    y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)
    dy = torch.randn(shape, generator=g, dtype=torch.float64)
    expected = torch.autograd.grad(y, (x, gamma, beta), dy)
    fn = backward.batch_norm_backward_staged if staged else backward.batch_norm_backward
    for a, b in zip(fn(dy, x.detach(), gamma.detach()), expected):
        torch.testing.assert_close(a, b)


class _Conv(torch.autograd.Function):
    """F.conv2d forward, our backward: gradcheck compares it with finite differences."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, bias, stride=2, padding=1)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        return backward.conv2d_backward(dy, x, weight, stride=2, padding=1)


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.max_pool2d(x, 2)

    @staticmethod
    def backward(ctx, dy):
        return backward.max_pool2d_backward(dy, ctx.saved_tensors[0], 2)


class _BatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta):
        ctx.save_for_backward(x, gamma)
        return F.batch_norm(x, None, None, gamma, beta, training=True)

    @staticmethod
    def backward(ctx, dy):
        return backward.batch_norm_backward(dy, *ctx.saved_tensors)


def test_gradcheck_of_the_hand_written_backwards():
    g = _g(5)
    x = torch.randn(2, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_Conv.apply, (x, w, b))
    assert torch.autograd.gradcheck(_MaxPool.apply, (x,))
    gamma = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_BatchNorm.apply, (x, gamma, beta))


def test_bad_input_is_named():
    x, w = torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3)
    with pytest.raises(ValueError, match="grad_output must have the forward output's shape"):
        backward.conv2d_backward(torch.randn(1, 2, 4, 4), x, w)
    with pytest.raises(ValueError, match="with groups=2 the weight must be"):
        backward.conv2d_backward(torch.randn(1, 2, 3, 3), x, w, groups=2)
    with pytest.raises(ValueError, match=r"grad_output must have the pooled shape \(1, 3, 2, 2\)"):
        backward.max_pool2d_backward(torch.randn(1, 3, 3, 3), x, 2)
    with pytest.raises(ValueError, match="grad_output must have input's shape"):
        backward.batch_norm_backward(torch.randn(2, 3), torch.randn(2, 4), torch.randn(4))
