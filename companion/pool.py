"""Pooling from scratch, and the receptive field of a stack of convolutions and poolings.

**Pooling** slides a ``kh x kw`` window over each channel with a stride, like a convolution
without weights, and keeps the window's maximum (:func:`max_pool2d`) or mean (:func:`avg_pool2d`).
Global average pooling (:func:`global_avg_pool2d`) averages each whole channel to one number, as
at the end of ResNet or GoogLeNet. The windows are views of the padded input (``Tensor.unfold``),
so autograd differentiates through them and no backward pass is written by hand. The functions
take the arguments of ``torch.nn.functional.max_pool2d`` / ``avg_pool2d`` and mean the same by
them (no dilation, ``ceil_mode`` or ``return_indices``).

**Receptive field.** The receptive field of an output unit is the set of input pixels it can
depend on. Along one axis, for layers with kernel ``k``, stride ``s``, padding ``p`` and dilation
``d`` (so an effective kernel ``k_eff = d (k - 1) + 1``), three numbers follow from one layer to
the next (Araujo, Norris & Sim, 2019, `Computing Receptive Fields of Convolutional Neural Networks
<https://distill.pub/2019/computing-receptive-fields>`_)::

    jump_out  = jump_in * s                               # input pixels between neighbouring units
    size_out  = size_in + (k_eff - 1) * jump_in           # receptive field size, in input pixels
    start_out = start_in + ((k_eff - 1) / 2 - p) * jump_in  # centre of the first unit's field

starting from ``size = jump = 1`` and ``start = 0`` (pixel ``i`` of the input sits at coordinate
``i``). :func:`receptive_field` runs them over a list of layers or an ``nn.Sequential``;
:func:`gradient_map` and :func:`nonzero_extent` measure the same field empirically, as the input
pixels that get a nonzero gradient from one output unit. How much each pixel of the field matters
is the *effective* receptive field of Luo et al., 2016, `Understanding the Effective Receptive
Field in Deep Convolutional Neural Networks <https://arxiv.org/abs/1701.04128>`_.

Introduced in chapter 2, *Pooling, receptive fields, counting parameters and FLOPs*.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import as_tuple, check_tensor

IntPair = int | tuple[int, int]

_INPUT_LAYOUT = "(N, C, H, W) or (C, H, W)"


# --------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------

def _pool_windows(input: Tensor, kernel_size: IntPair | Sequence[int], stride: IntPair | Sequence[int] | None,
                  padding: IntPair | Sequence[int], pad_value: float, name: str) -> tuple[Tensor, bool]:
    """Check the arguments of a pooling and return its windows ``(N, C, H_out, W_out, kh, kw)``.

    Also returns whether ``input`` was unbatched ``(C, H, W)``, so the caller can drop the batch
    dimension again.
    """
    check_tensor(input, "input", ndim=(3, 4), shape_hint=_INPUT_LAYOUT, floating=True)
    kh, kw = as_tuple(kernel_size, 2, "kernel_size", minimum=1)
    sh, sw = (kh, kw) if stride is None else as_tuple(stride, 2, "stride", minimum=1)
    ph, pw = as_tuple(padding, 2, "padding", minimum=0)
    if 2 * ph > kh or 2 * pw > kw:  # torch's rule: a window must always overlap the real input
        raise ValueError(f"{name}: padding must be at most half of kernel_size, got padding={(ph, pw)} "
                         f"for kernel_size={(kh, kw)}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input  # (C, H, W) -> (1, C, H, W)
    h, w = x.shape[-2:]
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ValueError(f"{name}: the input ({h}x{w}, padded by {(ph, pw)} to {h + 2 * ph}x{w + 2 * pw}) "
                         f"is smaller than kernel_size={(kh, kw)}")
    x = F.pad(x, (pw, pw, ph, ph), value=pad_value)  # (N, C, H + 2ph, W + 2pw)
    # Each unfold replaces a spatial dimension by the number of windows along it, (size - k) // s + 1,
    # and appends the window as a new last dimension; both are views, nothing is copied.
    windows = x.unfold(2, kh, sh).unfold(3, kw, sw)  # (N, C, H_out, W_out, kh, kw)
    return windows, unbatched


def max_pool2d(input: Tensor, kernel_size: IntPair | Sequence[int], stride: IntPair | Sequence[int] | None = None,
               padding: IntPair | Sequence[int] = 0) -> Tensor:
    """2-D max pooling: the largest value of each ``kh x kw`` window, channel by channel.

    Same semantics as ``torch.nn.functional.max_pool2d``: padding is by ``-inf`` (so it never
    wins), and the gradient of a window goes to its maximum (the first one, on ties).

    Args:
        input (Tensor[N, C, H, W] or Tensor[C, H, W]): a floating-point input.
        kernel_size: window size, an int or ``(kh, kw)``.
        stride: step between windows (default: ``kernel_size``, windows that do not overlap).
        padding: implicit ``-inf`` added on each side; at most half of ``kernel_size``.

    Returns:
        Tensor[N, C, H_out, W_out] (or ``[C, H_out, W_out]``), with
        ``H_out = (H + 2 * padding - kh) // stride + 1`` and the same for ``W_out``.

    Raises:
        TypeError: ``input`` is not a floating-point tensor.
        ValueError: ``input`` is not 3-D or 4-D; a size is not a positive int (padding:
            non-negative) or padding is more than half the kernel; the window is larger than the
            padded input.
    """
    windows, unbatched = _pool_windows(input, kernel_size, stride, padding, float("-inf"), "max_pool2d")
    out = windows.flatten(-2).max(dim=-1).values  # (N, C, H_out, W_out, kh*kw) -> (N, C, H_out, W_out)
    return out.squeeze(0) if unbatched else out


def avg_pool2d(input: Tensor, kernel_size: IntPair | Sequence[int], stride: IntPair | Sequence[int] | None = None,
               padding: IntPair | Sequence[int] = 0) -> Tensor:
    """2-D average pooling: the mean of each ``kh x kw`` window, channel by channel.

    Same semantics as ``torch.nn.functional.avg_pool2d`` with its defaults: padding is by zeros,
    and the zeros count in the mean (``count_include_pad=True``), so every window divides by
    ``kh * kw``.

    Args:
        input (Tensor[N, C, H, W] or Tensor[C, H, W]): a floating-point input.
        kernel_size: window size, an int or ``(kh, kw)``.
        stride: step between windows (default: ``kernel_size``).
        padding: implicit zeros added on each side; at most half of ``kernel_size``.

    Returns:
        Tensor[N, C, H_out, W_out] (or ``[C, H_out, W_out]``), sizes as in :func:`max_pool2d`.

    Raises:
        TypeError, ValueError: as :func:`max_pool2d`.
    """
    windows, unbatched = _pool_windows(input, kernel_size, stride, padding, 0.0, "avg_pool2d")
    out = windows.mean(dim=(-2, -1))  # (N, C, H_out, W_out, kh, kw) -> (N, C, H_out, W_out)
    return out.squeeze(0) if unbatched else out


def global_avg_pool2d(input: Tensor) -> Tensor:
    """Global average pooling: the mean of each channel over all its positions.

    Equal to ``F.adaptive_avg_pool2d(input, 1)`` with the two trailing size-1 dimensions dropped;
    a classifier's head then needs no ``flatten``, and works for any input size.

    Args:
        input (Tensor[N, C, H, W] or Tensor[C, H, W]): a floating-point input.

    Returns:
        Tensor[N, C] (or Tensor[C] for an unbatched input).

    Raises:
        TypeError: ``input`` is not a floating-point tensor.
        ValueError: ``input`` is not 3-D or 4-D.
    """
    check_tensor(input, "input", ndim=(3, 4), shape_hint=_INPUT_LAYOUT, floating=True)
    return input.mean(dim=(-2, -1))  # (N, C, H, W) -> (N, C)


# --------------------------------------------------------------------------------------------
# Receptive field
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of the units of one layer, along one axis, in input pixels.

    Attributes:
        size: how many input pixels one unit sees (from the first to the last, gaps included).
        jump: how far apart in the input the fields of two neighbouring units are (the
            product of the strides so far; the "effective stride").
        start: the input coordinate of the centre of the first unit's field (pixel ``i`` is at
            ``i``; negative, or past the end, when the field hangs over the padding).
        layers: the field after each counted layer of the stack, in order (empty for the
            entries of this tuple themselves). Not part of ``==``.
    """

    size: int
    jump: int
    start: float
    layers: tuple[ReceptiveField, ...] = field(default=(), repr=False, compare=False)

    def centre(self, index: int = 0) -> float:
        """The input coordinate of the centre of unit ``index``'s field: ``start + index * jump``."""
        return self.start + index * self.jump

    def span(self, index: int = 0) -> tuple[float, float]:
        """The first and the last input coordinate in unit ``index``'s field (both included)."""
        half = (self.size - 1) / 2
        return self.centre(index) - half, self.centre(index) + half


