"""Backward passes by hand: convolution, max and average pooling, batch normalisation.

Autograd computes these for us; writing them once shows where the gradients go (CS231n,
assignment 2; Goodfellow et al., *Deep Learning*, section 9.5).

* **Convolution** (with im2col, chapter 1): the forward pass is ``Y = W_flat @ cols(X)``, so
  ``dW_flat = dY @ cols(X)^T`` (summed over the batch) is the *correlation of the input with the
  upstream gradient*, and ``dX = col2im(W_flat^T @ dY)``: every column's gradient is added back
  where the column was copied from, which is a *transposed convolution* of ``dY`` with the same
  weights (chapter 4). ``db`` sums ``dY`` over the batch and the positions.
* **Max pooling** (chapter 2): each output's gradient goes to the one input that won its window
  (the first maximum in reading order, as PyTorch does); the other inputs get nothing.
  **Average pooling**: each output's gradient is shared equally by its ``k_h k_w`` inputs.
* **Batch norm** (chapter 3), training mode, statistics over ``(N, H, W)`` per channel, ``M``
  values each: with ``x_hat = (x - mu) / sqrt(var + eps)``,
  ``dgamma = sum(dy x_hat)``, ``dbeta = sum(dy)`` and, simplified,
  ``dx = gamma / (M sqrt(var + eps)) * (M dy - sum(dy) - x_hat sum(dy x_hat))``;
  :func:`batch_norm_backward_staged` walks the computation graph node by node to the same result.

Each function returns what ``torch.autograd.grad`` would; the tests compare them with autograd on
``F.conv2d``, ``F.max_pool2d``, ``F.avg_pool2d`` and ``F.batch_norm`` and run ``gradcheck`` on
``torch.autograd.Function``\\ s whose backward is the one written here.

Introduced in chapters 1 (convolution), 2 (pooling) and 3 (batch norm).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from companion._checks import as_tuple, check_tensor
from companion.conv import im2col


def _pair(value: int | Sequence[int], name: str, minimum: int = 0) -> tuple[int, int]:
    return as_tuple(value, 2, name, minimum=minimum)  # type: ignore[return-value]


def col2im(columns: Tensor, size: Sequence[int], kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
           padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1) -> Tensor:
    """The adjoint of :func:`companion.conv.im2col` for 2-D inputs: add each column back where it was copied from.

    Args:
        columns (Tensor[N, C*kH*kW, L]): one column per output position, as im2col makes them.
        size: ``(H, W)`` of the input the columns were taken from (before padding).
        kernel_size, stride, padding, dilation: as given to im2col.

    Returns:
        Tensor[N, C, H, W]: overlapping windows add up (the same as ``F.fold``).
    """
    check_tensor(columns, "columns", ndim=3, shape_hint="(N, C*kH*kW, L)")
    (kh, kw), (sh, sw) = _pair(kernel_size, "kernel_size", 1), _pair(stride, "stride", 1)
    (ph, pw), (dh, dw) = _pair(padding, "padding"), _pair(dilation, "dilation", 1)
    height, width = size
    out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    n, rows, positions = columns.shape
    if rows % (kh * kw) or positions != out_h * out_w:
        raise ValueError(f"columns {tuple(columns.shape)} do not fit a {kh}x{kw} kernel over {height}x{width} "
                         f"(expected (N, C*{kh * kw}, {out_h * out_w}))")
    c = rows // (kh * kw)
    cols = columns.reshape(n, c, kh, kw, out_h, out_w)  # (N, C, kH, kW, H_out, W_out)
    padded = columns.new_zeros(n, c, height + 2 * ph, width + 2 * pw)
    for i in range(kh):  # one kernel position at a time: a strided slice of the padded input
        for j in range(kw):
            top, left = i * dh, j * dw
            padded[:, :, top: top + sh * (out_h - 1) + 1: sh, left: left + sw * (out_w - 1) + 1: sw] += cols[:, :, i, j]
    return padded[:, :, ph: ph + height, pw: pw + width]


def conv2d_backward(grad_output: Tensor, input: Tensor, weight: Tensor, stride: int | Sequence[int] = 1,
                    padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                    groups: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``F.conv2d(input, weight, bias, stride, padding, dilation, groups)``.

    Args:
        grad_output (Tensor[N, C_out, H_out, W_out]): ``dL/dY``.
        input (Tensor[N, C_in, H, W]), weight (Tensor[C_out, C_in/groups, kH, kW]): the forward's inputs.
        stride, padding, dilation, groups: the forward's settings (padding as ints).

    Returns:
        ``(dL/dinput, dL/dweight, dL/dbias)`` with the shapes of input, weight and ``(C_out,)``.
    """
    check_tensor(input, "input", ndim=4, shape_hint="(N, C_in, H, W)", floating=True)
    check_tensor(weight, "weight", ndim=4, shape_hint="(C_out, C_in/groups, kH, kW)", floating=True)
    check_tensor(grad_output, "grad_output", ndim=4, shape_hint="(N, C_out, H_out, W_out)", floating=True)
    c_out, c_per_group, kh, kw = weight.shape
    n, c_in = input.shape[:2]
    if c_in != c_per_group * groups or c_out % groups:
        raise ValueError(f"input has {c_in} channels and weight {tuple(weight.shape)}: with groups={groups} "
                         f"the weight must be (C_out, {c_in // max(groups, 1)}, kH, kW)")
    cols = im2col(input, (kh, kw), stride, padding, dilation)  # (N, C_in*kH*kW, L)
    positions = cols.shape[-1]
    if grad_output.shape[:2] != (n, c_out) or grad_output.shape[2] * grad_output.shape[3] != positions:
        raise ValueError(f"grad_output must have the forward output's shape (N={n}, C_out={c_out}, H_out, W_out) "
                         f"with H_out * W_out = {positions}, got {tuple(grad_output.shape)}")
    dy = grad_output.reshape(n, groups, c_out // groups, positions)  # (N, G, C_out/G, L)
    cols_g = cols.reshape(n, groups, c_per_group * kh * kw, positions)  # (N, G, C_in/G*kH*kW, L)
    w_g = weight.reshape(groups, c_out // groups, c_per_group * kh * kw)  # (G, C_out/G, C_in/G*kH*kW)
    grad_weight = torch.einsum("ngol,ngkl->gok", dy, cols_g).reshape(weight.shape)  # dY @ cols^T, summed over N
    grad_cols = torch.einsum("gok,ngol->ngkl", w_g, dy).reshape(n, c_in * kh * kw, positions)  # W^T @ dY
    grad_input = col2im(grad_cols, input.shape[-2:], (kh, kw), stride, padding, dilation)  # back where copied from
    grad_bias = grad_output.sum(dim=(0, 2, 3))
    return grad_input, grad_weight, grad_bias


def _pool_args(input: Tensor, grad_output: Tensor, kernel_size, stride, padding) -> tuple:
    check_tensor(input, "input", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_tensor(grad_output, "grad_output", ndim=4, shape_hint="(N, C, H_out, W_out)", floating=True)
    kernel = _pair(kernel_size, "kernel_size", 1)
    strides = _pair(kernel if stride is None else stride, "stride", 1)
    pads = _pair(padding, "padding")
    n, c, height, width = input.shape
    out = tuple((size + 2 * p - k) // s + 1 for size, p, k, s in zip((height, width), pads, kernel, strides))
    if tuple(grad_output.shape) != (n, c, *out):
        raise ValueError(f"grad_output must have the pooled shape {(n, c, *out)}, got {tuple(grad_output.shape)}")
    return kernel, strides, pads


def max_pool2d_backward(grad_output: Tensor, input: Tensor, kernel_size: int | Sequence[int],
                        stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0) -> Tensor:
    """Gradient of ``F.max_pool2d(input, kernel_size, stride, padding)`` with respect to ``input``.

    Each output's gradient goes to the first largest input of its window; the others get 0.

    Returns:
        Tensor[N, C, H, W].
    """
    kernel, strides, pads = _pool_args(input, grad_output, kernel_size, stride, padding)
    n, c, height, width = input.shape
    padded = torch.nn.functional.pad(input, (pads[1], pads[1], pads[0], pads[0]), value=float("-inf"))
    windows = im2col(padded.reshape(n * c, 1, *padded.shape[-2:]), kernel, strides)  # (N*C, kH*kW, L)
    winner = windows.argmax(dim=1, keepdim=True)  # (N*C, 1, L): the first maximum of each window
    grad_cols = torch.zeros_like(windows).scatter_(1, winner, grad_output.reshape(n * c, 1, -1))
    grad = col2im(grad_cols, padded.shape[-2:], kernel, strides)  # (N*C, 1, H + 2p, W + 2p)
    return grad[:, 0, pads[0]: pads[0] + height, pads[1]: pads[1] + width].reshape(n, c, height, width)


def avg_pool2d_backward(grad_output: Tensor, input: Tensor, kernel_size: int | Sequence[int],
                        stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0) -> Tensor:
    """Gradient of ``F.avg_pool2d(input, kernel_size, stride, padding)`` (zeros of the padding counted).

    Each output's gradient is shared equally by the ``kH * kW`` positions of its window.

    Returns:
        Tensor[N, C, H, W].
    """
    kernel, strides, pads = _pool_args(input, grad_output, kernel_size, stride, padding)
    n, c, height, width = input.shape
    share = grad_output.reshape(n * c, 1, -1) / (kernel[0] * kernel[1])  # (N*C, 1, L)
    grad_cols = share.expand(-1, kernel[0] * kernel[1], -1)  # (N*C, kH*kW, L): the same share everywhere
    grad = col2im(grad_cols, (height, width), kernel, strides, pads)  # (N*C, 1, H, W)
    return grad.reshape(n, c, height, width)


def _bn_args(grad_output: Tensor, input: Tensor, weight: Tensor) -> None:
    check_tensor(input, "input", ndim=(2, 4), shape_hint="(N, C) or (N, C, H, W)", floating=True)
    check_tensor(weight, "weight", ndim=1, shape_hint="(C,)", floating=True)
    if grad_output.shape != input.shape or weight.shape != input.shape[1:2]:
        raise ValueError(f"grad_output must have input's shape {tuple(input.shape)} and weight ({input.shape[1]},), "
                         f"got {tuple(grad_output.shape)} and {tuple(weight.shape)}")


def batch_norm_backward(grad_output: Tensor, input: Tensor, weight: Tensor,
                        eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of training-mode batch norm ``gamma * (x - mu) / sqrt(var + eps) + beta``, simplified form.

    Args:
        grad_output: ``dL/dy``, the shape of ``input``.
        input (Tensor[N, C] or Tensor[N, C, H, W]): ``x``; statistics per channel over every other axis.
        weight (Tensor[C]): ``gamma``.

    Returns:
        ``(dL/dx, dL/dgamma, dL/dbeta)``.
    """
    _bn_args(grad_output, input, weight)
    axes = (0,) + tuple(range(2, input.dim()))  # every axis but the channels'
    shape = (1, -1) + (1,) * (input.dim() - 2)  # (1, C[, 1, 1]) to broadcast per channel
    m = input.numel() // input.shape[1]  # values per channel
    mu = input.mean(dim=axes, keepdim=True)
    inv_std = (input.var(dim=axes, unbiased=False, keepdim=True) + eps).rsqrt()
    x_hat = (input - mu) * inv_std
    sum_dy = grad_output.sum(dim=axes, keepdim=True)
    sum_dy_xhat = (grad_output * x_hat).sum(dim=axes, keepdim=True)
    grad_input = weight.view(shape) * inv_std / m * (m * grad_output - sum_dy - x_hat * sum_dy_xhat)
    return grad_input, sum_dy_xhat.flatten(), sum_dy.flatten()


def batch_norm_backward_staged(grad_output: Tensor, input: Tensor, weight: Tensor,
                               eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor]:
    """The same gradients as :func:`batch_norm_backward`, walking the computation graph backwards node by node.

    Forward: ``mu = mean(x)``, ``xc = x - mu``, ``var = mean(xc**2)``, ``inv = (var + eps)**-0.5``,
    ``x_hat = xc * inv``, ``y = gamma * x_hat + beta``.
    """
    _bn_args(grad_output, input, weight)
    axes = (0,) + tuple(range(2, input.dim()))
    shape = (1, -1) + (1,) * (input.dim() - 2)
    m = input.numel() // input.shape[1]
    mu = input.mean(dim=axes, keepdim=True)
    xc = input - mu
    var = xc.pow(2).mean(dim=axes, keepdim=True)
    inv = (var + eps).rsqrt()
    x_hat = xc * inv
    grad_beta = grad_output.sum(dim=axes)  # y = ... + beta
    grad_gamma = (grad_output * x_hat).sum(dim=axes)  # y = gamma * x_hat
    d_xhat = grad_output * weight.view(shape)
    d_inv = (d_xhat * xc).sum(dim=axes, keepdim=True)  # x_hat = xc * inv
    d_xc = d_xhat * inv
    d_var = d_inv * -0.5 * (var + eps).pow(-1.5)  # inv = (var + eps)**-0.5
    d_xc = d_xc + d_var * 2 * xc / m  # var = mean(xc**2)
    d_mu = -d_xc.sum(dim=axes, keepdim=True)  # xc = x - mu
    grad_input = d_xc + d_mu / m  # mu = mean(x)
    return grad_input, grad_gamma, grad_beta
