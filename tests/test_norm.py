"""Tests of companion.norm against torch: nn.BatchNorm2d, nn.GroupNorm, and a hand-standardised F.conv2d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.norm import BatchNorm2d, GroupNorm, WSConv2d


def _randomise_affine(module: nn.Module, generator: torch.Generator) -> None:
    """Give weight and bias random values, so that a swapped or ignored gamma/beta shows."""
    with torch.no_grad():
        for name in ("weight", "bias"):
            p = getattr(module, name, None)
            if p is not None:
                p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype))


def _grads(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of <module(x), upstream> with respect to x and the module's parameters."""
    x = x.clone().requires_grad_(True)
    params = [p for p in module.parameters()]
    (module(x) * upstream).sum().backward()
    grads = [x.grad] + [p.grad for p in params]
    module.zero_grad()
    return grads


# ---------------------------------------------------------------- BatchNorm2d

BN_CONFIGS = [
    # (N, C, H, W, eps, momentum, affine, track_running_stats)
    (4, 3, 5, 5, 1e-5, 0.1, True, True),
    (2, 6, 3, 7, 1e-3, 0.3, True, True),
    (8, 1, 1, 1, 1e-5, 0.1, True, True),
    (3, 4, 4, 2, 1e-5, None, True, True),  # cumulative moving average
    (5, 2, 3, 3, 1e-2, 0.5, False, True),
    (4, 5, 2, 3, 1e-5, 0.1, True, False),  # no running stats: batch stats in eval mode too
    (1, 3, 4, 4, 1e-5, 0.9, False, False),
]


@pytest.mark.parametrize("n, c, h, w, eps, momentum, affine, track", BN_CONFIGS)
def test_batchnorm_matches_torch_train_then_eval(n, c, h, w, eps, momentum, affine, track):
    g = torch.Generator().manual_seed(n * 100 + c * 10 + h)
    theirs = nn.BatchNorm2d(c, eps=eps, momentum=momentum, affine=affine, track_running_stats=track).double()
    _randomise_affine(theirs, g)
    ours = BatchNorm2d(c, eps=eps, momentum=momentum, affine=affine, track_running_stats=track).double()
    ours.load_state_dict(theirs.state_dict())

    for step in range(4):  # batches with different means and scales, so the running stats move
        x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * (step + 0.5) + step
        upstream = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
        torch.testing.assert_close(ours(x), theirs(x))
        for a, b in zip(_grads(ours, x, upstream), _grads(theirs, x, upstream)):
            torch.testing.assert_close(a, b)
    # _grads ran a second forward pass on each x, so each module saw 8 batches
    if track:
        torch.testing.assert_close(ours.running_mean, theirs.running_mean)
        torch.testing.assert_close(ours.running_var, theirs.running_var)
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 8

    ours.eval()
    theirs.eval()
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 3 - 1
    upstream = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))
    for a, b in zip(_grads(ours, x, upstream), _grads(theirs, x, upstream)):
        torch.testing.assert_close(a, b)
    if track:
        assert int(ours.num_batches_tracked) == 8  # eval mode leaves the running stats alone


def test_batchnorm_float32_matches_torch():
    torch.manual_seed(0)
    x = torch.randn(16, 8, 6, 6) * 4 + 2
    theirs, ours = nn.BatchNorm2d(8), BatchNorm2d(8)
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.running_var, theirs.running_var)


