"""Diagnostics: compare a learner's output with an expected one and say how they differ.

Outputs are *plain* values (:data:`PLAIN_TYPES`): tensors, Python numbers, strings, ``None``, and
tuples, lists and dicts of them. That is all a graded function may return, and all that crosses
from a grading process to the grader (see :mod:`companion.grade.sandbox`), so the comparison never
touches an object a submission could have made.

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

#: The exact types an output may be made of (checked with ``type(x) is T``, not ``isinstance``).
PLAIN_TYPES = (Tensor, bool, int, float, str, type(None), tuple, list, dict)

#: The largest tensor an output may contain (elements); the exercises work on small inputs.
MAX_ELEMENTS = 10_000_000


class NotPlain(TypeError):
    """A value that is not made of :data:`PLAIN_TYPES` only."""


def to_plain(value: Any, *, depth: int = 0) -> Any:
    """Convert a learner's output to plain values: a detached CPU ``torch.Tensor``, Python scalars.

    NumPy arrays become tensors and NumPy scalars Python numbers (a learner may compute with NumPy);
    tensor subclasses (``nn.Parameter``, ...) become plain tensors.

    Raises:
        NotPlain: for anything else (a model, a generator, a custom class), naming its type.
    """
    if depth > 4:
        raise NotPlain("an output nested more than 4 levels deep")
    if isinstance(value, Tensor):
        if getattr(value, "is_nested", False):
            raise NotPlain("a nested tensor (return one ordinary tensor)")
        if value.is_meta:
            raise NotPlain("a tensor on the meta device, which has a shape but no values")
        if value.layout != torch.strided:
            raise NotPlain(f"a {str(value.layout).replace('torch.', '')} tensor (return an ordinary dense "
                           f"tensor: .to_dense())")
        if value.is_quantized:
            raise NotPlain("a quantized tensor (return an ordinary tensor: .dequantize())")
        if value.numel() > MAX_ELEMENTS:
            raise NotPlain(f"a tensor of {value.numel():,} elements (more than {MAX_ELEMENTS:,})")
        try:
            return value.detach().cpu().clone().as_subclass(Tensor)
        except Exception as error:  # noqa: BLE001 - a tensor subclass whose values cannot be read
            raise NotPlain(f"a {type(value).__qualname__} whose values cannot be read ({type(error).__name__})") from None
    if type(value) in (bool, int, float, str, type(None)):
        return value
    for kind in (bool, int, float, str):  # subclasses (IntEnum, ...) become the plain type
        if isinstance(value, kind):
            return kind(value)
    module = type(value).__module__
    if module == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise NotPlain("a NumPy array of Python objects")
            return to_plain(torch.from_numpy(value.copy()), depth=depth)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return float(value)
    if type(value) in (tuple, list):
        return type(value)(to_plain(v, depth=depth + 1) for v in value)
    if isinstance(value, tuple):  # a namedtuple
        return tuple(to_plain(v, depth=depth + 1) for v in value)
    if isinstance(value, dict) and all(type(k) is str for k in value):
        return {k: to_plain(v, depth=depth + 1) for k, v in value.items()}
    raise NotPlain(f"a {type(value).__module__}.{type(value).__qualname__}")


def check_plain(value: Any, *, depth: int = 0) -> None:
    """Check that ``value`` is made of :data:`PLAIN_TYPES` exactly (no subclasses); raise :class:`NotPlain` if not."""
    kind = type(value)
    if depth > 8 or kind not in PLAIN_TYPES:
        raise NotPlain(f"unexpected {kind.__qualname__} in a grading message")
    if kind in (tuple, list):
        for v in value:
            check_plain(v, depth=depth + 1)
    elif kind is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise NotPlain(f"unexpected dict key of type {type(k).__qualname__}")
            check_plain(v, depth=depth + 1)


def clone(value: Any) -> Any:
    """A copy of a plain value whose tensors can be changed in place without touching the original."""
    if isinstance(value, Tensor):
        return value.clone()
    if type(value) in (tuple, list):
        return type(value)(clone(v) for v in value)
    if type(value) is dict:
        return {k: clone(v) for k, v in value.items()}
    return value


def describe(value: Any) -> str:
    """A short description of a plain value for feedback (``a tensor of shape (3, 4)``, ``7``)."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if type(value) in (tuple, list):
        return f"a {type(value).__name__} of {len(value)}"
    if type(value) is dict:
        return f"a dict with keys {_short(sorted(value))}"
    return _short(value)


