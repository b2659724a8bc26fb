"""Pooling and the receptive-field calculator, with torch as the oracle.

Pooling: values and gradients against ``F.max_pool2d`` / ``F.avg_pool2d`` /
``F.adaptive_avg_pool2d`` on random configurations, ``gradcheck`` in float64, every error.
Receptive field: published values, the recurrences against an empirical measurement (the input
pixels that get a gradient from one output unit) on random stacks, every error.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from companion.pool import (ReceptiveField, UnsupportedLayerError, avg_pool2d, global_avg_pool2d, gradient_map,
                            max_pool2d, nonzero_extent, receptive_field)

POOLS = [(max_pool2d, F.max_pool2d), (avg_pool2d, F.avg_pool2d)]


def random_pool_config(rng: random.Random) -> dict:
    """A random valid pooling: kernel, stride (sometimes the default), padding <= kernel / 2, an input that fits."""
    kh, kw = rng.randint(1, 5), rng.randint(1, 5)
    stride = None if rng.random() < 0.3 else (rng.randint(1, 4), rng.randint(1, 4))
    padding = (rng.randint(0, kh // 2), rng.randint(0, kw // 2))
    shape = (rng.randint(1, 3), rng.randint(1, 4), rng.randint(kh, kh + 9), rng.randint(kw, kw + 9))
    if rng.random() < 0.3:
        shape = shape[1:]  # unbatched (C, H, W)
    return {"shape": shape, "kernel_size": (kh, kw), "stride": stride, "padding": padding}


@pytest.mark.parametrize("ours, theirs", POOLS, ids=["max", "avg"])
@pytest.mark.parametrize("seed", range(25))
def test_pooling_matches_torch_values_and_gradients(ours, theirs, seed):
    rng = random.Random(seed)
    cfg = random_pool_config(rng)
    torch.manual_seed(seed)
    x = torch.randn(cfg["shape"], requires_grad=True)
    args = (cfg["kernel_size"], cfg["stride"], cfg["padding"])
    out, expected = ours(x, *args), theirs(x, *args)
    torch.testing.assert_close(out, expected)
    upstream = torch.randn_like(expected)
    (grad,) = torch.autograd.grad(out, x, upstream)
    (grad_expected,) = torch.autograd.grad(expected, x, upstream)
    torch.testing.assert_close(grad, grad_expected)


@pytest.mark.parametrize("ours, theirs", POOLS, ids=["max", "avg"])
def test_pooling_int_arguments_and_default_stride(ours, theirs):
    x = torch.randn(2, 3, 11, 9)
    torch.testing.assert_close(ours(x, 3), theirs(x, 3))  # stride defaults to the kernel: 3x3 output
    assert ours(x, 3).shape == (2, 3, 3, 3)
    torch.testing.assert_close(ours(x, 3, 2, 1), theirs(x, 3, 2, 1))
    torch.testing.assert_close(ours(x, [2, 3], [1, 2], [1, 0]), theirs(x, [2, 3], [1, 2], [1, 0]))


def test_max_pool_ties_send_the_gradient_where_torch_does():
    x = torch.zeros(1, 1, 5, 5, requires_grad=True)  # every window is a tie
    (grad,) = torch.autograd.grad(max_pool2d(x, 3, 1, 1).sum(), x)
    (grad_expected,) = torch.autograd.grad(F.max_pool2d(x, 3, 1, 1).sum(), x)
    torch.testing.assert_close(grad, grad_expected)


def test_max_pool_padding_never_wins():
    x = -torch.rand(1, 1, 4, 4) - 1  # all inputs negative: zero padding would win, -inf padding must not
    assert max_pool2d(x, 3, 1, 1).max() < 0


def test_avg_pool_counts_padded_zeros():
    x = torch.ones(1, 1, 3, 3)
    corner = avg_pool2d(x, 3, 1, 1)[0, 0, 0, 0]
    assert corner.item() == pytest.approx(4 / 9)  # 4 real ones and 5 padded zeros, divided by 9


def test_pooling_gradcheck_float64():
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: max_pool2d(t, (3, 2), (2, 1), (1, 1)), (x,))
    assert torch.autograd.gradcheck(lambda t: avg_pool2d(t, (2, 3), 2, (1, 1)), (x,))
    assert torch.autograd.gradcheck(global_avg_pool2d, (x,))


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 1, 1, 1), (3, 6, 4)])
def test_global_avg_pool_matches_adaptive_avg_pool(shape):
    x = torch.randn(shape, requires_grad=True)
    out = global_avg_pool2d(x)
    expected = F.adaptive_avg_pool2d(x, 1).flatten(-3)  # (N, C, 1, 1) -> (N, C); (C, 1, 1) -> (C,)
    assert out.shape == shape[:-2]
    torch.testing.assert_close(out, expected)
    upstream = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(out, x, upstream)[0],
                               torch.autograd.grad(expected, x, upstream)[0])


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d], ids=["max", "avg"])
def test_pooling_errors(pool):
    x = torch.randn(1, 2, 6, 6)
    with pytest.raises(TypeError, match=r"input must be a torch.Tensor"):
        pool(x.numpy(), 2)
    with pytest.raises(TypeError, match=r"floating-point dtype"):
        pool(torch.ones(1, 2, 6, 6, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match=r"must be 3 or 4-D .*got a 2-D tensor of shape \(6, 6\)"):
        pool(x[0, 0], 2)
    with pytest.raises(ValueError, match=r"kernel_size must be >= 1"):
        pool(x, 0)
    with pytest.raises(ValueError, match=r"stride must be >= 1"):
        pool(x, 2, 0)
    with pytest.raises(ValueError, match=r"padding must be >= 0"):
        pool(x, 2, 1, -1)
    with pytest.raises(ValueError, match=r"padding must be at most half of kernel_size.*\(2, 2\).*\(3, 3\)"):
        pool(x, 3, 1, 2)
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a tuple of 2 ints"):
        pool(x, (2, 2, 2))
    with pytest.raises(ValueError, match=r"input \(6x6, padded by \(1, 1\) to 8x8\) is smaller than "
                                         r"kernel_size=\(9, 9\)"):
        pool(x, 9, 1, 1)


def test_global_avg_pool_errors():
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        global_avg_pool2d([[1.0]])
    with pytest.raises(ValueError, match=r"must be 3 or 4-D"):
        global_avg_pool2d(torch.randn(2, 3))
    with pytest.raises(TypeError, match=r"floating-point dtype"):
        global_avg_pool2d(torch.ones(1, 2, 3, 3, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------
# Receptive field
# ---------------------------------------------------------------------------------------------

def test_receptive_field_of_published_networks():
    # Araujo et al. (2019), table 1; VGG-16's conv5_3 sees 196 pixels and pool5 212.
    with torch.device("meta"):  # the architecture without allocating or initialising weights
        vgg16, alexnet = torchvision.models.vgg16(), torchvision.models.alexnet()
    vgg = receptive_field(vgg16.features)
    assert (vgg.size, vgg.jump) == (212, 32)
    assert vgg.layers[-2].size == 196
    assert len(vgg.layers) == 13 + 5  # thirteen convolutions and five poolings; ReLUs skipped
    rf = receptive_field(alexnet.features)
    assert (rf.size, rf.jump) == (195, 32)


def test_receptive_field_recurrences_by_hand():
    rf = receptive_field([(3, 1, 1), (2, 2, 0), (3, 1, 1)])
    # conv: unit i sees pixels i-1..i+1; pool: unit j sees conv units 2j, 2j+1, so pixels 2j-1..2j+2;
    # conv: unit m sees pool units m-1..m+1, so pixels 2m-3..2m+4 (8 of them, centred on 2m + 0.5).
    assert rf == ReceptiveField(size=8, jump=2, start=0.5)
    assert [(r.size, r.jump, r.start) for r in rf.layers] == [(3, 1, 0.0), (4, 2, 0.5), (8, 2, 0.5)]
    assert rf.span(0) == (-3.0, 4.0) and rf.span(3) == (3.0, 10.0)
    assert receptive_field([]) == ReceptiveField(1, 1, 0.0)


def test_dilated_stack_grows_exponentially():
    # Yu & Koltun (2016): 3x3 convolutions with dilation 1, 2, 4, ..., 2^i see 2^(i+2) - 1 pixels.
    layers = [(3, 1, 2 ** i, 2 ** i) for i in range(6)]
    rf = receptive_field(layers)
    assert [r.size for r in rf.layers] == [2 ** (i + 2) - 1 for i in range(6)]
    assert rf.start == 0.0 and rf.jump == 1  # "same" padding keeps every field centred on its pixel


def test_tuples_and_modules_agree_and_pointwise_layers_are_skipped():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 5, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1, dilation=2), nn.Dropout(0.1)),
        nn.Conv2d(4, 4, 3, padding="same", dilation=3), nn.GELU(), nn.AvgPool2d(2),
    )
    tuples = [(5, 2, 1), (3, 2, 1, 2), (3, 1, 3, 3), (2, 2, 0)]
    from_module, from_tuples = receptive_field(model), receptive_field(tuples)
    assert from_module == from_tuples
    assert from_module.layers == from_tuples.layers
    assert receptive_field(nn.Conv2d(1, 1, 7, stride=3, padding=2)) == receptive_field([(7, 3, 2)])


def test_non_square_layers_need_an_axis():
    model = nn.Sequential(nn.Conv2d(1, 1, (3, 5), padding=(1, 0)), nn.MaxPool2d((2, 1)))
    assert receptive_field(model, axis=0) == receptive_field([(3, 1, 1), (2, 2, 0)])
    assert receptive_field(model, axis=1) == receptive_field([(5, 1, 0), (1, 1, 0)])
    with pytest.raises(ValueError, match=r"differs along height and width.*pass axis=0 \(height\) or axis=1"):
        receptive_field(model)
    with pytest.raises(ValueError, match=r"axis must be None, 0 \(height\) or 1 \(width\), got 2"):
        receptive_field(model, axis=2)


def test_receptive_field_errors():
    with pytest.raises(UnsupportedLayerError, match=r"layer '3' is a Flatten, which it cannot follow"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(UnsupportedLayerError, match=r"layer '1.0' is a AdaptiveAvgPool2d"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Sequential(nn.AdaptiveAvgPool2d(1))))
    # Both a TypeError (wrong kind of layer) and a ValueError (bad entry in a stack).
    assert issubclass(UnsupportedLayerError, TypeError) and issubclass(UnsupportedLayerError, ValueError)
    with pytest.raises(TypeError, match=r"layers must be a list of .* or an nn.Sequential, got int"):
        receptive_field(3)
    with pytest.raises(ValueError, match=r"layers\[1\] must be \(kernel, stride, padding\)"):
        receptive_field([(3, 1, 1), (3, 1)])
    with pytest.raises(ValueError, match=r"layers\[0\] must be"):
        receptive_field([(3.0, 1, 1)])
    with pytest.raises(ValueError, match=r"layers\[0\] = \(3, 0, 1\): kernel, stride and dilation must be >= 1"):
        receptive_field([(3, 0, 1)])
    with pytest.raises(ValueError, match=r"padding >= 0"):
        receptive_field([(3, 1, -1)])


def random_stack(rng: random.Random, pooling: type[nn.Module]) -> tuple[nn.Sequential, list[tuple[int, ...]]]:
    """A random stack of convolutions (odd or even kernels, stride, padding, dilation) and poolings."""
    layers: list[nn.Module] = []
    specs: list[tuple[int, ...]] = []
    for _ in range(rng.randint(1, 5)):
        if rng.random() < 0.3:
            k = rng.randint(2, 3)
            s, p = rng.randint(1, 2), rng.randint(0, k // 2)
            layers.append(pooling(k, stride=s, padding=p))
            specs.append((k, s, p))
        else:
            k, s, p, d = rng.randint(1, 4), rng.randint(1, 2), rng.randint(0, 2), rng.randint(1, 3)
            layers += [nn.Conv2d(2, 2, k, stride=s, padding=p, dilation=d), nn.ReLU()]
            specs.append((k, s, p, d))
    return nn.Sequential(*layers), specs


def _interior_unit(rf: ReceptiveField, input_length: int, output_length: int) -> int:
    """The first output index whose whole field lies inside the input (no padding in it)."""
    for index in range(output_length):
        first, last = rf.span(index)
        if first >= 0 and last <= input_length - 1:
            return index
    raise AssertionError("no output unit sees only real input; the test input is too small")


@pytest.mark.parametrize("seed", range(20))
def test_receptive_field_matches_gradient_support(seed):
    """With positive weights, a positive input and average pooling, no gradient cancels or dies: the
    pixels that get a gradient from one output unit are exactly its receptive field (its first and
    last row and column), wherever padding, stride and dilation put it."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model, specs = random_stack(rng, nn.AvgPool2d)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.1, 1.0)
    rf = receptive_field(model)
    assert rf == receptive_field(specs)
    size = rf.size + 4 * rf.jump + 8
    x = torch.rand(2, size, size) + 0.1
    out_length = model(x[None]).shape[-1]
    i, j = _interior_unit(rf, size, out_length), out_length - 1
    while rf.span(j)[1] > size - 1:  # the last unit whose field does not reach into the padding
        j -= 1
    rows, cols = nonzero_extent(gradient_map(model, x, position=(i, j)))
    assert rows == rf.span(i)
    assert cols == rf.span(j)


