from __future__ import annotations

import pytest
import torch
from torch import nn

from companion import nets


def _conv_params(c_in: int, c_out: int, k: int, bias: bool) -> int:
    return c_out * c_in * k * k + (c_out if bias else 0)


def test_lenet5_matches_the_hand_count():
    # conv 1->6 5x5, conv 6->16 5x5, fc 400->120->84->10 (LeCun et al. 1998)
    expected = _conv_params(1, 6, 5, True) + _conv_params(6, 16, 5, True) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert expected == 61_706
    assert sum(p.numel() for p in nets.lenet5().parameters()) == expected


def test_fashion_cnn_count_follows_its_table():
    expected, c_in, size = 0, 1, 28
    for c_out, pool in nets.FASHION_CNN_STAGES:
        expected += _conv_params(c_in, c_out, 3, bias=False) + 2 * c_out  # conv + BN weight/bias
        c_in, size = c_out, size // 2 if pool else size
    expected += (c_in * size * size * 40 + 40) + (40 * 10 + 10)  # the two-layer head
    assert sum(p.numel() for p in nets.fashion_cnn().parameters()) == expected


@pytest.mark.parametrize("build", [nets.lenet5, lambda: nets.lenet5(norm=nn.BatchNorm2d), nets.fashion_cnn,
                                   lambda: nets.fashion_cnn(norm=None, num_classes=7)])
def test_shapes_halves_and_gradients(build):
    torch.manual_seed(0)
    model = build()
    x = torch.randn(3, 1, 28, 28)
    logits = model(x)
    assert logits.shape[0] == 3 and logits.shape[1] in (7, 10)
    torch.testing.assert_close(model.head(model.features(x)), logits)
    logits.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_norm_and_conv_are_pluggable():
    model = nets.lenet5(norm=lambda c: nn.GroupNorm(2, c))
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) == 2
    # A conv followed by a norm has no bias: the norm's shift does its job.
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))