#: Layers that act on each position on its own (activations), or on whole channels without moving
#: anything (normalisations, dropout): they leave the receptive field as it is.
POINTWISE_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
    nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm, nn.LocalResponseNorm,
    nn.Dropout, nn.Dropout2d,
)

#: Layers whose window :func:`receptive_field` follows.
WINDOW_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


class UnsupportedLayerError(TypeError, ValueError):
    """A layer :func:`receptive_field` cannot follow (e.g. ``Linear``, ``Flatten``, an adaptive pooling).

    A ``TypeError`` (the layer's type is the problem) and a ``ValueError`` (a bad entry in an
    otherwise valid stack), so that either ``except`` catches it.
    """


#: One layer along one axis: (kernel, stride, padding, dilation).
Layer1d = tuple[int, int, int, int]


def _flatten_modules(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    """The leaves of nested ``Sequential``/``ModuleList`` containers, in order, with their names."""
    if isinstance(module, (nn.Sequential, nn.ModuleList)):
        for name, child in module.named_children():
            yield from _flatten_modules(child, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix or type(module).__name__, module


def _module_geometry(name: str, module: nn.Module) -> tuple[tuple[int, int], ...]:
    """``(kernel, stride, padding, dilation)`` of a Conv2d/MaxPool2d/AvgPool2d, each as ``(along H, along W)``."""
    kernel = as_tuple(module.kernel_size, 2, f"{name}.kernel_size", minimum=1)
    stride = as_tuple(module.stride, 2, f"{name}.stride", minimum=1)
    dilation = as_tuple(getattr(module, "dilation", 1), 2, f"{name}.dilation", minimum=1)  # AvgPool2d has none
    padding = module.padding
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        # torch pads d*(k-1) in all, the odd one after: the field's centre moves by the padding before.
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    padding = as_tuple(padding, 2, f"{name}.padding", minimum=0)
    return kernel, stride, padding, dilation


def _layers_from_module(stack: nn.Module, axis: int | None) -> list[Layer1d]:
    layers: list[Layer1d] = []
    for name, module in _flatten_modules(stack, ""):
        if isinstance(module, POINTWISE_LAYERS):
            continue
        if not isinstance(module, WINDOW_LAYERS):
            raise UnsupportedLayerError(
                f"receptive_field follows Conv2d, MaxPool2d and AvgPool2d layers (and skips activations, "
                f"normalisations and dropout); layer {name!r} is a {type(module).__name__}, which it cannot "
                f"follow. Pass the part of the network before it.")
        per_axis = _module_geometry(name, module)
        if axis is None:
            if any(h != w for h, w in per_axis):
                raise ValueError(f"layer {name!r} ({type(module).__name__}) differs along height and width "
                                 f"(kernel, stride, padding, dilation = {per_axis}); pass axis=0 (height) or "
                                 f"axis=1 (width) to compute one of them")
            layers.append(tuple(h for h, _ in per_axis))  # type: ignore[arg-type]
        else:
            layers.append(tuple(pair[axis] for pair in per_axis))  # type: ignore[arg-type]
    return layers


def _layers_from_tuples(stack: Sequence) -> list[Layer1d]:
    layers: list[Layer1d] = []
    for i, layer in enumerate(stack):
        ok = (isinstance(layer, (tuple, list)) and len(layer) in (3, 4)
              and all(isinstance(v, int) and not isinstance(v, bool) for v in layer))
        if not ok:
            raise ValueError(f"layers[{i}] must be (kernel, stride, padding) or (kernel, stride, padding, dilation) "
                             f"ints, got {layer!r}")
        kernel, stride, padding, dilation = (*layer, 1) if len(layer) == 3 else layer
        if kernel < 1 or stride < 1 or padding < 0 or dilation < 1:
            raise ValueError(f"layers[{i}] = {layer!r}: kernel, stride and dilation must be >= 1 and padding >= 0")
        layers.append((kernel, stride, padding, dilation))
    return layers


def receptive_field(layers: Sequence[tuple[int, ...]] | nn.Module, *, axis: int | None = None) -> ReceptiveField:
    """The receptive field of a stack of convolutions and poolings, by the recurrences of Araujo et al.

    Args:
        layers: the stack, either as a list of ``(kernel, stride, padding)`` or
            ``(kernel, stride, padding, dilation)`` tuples of ints (one axis), or as an
            ``nn.Sequential`` (or ``ModuleList``, or one layer) of ``Conv2d``, ``MaxPool2d`` and
            ``AvgPool2d`` layers. Nested containers are flattened; activations, normalisations and
            dropout (:data:`POINTWISE_LAYERS`) are skipped.
        axis: for modules whose kernel, stride, padding or dilation differ along height and
            width: 0 computes the field along the height, 1 along the width. ``None`` (default)
            requires them to be equal.

    Returns:
        The :class:`ReceptiveField` of the last layer's units, whose ``layers`` holds the field
        after each counted layer (``len(rf.layers)`` is the number of Conv/Pool layers).

    Raises:
        TypeError: ``layers`` is neither a sequence of tuples nor an ``nn.Module``.
        ValueError: a tuple is not 3 or 4 ints with kernel, stride, dilation >= 1 and padding >= 0;
            a layer differs along height and width while ``axis`` is ``None``; a bad ``axis``.
        UnsupportedLayerError: a module that is neither a window layer nor pointwise (``Linear``,
            ``Flatten``, ``AdaptiveAvgPool2d``, a residual block...).
    """
    if axis is not None and axis not in (0, 1):
        raise ValueError(f"axis must be None, 0 (height) or 1 (width), got {axis!r}")
    if isinstance(layers, nn.Module):
        stack = _layers_from_module(layers, axis)
    elif isinstance(layers, Sequence) and not isinstance(layers, str):
        stack = _layers_from_tuples(layers)
    else:
        raise TypeError(f"layers must be a list of (kernel, stride, padding[, dilation]) tuples or an nn.Sequential, "
                        f"got {type(layers).__name__}")

    size, jump, start = 1, 1, 0.0  # one input pixel sees itself; pixel i sits at coordinate i
    progression = []
    for kernel, stride, padding, dilation in stack:
        k_eff = dilation * (kernel - 1) + 1  # the dilated kernel's extent
        size = size + (k_eff - 1) * jump
        start = start + ((k_eff - 1) / 2 - padding) * jump
        jump = jump * stride
        progression.append(ReceptiveField(size, jump, start))
    return ReceptiveField(size, jump, start, layers=tuple(progression))


def gradient_map(model: nn.Module, input: Tensor, position: tuple[int, int] | None = None) -> Tensor:
    """How strongly one output unit depends on each input pixel: ``|d y[:, i, j] / d x|``, summed over channels.

    The pixels where the map is nonzero are the unit's receptive field, as far as the gradient
    can see it (a max pooling passes the gradient to one pixel per window only; a ReLU that is off
    passes none). The map's values are its *effective* receptive field (Luo et al., 2016).

    Args:
        model: maps ``(1, C, H, W)`` to ``(1, C', H', W')``; it is run as it is (train or eval),
            and its parameters' ``.grad`` are left untouched.
        input (Tensor[C, H, W] or Tensor[1, C, H, W]): a floating-point input.
        position: the output unit ``(i, j)``; by default the centre ``(H' // 2, W' // 2)``.

    Returns:
        Tensor[H, W], nonnegative: the absolute gradient of the sum of the output channels at
        ``position``, summed over the input channels.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, or ``input`` is not a floating-point tensor.
        ValueError: ``input`` is not ``(C, H, W)`` or ``(1, C, H, W)``; the output is not 4-D;
            ``position`` is outside the output.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_tensor(input, "input", ndim=(3, 4), shape_hint="(C, H, W) or (1, C, H, W)", floating=True)
    if input.dim() == 4 and input.shape[0] != 1:
        raise ValueError(f"input must hold one image, (C, H, W) or (1, C, H, W), got shape {tuple(input.shape)}")
    x = (input if input.dim() == 4 else input.unsqueeze(0)).detach().clone().requires_grad_(True)  # (1, C, H, W)
    with torch.enable_grad():
        out = model(x)
        if not isinstance(out, Tensor) or out.dim() != 4:
            raise ValueError(f"model must return a (1, C', H', W') feature map, got "
                             f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
        h_out, w_out = out.shape[-2:]
        i, j = (h_out // 2, w_out // 2) if position is None else position
        if not (0 <= i < h_out and 0 <= j < w_out):
            raise ValueError(f"position {position!r} is outside the {h_out}x{w_out} output")
        (grad,) = torch.autograd.grad(out[0, :, i, j].sum(), x)  # (1, C, H, W)
    return grad[0].abs().sum(dim=0)  # (C, H, W) -> (H, W)


def nonzero_extent(grad_map: Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
    """The rows and columns where a 2-D map is nonzero: ``((first_row, last_row), (first_col, last_col))``.

    Applied to a :func:`gradient_map`, ``last - first + 1`` is the measured receptive field size
    and ``(first + last) / 2`` its centre, to compare with :meth:`ReceptiveField.span`.

    Args:
        grad_map (Tensor[H, W]): e.g. the output of :func:`gradient_map`.

    Raises:
        TypeError: ``grad_map`` is not a tensor.
        ValueError: it is not 2-D, or it is zero everywhere.
    """
    check_tensor(grad_map, "grad_map", ndim=2, shape_hint="(H, W)")
    rows = grad_map.ne(0).any(dim=1).nonzero().flatten()  # (H, W) -> (H,) -> indices of nonzero rows
    cols = grad_map.ne(0).any(dim=0).nonzero().flatten()  # (H, W) -> (W,) -> indices of nonzero columns
    if rows.numel() == 0:
        raise ValueError("grad_map is zero everywhere: the output unit does not depend on the input "
                         "(e.g. every ReLU on its path is off)")
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))


__all__ = [
    "POINTWISE_LAYERS", "WINDOW_LAYERS", "ReceptiveField", "UnsupportedLayerError", "avg_pool2d",
    "global_avg_pool2d", "gradient_map", "max_pool2d", "nonzero_extent", "receptive_field",
]
