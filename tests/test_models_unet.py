"""U-Net: the paper's parameter count, shapes, gradients, the skip ablation and its input checks."""

from __future__ import annotations

import pytest
import torch

from companion.models.unet import UNet


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_papers_parameter_count():
    assert count(UNet(1, 2, batch_norm=False)) == 31_030_658


@pytest.mark.parametrize("depth,batch_norm,skip", [(1, True, True), (2, False, True), (3, True, False)])
def test_output_shape_and_gradients(depth, batch_norm, skip):
    torch.manual_seed(0)
    model = UNet(3, 5, base_channels=4, depth=depth, batch_norm=batch_norm, skip=skip)
    x = torch.randn(2, 3, 16, 24)
    out = model(x)
    assert out.shape == (2, 5, 16, 24) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_skip_connections_carry_the_encoders_detail():
    torch.manual_seed(0)
    with_skip, without = UNet(1, 1, base_channels=4, depth=2), UNet(1, 1, base_channels=4, depth=2, skip=False)
    # Without skips the decoder's first layer sees only the upsampled context: fewer input channels.
    assert with_skip.up[-1].conv[0].in_channels == 8 and without.up[-1].conv[0].in_channels == 4
    assert count(without) < count(with_skip)
    # A change of one input pixel reaches the output through the full-resolution skip path as well.
    with_skip.eval()
    x = torch.randn(1, 1, 8, 8, requires_grad=True)
    with_skip(x)[0, 0, 3, 3].backward()
    assert x.grad[0, 0, 3, 3] != 0


def test_bad_input_is_named():
    model = UNet(1, 2, base_channels=4, depth=3)
    with pytest.raises(ValueError, match="UNet expects 1 input channel"):
        model(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"divisible by 8, got \(12, 16\)"):
        model(torch.randn(1, 1, 12, 16))
    with pytest.raises(ValueError, match="depth must be a positive int"):
        UNet(1, 2, depth=0)
