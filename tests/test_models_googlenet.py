"""Tests of chapter 6's additions: the naive Inception module (Figure 2a) and Inception-ResNet-A."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from companion.count import count_flops, count_parameters
from companion.models.googlenet import InceptionBlock, NaiveInceptionBlock
from companion.models.inception import InceptionResNetA


def unit(module, x: torch.Tensor) -> torch.Tensor:
    """conv -> batch norm (eval) -> ReLU written out with torch.nn.functional, on a BasicConv2d's weights."""
    conv, bn = module.conv, module.bn
    z = F.conv2d(x, conv.weight, padding=conv.padding)
    z = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
    return F.relu(z)


def randomise(block: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, tensor in block.state_dict().items():
            if name.endswith(("bn.weight", "running_var")):
                tensor.uniform_(0.5, 2.0)
            elif tensor.is_floating_point():
                tensor.normal_()


@pytest.mark.parametrize("kernel_5x5", [3, 5])
def test_naive_block_matches_the_functional_version_values_and_gradients(kernel_5x5: int) -> None:
    torch.manual_seed(kernel_5x5)
    block = NaiveInceptionBlock(4, 3, 5, 2, kernel_5x5=kernel_5x5).eval()
    randomise(block)
    x = torch.randn(2, 4, 6, 7, requires_grad=True)
    ours = block(x)
    theirs = torch.cat([unit(block.branch1, x), unit(block.branch2, x), unit(block.branch3, x),
                        F.max_pool2d(x, 3, stride=1, padding=1)], dim=1)  # (2, 3 + 5 + 2 + 4, 6, 7)
    assert ours.shape == (2, block.out_channels, 6, 7) == (2, 14, 6, 7)
    torch.testing.assert_close(ours, theirs)
    upstream = torch.randn_like(ours)
    torch.testing.assert_close(torch.autograd.grad(ours, x, upstream)[0], torch.autograd.grad(theirs, x, upstream)[0])


def test_naive_block_costs_what_the_formula_says_and_more_than_the_real_one() -> None:
    c, size = 192, 28  # GoogLeNet's inception (3a): 64, (96) 128, (16) 32, 32
    naive = NaiveInceptionBlock(c, 64, 128, 32)
    convs = [(c, 64, 1), (c, 128, 3), (c, 32, 5)]  # (C_in, C_out, k); batch norm adds 2 per channel
    assert count_parameters(naive) == sum(k * k * ci * co + 2 * co for ci, co, k in convs)
    assert count_flops(naive, (c, size, size)) == sum(size * size * co * ci * k * k for ci, co, k in convs)
    real = InceptionBlock(c, 64, 96, 128, 16, 32, 32, kernel_5x5=5)
    assert count_flops(real, (c, size, size)) < 0.45 * count_flops(naive, (c, size, size))
    assert naive.out_channels == 64 + 128 + 32 + c > real.out_channels == 256


def test_naive_block_refuses_an_even_kernel() -> None:
    with pytest.raises(ValueError, match="kernel_5x5 must be odd"):
        NaiveInceptionBlock(4, 3, 5, 2, kernel_5x5=4)


# --- Inception-ResNet-A (Szegedy et al. 2017, Figure 16) ------------------------------------------

def test_inception_resnet_a_matches_the_functional_version_values_and_gradients() -> None:
    torch.manual_seed(0)
    for scale, activate in [(0.17, True), (1.0, False)]:
        block = InceptionResNetA(24, scale=scale, activate=activate).eval()
        randomise(block)
        x = torch.randn(2, 24, 5, 6, requires_grad=True)
        b1, b2 = block.branch1, block.branch2
        branches = torch.cat([unit(block.branch0, x), unit(b1[1], unit(b1[0], x)),
                              unit(b2[2], unit(b2[1], unit(b2[0], x)))], dim=1)  # (2, 128, 5, 6)
        # the projection: a linear 1x1 convolution with a bias, no batch norm, no ReLU
        residual = F.conv2d(branches, block.up.weight, block.up.bias)
        theirs = x + scale * residual
        theirs = F.relu(theirs) if activate else theirs
        ours = block(x)
        assert ours.shape == x.shape
        torch.testing.assert_close(ours, theirs)
        upstream = torch.randn_like(ours)
        torch.testing.assert_close(torch.autograd.grad(ours, x, upstream)[0],
                                   torch.autograd.grad(theirs, x, upstream)[0])
    assert torch.autograd.gradcheck(InceptionResNetA(8).double().eval(),
                                    (torch.randn(1, 8, 3, 3, dtype=torch.float64, requires_grad=True),))


def test_inception_resnet_a_parameters_by_hand() -> None:
    # (C_in, C_out, k) of the conv -> BN -> ReLU units; batch norm adds 2 per channel
    c = 320
    units = [(c, 32, 1), (c, 32, 1), (32, 32, 3), (c, 32, 1), (32, 48, 3), (48, 64, 3)]
    expected = sum(ci * co * k * k + 2 * co for ci, co, k in units) + 128 * c + c  # and the linear 1x1
    assert count_parameters(InceptionResNetA(c)) == expected == 123_168


def test_inception_resnet_a_refuses_a_bad_scale() -> None:
    for scale in (0, -0.1, True, "0.2"):
        with pytest.raises(ValueError, match="scale must be a positive number"):
            InceptionResNetA(8, scale=scale)