def _short(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters, for any value (an int of 10,000 digits included)."""
    if type(value) is int and value.bit_length() > 200:
        return f"an int of about {int(value.bit_length() * 0.30103)} digits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - reprs that fail
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def difference(value: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6,
               what: str = "your output") -> str | None:
    """Say how ``value`` differs from ``expected``, or return ``None`` when they agree.

    Tensors agree when their shapes are equal and their values are close (in float64, within
    ``atol + rtol * |expected|``); ints must be ints (not floats) and equal; floats must be close.

    Args:
        value: the learner's plain output.
        expected: the reference's plain output, which decides the expected type.
        rtol, atol: tolerances for floating-point values.
        what: how the message names ``value`` (``"your output"``, ``"element 1 of your output"``).

    Returns:
        A sentence fragment (``"your output has shape (3, 4); expected (3, 5)"``) or ``None``.
    """
    if isinstance(expected, Tensor):
        return _tensor_difference(value, expected, rtol=rtol, atol=atol, what=what)
    if type(expected) is bool:
        if type(value) is not bool:
            return f"{what} is {describe(value)}; expected a bool"
        return None if value == expected else f"{what} is {_short(value)}; expected {expected}"
    if type(expected) is int:
        if type(value) is int:
            return None if value == expected else f"{what} is {_short(value)}; expected {expected}"
        if type(value) is float:
            return (f"{what} is the float {value!r}; expected the int {expected} "
                    f"(a size or a count is a whole number: use // and int, not /)")
        if isinstance(value, Tensor):
            return f"{what} is {describe(value)}; expected a Python int (use int(...) or .item())"
        return f"{what} is {describe(value)}; expected an int"
    if type(expected) is float:
        if isinstance(value, Tensor):
            return f"{what} is {describe(value)}; expected a Python float (use .item())"
        if type(value) not in (int, float):
            return f"{what} is {describe(value)}; expected a float"
        if type(value) is int and value.bit_length() > 1000:
            return f"{what} is {describe(value)}; expected {expected:.6g}"
        if not math.isfinite(value):
            return f"{what} is {value}; expected a finite number"
        close = abs(value - expected) <= atol + rtol * abs(expected)
        return None if close else f"{what} is {value:.6g}; expected {expected:.6g}"
    if type(expected) in (tuple, list):
        if type(value) not in (tuple, list):
            return f"{what} is {describe(value)}; expected a {type(expected).__name__} of {len(expected)}"
        if len(value) != len(expected):
            return f"{what} has {len(value)} elements; expected {len(expected)}"
        for i, (v, e) in enumerate(zip(value, expected)):
            found = difference(v, e, rtol=rtol, atol=atol, what=f"element {i} of {what}")
            if found:
                return found
        return None
    if type(expected) is dict:
        if type(value) is not dict:
            return f"{what} is {describe(value)}; expected a dict"
        if set(value) != set(expected):
            return f"{what} has keys {sorted(value)}; expected {sorted(expected)}"
        for key in expected:
            part = key if what == "your output" else f"{what}[{key!r}]"  # a top-level dict names its parts
            found = difference(value[key], expected[key], rtol=rtol, atol=atol, what=part)
            if found:
                return found
        return None
    return None if value == expected else f"{what} is {describe(value)}; expected {describe(expected)}"


def _tensor_difference(value: Any, expected: Tensor, *, rtol: float, atol: float, what: str) -> str | None:
    if not isinstance(value, Tensor):
        return f"{what} is {describe(value)}; expected a tensor of shape {tuple(expected.shape)}"
    if value.shape != expected.shape:
        return f"{what} has shape {tuple(value.shape)}; expected {tuple(expected.shape)}"
    if expected.is_floating_point() and not (value.is_floating_point() or value.is_complex()):
        return f"{what} has dtype {value.dtype}; expected a floating-point tensor"
    if not expected.is_floating_point():
        if value.dtype != expected.dtype:
            return f"{what} has dtype {value.dtype}; expected {expected.dtype}"
        wrong = int((value != expected).sum())
        return None if wrong == 0 else f"{what} differs from the expected values in {wrong} of {value.numel()} entries"
    if value.is_complex():
        return f"{what} is complex ({value.dtype}); expected a real tensor"
    v, e = value.to(torch.float64), expected.to(torch.float64)
    if not torch.isfinite(v).all():
        bad = int((~torch.isfinite(v)).sum())
        return f"{what} contains {bad} NaN or infinite values"
    if value.numel() == 0:
        return None
    error = (v - e).abs()
    tolerance = atol + rtol * e.abs()
    if bool((error <= tolerance).all()):
        return None
    worst = int(error.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), v.shape)) if v.dim() else ()
    wrong = int((error > tolerance).sum())
    return (f"{what} differs from the expected values in {wrong} of {v.numel()} entries "
            f"(largest error {float(error.max()):.3g}, at index {index})")


__all__ = ["MAX_ELEMENTS", "NotPlain", "PLAIN_TYPES", "check_plain", "clone", "describe", "difference", "to_plain"]
