"""Tolerances for comparing our layers with the framework's: they follow from the dtype and the reduction.

Two correct implementations of the same sum of ``K`` products (a convolution's output, a weight's
gradient) add the terms in different orders, so their results differ by rounding alone. Each
addition rounds to a relative ``eps / 2`` of the partial sum, and with terms of size ``scale`` and
random signs the partial sums grow like ``sqrt(k) * scale``; over ``K`` additions the errors add up
to about ``K * eps * scale`` in the worst realistic case, on a result of size about
``sqrt(K) * scale`` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002,
sections 3.1 and 4.2). ``torch.testing.assert_close``'s defaults (float32: ``rtol=1.3e-6``,
``atol=1e-5``) fit sums of a few dozen terms; a weight gradient over thousands of positions, or the
hundreds of random configurations of the ``full`` profile, exceed them now and then although both
sides are right. :func:`tolerances` widens them by the reduction size and never narrows them.

On a CUDA GPU, float32 matrix products and convolutions may run in TF32 (10 mantissa bits, on by
default for cuDNN convolutions): pass the tensors' ``device`` and the tolerances use TF32's ``eps``
where PyTorch allows it. Where a check is about the mathematics rather than float32, comparing in
float64 is simpler still.

Introduced with the ``full`` profile's checks (chapter 4, transposed convolution's gradients).
"""

from __future__ import annotations

import math

import torch

#: torch.testing.assert_close's defaults, (rtol, atol) per dtype: the floor of every tolerance here.
DEFAULTS: dict[torch.dtype, tuple[float, float]] = {
    torch.float16: (1e-3, 1e-5), torch.bfloat16: (1.6e-2, 1e-5), torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7), torch.complex64: (1.3e-6, 1e-5), torch.complex128: (1e-7, 1e-7),
}
#: Spacing of TF32 numbers at 1 (10 explicit mantissa bits).
TF32_EPS = 2.0 ** -10
#: How far past the typical rounding error a tolerance reaches, so that hundreds of random checks pass.
SAFETY = 4.0


def tf32_enabled(device: torch.device | str | None) -> bool:
    """Whether float32 products on ``device`` may run in TF32 (CUDA with TF32 allowed for matmul or cuDNN)."""
    if device is None or torch.device(device).type != "cuda":
        return False
    return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def tolerances(dtype: torch.dtype, reduction_size: int = 1, *, scale: float = 1.0,
               device: torch.device | str | None = None) -> dict[str, float]:
    """``rtol`` and ``atol`` for two computations of sums of ``reduction_size`` terms in ``dtype``.

    Use as ``torch.testing.assert_close(ours, theirs, **tolerances(ours.dtype, K))``.

    Args:
        dtype: the dtype both sides compute in.
        reduction_size: ``K``, how many products each compared entry sums (e.g. ``C_in * k * k`` for a
            convolution's output, ``N * H_out * W_out`` for its bias gradient).
        scale: the typical size of one term (1 for products of standard normal tensors).
        device: where the computation ran; float32 on a CUDA device with TF32 allowed gets TF32's eps.

    Returns:
        ``{"rtol": ..., "atol": ...}``, at least ``torch.testing.assert_close``'s defaults for ``dtype``:
        ``rtol = SAFETY * eps * sqrt(K)`` (the result's relative rounding error), ``atol = SAFETY * eps *
        (K - 1) * scale`` (the absolute error of a sum that cancels to near zero; one term cannot cancel).

    Raises:
        ValueError: for a dtype without defaults (integers: compare them exactly), ``reduction_size < 1``
            or ``scale <= 0``.
    """
    if dtype not in DEFAULTS:
        raise ValueError(f"no tolerances for {dtype}: floating-point dtypes only ({', '.join(map(str, DEFAULTS))})")
    if isinstance(reduction_size, bool) or int(reduction_size) != reduction_size or reduction_size < 1:
        raise ValueError(f"reduction_size must be a whole number >= 1, got {reduction_size!r}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    rtol, atol = DEFAULTS[dtype]
    eps = torch.finfo(dtype).eps
    if dtype in (torch.float32, torch.complex64) and tf32_enabled(device):
        eps = TF32_EPS
    k = int(reduction_size)
    return {"rtol": max(rtol, SAFETY * eps * math.sqrt(k)), "atol": max(atol, SAFETY * eps * (k - 1) * scale)}


__all__ = ["DEFAULTS", "SAFETY", "TF32_EPS", "tf32_enabled", "tolerances"]
