"""Counting a network's parameters and its multiply-adds ("FLOPs"), in total and layer by layer.

**Parameters** are counted by hand with two formulas (R. Karim, 2019, `Counting No. of Parameters
in Deep Learning Models by Hand <https://towardsdatascience.com/counting-no-of-parameters-in-deep-
learning-models-by-hand-8f1716241889>`_)::

    Conv2d:  (kh * kw * C_in / groups + 1) * C_out     # one kernel and one bias per output channel
    Linear:  (n_in + 1) * n_out                        # one weight per pair, one bias per output

and :func:`count_parameters` checks them: it adds up ``p.numel()`` over the model's parameters
(a parameter shared by two layers counts once, as ``model.parameters()`` yields it once).

**Multiply-adds.** :func:`count_flops` runs the model once on zeros and, with forward hooks,
adds up the multiply-accumulate operations (MACs) of every convolution and linear layer::

    Conv (1-D, 2-D, 3-D):   output.numel() * (C_in / groups) * prod(kernel_size)
                            = N * C_out * H_out * W_out * (C_in / groups) * kh * kw   (2-D)
    ConvTranspose:          input.numel() * (C_out / groups) * prod(kernel_size)
    Linear:                 output.numel() * n_in

The convention is the one of the papers that report "FLOPs" (VGG, ResNet, MobileNet) and of
torchvision's model tables: **one multiply-add counts as one FLOP**. Bias additions, activations,
poolings, normalisations, and matrix products outside ``nn.Linear`` (e.g. inside
``nn.MultiheadAttention`` or a bare ``torch.matmul``) are *not* counted; in CNNs they are a small
share. Multiply by 2 for "one multiply and one add = two FLOPs".

:func:`layer_table` gives one :class:`LayerRow` per layer that runs (name, type, output shape,
parameters, MACs, and the bytes of its output: its activation memory) and :func:`format_table`
prints them as an aligned table with totals.

Introduced in chapter 2, *Pooling, receptive fields, counting parameters and FLOPs*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

CONV_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRANSPOSED_CONV_LAYERS: tuple[type[nn.Module], ...] = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class LayerRow:
    """One layer call in a :func:`layer_table`.

    Attributes:
        name: the layer's qualified name in the model (``"features.0"``).
        type: its class name (``"Conv2d"``).
        output_shape: the shape of its output, batch dimension included (``(1, 64, 224, 224)``).
        parameters: its parameters (0 for a layer, or a parameter, already counted in an earlier row).
        macs: its multiply-adds (0 except for convolutions and linear layers).
        output_bytes: the memory of its output, ``numel * element_size`` (batch included): the
            activation memory of this layer in one forward pass (S17, "predict whether your model is
            out of memory before training and determine suitable batch size").
    """

    name: str
    type: str
    output_shape: tuple[int, ...]
    parameters: int
    macs: int
    output_bytes: int = 0


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _check_input_size(input_size: object) -> tuple[int, int, int, int]:
    """``(C, H, W)`` -> ``(1, C, H, W)``; ``(N, C, H, W)`` as it is; anything else is a clear error."""
    if isinstance(input_size, (str, bytes)) or not isinstance(input_size, Sequence):
        raise TypeError(f"input_size must be a tuple (C, H, W) or (N, C, H, W), got {input_size!r}")
    sizes = tuple(input_size)
    if (len(sizes) not in (3, 4)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes)):
        raise ValueError(f"input_size must be (C, H, W) or (N, C, H, W) of positive ints, got {input_size!r}")
    return (1, *sizes) if len(sizes) == 3 else sizes  # type: ignore[return-value]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of scalar parameters of ``model``: ``sum(p.numel() for p in model.parameters())``.

    Args:
        model: any ``nn.Module``.
        trainable_only: count only the parameters with ``requires_grad=True`` (the frozen ones of
            a fine-tuned backbone are left out).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    _check_model(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def layer_macs(module: nn.Module, input: Tensor, output: Tensor) -> int:
    """The multiply-adds of one call of ``module`` on ``input`` giving ``output`` (0 unless Conv/Linear)."""
    if isinstance(module, CONV_LAYERS):
        # Every output value is a dot product over (C_in / groups) channels times the kernel's taps.
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, TRANSPOSED_CONV_LAYERS):
        # Every input value is multiplied into (C_out / groups) channels times the kernel's taps.
        return input.numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features  # (..., n_out) outputs, each a dot product of n_in
    return 0


def _first_tensor(value: object) -> Tensor | None:
    """The output tensor of a layer, or the first tensor of a tuple/list output (e.g. an LSTM's)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def layer_table(model: nn.Module, input_size: Sequence[int]) -> list[LayerRow]:
    """Run ``model`` once on zeros of size ``input_size`` and describe every layer that ran.

    One row per call of a leaf module (a module without children), in the order they ran. A layer
    called twice gets two rows; its parameters are counted in the first. Parameters that belong to
    a container rather than to a leaf (e.g. a class token) appear in no row, so the rows' total is
    :func:`count_parameters` for the usual CNNs but may be less for such models.

    The model runs in eval mode under ``torch.no_grad()`` (batch norm with a batch of one would
    otherwise fail), on the device and dtype of its first parameter; each module's train/eval
    mode is restored afterwards.

    Args:
        model: any ``nn.Module`` taking one tensor.
        input_size: ``(C, H, W)`` for one input, or ``(N, C, H, W)`` for a batch of ``N``.

    Returns:
        A list of :class:`LayerRow`.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, or ``input_size`` is not a tuple.
        ValueError: ``input_size`` is not 3 or 4 positive ints, or the model cannot run on it.
    """
    _check_model(model)
    size = _check_input_size(input_size)
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32

    names = {module: name for name, module in model.named_modules()}
    rows: list[LayerRow] = []
    seen: set[int] = set()  # ids of the parameters already counted in a row

    def record(module: nn.Module, args: tuple, output: object) -> None:
        own = [p for p in module.parameters() if id(p) not in seen]
        seen.update(id(p) for p in own)
        out = _first_tensor(output)
        inp = _first_tensor(args)
        macs = layer_macs(module, inp, out) if inp is not None and out is not None else 0
        rows.append(LayerRow(name=names.get(module, "") or type(module).__name__, type=type(module).__name__,
                             output_shape=tuple(out.shape) if out is not None else (),
                             parameters=sum(p.numel() for p in own), macs=macs,
                             output_bytes=out.numel() * out.element_size() if out is not None else 0))

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(record) for m in leaves]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(size, device=device, dtype=dtype))
    except (RuntimeError, ValueError, TypeError) as error:
        raise ValueError(f"{type(model).__name__} cannot run on an input of size {tuple(input_size)} "
                         f"(batch {size[0]}, so {size}): {type(error).__name__}: {error}") from error
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.train(training)
    return rows