def test_batchnorm_running_var_is_unbiased_and_output_uses_biased():
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)  # m = 8 values per channel: the two differ by 8/7
    bn = BatchNorm2d(3, momentum=1.0, eps=0.0, affine=False).double()
    y = bn(x)
    torch.testing.assert_close(bn.running_var, x.var(dim=(0, 2, 3), correction=1))
    torch.testing.assert_close(bn.running_mean, x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(y.var(dim=(0, 2, 3), correction=0), torch.ones(3, dtype=torch.float64))


def test_batchnorm_momentum_none_is_cumulative_average():
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(4, 2, 3, 3, generator=g) + i for i in range(5)]
    bn = BatchNorm2d(2, momentum=None)
    for x in batches:
        bn(x)
    expected = torch.stack([x.mean(dim=(0, 2, 3)) for x in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected)


def test_batchnorm_gradcheck():
    bn = BatchNorm2d(3).double()
    _randomise_affine(bn, torch.Generator().manual_seed(2))
    x = torch.randn(3, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: bn(x), (x, bn.weight, bn.bias))
    bn.eval()
    assert torch.autograd.gradcheck(lambda x, w, b: bn(x), (x, bn.weight, bn.bias))


def test_batchnorm_state_dict_is_interchangeable_with_torch():
    theirs = nn.BatchNorm2d(4)
    theirs(torch.randn(8, 4, 3, 3) * 2 + 1)
    ours = BatchNorm2d(4)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [name for name, _ in ours.named_parameters()] == ["weight", "bias"]
    ours.load_state_dict(theirs.state_dict())
    back = nn.BatchNorm2d(4)
    back.load_state_dict(ours.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    assert BatchNorm2d(4, affine=False, track_running_stats=False).state_dict() == {}


def test_batchnorm_errors():
    bn = BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\).*3-D"):
        bn(torch.randn(3, 4, 4))
    with pytest.raises(ValueError, match="5 channels.*num_features=3"):
        bn(torch.randn(2, 5, 4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        bn(torch.ones(2, 3, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        bn([[1.0]])
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(torch.randn(1, 3, 1, 1))
    bn.eval()
    assert bn(torch.randn(1, 3, 1, 1)).shape == (1, 3, 1, 1)  # fine with running stats
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        BatchNorm2d(0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2d(3, momentum=1.5)


# ---------------------------------------------------------------- GroupNorm

GN_CONFIGS = [
    # (N, G, C, spatial, eps, affine)
    (2, 2, 6, (5, 5), 1e-5, True),
    (3, 1, 4, (3, 2), 1e-5, True),  # layer norm
    (2, 4, 4, (4, 4), 1e-3, True),  # instance norm
    (1, 3, 12, (2, 3), 1e-5, False),  # a batch of one
    (4, 2, 8, (7,), 1e-5, True),  # (N, C, L)
    (2, 2, 4, (), 1e-5, True),  # (N, C)
    (2, 2, 4, (2, 3, 2), 1e-2, True),  # (N, C, D, H, W)
]


@pytest.mark.parametrize("n, groups, c, spatial, eps, affine", GN_CONFIGS)
def test_groupnorm_matches_torch(n, groups, c, spatial, eps, affine):
    g = torch.Generator().manual_seed(n + 10 * c + 100 * groups)
    theirs = nn.GroupNorm(groups, c, eps=eps, affine=affine).double()
    _randomise_affine(theirs, g)
    ours = GroupNorm(groups, c, eps=eps, affine=affine).double()
    ours.load_state_dict(theirs.state_dict())
    # a different offset per channel, so that normalising per channel instead of per group shows
    offsets = torch.randn(1, c, *([1] * len(spatial)), generator=g, dtype=torch.float64) * 3
    x = torch.randn(n, c, *spatial, generator=g, dtype=torch.float64) * 2 + offsets
    upstream = torch.randn(n, c, *spatial, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))
    for a, b in zip(_grads(ours, x, upstream), _grads(theirs, x, upstream)):
        torch.testing.assert_close(a, b)


def test_groupnorm_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    gn = GroupNorm(2, 4)
    x = torch.randn(5, 4, 3, 3)
    together = gn(x)
    alone = torch.cat([gn(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone)
    gn.eval()
    torch.testing.assert_close(gn(x), together)


def test_groupnorm_gradcheck():
    gn = GroupNorm(2, 4).double()
    _randomise_affine(gn, torch.Generator().manual_seed(3))
    x = torch.randn(2, 4, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: gn(x), (x, gn.weight, gn.bias))


def test_groupnorm_parameter_names_match_torch():
    assert list(GroupNorm(2, 6).state_dict()) == list(nn.GroupNorm(2, 6).state_dict())


def test_groupnorm_errors():
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups.*6.*4"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match="num_groups must be a positive int"):
        GroupNorm(0, 6)
    gn = GroupNorm(2, 6)
    with pytest.raises(ValueError, match=r"C = num_channels = 6.*\(2, 4, 3, 3\)"):
        gn(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"\(N, C, \*\)"):
        gn(torch.randn(6))
    with pytest.raises(TypeError, match="floating-point"):
        gn(torch.ones(2, 6, 3, 3, dtype=torch.int32))


# ---------------------------------------------------------------- WSConv2d

def _standardise_by_hand(weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Per output filter: subtract the mean, divide by the root of the biased variance plus eps."""
    flat = weight.reshape(weight.shape[0], -1)  # (C_out, C_in/groups * kh * kw)
    centred = flat - flat.mean(dim=1, keepdim=True)
    std = torch.sqrt((centred**2).mean(dim=1, keepdim=True) + eps)
    return (centred / std).reshape(weight.shape)


WS_CONFIGS = [
    # (C_in, C_out, kernel, stride, padding, dilation, groups, bias, padding_mode)
    (3, 4, 3, 1, 1, 1, 1, True, "zeros"),
    (2, 6, (3, 2), 2, 0, 1, 1, False, "zeros"),
    (4, 4, 3, 1, 2, 2, 2, True, "zeros"),
    (4, 8, 1, 1, 0, 1, 4, True, "zeros"),
    (3, 5, (3, 4), 1, "same", (1, 2), 1, True, "zeros"),
    (2, 3, 3, 1, 1, 1, 1, True, "reflect"),
    (2, 3, 3, 1, (1, 2), 1, 1, False, "circular"),
]


@pytest.mark.parametrize("c_in, c_out, k, stride, padding, dilation, groups, bias, mode", WS_CONFIGS)
def test_wsconv_matches_standardised_conv(c_in, c_out, k, stride, padding, dilation, groups, bias, mode):
    torch.manual_seed(c_in * 10 + c_out)
    ours = WSConv2d(c_in, c_out, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                    bias=bias, padding_mode=mode, dtype=torch.float64)
    with torch.no_grad():  # filters far from standardised, so that skipping a step shows
        ours.weight.mul_(3).add_(torch.randn(c_out, 1, 1, 1, dtype=torch.float64))
    reference = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                          bias=bias, padding_mode=mode, dtype=torch.float64)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, c_in, 7, 8, dtype=torch.float64, requires_grad=True)

    out = ours(x)
    w = reference.weight
    expected = reference._conv_forward(x, _standardise_by_hand(w, ours.eps), reference.bias)
    if mode == "zeros":
        expected_direct = F.conv2d(x, _standardise_by_hand(w, ours.eps), reference.bias, stride, padding,
                                   dilation, groups)
        torch.testing.assert_close(expected_direct, expected)
    torch.testing.assert_close(out, expected)

    upstream = torch.randn_like(out)
    ours_grads = torch.autograd.grad((out * upstream).sum(), [x, ours.weight] + ([ours.bias] if bias else []))
    ref_grads = torch.autograd.grad((expected * upstream).sum(), [x, w] + ([reference.bias] if bias else []))
    for a, b in zip(ours_grads, ref_grads):
        torch.testing.assert_close(a, b)


def test_wsconv_is_a_conv2d_with_the_same_parameters():
    conv = WSConv2d(3, 8, 3, padding=1)
    assert isinstance(conv, nn.Conv2d)
    assert list(conv.state_dict()) == list(nn.Conv2d(3, 8, 3, padding=1).state_dict())
    assert conv(torch.randn(3, 5, 5)).shape == (8, 5, 5)  # unbatched input, as nn.Conv2d allows


def test_wsconv_standardised_filters_have_zero_mean_unit_variance():
    conv = WSConv2d(5, 7, 3, groups=1, eps=0.0)
    with torch.no_grad():
        conv.weight.mul_(10).add_(3)
    w = conv.standardized_weight()
    torch.testing.assert_close(w.mean(dim=(1, 2, 3)), torch.zeros(7), atol=1e-6, rtol=0)
    torch.testing.assert_close(w.var(dim=(1, 2, 3), correction=0), torch.ones(7))


def test_wsconv_output_ignores_the_scale_and_offset_of_each_filter():
    torch.manual_seed(4)
    conv = WSConv2d(3, 4, 3, bias=False, eps=0.0, dtype=torch.float64)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    before = conv(x)
    with torch.no_grad():  # a different positive scale and offset per filter
        conv.weight.mul_(torch.tensor([0.5, 2.0, 7.0, 0.1], dtype=torch.float64)[:, None, None, None]).add_(1.5)
    torch.testing.assert_close(conv(x), before)


def test_wsconv_gradcheck():
    torch.manual_seed(5)
    conv = WSConv2d(2, 3, 3, padding=1, dtype=torch.float64)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: conv(x), (x, conv.weight, conv.bias))


def test_wsconv_errors():
    conv = WSConv2d(3, 4, 3)
    with pytest.raises(ValueError, match="2 channels.*in_channels=3"):
        conv(torch.randn(1, 2, 5, 5))
    with pytest.raises(ValueError, match="3 or 4-D"):
        conv(torch.randn(5, 5))
    with pytest.raises(TypeError, match="floating-point"):
        conv(torch.ones(1, 3, 5, 5, dtype=torch.uint8))
    with pytest.raises(ValueError, match="eps"):
        WSConv2d(3, 4, 3, eps=-1.0)
