"""Upsampling from scratch: bilinear interpolation, and the transposed convolution as a scatter.

**Bilinear resizing.** Output pixel ``i`` of a resized axis reads the input at a *source
coordinate* ``u`` between two input pixels, ``i0 = floor(u)`` and ``i1 = i0 + 1``, and mixes
them with weights ``1 - t`` and ``t``, where ``t = u - i0``; doing that along the height and then
the width mixes four input pixels. Where ``u`` comes from is the ``align_corners`` question:

* ``align_corners=True``: the corner pixels' *centres* line up, so ``u = i * (n_in - 1) / (n_out - 1)``;
* ``align_corners=False`` (the default of torch, OpenCV and TensorFlow 2): the corners of the
  *pixel grids* line up, each pixel being a unit square with its centre at ``i + 0.5``, so
  ``u = (i + 0.5) * n_in / n_out - 0.5``, clamped at 0 at the left border.

At the right border ``i1`` would fall off the image; it is clamped to the last pixel (where
``t`` multiplies a copy of the same pixel, so nothing changes). :func:`bilinear_resize` computes
exactly what ``F.interpolate(x, size, mode="bilinear", align_corners=...)`` does.
:func:`bilinear_resize_separable` computes the same as two 1-D passes (:func:`linear_resize_axis`),
the height then the width or the other way round, and :func:`resize_multiplies` counts what each
way costs.

**Transposed convolution.** A convolution gathers: each output pixel is a weighted sum of a
window of inputs. Its transpose (the gradient of a convolution with respect to its input, used to
upsample in decoders and generators) scatters: each input pixel ``x[i, j]`` adds a copy of the
kernel, scaled by its value, into the output at ``(i * stride, j * stride)``. With stride ``s``
and kernel ``k``, the stamps overlap unevenly when ``k`` is not a multiple of ``s``, which is
where the "checkerboard artefacts" of Odena, Dumoulin & Olah come from (*Deconvolution and
Checkerboard Artifacts*, Distill 2016, https://distill.pub/2016/deconv-checkerboard/). The output
is ``(H - 1) * s + k`` long before ``padding`` removes ``padding`` rows (and columns) on each side
and ``output_padding`` adds rows at the bottom (and columns at the right):

    H_out = (H - 1) * stride - 2 * padding + kernel + output_padding

(Dumoulin & Visin, *A guide to convolution arithmetic for deep learning*, 2016,
https://arxiv.org/abs/1603.07285, Section 4). :func:`conv_transpose2d` computes what
``F.conv_transpose2d`` does (without ``groups`` and ``dilation``).

Introduced in chapter 4, *Upsampling: bilinear interpolation and transposed convolution*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from companion._checks import as_tuple, check_same_device_dtype, check_tensor


def source_coordinates(n_in: int, n_out: int, align_corners: bool, *, dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Where each output pixel of a resized axis reads the input: two neighbours and the weight of the second.

    Args:
        n_in: input length (> 0).
        n_out: output length (> 0).
        align_corners: line up the corner pixels' centres (``True``) or the grids' outer edges (``False``).
        dtype, device: of the returned weights (the computation is done in ``dtype``, as torch does).

    Returns:
        ``(i0, i1, t)``, each ``Tensor[n_out]``: the left neighbour ``floor(u)``, the right one
        ``min(i0 + 1, n_in - 1)`` (int64), and ``t = u - i0`` in ``[0, 1)``; output pixel ``i``
        is ``(1 - t[i]) * x[i0[i]] + t[i] * x[i1[i]]``.
    """
    i = torch.arange(n_out, dtype=dtype, device=device)
    if align_corners:
        scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        u = i * scale
    else:
        u = ((i + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)  # left of the first centre: stay on pixel 0
    i0 = u.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, u - i0.to(dtype)


def bilinear_resize(x: Tensor, size: int | Sequence[int], align_corners: bool = False) -> Tensor:
    """Resize images by bilinear interpolation, as ``F.interpolate(x, size, mode="bilinear", align_corners=...)``.

    Args:
        x: ``Tensor[N, C, H, W]``, floating point.
        size: the output size, ``(H_out, W_out)`` or one int for both.
        align_corners: how output and input pixels line up (see the module docstring).

    Returns:
        ``Tensor[N, C, H_out, W_out]``; differentiable with respect to ``x``.
    """
    check_tensor(x, "x", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    if not isinstance(align_corners, bool):
        raise TypeError(f"align_corners must be True or False, got {align_corners!r}")
    out_h, out_w = as_tuple(size, 2, "size", minimum=1)
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty image, got shape {tuple(x.shape)}")
    y0, y1, ty = source_coordinates(x.shape[-2], out_h, align_corners, dtype=x.dtype, device=x.device)
    x0, x1, tx = source_coordinates(x.shape[-1], out_w, align_corners, dtype=x.dtype, device=x.device)
    rows0, rows1 = y0[:, None], y1[:, None]  # (H_out, 1): broadcast against the columns (1, W_out) below
    cols0, cols1 = x0[None, :], x1[None, :]  # (1, W_out)
    ty, tx = ty[:, None], tx[None, :]  # (H_out, 1) and (1, W_out): broadcast over (N, C, H_out, W_out)
    return ((1 - ty) * (1 - tx) * x[:, :, rows0, cols0]  # each x[:, :, rows, cols] is (N, C, H_out, W_out)
            + (1 - ty) * tx * x[:, :, rows0, cols1]
            + ty * (1 - tx) * x[:, :, rows1, cols0]
            + ty * tx * x[:, :, rows1, cols1])


def linear_resize_axis(x: Tensor, size: int, dim: int, align_corners: bool = False) -> Tensor:
    """Resize one axis of ``x`` by linear interpolation, leaving the other axes alone.

    Output index ``i`` along ``dim`` is ``(1 - t[i]) * x[..., i0[i], ...] + t[i] * x[..., i1[i], ...]``
    with ``(i0, i1, t)`` from :func:`source_coordinates`: a 1-D resize, applied to every row (or
    column, or whatever ``dim`` is) at once. Along the last axis of an ``(N, C, L)`` tensor it is
    ``F.interpolate(x, size, mode="linear", align_corners=...)``.

    Args:
        x: floating point, any shape with ``x.shape[dim] >= 1``.
        size: the new length of axis ``dim`` (>= 1).
        dim: the axis to resize (negative counts from the end).
        align_corners: how output and input pixels line up (see the module docstring).

    Returns:
        ``x`` with ``x.shape[dim]`` replaced by ``size``; differentiable with respect to ``x``.
    """
    check_tensor(x, "x", floating=True)
    if not isinstance(align_corners, bool):
        raise TypeError(f"align_corners must be True or False, got {align_corners!r}")
    (size,) = as_tuple(size, 1, "size", minimum=1)
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim must be an axis of x, between {-x.dim()} and {x.dim() - 1}, got {dim}")
    dim = dim % x.dim()
    if x.shape[dim] == 0:
        raise ValueError(f"x must have a non-empty axis {dim}, got shape {tuple(x.shape)}")
    i0, i1, t = source_coordinates(x.shape[dim], size, align_corners, dtype=x.dtype, device=x.device)
    t = t.view([size if d == dim else 1 for d in range(x.dim())])  # (1, .., size, .., 1): broadcasts along dim
    return (1 - t) * x.index_select(dim, i0) + t * x.index_select(dim, i1)  # each x.index_select: size along dim


def bilinear_resize_separable(x: Tensor, size: int | Sequence[int], align_corners: bool = False,
                              rows_first: bool = True) -> Tensor:
    """Bilinear resizing as two 1-D linear passes: the height, then the width (or the other way round).

    The four-pixel formula of :func:`bilinear_resize` factors: its weights are products
    ``(1 - t_y)(1 - t_x), ...``, so interpolating every column along the height and then every row
    of the result along the width gives the same numbers. In matrix form, with ``A_h`` the
    ``(H_out, H)`` and ``A_w`` the ``(W_out, W)`` interpolation matrices (two non-zeros per row),
    each channel becomes ``A_h X A_w^T``, and ``(A_h X) A_w^T == A_h (X A_w^T)``: both orders agree
    (up to rounding). They differ in cost: see :func:`resize_multiplies`.

    Args:
        x: ``Tensor[N, C, H, W]``, floating point.
        size: ``(H_out, W_out)`` or one int for both.
        align_corners: how output and input pixels line up.
        rows_first: resize the height first (the intermediate is ``(N, C, H_out, W)``), else the
            width first (``(N, C, H, W_out)``).

    Returns:
        ``Tensor[N, C, H_out, W_out]``, equal to ``F.interpolate(x, size, mode="bilinear", align_corners=...)``.
    """
    check_tensor(x, "x", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    out_h, out_w = as_tuple(size, 2, "size", minimum=1)
    if rows_first:
        return linear_resize_axis(linear_resize_axis(x, out_h, -2, align_corners), out_w, -1, align_corners)
    return linear_resize_axis(linear_resize_axis(x, out_w, -1, align_corners), out_h, -2, align_corners)


def resize_multiplies(in_size: Sequence[int], out_size: Sequence[int], order: str = "direct", taps: int = 2) -> int:
    """Multiplications (weight times pixel) of a separable resize of one channel, done directly or in two passes.

    With ``taps`` input pixels per output pixel along each axis (2 for bilinear, 4 for bicubic):

    * ``"direct"``: every output pixel mixes ``taps**2`` pixels with 2-D weights: ``taps**2 * H_out * W_out``;
    * ``"rows first"``: the height pass makes ``H_out * W`` values of ``taps`` products each, then the
      width pass ``H_out * W_out``: ``taps * (H_out * W + H_out * W_out)``;
    * ``"columns first"``: ``taps * (H * W_out + H_out * W_out)``.

    Args:
        in_size: ``(H, W)``.
        out_size: ``(H_out, W_out)``.
        order: ``"direct"``, ``"rows first"`` or ``"columns first"``.
        taps: input pixels per output pixel along one axis (>= 1).

    Returns:
        The number of multiplications (the 2-D weights of the direct form, products of two 1-D
        weights, are not counted: they can be precomputed once per output position).
    """
    (h, w), (out_h, out_w) = as_tuple(in_size, 2, "in_size", minimum=1), as_tuple(out_size, 2, "out_size", minimum=1)
    (taps,) = as_tuple(taps, 1, "taps", minimum=1)
    counts = {"direct": taps * taps * out_h * out_w,
              "rows first": taps * (out_h * w + out_h * out_w),
              "columns first": taps * (h * out_w + out_h * out_w)}
    if order not in counts:
        raise ValueError(f"order must be one of {', '.join(map(repr, counts))}, got {order!r}")
    return counts[order]


def conv_transpose_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0) -> int:
    """Length of a transposed convolution's output: ``(n - 1) * stride - 2 * padding + kernel + output_padding``."""
    return (n - 1) * stride - 2 * padding + kernel + output_padding


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | Sequence[int] = 1,
                     padding: int | Sequence[int] = 0, output_padding: int | Sequence[int] = 0) -> Tensor:
    """2-D transposed convolution written as a scatter of the kernel, as ``F.conv_transpose2d`` (``groups=1``).

    Every input pixel ``(i, j)`` adds ``input[:, c, i, j] * weight[c, o]`` (a ``kH x kW`` stamp)
    into the output at rows ``i*sH .. i*sH + kH - 1`` and columns ``j*sW .. j*sW + kW - 1``. The
    loop below runs over the ``kH * kW`` kernel taps instead of the ``H * W`` pixels: tap
    ``(a, b)`` of every pixel's stamp lands at ``(i*sH + a, j*sW + b)``, a stride-spaced grid, so one
    strided slice receives that tap from all pixels at once. The sum is the same.

    Args:
        input: ``Tensor[N, C_in, H, W]`` or ``Tensor[C_in, H, W]``, floating point.
        weight: ``Tensor[C_in, C_out, kH, kW]`` (input channels first, as in ``F.conv_transpose2d``).
        bias: ``Tensor[C_out]`` or None.
        stride: spacing of the stamps in the output (int or ``(sH, sW)``, >= 1).
        padding: rows/columns removed from each side of the full output (int or pair, >= 0).
        output_padding: rows/columns added at the bottom/right (int or pair, each < its stride), to
            pick one of the ``stride`` input sizes that a stride-``s`` convolution maps to the same size.

    Returns:
        ``Tensor[N, C_out, H_out, W_out]`` (``Tensor[C_out, H_out, W_out]`` for unbatched input),
        with ``H_out = (H - 1) * sH - 2 * pH + kH + opH`` (:func:`conv_transpose_output_size`).
    """
    check_tensor(input, "input", ndim=(3, 4), shape_hint="(N, C_in, H, W) or (C_in, H, W)", floating=True)
    check_tensor(weight, "weight", ndim=4, shape_hint="(C_in, C_out, kH, kW)", floating=True)
    check_same_device_dtype(input, weight, "input", "weight")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input  # (N, C_in, H, W)
    n, c_in, h, w = x.shape
    if weight.shape[0] != c_in:
        raise ValueError(f"input has {c_in} channels, but weight (C_in, C_out, kH, kW) has shape "
                         f"{tuple(weight.shape)}: weight.shape[0] must be {c_in} (input channels come first "
                         "in a transposed convolution's weight)")
    c_out, kh, kw = weight.shape[1:]
    if bias is not None:
        check_tensor(bias, "bias", ndim=1, shape_hint=f"(C_out,) = ({c_out},)")
        if bias.shape[0] != c_out:
            raise ValueError(f"bias must have shape (C_out,) = ({c_out},), one value per output channel, "
                             f"got {tuple(bias.shape)}")
        check_same_device_dtype(bias, weight, "bias", "weight")
    sh, sw = as_tuple(stride, 2, "stride", minimum=1)
    ph, pw = as_tuple(padding, 2, "padding", minimum=0)
    oph, opw = as_tuple(output_padding, 2, "output_padding", minimum=0)
    if oph >= sh or opw >= sw:
        raise ValueError(f"output_padding must be smaller than stride in each dimension, got output_padding "
                         f"{(oph, opw)} and stride {(sh, sw)}")
    out_h = conv_transpose_output_size(h, kh, sh, ph, oph)
    out_w = conv_transpose_output_size(w, kw, sw, pw, opw)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"padding {(ph, pw)} removes the whole output: (H - 1) * stride - 2 * padding + kernel "
                         f"+ output_padding = {out_h} x {out_w} for an input of {h} x {w}")

    full_h, full_w = (h - 1) * sh + kh + oph, (w - 1) * sw + kw + opw  # before cropping the padding
    out = x.new_zeros(n, c_out, full_h, full_w)
    for a in range(kh):
        for b in range(kw):
            # Tap (a, b) of every pixel's stamp: input (N, C_in, H, W) times weight[:, :, a, b] (C_in, C_out).
            stamp = torch.einsum("nchw,co->nohw", x, weight[:, :, a, b])  # (N, C_out, H, W)
            out[:, :, a: a + (h - 1) * sh + 1: sh, b: b + (w - 1) * sw + 1: sw] += stamp  # rows a, a+sH, ...
    out = out[:, :, ph: ph + out_h, pw: pw + out_w]  # (N, C_out, H_out, W_out)
    if bias is not None:
        out = out + bias.view(1, c_out, 1, 1)  # (1, C_out, 1, 1) broadcasts over (N, C_out, H_out, W_out)
    return out[0] if unbatched else out


__all__ = ["bilinear_resize", "bilinear_resize_separable", "conv_transpose2d", "conv_transpose_output_size",
           "linear_resize_axis", "resize_multiplies", "source_coordinates"]