@pytest.mark.parametrize("seed", range(5))
def test_max_pool_gradient_stays_inside_the_receptive_field(seed):
    rng = random.Random(100 + seed)
    torch.manual_seed(seed)
    model, _ = random_stack(rng, nn.MaxPool2d)
    rf = receptive_field(model)
    size = rf.size + 4 * rf.jump + 8
    x = torch.randn(1, 2, size, size)
    out_length = model(x).shape[-1]
    i = _interior_unit(rf, size, out_length)
    grad = gradient_map(model, x, position=(i, i))
    assert grad.sum() > 0  # the unit is alive, so the check below has something to check
    first, last = (int(v) for v in rf.span(i))
    outside = grad.clone()
    outside[first:last + 1, first:last + 1] = 0
    assert outside.eq(0).all()  # no gradient outside the predicted field


def test_gradient_map_and_nonzero_extent_errors():
    conv = nn.Conv2d(1, 1, 3)
    with pytest.raises(TypeError, match=r"model must be an nn.Module, got function"):
        gradient_map(F.relu, torch.rand(1, 5, 5))
    with pytest.raises(ValueError, match=r"input must hold one image.*got shape \(2, 1, 5, 5\)"):
        gradient_map(conv, torch.rand(2, 1, 5, 5))
    with pytest.raises(ValueError, match=r"position \(3, 0\) is outside the 3x3 output"):
        gradient_map(conv, torch.rand(1, 5, 5), position=(3, 0))
    with pytest.raises(ValueError, match=r"model must return a \(1, C', H', W'\) feature map, got \(1, 9\)"):
        gradient_map(nn.Sequential(conv, nn.Flatten()), torch.rand(1, 5, 5))
    with pytest.raises(ValueError, match=r"grad_map is zero everywhere"):
        nonzero_extent(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"grad_map must be 2-D"):
        nonzero_extent(torch.zeros(1, 4, 4))
    assert nonzero_extent(torch.tensor([[0, 0, 0], [0, 0, 1], [0, 2, 0]])) == ((1, 2), (1, 2))


def test_gradient_map_leaves_parameter_gradients_alone():
    conv = nn.Conv2d(1, 1, 3)
    grad = gradient_map(conv, torch.rand(1, 5, 5))
    assert conv.weight.grad is None
    assert nonzero_extent(grad) == ((1, 3), (1, 3))  # the centre unit (1, 1) of the 3x3 output sees rows/cols 1..3
    torch.testing.assert_close(grad[1:4, 1:4], conv.weight.detach().abs()[0, 0])
