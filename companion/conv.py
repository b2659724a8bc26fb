"""Convolution from scratch: a nested-loop version, and im2col + one matrix multiply in 1-D, 2-D and 3-D.

Deep-learning "convolution" is cross-correlation: the kernel slides over the input without being
flipped. For an input ``x`` with ``C_in`` channels and a kernel ``w`` of size ``k``, output channel
``o`` at position ``i`` is (in 1-D, zero padding ``p``, stride ``s``, dilation ``d``)

    y[o, i] = b[o] + sum_{c, j} w[o, c, j] * x_padded[c, s*i + d*j]

and an output of length ``floor((n + 2p - d(k-1) - 1) / s) + 1`` (Dumoulin & Visin, 2016,
`A guide to convolution arithmetic for deep learning <https://arxiv.org/abs/1603.07285>`_).

:func:`conv2d_loops` computes that sum literally, one output value at a time (the "naive"
convolution of the CS231n notes, https://cs231n.github.io/convolutional-networks/).
:func:`conv1d`, :func:`conv2d` and :func:`conv3d` instead copy every receptive field into a column
(:func:`im2col`) and multiply the columns by the flattened kernels in one matrix product, the
lowering of Chellapilla, Puri & Simard (2006), `High Performance Convolutional Neural Networks for
Document Processing <https://inria.hal.science/inria-00112631>`_. The same generic N-d
:func:`im2col` serves all three; autograd differentiates through it, so no backward pass is
written by hand.

They take the arguments of ``torch.nn.functional.conv1d/2d/3d`` and mean the same by them.

Introduced in chapter 1, *Convolution from scratch*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from companion._checks import as_tuple, check_positive_int, check_same_device_dtype, check_tensor

Padding = int | Sequence[int] | str
ArrayT = TypeVar("ArrayT", np.ndarray, Tensor)

#: Names of the spatial dimensions, for shapes in messages: 1-D (L), 2-D (H, W), 3-D (D, H, W).
_SPATIAL = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


#: The expected layouts per number of spatial dimensions: batched input, unbatched input, weight.
_LAYOUTS = {nd: (f"(N, C, {', '.join(dims)})", f"(C, {', '.join(dims)})",
                 f"(C_out, C_in/groups, {', '.join('k' + d for d in dims)})") for nd, dims in _SPATIAL.items()}


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Length of a convolution's output along one dimension.

    ``floor((n + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1``: the dilated kernel
    spans ``dilation * (kernel - 1) + 1`` inputs, and fits ``(n + 2 * padding - span) // stride + 1``
    times into the padded input when moved ``stride`` steps at a time.

    Args:
        n: input length (> 0).
        kernel: kernel size (> 0).
        stride: step between windows (> 0).
        padding: zeros added on each side (>= 0).
        dilation: spacing between kernel taps (> 0).

    Returns:
        The output length (>= 1).

    Raises:
        ValueError: an argument is not a positive int (``padding``: non-negative), or the dilated
            kernel is longer than the padded input.
    """
    for value, name in ((n, "n"), (kernel, "kernel"), (stride, "stride"), (dilation, "dilation")):
        check_positive_int(value, name)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    span = dilation * (kernel - 1) + 1
    if span > n + 2 * padding:
        raise ValueError(f"the kernel (size {kernel}, dilation {dilation}, so it spans {span}) is larger than "
                         f"the padded input ({n} + 2*{padding} = {n + 2 * padding})")
    return (n + 2 * padding - span) // stride + 1


