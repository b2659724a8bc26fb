"""DCGAN: the generator and discriminator of Radford, Metz and Chintala, 2016.

*Unsupervised Representation Learning with Deep Convolutional Generative Adversarial Networks*,
https://arxiv.org/abs/1511.06434, as built by PyTorch's DCGAN example (64x64 images). The
paper's rules: strided (transposed) convolutions instead of pooling, batch norm in both networks
except the generator's output and the discriminator's input layer, no fully connected hidden
layers, ReLU in the generator with tanh at its output, LeakyReLU (slope 0.2) in the discriminator,
weights drawn from N(0, 0.02) (:func:`dcgan_init`).

Deviation: the discriminator returns logits ``(N,)``, without the example's final sigmoid; the
loss is ``F.binary_cross_entropy_with_logits``, which is the same thing computed stably.

Introduced in chapter 22, *GANs*.
"""

from __future__ import annotations

from torch import Tensor, nn

from companion.models._input import check_images
from companion.models.attention import SelfAttention2d

# Each layer as (in channels, out channels, stride, padding) in units of the width: 4x4 kernels throughout.
GENERATOR = ((None, 8, 1, 0), (8, 4, 2, 1), (4, 2, 2, 1), (2, 1, 2, 1))  # 1 -> 4 -> 8 -> 16 -> 32 (x ngf)
DISCRIMINATOR = ((1, 2), (2, 4), (4, 8))  # after the first 64 -> 32 layer: 32 -> 16 -> 8 -> 4 (x ndf)


class DCGANGenerator(nn.Module):
    """Noise ``(N, nz)`` or ``(N, nz, 1, 1)`` -> images ``(N, nc, 64, 64)`` in [-1, 1]; 3,576,704 parameters by default."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.nz = nz
        layers: list[nn.Module] = []
        for c_in, c_out, stride, padding in GENERATOR:
            layers += [nn.ConvTranspose2d(nz if c_in is None else ngf * c_in, ngf * c_out, 4, stride, padding,
                                          bias=False),
                       nn.BatchNorm2d(ngf * c_out), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]  # 32 -> 64, no batch norm
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        if not isinstance(z, Tensor) or not ((z.dim() == 2 and z.shape[1] == self.nz) or
                                             (z.dim() == 4 and tuple(z.shape[1:]) == (self.nz, 1, 1))):
            raise ValueError(f"DCGANGenerator expects noise (N, {self.nz}) or (N, {self.nz}, 1, 1), "
                             f"got {tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}")
        return self.main(z.reshape(len(z), self.nz, 1, 1))  # (N, nc, 64, 64)


class DCGANDiscriminator(nn.Module):
    """Images ``(N, nc, 64, 64)`` -> real/fake logits ``(N,)``; 2,765,568 parameters by default."""

    def __init__(self, nc: int = 3, ndf: int = 64) -> None:
        super().__init__()
        self.nc = nc
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in DISCRIMINATOR:
            layers += [nn.Conv2d(ndf * c_in, ndf * c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * c_out),
                       nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False))  # 4x4 -> 1x1: one logit
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, channels=self.nc, model="DCGANDiscriminator")
        if tuple(x.shape[-2:]) != (64, 64):
            raise ValueError(f"DCGANDiscriminator expects 64x64 images (N, {self.nc}, 64, 64), got {tuple(x.shape)}")
        return self.main(x).flatten()  # (N,)


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialisation: convolution weights ~ N(0, 0.02), batch norm scale ~ N(1, 0.02), shift 0.

    Use as ``model.apply(dcgan_init)``.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# --- small variants for 28x28 images (Fashion-MNIST), trained in chapter 22 --------------------------

class SmallDCGANGenerator(nn.Module):
    """The DCGAN rules at 28x28: noise ``(N, nz)`` or ``(N, nz, 1, 1)`` -> images ``(N, nc, 28, 28)`` in [-1, 1].

    Layers: a 7x7 transposed convolution ``1 -> 7`` (``2 * ngf`` channels), a 4x4 stride-2 one ``7 -> 14``
    (``ngf``), both with batch norm and ReLU, then a 4x4 stride-2 one ``14 -> 28`` with tanh and no batch
    norm. With ``attention=True`` a SAGAN self-attention layer (:class:`companion.models.attention.
    SelfAttention2d`, Zhang et al., 2019) reads the ``ngf x 14 x 14`` features before the last layer; it
    starts as the identity (its ``gamma`` is 0).
    """

    def __init__(self, nz: int = 32, ngf: int = 32, nc: int = 1, attention: bool = False) -> None:
        super().__init__()
        self.nz = nz
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, 2 * ngf, 7, 1, 0, bias=False), nn.BatchNorm2d(2 * ngf), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(inplace=True)]
        if attention:
            layers.append(SelfAttention2d(ngf))  # (N, ngf, 14, 14) -> same shape
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]  # 14 -> 28
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        if not isinstance(z, Tensor) or not ((z.dim() == 2 and z.shape[1] == self.nz) or
                                             (z.dim() == 4 and tuple(z.shape[1:]) == (self.nz, 1, 1))):
            raise ValueError(f"SmallDCGANGenerator expects noise (N, {self.nz}) or (N, {self.nz}, 1, 1), "
                             f"got {tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}")
        return self.main(z.reshape(len(z), self.nz, 1, 1))  # (N, nc, 28, 28)


class SmallDCGANDiscriminator(nn.Module):
    """The DCGAN rules at 28x28: images ``(N, nc, 28, 28)`` -> real/fake logits ``(N,)``.

    Layers: 4x4 stride-2 convolutions ``28 -> 14`` (``ndf`` channels, no batch norm at the input) and
    ``14 -> 7`` (``2 * ndf``, batch norm), LeakyReLU 0.2 after both, and a 7x7 convolution to one logit.
    """

    def __init__(self, nc: int = 1, ndf: int = 32) -> None:
        super().__init__()
        self.nc = nc
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ndf), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * ndf, 1, 7, 1, 0, bias=False))  # 7x7 -> 1x1: one logit

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, channels=self.nc, model="SmallDCGANDiscriminator")
        if tuple(x.shape[-2:]) != (28, 28):
            raise ValueError(f"SmallDCGANDiscriminator expects 28x28 images (N, {self.nc}, 28, 28), "
                             f"got {tuple(x.shape)}")
        return self.main(x).flatten()  # (N,)
