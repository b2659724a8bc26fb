"""EfficientNet-B0 against torchvision: names, shapes, parameter count, outputs; MBConv and compound scaling."""

from __future__ import annotations

import pytest
import torch
import torchvision

from companion.models.efficientnet import (EFFICIENTNET_B0, MBConv, StochasticDepth, compound_scaling,
                                           efficientnet_b0, scaled_config)


def test_torchvisions_state_dict_loads_and_gives_equal_outputs():
    torch.manual_seed(0)
    ours, theirs = efficientnet_b0(), torchvision.models.efficientnet_b0()
    assert sum(p.numel() for p in ours.parameters()) == 5_288_548
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 96, 128)
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.head(ours.features(x)), ours(x))


def test_other_class_counts_and_gradients():
    model = efficientnet_b0(num_classes=7, in_channels=1)
    out = model(torch.randn(3, 1, 64, 64))
    assert out.shape == (3, 7)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_mbconv_shortcut_and_stochastic_depth():
    block = MBConv(16, 16, expand_ratio=6, kernel_size=5, stride=1, drop_prob=0.5)
    assert block.use_residual and not MBConv(16, 24, 6, 3, 1).use_residual and not MBConv(16, 16, 6, 3, 2).use_residual
    x = torch.randn(64, 16, 8, 8)
    block.eval()
    torch.testing.assert_close(block(x), x + block.block(x))  # eval: the whole branch, always
    drop = StochasticDepth(0.5).train()
    torch.manual_seed(0)
    kept = drop(torch.ones(4000, 1, 1, 1)).flatten()
    assert set(kept.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1 / (1 - p)
    assert abs(float(kept.mean()) - 1.0) < 0.08  # the expectation is unchanged


def test_compound_scaling():
    depth, width, resolution = compound_scaling(1)
    assert (depth, width, resolution) == pytest.approx((1.2, 1.1, 1.15))
    assert depth * width**2 * resolution**2 == pytest.approx(1.92, abs=0.01)  # about 2: FLOPs double per step
    b1 = scaled_config(1.1, 1.0)  # EfficientNet-B1's depth: ceil(n * 1.1) blocks per stage
    assert [n for *_, n in b1] == [2, 3, 3, 4, 4, 5, 2]
    assert [c for *_, c, _ in scaled_config(1.0, 1.1)] == [16, 24, 48, 88, 120, 208, 352]  # B2-like widths
    assert scaled_config(1.0, 1.0) == list(EFFICIENTNET_B0)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="EfficientNet expects 3 input channels"):
        efficientnet_b0()(torch.randn(1, 1, 32, 32))
