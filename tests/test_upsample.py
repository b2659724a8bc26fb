"""Tests of companion.upsample against F.interpolate and F.conv_transpose2d (values and gradients) and of its errors."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from companion.upsample import (bilinear_resize, bilinear_resize_separable, conv_transpose2d, conv_transpose_output_size,
                                linear_resize_axis, resize_multiplies, source_coordinates)


def random_resize(seed: int) -> tuple[tuple[int, ...], tuple[int, int], bool]:
    """A random batch shape, an output size (up, down, or mixed; sometimes 1) and align_corners."""
    rng = random.Random(seed)
    shape = (rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 9), rng.randint(1, 9))
    size = (rng.randint(1, 19), rng.randint(1, 19))
    return shape, size, rng.random() < 0.5


@pytest.mark.parametrize("seed", range(40))
def test_bilinear_resize_matches_interpolate_values_and_gradients(seed: int) -> None:
    shape, size, align_corners = random_resize(seed)
    torch.manual_seed(seed)
    x = torch.randn(shape, requires_grad=True)
    ours = bilinear_resize(x, size, align_corners)
    expected = F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)
    torch.testing.assert_close(ours, expected)
    upstream = torch.randn_like(expected)
    (grad,) = torch.autograd.grad(ours, x, upstream)
    (grad_expected,) = torch.autograd.grad(expected, x, upstream)
    torch.testing.assert_close(grad, grad_expected)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(9, 4), (2, 11), (5, 5)])
def test_bilinear_resize_gradcheck(align_corners: bool, size: tuple[int, int]) -> None:
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: bilinear_resize(t, size, align_corners), (x,))


@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_resize_int_size_identity_and_float64(align_corners: bool) -> None:
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(bilinear_resize(x, 6, align_corners), x)  # same size: every pixel reads itself
    torch.testing.assert_close(bilinear_resize(x, 13, align_corners),
                               F.interpolate(x, size=13, mode="bilinear", align_corners=align_corners))
    assert bilinear_resize(x, 13, align_corners).dtype == torch.float64


def test_align_corners_keeps_the_corner_pixels() -> None:
    x = torch.randn(1, 2, 4, 5)
    corners = (slice(None), slice(None), [0, 0, -1, -1], [0, -1, 0, -1])
    torch.testing.assert_close(bilinear_resize(x, (7, 3), align_corners=True)[corners], x[corners])


@pytest.mark.parametrize("align_corners", [False, True])
def test_a_linear_ramp_is_reproduced_at_the_source_coordinates(align_corners: bool) -> None:
    # Bilinear interpolation is exact on x[r, c] = 4r + c, so the output is 4 * u_row + u_col, with the
    # source coordinates clamped to the image [0, 3] (beyond the outer pixel centres, the border pixel is copied).
    ramp = (4 * torch.arange(4.0)[:, None] + torch.arange(4.0)[None, :]).view(1, 1, 4, 4)  # (1, 1, 4, 4)
    out = bilinear_resize(ramp, (3, 7), align_corners)
    if align_corners:
        u_row, u_col = torch.arange(3.0) * 3 / 2, torch.arange(7.0) * 3 / 6
    else:
        u_row = ((torch.arange(3.0) + 0.5) * 4 / 3 - 0.5).clamp(0, 3)
        u_col = ((torch.arange(7.0) + 0.5) * 4 / 7 - 0.5).clamp(0, 3)
    torch.testing.assert_close(out[0, 0], 4 * u_row[:, None] + u_col[None, :])  # (3, 1) + (1, 7) -> (3, 7)


def test_source_coordinates_follow_the_two_conventions() -> None:
    i0, i1, t = source_coordinates(3, 5, align_corners=True)  # u = 0, 0.5, 1, 1.5, 2
    assert i0.tolist() == [0, 0, 1, 1, 2] and i1.tolist() == [1, 1, 2, 2, 2]
    torch.testing.assert_close(t, torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0]))
    i0, i1, t = source_coordinates(2, 4, align_corners=False)  # u = -0.25 -> 0, 0.25, 0.75, 1.25
    assert i0.tolist() == [0, 0, 0, 1] and i1.tolist() == [1, 1, 1, 1]
    torch.testing.assert_close(t, torch.tensor([0.0, 0.25, 0.75, 0.25]))


def test_bilinear_resize_errors() -> None:
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor of shape \(N, C, H, W\)"):
        bilinear_resize(x.numpy(), 8)
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\), got a 3-D tensor"):
        bilinear_resize(x[0], 8)
    with pytest.raises(TypeError, match="floating-point dtype"):
        bilinear_resize(x.long(), 8)
    with pytest.raises(ValueError, match="size must be >= 1"):
        bilinear_resize(x, (0, 3))
    with pytest.raises(ValueError, match="size must be an int or a tuple of 2 ints"):
        bilinear_resize(x, (3, 3, 3))
    with pytest.raises(TypeError, match="align_corners must be True or False"):
        bilinear_resize(x, 8, align_corners=None)  # type: ignore[arg-type]


def random_transposed(seed: int) -> dict:
    """A random valid transposed convolution (batched or not), with stride, padding, output_padding and bias."""
    rng = random.Random(seed)
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    stride = (rng.randint(1, 3), rng.randint(1, 3))
    padding = tuple(rng.randint(0, k - 1) for k in kernel)
    output_padding = tuple(rng.randint(0, s - 1) for s in stride)
    c_in, c_out = rng.randint(1, 3), rng.randint(1, 3)
    spatial = (rng.randint(1, 6), rng.randint(1, 6))
    batch = (rng.randint(1, 3),) if rng.random() < 0.8 else ()
    return dict(input_shape=(*batch, c_in, *spatial), weight_shape=(c_in, c_out, *kernel), bias=rng.random() < 0.6,
                stride=stride if rng.random() < 0.5 or stride[0] != stride[1] else stride[0],
                padding=padding, output_padding=output_padding)


def transposed_tensors(cfg: dict, dtype: torch.dtype, seed: int) -> list[torch.Tensor | None]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(cfg["input_shape"], dtype=dtype, generator=gen, requires_grad=True)
    w = torch.randn(cfg["weight_shape"], dtype=dtype, generator=gen, requires_grad=True)
    b = (torch.randn(cfg["weight_shape"][1], dtype=dtype, generator=gen, requires_grad=True)
         if cfg["bias"] else None)
    return [x, w, b]


def options(cfg: dict) -> dict:
    return {k: cfg[k] for k in ("stride", "padding", "output_padding")}


def output_fits(cfg: dict) -> bool:
    """Whether the padding leaves an output (torch raises otherwise, and so do we; see the error test)."""
    (h, w), (kh, kw) = cfg["input_shape"][-2:], cfg["weight_shape"][-2:]
    stride = cfg["stride"] if isinstance(cfg["stride"], tuple) else (cfg["stride"],) * 2
    return all(conv_transpose_output_size(n, k, s, p, op) >= 1 for n, k, s, p, op in
               zip((h, w), (kh, kw), stride, cfg["padding"], cfg["output_padding"]))


@pytest.mark.parametrize("seed", range(40))
def test_conv_transpose2d_matches_torch_values_and_gradients(seed: int) -> None:
    cfg = random_transposed(seed)
    if not output_fits(cfg):
        cfg["padding"] = (0, 0)
    ours_in = transposed_tensors(cfg, torch.float64, seed)
    ref_in = transposed_tensors(cfg, torch.float64, seed)
    ours = conv_transpose2d(*ours_in, **options(cfg))
    expected = F.conv_transpose2d(*ref_in, **options(cfg))
    torch.testing.assert_close(ours, expected, msg=lambda m: f"{cfg}\n{m}")
    upstream = torch.randn_like(expected)
    ours.backward(upstream)
    expected.backward(upstream)
    for name, a, b in zip(("input", "weight", "bias"), ours_in, ref_in):
        if a is not None:
            torch.testing.assert_close(a.grad, b.grad, msg=lambda m: f"grad of {name}, {cfg}\n{m}")


@pytest.mark.parametrize("stride, padding, output_padding, bias", [(1, 0, 0, True), (2, 1, 1, True),
                                                                    ((3, 2), (0, 1), (2, 0), False)])
def test_conv_transpose2d_gradcheck(stride, padding, output_padding, bias: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(2, 2, 3, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, generator=gen, requires_grad=True) if bias else None
    tensors = (x, w, b) if bias else (x, w)
    assert torch.autograd.gradcheck(
        lambda *t: conv_transpose2d(t[0], t[1], t[2] if bias else None, stride, padding, output_padding), tensors)


def test_conv_transpose2d_float32_upsamples_by_two() -> None:
    x = torch.randn(2, 4, 7, 5)
    w = torch.randn(4, 3, 3, 3)
    b = torch.randn(3)
    ours = conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)  # the usual exact 2x upsampling
    assert ours.shape == (2, 3, 14, 10)
    torch.testing.assert_close(ours, F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1))


def test_conv_transpose2d_is_the_adjoint_of_conv2d() -> None:
    # <conv2d(x, w), y> == <x, conv_transpose2d(y, w)>: the transposed convolution is the gradient of a convolution.
    x = torch.randn(2, 3, 10, 9, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 4, dtype=torch.float64)
    y = torch.randn(2, 5, 5, 4, dtype=torch.float64)  # the shape of conv2d(x, w, stride=2, padding=1)
    lhs = (F.conv2d(x, w, stride=2, padding=1) * y).sum()
    # output_padding=1 picks the input size 10 x 9 (9 x 8 gives the same 5 x 4 output)
    rhs = (x * conv_transpose2d(y, w, stride=2, padding=1, output_padding=1)).sum()
    torch.testing.assert_close(lhs, rhs)


def test_uneven_overlap_makes_a_checkerboard() -> None:
    # Kernel 3, stride 2: every other output row/column receives two stamps instead of one.
    out = conv_transpose2d(torch.ones(1, 1, 5, 5), torch.ones(1, 1, 3, 3), stride=2)
    interior = out[0, 0, 1:-1, 1:-1]
    assert interior[::2, ::2].unique().tolist() == [1.0]  # one stamp in both directions
    assert interior[1::2, 1::2].unique().tolist() == [4.0]  # two in each direction
    assert interior[::2, 1::2].unique().tolist() == [2.0]
    # Kernel 4, stride 2 (a multiple of the stride): every interior pixel gets the same 2 x 2 stamps.
    even = conv_transpose2d(torch.ones(1, 1, 5, 5), torch.ones(1, 1, 4, 4), stride=2)
    assert even[0, 0, 2:-2, 2:-2].unique().tolist() == [4.0]


def test_conv_transpose2d_unbatched() -> None:
    x = torch.randn(2, 4, 4)
    w = torch.randn(2, 3, 2, 2)
    torch.testing.assert_close(conv_transpose2d(x, w, stride=2), F.conv_transpose2d(x, w, stride=2))


def test_conv_transpose2d_errors() -> None:
    x = torch.randn(1, 2, 4, 4)
    w = torch.randn(2, 3, 3, 3)
    with pytest.raises(TypeError, match=r"input must be a torch.Tensor"):
        conv_transpose2d(x.numpy(), w)
    with pytest.raises(ValueError, match=r"weight must be 4-D \(C_in, C_out, kH, kW\)"):
        conv_transpose2d(x, w[0])
    with pytest.raises(ValueError, match=r"weight.shape\[0\] must be 2 \(input channels come first"):
        conv_transpose2d(x, torch.randn(3, 2, 3, 3))
    with pytest.raises(TypeError, match="same dtype"):
        conv_transpose2d(x, w.double())
    with pytest.raises(ValueError, match=r"bias must have shape \(C_out,\) = \(3,\)"):
        conv_transpose2d(x, w, torch.randn(2))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        conv_transpose2d(x, w, stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        conv_transpose2d(x, w, padding=-1)
    with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
        conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="removes the whole output"):
        conv_transpose2d(torch.randn(1, 2, 1, 1), w, padding=2)
    with pytest.raises(TypeError, match="floating-point dtype"):
        conv_transpose2d(x.long(), w)


# ---------------------------------------------------------------- bilinear as two 1-D passes


@pytest.mark.parametrize("seed", range(20))
def test_linear_resize_axis_is_interpolate_linear_values_and_gradients(seed: int) -> None:
    rng = random.Random(seed)
    length, size, align_corners = rng.randint(1, 9), rng.randint(1, 19), rng.random() < 0.5
    x = torch.randn(2, 3, length, dtype=torch.float64, requires_grad=True)
    ours = linear_resize_axis(x, size, dim=-1, align_corners=align_corners)
    expected = F.interpolate(x, size=size, mode="linear", align_corners=align_corners)
    torch.testing.assert_close(ours, expected)
    upstream = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(ours, x, upstream)[0], torch.autograd.grad(expected, x, upstream)[0])


def test_linear_resize_axis_touches_only_its_axis() -> None:
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    out = linear_resize_axis(x, 7, dim=1, align_corners=True)  # axis 1: 5 -> 7
    assert out.shape == (2, 7, 4, 3)
    # the same as resizing that axis moved to the end, (2, 4, 3, 5) -> (2, 4, 3, 7)
    moved = F.interpolate(x.movedim(1, -1).reshape(-1, 1, 5), size=7, mode="linear", align_corners=True)
    torch.testing.assert_close(out, moved.reshape(2, 4, 3, 7).movedim(-1, 1))


@pytest.mark.parametrize("rows_first", [True, False])
@pytest.mark.parametrize("seed", range(20))
def test_both_orders_of_the_two_passes_are_bilinear(seed: int, rows_first: bool) -> None:
    shape, size, align_corners = random_resize(seed)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ours = bilinear_resize_separable(x, size, align_corners, rows_first=rows_first)
    expected = F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)
    torch.testing.assert_close(ours, expected)
    upstream = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(ours, x, upstream)[0], torch.autograd.grad(expected, x, upstream)[0])


@pytest.mark.parametrize("align_corners", [False, True])
def test_the_two_orders_agree_with_each_other_and_the_four_pixel_formula(align_corners: bool) -> None:
    x = torch.randn(1, 2, 6, 9, dtype=torch.float64)
    a = bilinear_resize_separable(x, (13, 4), align_corners, rows_first=True)
    b = bilinear_resize_separable(x, (13, 4), align_corners, rows_first=False)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, bilinear_resize(x, (13, 4), align_corners))


def test_resize_multiplies_counts_taps_per_output() -> None:
    # 128 x 128 -> 512 x 512 with 2 taps: direct 4 per output pixel; separable 2 per value of each pass.
    assert resize_multiplies((128, 128), (512, 512), "direct") == 4 * 512 * 512
    assert resize_multiplies((128, 128), (512, 512), "rows first") == 2 * (512 * 128 + 512 * 512)
    assert resize_multiplies((128, 128), (512, 512), "columns first") == 2 * (128 * 512 + 512 * 512)
    # a non-square resize: the order that shrinks first is cheaper
    assert resize_multiplies((400, 100), (100, 400), "rows first") == 2 * (100 * 100 + 100 * 400)
    assert resize_multiplies((400, 100), (100, 400), "columns first") == 2 * (400 * 400 + 100 * 400)
    # bicubic (4 taps): 16 products per pixel directly, about 8 in two passes
    assert resize_multiplies((64, 64), (64, 64), "direct", taps=4) == 16 * 64 * 64
    assert resize_multiplies((64, 64), (64, 64), "rows first", taps=4) == 8 * 64 * 64


class CountProducts(TorchDispatchMode):
    """Counts the elementwise products (aten.mul) on image tensors (4-D), i.e. weight-times-pixel multiplications."""

    def __init__(self) -> None:
        super().__init__()
        self.products = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten.mul.Tensor, torch.ops.aten.mul.Scalar) and out.dim() == 4:
            self.products += out.numel()  # one multiplication per output element
        return out


@pytest.mark.parametrize("in_size, out_size", [((128, 96), (512, 384)), ((40, 10), (10, 40)), ((9, 7), (3, 5))])
def test_resize_multiplies_counts_what_the_two_passes_multiply(in_size, out_size) -> None:
    x = torch.randn(1, 1, *in_size)
    for order, rows_first in (("rows first", True), ("columns first", False)):
        with CountProducts() as counter:
            bilinear_resize_separable(x, out_size, rows_first=rows_first)
        assert counter.products == resize_multiplies(in_size, out_size, order)


def test_separable_errors() -> None:
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="dim must be an axis of x"):
        linear_resize_axis(x, 8, dim=4)
    with pytest.raises(ValueError, match="size must be >= 1"):
        linear_resize_axis(x, 0, dim=-1)
    with pytest.raises(TypeError, match="align_corners must be True or False"):
        linear_resize_axis(x, 3, dim=-1, align_corners=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\)"):
        bilinear_resize_separable(x[0], 8)
    with pytest.raises(ValueError, match="order must be one of 'direct'"):
        resize_multiplies((4, 4), (8, 8), "diagonal")
    with pytest.raises(ValueError, match="taps must be >= 1"):
        resize_multiplies((4, 4), (8, 8), taps=0)
