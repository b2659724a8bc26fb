"""DCGAN: the parameter counts of PyTorch's DCGAN example, shapes, gradients, input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from companion.models.gan import DCGANDiscriminator, DCGANGenerator, dcgan_init


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def example_generator(nz=100, ngf=64, nc=3) -> nn.Sequential:
    """The generator of PyTorch's DCGAN example, written out layer by layer."""
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())


def example_discriminator(nc=3, ndf=64) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False))


def test_parameter_counts():
    assert count(DCGANGenerator()) == 3_576_704
    assert count(DCGANDiscriminator()) == 2_765_568


@pytest.mark.parametrize("nz,ngf,ndf,nc", [(100, 64, 64, 3), (16, 8, 4, 1)])
def test_same_function_as_the_example(nz, ngf, ndf, nc):
    torch.manual_seed(0)
    ours_g, ref_g = DCGANGenerator(nz, ngf, nc), example_generator(nz, ngf, nc)
    ours_d, ref_d = DCGANDiscriminator(nc, ndf), example_discriminator(nc, ndf)
    ours_g.main.load_state_dict(ref_g.state_dict())  # same layers, same order
    ours_d.main.load_state_dict(ref_d.state_dict())
    z = torch.randn(3, nz)
    images = ours_g(z)
    assert images.shape == (3, nc, 64, 64) and images.abs().max() <= 1
    torch.testing.assert_close(images, ref_g(z[:, :, None, None]))
    torch.testing.assert_close(ours_g(z[:, :, None, None]), images)
    logits = ours_d(images)
    assert logits.shape == (3,)
    torch.testing.assert_close(logits, ref_d(images).flatten())
    logits.sum().backward()
    assert all(p.grad is not None for p in ours_g.parameters()) and all(p.grad is not None for p in ours_d.parameters())


def test_dcgan_init():
    torch.manual_seed(0)
    generator = DCGANGenerator(ngf=32)
    generator.apply(dcgan_init)
    weights = torch.cat([m.weight.detach().flatten() for m in generator.modules()
                         if isinstance(m, nn.ConvTranspose2d)])
    assert abs(float(weights.std()) - 0.02) < 0.002 and abs(float(weights.mean())) < 0.001
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(float(m.bias.detach().abs().max()) == 0 for m in norms)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"noise \(N, 100\) or \(N, 100, 1, 1\), got \(2, 99\)"):
        DCGANGenerator()(torch.randn(2, 99))
    with pytest.raises(ValueError, match=r"64x64 images \(N, 3, 64, 64\), got \(2, 3, 32, 32\)"):
        DCGANDiscriminator()(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="expects 3 input channels"):
        DCGANDiscriminator()(torch.randn(2, 1, 64, 64))