def count_flops(model: nn.Module, input_size: Sequence[int]) -> int:
    """The multiply-adds (MACs, "FLOPs" as the papers count them) of one forward pass.

    Only convolutions (``ConvNd``, ``ConvTransposeNd``) and ``Linear`` layers count, one MAC per
    multiply-add; grouped convolutions count ``C_out * H_out * W_out * (C_in / groups) * kh * kw``.
    See the module docstring for what is left out.

    Args:
        model: any ``nn.Module`` taking one tensor.
        input_size: ``(C, H, W)`` for one input (batch of 1), or ``(N, C, H, W)``: the count
            then scales with ``N``.

    Returns:
        The number of multiply-adds.

    Raises:
        TypeError, ValueError: as :func:`layer_table`.
    """
    return sum(row.macs for row in layer_table(model, input_size))


def format_table(rows: Sequence[LayerRow]) -> str:
    """An aligned text table of :func:`layer_table`'s rows, with the totals on the last line.

    Raises:
        TypeError: ``rows`` is not a sequence of :class:`LayerRow`.
    """
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence) \
            or not all(isinstance(r, LayerRow) for r in rows):
        raise TypeError("rows must be a list of LayerRow, as returned by layer_table")
    header = ("layer", "type", "output shape", "parameters", "MACs")
    body = [(r.name, r.type, str(r.output_shape), f"{r.parameters:,}", f"{r.macs:,}") for r in rows]
    total = ("total", "", "", f"{sum(r.parameters for r in rows):,}", f"{sum(r.macs for r in rows):,}")
    widths = [max(len(line[i]) for line in (header, *body, total)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        left = [cell.ljust(width) for cell, width in zip(cells[:3], widths[:3])]  # text: left-aligned
        right = [cell.rjust(width) for cell, width in zip(cells[3:], widths[3:])]  # numbers: right-aligned
        return "  ".join(left + right)

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *(line(r) for r in body), rule, line(total)])


__all__ = ["CONV_LAYERS", "LayerRow", "TRANSPOSED_CONV_LAYERS", "count_flops", "count_parameters",
           "format_table", "layer_macs", "layer_table"]