def _padding_pairs(padding: Padding, kernel: tuple[int, ...], stride: tuple[int, ...],
                   dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` zero padding per spatial dimension, from an int, a tuple, "same" or "valid"."""
    nd = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding != "same":
            raise ValueError(f"padding must be 'same', 'valid', an int or a tuple of {nd} ints, got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"padding='same' needs stride 1 (as in torch), got stride {stride}; "
                             "pad explicitly with an int or a tuple instead")
        # The dilated kernel needs d*(k-1) extra inputs; an odd total puts the extra zero after (as torch does).
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    return tuple((p, p) for p in as_tuple(padding, nd, "padding", minimum=0))


def _output_sizes(spatial: Sequence[int], kernel: tuple[int, ...], stride: tuple[int, ...],
                  pads: tuple[tuple[int, int], ...], dilation: tuple[int, ...], nd: int) -> tuple[int, ...]:
    """Output size per spatial dimension; a ``ValueError`` when a dilated kernel overhangs the padded input."""
    sizes = []
    for axis, n, k, s, (before, after), d in zip(_SPATIAL[nd], spatial, kernel, stride, pads, dilation):
        span = d * (k - 1) + 1
        if span > n + before + after:
            raise ValueError(f"the kernel is larger than the padded input along {axis}: kernel size {k} with "
                             f"dilation {d} spans {span}, the padded input has {n} + {before} + {after} = "
                             f"{n + before + after}; use a smaller kernel or dilation, or more padding")
        sizes.append((n + before + after - span) // s + 1)
    return tuple(sizes)


def _windows(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
             pads: tuple[tuple[int, int], ...], dilation: tuple[int, ...]) -> Tensor:
    """All receptive fields of ``x (Tensor[N, C, *S])`` as a view ``(N, C, *out, *kernel)`` of the padded input."""
    nd = len(kernel)
    flat_pads = [p for pair in reversed(pads) for p in pair]  # F.pad wants the last dimension first
    x = F.pad(x, flat_pads) if any(flat_pads) else x  # (N, C, *S_padded)
    for i, (k, s, d) in enumerate(zip(kernel, stride, dilation)):
        # Each unfold replaces spatial dim i by the number of windows along it, and appends the
        # window's d*(k-1)+1 inputs as a new last dimension (a view: nothing is copied).
        x = x.unfold(2 + i, d * (k - 1) + 1, s)  # (N, C, o_1..o_i, S_{i+1}.., span_1..span_i)
    if all(d == 1 for d in dilation):
        return x  # (N, C, *out, *kernel)
    taps = (slice(None),) * (2 + nd) + tuple(slice(None, None, d) for d in dilation)
    return x[taps]  # keep every d-th input of each span: (N, C, *out, *kernel)


def _im2col(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
            pads: tuple[tuple[int, int], ...], dilation: tuple[int, ...]) -> Tensor:
    """:func:`im2col` on checked arguments: ``(N, C, *S)`` -> ``(N, C*prod(kernel), L)``."""
    nd = len(kernel)
    n, c = x.shape[:2]
    windows = _windows(x, kernel, stride, pads, dilation)  # (N, C, *out, *kernel)
    positions = math.prod(windows.shape[2:2 + nd])  # L = o_1 * ... * o_nd
    order = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))
    columns = windows.permute(order)  # (N, C, *kernel, *out)
    return columns.reshape(n, c * math.prod(kernel), positions)  # (N, C*prod(kernel), L): the one copy


def im2col(x: Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
           padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1) -> Tensor:
    """Copy every receptive field of ``x`` into a column (``F.unfold``, in any number of dimensions).

    Column ``l`` holds the inputs that output position ``l`` (row-major over the output grid)
    sees: the ``C * prod(kernel_size)`` values ordered channel first, then kernel position, as in
    ``torch.nn.functional.unfold``. A convolution is then one matrix product:
    ``weight.view(C_out, -1) @ im2col(x, ...)``.

    Args:
        x: ``Tensor[N, C, *S]`` with 1, 2 or 3 spatial dimensions ``S``; or ``Tensor[C, *S]``
            without the batch dimension, when ``kernel_size`` is a tuple of ``x.dim() - 1`` ints.
        kernel_size: int (the same in every spatial dimension) or one int per spatial dimension.
        stride, padding, dilation: int or one int per spatial dimension, as in ``F.unfold``;
            ``padding`` adds that many zeros on both sides.

    Returns:
        ``Tensor[N, C * prod(kernel_size), L]`` (``Tensor[C * prod(kernel_size), L]`` for
        unbatched ``x``), where ``L`` is the product of the output sizes.

    Raises:
        TypeError, ValueError: ``x`` is not a tensor with 1-3 spatial dimensions, an argument is not
            an int or a tuple of the right length and range, or the kernel is larger than the
            padded input.
    """
    check_tensor(x, "x", ndim=(2, 3, 4, 5), shape_hint="(N, C, *spatial) with 1 to 3 spatial dimensions")
    unbatched = (isinstance(kernel_size, Sequence) and not isinstance(kernel_size, str)
                 and len(kernel_size) == x.dim() - 1)
    if unbatched:
        x = x.unsqueeze(0)  # (C, *S) -> (1, C, *S)
    nd = x.dim() - 2
    if nd not in _SPATIAL:
        raise ValueError(f"x must be (N, C, *spatial) with 1 to 3 spatial dimensions, got shape {tuple(x.shape)}")
    kernel = as_tuple(kernel_size, nd, "kernel_size", minimum=1)
    stride_t = as_tuple(stride, nd, "stride", minimum=1)
    dilation_t = as_tuple(dilation, nd, "dilation", minimum=1)
    pads = tuple((p, p) for p in as_tuple(padding, nd, "padding", minimum=0))
    _output_sizes(x.shape[2:], kernel, stride_t, pads, dilation_t, nd)
    columns = _im2col(x, kernel, stride_t, pads, dilation_t)  # (N, C*prod(k), L)
    return columns[0] if unbatched else columns


def _check_layout(x: Tensor, name: str, ndims: tuple[int, ...], layout: str, nd: int) -> None:
    """A ``ValueError`` naming the expected layout when ``x`` has a number of dimensions not in ``ndims``."""
    if x.dim() in ndims:
        return
    want = " or ".join(f"{n}-D" for n in ndims)
    hint = "; add the channel dimension with input[None]" if name == "input" and x.dim() == nd else ""
    raise ValueError(f"{name} must be {layout}: expected a {want} tensor, got a {x.dim()}-D tensor of shape "
                     f"{tuple(x.shape)}{hint}")


def _check_conv_args(input: Tensor, weight: Tensor, bias: Tensor | None, groups: int, nd: int) -> bool:
    """Check the tensors of a conv call; return whether ``input`` is unbatched."""
    batched, unbatched, kernel_layout = _LAYOUTS[nd]
    check_tensor(input, "input", shape_hint=f"{batched} or {unbatched}", floating=True)
    check_tensor(weight, "weight", shape_hint=kernel_layout, floating=True)
    _check_layout(input, "input", (nd + 2, nd + 1), f"{batched} or {unbatched}", nd)
    _check_layout(weight, "weight", (nd + 2,), kernel_layout, nd)
    check_same_device_dtype(input, weight, "input", "weight")
    check_positive_int(groups, "groups")
    c_in = input.shape[-nd - 1]
    c_out = weight.shape[0]
    if c_in % groups:
        raise ValueError(f"input channels ({c_in}) must be divisible by groups ({groups})")
    if c_out % groups:
        raise ValueError(f"weight.shape[0] (output channels, {c_out}) must be divisible by groups ({groups})")
    if weight.shape[1] * groups != c_in:
        raise ValueError(f"input has {c_in} channels, but weight {kernel_layout} of shape {tuple(weight.shape)} "
                         f"expects weight.shape[1] * groups = {weight.shape[1]} * {groups} = "
                         f"{weight.shape[1] * groups}")
    if bias is not None:
        check_tensor(bias, "bias", ndim=1, shape_hint=f"(C_out,) = ({c_out},)")
        if bias.shape[0] != c_out:
            raise ValueError(f"bias must have shape (C_out,) = ({c_out},), one value per output channel, "
                             f"got {tuple(bias.shape)}")
        check_same_device_dtype(bias, weight, "bias", "weight")
    return input.dim() == nd + 1


def _conv_nd(input: Tensor, weight: Tensor, bias: Tensor | None, stride: int | Sequence[int],
             padding: Padding, dilation: int | Sequence[int], groups: int, nd: int) -> Tensor:
    """The N-d convolution behind :func:`conv1d`, :func:`conv2d`, :func:`conv3d`."""
    unbatched = _check_conv_args(input, weight, bias, groups, nd)
    x = input.unsqueeze(0) if unbatched else input  # (N, C_in, *S)
    kernel = tuple(weight.shape[2:])
    stride_t = as_tuple(stride, nd, "stride", minimum=1)
    dilation_t = as_tuple(dilation, nd, "dilation", minimum=1)
    pads = _padding_pairs(padding, kernel, stride_t, dilation_t)
    out_sizes = _output_sizes(x.shape[2:], kernel, stride_t, pads, dilation_t, nd)

    n, c_out = x.shape[0], weight.shape[0]
    columns = _im2col(x, kernel, stride_t, pads, dilation_t)  # (N, C_in*K, L)
    # Rows are ordered channel first, so group g's rows (its C_in/G channels) form one contiguous block.
    columns = columns.reshape(n, groups, columns.shape[1] // groups, columns.shape[2])  # (N, G, C_in/G*K, L)
    kernels = weight.reshape(groups, c_out // groups, -1)  # (G, C_out/G, C_in/G*K)
    out = kernels @ columns  # (G, C_out/G, C_in/G*K) @ (N, G, C_in/G*K, L) -> (N, G, C_out/G, L)
    out = out.reshape(n, c_out, *out_sizes)  # (N, C_out, *out)
    if bias is not None:
        out = out + bias.view(c_out, *([1] * nd))  # (C_out, 1, ..., 1) broadcasts over (N, C_out, *out)
    return out[0] if unbatched else out


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | Sequence[int] = 1,
           padding: Padding = 0, dilation: int | Sequence[int] = 1, groups: int = 1) -> Tensor:
    """1-D convolution (cross-correlation) by im2col and one matrix product per group; as ``F.conv1d``.

    Args:
        input: ``Tensor[N, C_in, L]`` or ``Tensor[C_in, L]``, floating point.
        weight: ``Tensor[C_out, C_in/groups, kL]``, same dtype and device as ``input``.
        bias: ``Tensor[C_out]`` or None.
        stride: step between windows (int or 1-tuple, >= 1).
        padding: zeros on both sides (int or 1-tuple), or ``"valid"`` (none) or ``"same"`` (output
            as long as the input; stride must be 1).
        dilation: spacing between kernel taps (int or 1-tuple, >= 1).
        groups: split the channels into this many independent convolutions.

    Returns:
        ``Tensor[N, C_out, L_out]`` (``Tensor[C_out, L_out]`` for unbatched input), with
        ``L_out`` given by :func:`conv_output_size`.
    """
    return _conv_nd(input, weight, bias, stride, padding, dilation, groups, nd=1)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | Sequence[int] = 1,
           padding: Padding = 0, dilation: int | Sequence[int] = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) by im2col and one matrix product per group; as ``F.conv2d``.

    Args:
        input: ``Tensor[N, C_in, H, W]`` or ``Tensor[C_in, H, W]``, floating point.
        weight: ``Tensor[C_out, C_in/groups, kH, kW]``, same dtype and device as ``input``.
        bias: ``Tensor[C_out]`` or None.
        stride: step between windows (int or ``(sH, sW)``, >= 1).
        padding: zeros on both sides (int or ``(pH, pW)``), or ``"valid"`` (none) or ``"same"``
            (output the size of the input; stride must be 1).
        dilation: spacing between kernel taps (int or ``(dH, dW)``, >= 1).
        groups: split the channels into this many independent convolutions (``groups = C_in``:
            depthwise).

    Returns:
        ``Tensor[N, C_out, H_out, W_out]`` (``Tensor[C_out, H_out, W_out]`` for unbatched input).
    """
    return _conv_nd(input, weight, bias, stride, padding, dilation, groups, nd=2)


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | Sequence[int] = 1,
           padding: Padding = 0, dilation: int | Sequence[int] = 1, groups: int = 1) -> Tensor:
    """3-D convolution (cross-correlation) by im2col and one matrix product per group; as ``F.conv3d``.

    Args:
        input: ``Tensor[N, C_in, D, H, W]`` or ``Tensor[C_in, D, H, W]``, floating point.
        weight: ``Tensor[C_out, C_in/groups, kD, kH, kW]``, same dtype and device as ``input``.
        bias: ``Tensor[C_out]`` or None.
        stride, padding, dilation, groups: as in :func:`conv2d`, with three values per tuple.

    Returns:
        ``Tensor[N, C_out, D_out, H_out, W_out]`` (without ``N`` for unbatched input).
    """
    return _conv_nd(input, weight, bias, stride, padding, dilation, groups, nd=3)


def _as_float_array(value: object, name: str, ndim: tuple[int, ...], shape_hint: str) -> np.ndarray:
    """A NumPy view of a float NumPy array or tensor, with a clear error for anything else."""
    if isinstance(value, Tensor):
        array = value.detach().cpu().numpy()
    elif isinstance(value, np.ndarray):
        array = value
    else:
        raise TypeError(f"{name} must be a NumPy array or a torch.Tensor of shape {shape_hint}, "
                        f"got {type(value).__name__}")
    if array.ndim not in ndim:
        want = " or ".join(f"{n}-D" for n in ndim)
        raise ValueError(f"{name} must be {shape_hint}: expected a {want} array, got a {array.ndim}-D array of "
                         f"shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name} must have a floating-point dtype (e.g. float32), got {array.dtype}")
    return array


def conv2d_loops(input: ArrayT, weight: ArrayT, bias: ArrayT | None = None, stride: int | Sequence[int] = 1,
                 padding: Padding = 0, dilation: int | Sequence[int] = 1, groups: int = 1) -> ArrayT:
    """2-D convolution as nested loops, one output value at a time (for reading, not for speed).

    The same arguments and result as :func:`conv2d` and ``F.conv2d``, written as the definition:
    for every image, output channel and output position, multiply the receptive field by the
    kernel and add the products. It works on NumPy arrays and on tensors (computed in NumPy;
    no autograd), and returns the type it was given. The sums run in float64 and are rounded to
    the input's dtype once, so it doubles as a precise reference.

    Args:
        input: ``[N, C_in, H, W]`` or ``[C_in, H, W]``, float (NumPy array or tensor).
        weight: ``[C_out, C_in/groups, kH, kW]``.
        bias: ``[C_out]`` or None.
        stride, padding, dilation, groups: as in :func:`conv2d`.

    Returns:
        ``[N, C_out, H_out, W_out]`` (``[C_out, H_out, W_out]`` for unbatched input), a NumPy
        array for NumPy input, a tensor (on the input's device and dtype) for tensor input.
    """
    batched_layout, unbatched_layout, kernel_layout = _LAYOUTS[2]
    x = _as_float_array(input, "input", (4, 3), f"{batched_layout} or {unbatched_layout}")
    w = _as_float_array(weight, "weight", (4,), kernel_layout)
    b = None if bias is None else _as_float_array(bias, "bias", (1,), f"(C_out,) = ({w.shape[0]},)")
    check_positive_int(groups, "groups")
    unbatched = x.ndim == 3
    x = x[None] if unbatched else x  # (N, C_in, H, W)
    (n, c_in, height, width), (c_out, c_per_group, kh, kw) = x.shape, w.shape
    if c_in % groups or c_out % groups or c_per_group * groups != c_in:
        raise ValueError(f"input has {c_in} channels and weight {kernel_layout} has shape {w.shape}: need "
                         f"C_in and C_out divisible by groups ({groups}) and weight.shape[1] * groups == C_in")
    if b is not None and b.shape != (c_out,):
        raise ValueError(f"bias must have shape (C_out,) = ({c_out},), got {b.shape}")
    sh, sw = as_tuple(stride, 2, "stride", minimum=1)
    dh, dw = as_tuple(dilation, 2, "dilation", minimum=1)
    pads = _padding_pairs(padding, (kh, kw), (sh, sw), (dh, dw))
    out_h, out_w = _output_sizes((height, width), (kh, kw), (sh, sw), pads, (dh, dw), 2)

    dtype = np.result_type(x, w)
    # Sum in float64 and round once at the end: float32 sums of many products drift by a few ulps.
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), *pads))  # (N, C_in, H + pads, W + pads), zeros around
    w = w.astype(np.float64)
    out = np.zeros((n, c_out, out_h, out_w), dtype=np.float64)
    c_out_per_group = c_out // groups
    for image in range(n):
        for o in range(c_out):
            g = o // c_out_per_group  # output channel o belongs to group g, which sees only its C_in/G channels
            channels = slice(g * c_per_group, (g + 1) * c_per_group)
            for i in range(out_h):
                for j in range(out_w):
                    top, left = i * sh, j * sw
                    field = x[image, channels, top: top + dh * (kh - 1) + 1: dh,
                              left: left + dw * (kw - 1) + 1: dw]  # (C_in/G, kH, kW)
                    out[image, o, i, j] = np.sum(field * w[o]) + (b[o] if b is not None else 0)
    out = (out[0] if unbatched else out).astype(dtype)
    if isinstance(input, Tensor):
        return torch.from_numpy(out).to(device=input.device, dtype=input.dtype)
    return out


__all__ = ["conv1d", "conv2d", "conv2d_loops", "conv3d", "conv_output_size", "im2col"]
