"""Input checks shared by the public functions of the companion.

Every public function validates its arguments at the boundary and raises a ``TypeError`` or
``ValueError`` that names what was expected (shape, dtype, range), so that a learner never has to
decode an error from deep inside torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_tensor(x: object, name: str, *, ndim: int | Sequence[int] | None = None,
                 shape_hint: str = "", floating: bool = False) -> Tensor:
    """Check that ``x`` is a tensor with the expected number of dimensions (and a float dtype).

    Args:
        x: the value to check.
        name: the argument's name, used in the message.
        ndim: allowed number of dimensions (an int or several).
        shape_hint: the expected layout, e.g. ``"(N, C, H, W)"``, quoted in the message.
        floating: require a floating-point dtype.

    Returns:
        ``x`` itself, so that calls can be chained.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{' of shape ' + shape_hint if shape_hint else ''}, "
                        f"got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(f"{name} must be {want}-D{' ' + shape_hint if shape_hint else ''}, "
                             f"got a {x.dim()}-D tensor of shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype (e.g. torch.float32), got {x.dtype}; "
                        f"convert with {name}.float()")
    return x


def as_tuple(value: int | Sequence[int], n: int, name: str, *, minimum: int = 0) -> tuple[int, ...]:
    """Turn an int or a sequence of ``n`` ints into a tuple of ``n`` ints, each ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, Sequence)):
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return values


def check_positive_int(value: object, name: str) -> int:
    """Check that ``value`` is an int > 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_same_device_dtype(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Check that two tensors share a dtype and a device."""
    if a.dtype != b.dtype:
        raise TypeError(f"{name_a} and {name_b} must have the same dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must be on the same device, got {a.device} and {b.device}")


__all__ = ["as_tuple", "check_positive_int", "check_same_device_dtype", "check_tensor"]
