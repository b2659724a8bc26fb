"""Tests of companion.conv against torch.nn.functional (values and gradients) and of its error messages."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from companion.conv import conv1d, conv2d, conv2d_loops, conv3d, conv_output_size, im2col

# PyTorch warns that padding="same" with an even kernel copies the input; the tests do that on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.")

OURS = {1: conv1d, 2: conv2d, 3: conv3d}
TORCH = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def random_config(nd: int, seed: int) -> dict:
    """A random convolution problem: shapes, stride, padding (int, tuple, "same", "valid"), dilation, groups, bias."""
    rng = random.Random(seed)
    groups = rng.choice([1, 1, 2, 3, "depthwise"])
    c_in = rng.randint(1, 3) * (3 if groups == "depthwise" else (groups if groups != 1 else rng.randint(1, 2)))
    groups = c_in if groups == "depthwise" else groups
    c_out = groups * rng.randint(1, 3)
    kernel = tuple(rng.randint(1, 4) for _ in range(nd))
    dilation = tuple(rng.randint(1, 2) for _ in range(nd))
    padding_kind = rng.choice(["int", "tuple", "same", "valid"])
    stride = (1,) * nd if padding_kind == "same" else tuple(rng.randint(1, 3) for _ in range(nd))
    padding = {"int": rng.randint(0, 2), "tuple": tuple(rng.randint(0, 2) for _ in range(nd)),
               "same": "same", "valid": "valid"}[padding_kind]
    spatial = tuple(d * (k - 1) + 1 + rng.randint(0, 5) for k, d in zip(kernel, dilation))  # the kernel always fits
    batched = rng.random() < 0.75
    return dict(input_shape=((rng.randint(1, 3),) if batched else ()) + (c_in, *spatial),
                weight_shape=(c_out, c_in // groups, *kernel), bias=rng.random() < 0.6,
                stride=rng.choice([stride, stride[0]]) if len(set(stride)) == 1 else stride,
                dilation=rng.choice([dilation, dilation[0]]) if len(set(dilation)) == 1 else dilation,
                padding=padding, groups=groups)


def make_tensors(config: dict, dtype: torch.dtype = torch.float64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(config["input_shape"], dtype=dtype, generator=gen)
    w = torch.randn(config["weight_shape"], dtype=dtype, generator=gen)
    b = torch.randn(config["weight_shape"][0], dtype=dtype, generator=gen) if config["bias"] else None
    return x, w, b


def options(config: dict) -> dict:
    return {k: config[k] for k in ("stride", "padding", "dilation", "groups")}


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("seed", range(16))
def test_conv_matches_torch_values_and_gradients(nd: int, seed: int) -> None:
    config = random_config(nd, seed)
    ours_inputs = make_tensors(config, seed=seed)
    ref_inputs = make_tensors(config, seed=seed)
    for t in (*ours_inputs, *ref_inputs):
        if t is not None:
            t.requires_grad_(True)
    ours = OURS[nd](*ours_inputs, **options(config))
    ref = TORCH[nd](*ref_inputs, **options(config))
    torch.testing.assert_close(ours, ref, msg=lambda m: f"{config}\n{m}")
    upstream = torch.randn_like(ref)
    ours.backward(upstream)
    ref.backward(upstream)
    for name, a, b in zip(("input", "weight", "bias"), ours_inputs, ref_inputs):
        if a is not None:
            torch.testing.assert_close(a.grad, b.grad, msg=lambda m: f"grad of {name}, {config}\n{m}")


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_float32_matches_torch(nd: int) -> None:
    config = random_config(nd, seed=100 + nd)
    x, w, b = make_tensors(config, dtype=torch.float32)
    torch.testing.assert_close(OURS[nd](x, w, b, **options(config)), TORCH[nd](x, w, b, **options(config)))


@pytest.mark.parametrize("nd, kernel, dilation", [(1, (4,), (1,)), (2, (2, 4), (1, 3)), (3, (2, 3, 4), (2, 1, 1))])
def test_same_padding_with_even_kernels_pads_the_extra_zero_after(nd: int, kernel, dilation) -> None:
    x = torch.randn(2, 3, *([9] * nd), dtype=torch.float64)
    w = torch.randn(4, 3, *kernel, dtype=torch.float64)
    ours = OURS[nd](x, w, padding="same", dilation=dilation)
    assert ours.shape == x.shape[:1] + (4,) + x.shape[2:]
    torch.testing.assert_close(ours, TORCH[nd](x, w, padding="same", dilation=dilation))


def test_depthwise_conv2d_matches_torch() -> None:
    x = torch.randn(2, 6, 10, 12, dtype=torch.float64)
    w = torch.randn(12, 1, 3, 3, dtype=torch.float64)  # channel multiplier 2
    b = torch.randn(12, dtype=torch.float64)
    torch.testing.assert_close(conv2d(x, w, b, stride=2, padding=1, groups=6),
                               F.conv2d(x, w, b, stride=2, padding=1, groups=6))


def test_conv2d_accepts_non_contiguous_input() -> None:
    x = torch.randn(2, 5, 11, 3, dtype=torch.float64).transpose(2, 3)  # (2, 5, 3, 11), not contiguous
    channels_last = torch.randn(2, 5, 8, 9, dtype=torch.float64).to(memory_format=torch.channels_last)
    w = torch.randn(4, 5, 2, 3, dtype=torch.float64)
    for inp in (x, channels_last):
        torch.testing.assert_close(conv2d(inp, w, padding=1), F.conv2d(inp, w, padding=1))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_pointwise_grouped_conv_on_channels_last_input(nd: int) -> None:
    memory_format = {1: torch.contiguous_format, 2: torch.channels_last, 3: torch.channels_last_3d}[nd]
    x = torch.randn(2, 4, *range(6, 6 + nd), dtype=torch.float64).to(memory_format=memory_format)
    w = torch.randn(6, 2, *([1] * nd), dtype=torch.float64)
    torch.testing.assert_close(OURS[nd](x, w, groups=2, stride=2), TORCH[nd](x, w, groups=2, stride=2))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_empty_batch(nd: int) -> None:
    x = torch.randn(0, 4, *([6] * nd))
    w = torch.randn(6, 2, *([3] * nd))
    b = torch.randn(6)
    ours = OURS[nd](x, w, b, groups=2)
    assert ours.shape == TORCH[nd](x, w, b, groups=2).shape == (0, 6, *([4] * nd))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_gradcheck(nd: int) -> None:
    x = torch.randn(2, 4, *([5] * (nd - 1)), 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, *([2] * nd), dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    # The full Jacobian of the 3-D case takes ~1,700 forward passes; fast mode checks random projections of it.
    assert torch.autograd.gradcheck(lambda x, w, b: OURS[nd](x, w, b, stride=2, padding=1, dilation=2, groups=2),
                                    (x, w, b), fast_mode=nd == 3)


@pytest.mark.parametrize("seed", range(10))
def test_im2col_matches_unfold(seed: int) -> None:
    rng = random.Random(seed)
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    dilation = (rng.randint(1, 3), rng.randint(1, 3))
    stride = (rng.randint(1, 3), rng.randint(1, 3))
    padding = (rng.randint(0, 2), rng.randint(0, 2))
    size = [d * (k - 1) + 1 + rng.randint(0, 6) for k, d in zip(kernel, dilation)]
    x = torch.randn(rng.randint(1, 3), rng.randint(1, 4), *size, dtype=torch.float64, requires_grad=True)
    ours = im2col(x, kernel, stride=stride, padding=padding, dilation=dilation)
    ref = F.unfold(x, kernel, stride=stride, padding=padding, dilation=dilation)
    torch.testing.assert_close(ours, ref)
    upstream = torch.randn_like(ref)
    (grad_ours,) = torch.autograd.grad(ours, x, upstream)
    (grad_ref,) = torch.autograd.grad(ref, x, upstream)
    torch.testing.assert_close(grad_ours, grad_ref)


def test_im2col_int_arguments_and_unbatched_input_match_unfold() -> None:
    x = torch.randn(3, 7, 8)
    torch.testing.assert_close(im2col(x[None], 3, stride=2, padding=1, dilation=2),
                               F.unfold(x[None], 3, stride=2, padding=1, dilation=2))
    torch.testing.assert_close(im2col(x, (3, 2), padding=1), F.unfold(x, (3, 2), padding=1))


def test_im2col_1d_is_unfold_of_a_one_row_image() -> None:
    x = torch.randn(2, 3, 13)
    torch.testing.assert_close(im2col(x, 4, stride=2, padding=1, dilation=2),
                               F.unfold(x[:, :, None], (1, 4), stride=(1, 2), padding=(0, 1), dilation=(1, 2)))


def test_im2col_3d_columns_are_the_receptive_fields() -> None:
    """Row ``c*K + t`` of im2col is input channel c seen through kernel tap t: a depthwise F.conv3d with one-hot kernels."""
    x = torch.randn(2, 3, 6, 7, 5, dtype=torch.float64)
    kernel, stride, padding, dilation = (2, 3, 2), (2, 1, 2), (1, 0, 1), (1, 2, 2)
    taps = math.prod(kernel)
    one_hot = torch.eye(taps, dtype=torch.float64).view(taps, 1, *kernel).repeat(3, 1, 1, 1, 1)  # (3*K, 1, *kernel)
    ref = F.conv3d(x, one_hot, stride=stride, padding=padding, dilation=dilation, groups=3)  # (N, 3*K, *out)
    ours = im2col(x, kernel, stride=stride, padding=padding, dilation=dilation)
    torch.testing.assert_close(ours, ref.flatten(2))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_conv2d_loops_matches_torch(seed: int, kind: str) -> None:
    config = random_config(2, seed=200 + seed)
    x, w, b = make_tensors(config, seed=seed)
    ref = F.conv2d(x, w, b, **options(config))
    if kind == "numpy":
        ours = conv2d_loops(x.numpy(), w.numpy(), None if b is None else b.numpy(), **options(config))
        assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
        ours = torch.from_numpy(ours)
    else:
        ours = conv2d_loops(x, w, b, **options(config))
        assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, msg=lambda m: f"{config}\n{m}")


def test_conv2d_loops_float32_and_unbatched() -> None:
    x, w, b = torch.randn(3, 9, 8), torch.randn(6, 1, 3, 2), torch.randn(6)
    out = conv2d_loops(x, w, b, padding="same", groups=3, dilation=(2, 1))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.conv2d(x, w, b, padding="same", groups=3, dilation=(2, 1)))


@pytest.mark.parametrize("seed", range(30))
def test_conv_output_size_matches_actual_output(seed: int) -> None:
    rng = random.Random(seed)
    kernel, stride, padding, dilation = rng.randint(1, 5), rng.randint(1, 4), rng.randint(0, 3), rng.randint(1, 3)
    n = max(1, dilation * (kernel - 1) + 1 - 2 * padding) + rng.randint(0, 10)
    out = F.conv1d(torch.zeros(1, 1, n), torch.zeros(1, 1, kernel), stride=stride, padding=padding, dilation=dilation)
    assert conv_output_size(n, kernel, stride, padding, dilation) == out.shape[-1]


def test_conv_output_size_formula_by_hand() -> None:
    assert conv_output_size(32, 5) == 28
    assert conv_output_size(32, 3, padding=1) == 32
    assert conv_output_size(7, 3, stride=2) == 3
    assert conv_output_size(7, 3, stride=2, padding=1) == 4
    assert conv_output_size(10, 3, dilation=4) == 2  # spans 9 of 10 inputs
    assert conv_output_size(1, 3, padding=1) == 1


@pytest.mark.parametrize("args, match", [
    ((4, 5), r"kernel \(size 5, dilation 1, so it spans 5\) is larger than the padded input \(4"),
    ((4, 3, 1, 0, 2), r"spans 5\) is larger than the padded input"),
    ((0, 3), "n must be a positive int"),
    ((5, 0), "kernel must be a positive int"),
    ((5, 3, 0), "stride must be a positive int"),
    ((5, 3, 1, -1), "padding must be a non-negative int"),
    ((5, 3, 1, 0, 0), "dilation must be a positive int"),
    ((5.0, 3), "n must be a positive int"),
])
def test_conv_output_size_errors(args, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        conv_output_size(*args)


# --- errors at the boundary -------------------------------------------------------------------


def test_error_image_without_channels() -> None:
    with pytest.raises(ValueError, match=r"input must be \(N, C, H, W\) or \(C, H, W\): expected a 4-D or 3-D "
                                         r"tensor, got a 2-D tensor of shape \(8, 8\); add the channel dimension"):
        conv2d(torch.randn(8, 8), torch.randn(1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"input must be \(N, C, L\) or \(C, L\): expected a 3-D or 2-D tensor, "
                                         r"got a 4-D tensor of shape \(1, 1, 5, 5\)$"):
        conv1d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3))


def test_error_wrong_weight_rank() -> None:
    with pytest.raises(ValueError, match=r"weight must be \(C_out, C_in/groups, kD, kH, kW\): expected a 5-D tensor, "
                                         r"got a 4-D tensor"):
        conv3d(torch.randn(1, 2, 4, 4, 4), torch.randn(1, 2, 3, 3))


def test_error_input_not_a_tensor() -> None:
    with pytest.raises(TypeError, match="input must be a torch.Tensor of shape"):
        conv1d(np.zeros((1, 1, 5)), torch.randn(1, 1, 3))


def test_error_channel_mismatch() -> None:
    with pytest.raises(ValueError, match=r"input has 3 channels, but weight .* expects weight.shape\[1\] \* groups = 2 \* 1 = 2"):
        conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 2, 3, 3))


def test_error_channels_not_divisible_by_groups() -> None:
    with pytest.raises(ValueError, match=r"input channels \(3\) must be divisible by groups \(2\)"):
        conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"output channels, 3\) must be divisible by groups \(2\)"):
        conv2d(torch.randn(1, 4, 8, 8), torch.randn(3, 2, 3, 3), groups=2)


def test_error_groups_not_positive() -> None:
    with pytest.raises(ValueError, match="groups must be a positive int"):
        conv2d(torch.randn(1, 4, 8, 8), torch.randn(4, 4, 3, 3), groups=0)


def test_error_kernel_larger_than_padded_input() -> None:
    with pytest.raises(ValueError, match=r"larger than the padded input along W: kernel size 5 with dilation 1 "
                                         r"spans 5, the padded input has 3 \+ 0 \+ 0 = 3"):
        conv2d(torch.randn(1, 1, 8, 3), torch.randn(1, 1, 3, 5))
    with pytest.raises(ValueError, match="larger than the padded input along L: kernel size 3 with dilation 3 spans 7"):
        conv1d(torch.randn(1, 1, 6), torch.randn(1, 1, 3), dilation=3)


def test_error_bias_shape() -> None:
    with pytest.raises(ValueError, match=r"bias must have shape \(C_out,\) = \(4,\), one value per output channel, got \(3,\)"):
        conv2d(torch.randn(1, 2, 8, 8), torch.randn(4, 2, 3, 3), torch.randn(3))
    with pytest.raises(ValueError, match=r"bias must be 1-D \(C_out,\) = \(4,\), got a 2-D"):
        conv2d(torch.randn(1, 2, 8, 8), torch.randn(4, 2, 3, 3), torch.randn(4, 1))


@pytest.mark.parametrize("fn", [conv1d, conv2d, conv3d])
def test_error_integer_input(fn) -> None:
    nd = {conv1d: 1, conv2d: 2, conv3d: 3}[fn]
    with pytest.raises(TypeError, match=r"input must have a floating-point dtype .* got torch.uint8; convert with input.float\(\)"):
        fn(torch.zeros(1, 1, *([4] * nd), dtype=torch.uint8), torch.randn(1, 1, *([3] * nd)))


def test_error_dtype_mismatch() -> None:
    with pytest.raises(TypeError, match="input and weight must have the same dtype, got torch.float64 and torch.float32"):
        conv2d(torch.randn(1, 1, 5, 5, dtype=torch.float64), torch.randn(1, 1, 3, 3))
    with pytest.raises(TypeError, match="bias and weight must have the same dtype"):
        conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3), torch.zeros(1, dtype=torch.float64))


def test_error_device_mismatch() -> None:
    with pytest.raises(ValueError, match="input and weight must be on the same device, got cpu and meta"):
        conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3, device="meta"))


@pytest.mark.parametrize("padding, match", [
    ("full", r"padding must be 'same', 'valid', an int or a tuple of 2 ints, got 'full'"),
    ((1, 2, 3), r"padding must be an int or a tuple of 2 ints, got \(1, 2, 3\)"),
    (-1, "padding must be >= 0, got -1"),
])
def test_error_bad_padding(padding, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3), padding=padding)


def test_error_same_padding_with_stride() -> None:
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1 \(as in torch\), got stride \(2, 1\)"):
        conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3), stride=(2, 1), padding="same")


@pytest.mark.parametrize("kwargs, match", [
    (dict(stride=0), "stride must be >= 1, got 0"),
    (dict(dilation=(1, 0)), r"dilation must be >= 1, got \(1, 0\)"),
    (dict(stride=1.5), "stride must be an int or a tuple of 2 ints, got 1.5"),
])
def test_error_bad_stride_or_dilation(kwargs, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3), **kwargs)


def test_im2col_errors() -> None:
    with pytest.raises(ValueError, match=r"x must be 2 or 3 or 4 or 5-D \(N, C, \*spatial\)"):
        im2col(torch.randn(5), 3)
    with pytest.raises(ValueError, match="kernel_size must be an int or a tuple of 2 ints"):
        im2col(torch.randn(1, 1, 5, 5), (3, 3, 3, 3))
    with pytest.raises(ValueError, match="larger than the padded input along H"):
        im2col(torch.randn(1, 1, 2, 5), 3)


def test_conv2d_loops_errors() -> None:
    with pytest.raises(TypeError, match=r"input must be a NumPy array or a torch.Tensor of shape \(N, C, H, W\)"):
        conv2d_loops([[1.0]], np.ones((1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"input must be \(N, C, H, W\) or \(C, H, W\): expected a 4-D or 3-D array, got a 2-D array"):
        conv2d_loops(np.zeros((5, 5)), np.ones((1, 1, 3, 3)))
    with pytest.raises(TypeError, match="input must have a floating-point dtype"):
        conv2d_loops(np.zeros((1, 1, 5, 5), dtype=np.uint8), np.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="need C_in and C_out divisible by groups"):
        conv2d_loops(np.zeros((1, 3, 5, 5)), np.ones((2, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"bias must have shape \(C_out,\) = \(2,\)"):
        conv2d_loops(np.zeros((1, 2, 5, 5)), np.ones((2, 2, 3, 3)), np.ones(3))
