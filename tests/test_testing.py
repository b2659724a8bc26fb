"""companion.testing: tolerances that follow from the dtype and the reduction size."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from companion.testing import DEFAULTS, TF32_EPS, tolerances
from companion.upsample import conv_transpose2d


def test_never_tighter_than_torch_defaults():
    for dtype, (rtol, atol) in DEFAULTS.items():
        assert tolerances(dtype)["rtol"] >= rtol and tolerances(dtype)["atol"] == atol  # one term cannot cancel
        wide = tolerances(dtype, 10_000)
        assert wide["rtol"] >= rtol and wide["atol"] >= atol
    assert tolerances(torch.float32) == {"rtol": 1.3e-6, "atol": 1e-5} == tolerances(torch.float32, 4)
    assert tolerances(torch.float32, 4096)["atol"] > tolerances(torch.float32, 64)["atol"]
    assert tolerances(torch.float64, 4096)["atol"] < tolerances(torch.float32, 4096)["atol"]


def _two_orders(k: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    terms = torch.randn(k, generator=generator) * torch.randn(k, generator=generator)  # (K,) float32 products
    return terms.sum(), terms.cumsum(0)[-1]  # blocked vs sequential summation: the same sum, other roundings


def test_sums_in_two_orders_pass_and_a_dropped_term_fails():
    generator = torch.Generator().manual_seed(0)
    k, default_failures = 4096, 0
    tol = tolerances(torch.float32, k)
    for _ in range(300):
        blocked, sequential = _two_orders(k, generator)
        torch.testing.assert_close(blocked, sequential, **tol)
        default_failures += not torch.isclose(blocked, sequential, rtol=1.3e-6, atol=1e-5)
        wrong = sequential + 0.1  # one small term too many
        with pytest.raises(AssertionError):
            torch.testing.assert_close(blocked, wrong, **tol)
    assert default_failures > 0, "the defaults must be too tight here, else this test shows nothing"


def test_conv_transpose2d_gradients_within_tolerances_and_a_flipped_kernel_caught():
    """Chapter 4's check under the full profile: 200 random configurations, float32."""
    rng = random.Random(0)
    torch.manual_seed(0)
    for _ in range(200):
        n, c_in, c_out = rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 4)
        h, w, kh, kw = rng.randint(1, 7), rng.randint(1, 7), rng.randint(1, 5), rng.randint(1, 5)
        stride = (rng.randint(1, 3), rng.randint(1, 3))
        padding = (rng.randint(0, (kh - 1) // 2), rng.randint(0, (kw - 1) // 2))
        output_padding = (rng.randint(0, stride[0] - 1), rng.randint(0, stride[1] - 1))
        x = torch.randn(n, c_in, h, w, requires_grad=True)
        weight = torch.randn(c_in, c_out, kh, kw, requires_grad=True)
        bias = torch.randn(c_out, requires_grad=True)
        ours = conv_transpose2d(x, weight, bias, stride, padding, output_padding)
        theirs = F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
        torch.testing.assert_close(ours, theirs, **tolerances(ours.dtype, c_in * kh * kw))
        g = torch.randn_like(ours)
        sums = (c_out * kh * kw, n * h * w, n * ours.shape[-2] * ours.shape[-1])  # terms per x, weight, bias gradient
        for a, b, k in zip(torch.autograd.grad(ours, (x, weight, bias), g),
                           torch.autograd.grad(theirs, (x, weight, bias), g), sums):
            torch.testing.assert_close(a, b, **tolerances(a.dtype, k))
    x, weight = torch.randn(1, 2, 5, 5), torch.randn(2, 3, 3, 3)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(conv_transpose2d(x, weight.flip(-1, -2), stride=2),
                                   F.conv_transpose2d(x, weight, stride=2), **tolerances(torch.float32, 2 * 9))


def test_tf32_on_cuda_uses_tf32_eps(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert tolerances(torch.float32, 64, device="cuda")["atol"] == pytest.approx(4 * TF32_EPS * 63)
    assert tolerances(torch.float32, 64, device="cpu")["atol"] < tolerances(torch.float32, 64, device="cuda")["atol"]
    assert tolerances(torch.float64, 64, device="cuda") == tolerances(torch.float64, 64)


@pytest.mark.parametrize("args, kwargs, match", [
    ((torch.int64,), {}, "floating-point"),
    ((torch.float32, 0), {}, "reduction_size"),
    ((torch.float32, 2.5), {}, "reduction_size"),
    ((torch.float32, 8), {"scale": 0.0}, "scale"),
])
def test_clear_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tolerances(*args, **kwargs)
