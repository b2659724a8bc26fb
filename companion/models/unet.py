"""U-Net: an encoder that halves the resolution, a decoder that doubles it, and skip connections.

Ronneberger, Fischer and Brox, 2015, *U-Net: Convolutional Networks for Biomedical Image
Segmentation*, https://arxiv.org/abs/1505.04597. Each level of the contracting path is two 3x3
convolutions with ReLU, then a 2x2 max pool; the channels double at each level. The expanding path
upsamples with a 2x2 transposed convolution that halves the channels, concatenates the encoder's
feature map of the same level (the skip connection: the detail that pooling threw away) and applies
two 3x3 convolutions; a 1x1 convolution gives one score per class and pixel.

Deviations from the paper, as in most implementations: the 3x3 convolutions are padded, so the
output has the input's size (the paper's unpadded ones shrink a 572x572 tile to 388x388 and need
the encoder's maps cropped), and ``batch_norm=True`` (the default) adds batch normalisation after
each convolution (the paper predates it). ``UNet(1, 2, batch_norm=False)`` has exactly the paper's
31,030,658 parameters. ``skip=False`` drops the skip connections (chapter 17's ablation).

Introduced in chapter 17, *Segmentation*; the denoiser of chapter 24 builds on it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from companion.models._input import check_images


class DoubleConv(nn.Sequential):
    """Two padded 3x3 convolutions, each followed by (batch norm and) ReLU: ``(N, c_in, H, W) -> (N, c_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Up(nn.Module):
    """Upsample by 2 with a 2x2 transposed convolution (halving the channels), concatenate the skip, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True, skip: bool = True) -> None:
        super().__init__()
        self.skip = skip
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels if skip else in_channels // 2, out_channels, batch_norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)  # (N, C/2, 2H, 2W)
        if self.skip:
            x = torch.cat([skip, x], dim=1)  # (N, C/2 + C/2, 2H, 2W): the encoder's detail next to the context
        return self.conv(x)


class UNet(nn.Module):
    """U-Net for semantic segmentation: ``(N, in_channels, H, W) -> (N, num_classes, H, W)`` scores.

    Args:
        in_channels: channels of the input image.
        num_classes: output channels, one score map per class.
        base_channels: channels of the first level; level ``i`` has ``base_channels * 2**i``.
        depth: number of poolings (and of upsamplings); H and W must be divisible by ``2**depth``.
        batch_norm: batch normalisation after every 3x3 convolution.
        skip: concatenate the encoder's feature maps in the decoder (the U-Net); ``False`` gives a
            plain encoder-decoder of the same depth.
    """

    def __init__(self, in_channels: int, num_classes: int, base_channels: int = 64, depth: int = 4,
                 batch_norm: bool = True, skip: bool = True) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                            ("base_channels", base_channels), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_channels, self.depth = in_channels, depth
        widths = [base_channels * 2**i for i in range(depth + 1)]  # e.g. 64, 128, 256, 512, 1024
        self.down = nn.ModuleList([DoubleConv(in_channels, widths[0], batch_norm)] +
                                  [DoubleConv(widths[i], widths[i + 1], batch_norm) for i in range(depth)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([Up(widths[i + 1], widths[i], batch_norm, skip) for i in reversed(range(depth))])
        self.classifier = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, channels=self.in_channels, model="UNet")
        multiple = 2**self.depth
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(f"UNet with depth {self.depth} needs H and W divisible by {multiple}, "
                             f"got {tuple(x.shape[-2:])}: pad or crop the image")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))  # level i: (N, widths[i], H / 2**i, W / 2**i)
            skips.append(x)
        x = skips.pop()  # the bottleneck, (N, widths[depth], H / 2**depth, W / 2**depth)
        for block in self.up:
            x = block(x, skips.pop())  # back up one level
        return self.classifier(x)  # (N, num_classes, H, W)
