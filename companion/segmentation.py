"""Semantic segmentation: masks from the scenes, FCN's pieces, dilated stacks, and training a segmenter.

A segmenter labels every pixel. The pieces here go with the papers chapter 17 follows:

* **FCN** (Long, Shelhamer and Darrell, 2015, *Fully Convolutional Networks for Semantic
  Segmentation*, https://arxiv.org/abs/1411.4038): a classifier's fully connected layers become
  convolutions (:func:`convolutional_classifier`), so that it outputs a coarse map of class scores,
  which a transposed convolution initialised as bilinear interpolation
  (:func:`bilinear_upsampling_weight`, the paper's Section 3.3) brings back to the image's size.
* **Dilated convolutions** (Yu and Koltun, 2016, *Multi-Scale Context Aggregation by Dilated
  Convolutions*, https://arxiv.org/abs/1511.07122): :func:`dilated_stack` keeps the resolution
  while the receptive field grows (``companion.pool.receptive_field`` computes it), and
  :func:`reached_offsets` lists the input pixels a unit actually reads: with equal rates the field
  has holes, the *gridding* effect of Wang et al., 2018, *Understanding Convolution for Semantic
  Segmentation*, https://arxiv.org/abs/1702.08502.
* **U-Net** training on the synthetic scenes of :mod:`companion.scenes` (the network is
  :class:`companion.models.unet.UNet`): :func:`foreground_masks`, :func:`fit_segmentation` and
  :func:`predict_masks`; ``companion.metrics.dice_score`` measures the result.

Introduced in chapter 17, *Segmentation*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import check_tensor
from companion.scenes import Scene


def foreground_masks(scenes: Sequence[Scene]) -> tuple[Tensor, Tensor]:
    """The scenes as a segmentation set: every object's pixels are foreground, the photograph background.

    Args:
        scenes: from :func:`companion.scenes.detection_scenes`, all of one size.

    Returns:
        ``images`` float32 ``(N, 1, H, W)`` and ``masks`` bool ``(N, H, W)``, the union of each
        scene's object masks.

    Raises:
        ValueError: no scenes, or a scene without ``masks``.
    """
    if len(scenes) == 0:
        raise ValueError("scenes is empty: pass the scenes of companion.scenes.detection_scenes")
    if any("masks" not in target for _, target in scenes):
        raise ValueError("every scene's target needs 'masks' (K, H, W), as detection_scenes makes them")
    images = torch.stack([image for image, _ in scenes])  # (N, 1, H, W)
    masks = torch.stack([target["masks"].any(dim=0) for _, target in scenes])  # (K, H, W) -> (H, W) each
    return images, masks


def convolutional_classifier(features: nn.Module, head: nn.Sequential, feature_size: int) -> nn.Sequential:
    """A classifier made fully convolutional: its linear layers rewritten as convolutions (FCN, Section 3.1).

    The first linear layer reads the flattened ``(C, s, s)`` map of a ``feature_size`` ``s``, so its
    weight ``(out, C * s * s)`` reshaped to ``(out, C, s, s)`` is an ``s x s`` convolution; the later
    linear layers become ``1 x 1`` convolutions. On a larger image the result is a map of class
    scores, one per ``s x s`` window of the feature map. The weights are copies.

    Args:
        features: the classifier's convolutional part (e.g. ``model.backbone`` of
            :func:`companion.nets.fashion_cnn`).
        head: ``Flatten`` followed by ``Linear`` layers and activations.
        feature_size: the side of the feature map the first linear layer was trained on.

    Returns:
        ``features`` followed by the convolutions: ``(N, C_in, H, W) -> (N, K, h - s + 1, w - s + 1)``
        for a feature map of ``h x w``.

    Raises:
        ValueError: ``head`` is not ``Flatten`` then layers of which only ``Linear`` ones have weights.
    """
    layers = list(head)
    if not layers or not isinstance(layers[0], nn.Flatten):
        raise ValueError("head must start with nn.Flatten, then Linear layers and activations")
    converted: list[nn.Module] = []
    first = True
    for layer in layers[1:]:
        if isinstance(layer, nn.Linear):
            side = feature_size if first else 1
            c_in, rest = divmod(layer.in_features, side * side)
            if rest:
                raise ValueError(f"the first Linear layer reads {layer.in_features} values, not C * "
                                 f"{feature_size} * {feature_size}: is feature_size right?")
            conv = nn.Conv2d(c_in, layer.out_features, side, device=layer.weight.device, dtype=layer.weight.dtype)
            with torch.no_grad():
                # Flatten ordered the inputs as (C, s, s): each row of the weight is one s x s kernel.
                conv.weight.copy_(layer.weight.reshape(conv.weight.shape))  # (out, C*s*s) -> (out, C, s, s)
                conv.bias.copy_(layer.bias)
            converted.append(conv)
            first = False
        elif any(True for _ in layer.parameters()):
            raise ValueError(f"head may hold Linear layers and parameter-free layers only, got {type(layer).__name__}")
        else:
            converted.append(layer)
    return nn.Sequential(features, *converted)


def bilinear_upsampling_weight(channels: int, factor: int) -> Tensor:
    """The weight that makes ``ConvTranspose2d`` a bilinear upsampling by ``factor``, channel by channel (FCN's initialisation).

    With ``kernel_size = 2 * factor - factor % 2``, ``stride = factor`` and
    ``padding = (kernel_size - factor) // 2``, the transposed convolution maps ``n`` pixels to
    ``factor * n`` and equals ``F.interpolate(..., mode="bilinear", align_corners=False)`` except in
    the outermost pixels, where interpolation repeats the border and the transposed convolution
    fades it towards zero.

    Args:
        channels: input and output channels; each output channel reads only its own input channel.
        factor: the upsampling factor, >= 1.

    Returns:
        Tensor[channels, channels, k, k], the kernel ``(1 - |i - c| / factor)`` outer itself on the
        diagonal ``[c, c]``, zero elsewhere.
    """
    for name, value in (("channels", channels), ("factor", factor)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    size = 2 * factor - factor % 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor  # (k,)
    kernel = taps[:, None] * taps[None, :]  # (k, 1) * (1, k) -> (k, k)
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = kernel
    return weight


def dilated_stack(channels: int, dilations: Sequence[int], kernel_size: int = 3, relu: bool = True) -> nn.Sequential:
    """Convolutions with the given dilation rates, padded to keep the size: ``(N, C, H, W) -> (N, C, H, W)``.

    Yu and Koltun's context module uses rates ``1, 1, 2, 4, 8, 16, 1``; with every rate equal the
    stack reads a grid of pixels with holes (see :func:`reached_offsets`).

    Args:
        channels: channels in and out of every layer.
        dilations: one rate per layer.
        kernel_size: odd kernel side.
        relu: a ReLU after every convolution but the last.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int (so that padding keeps the size), got {kernel_size!r}")
    if len(dilations) == 0 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
        raise ValueError(f"dilations must be a non-empty sequence of ints >= 1, got {dilations!r}")
    layers: list[nn.Module] = []
    for i, d in enumerate(dilations):
        layers.append(nn.Conv2d(channels, channels, kernel_size, padding=d * (kernel_size - 1) // 2, dilation=d))
        if relu and i < len(dilations) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def reached_offsets(dilations: Sequence[int], kernel_size: int = 3) -> Tensor:
    """Which input pixels, along one axis, one unit of a stack of dilated convolutions reads.

    Layer ``l`` reads offsets ``0, d_l, 2 d_l, ..., (k - 1) d_l`` of the layer below, so the stack
    reads every sum of one offset per layer. Along both axes the pattern is the outer product of
    this one with itself. With every rate equal to ``d > 1`` only multiples of ``d`` are reached:
    the gridding effect.

    Args:
        dilations: one rate per layer (stride 1).
        kernel_size: the kernel side of every layer.

    Returns:
        Tensor[r] bool, ``r = 1 + (k - 1) * sum(dilations)`` the receptive field's size: entry ``i``
        is True when input pixel ``i`` (counted from the field's first pixel) is read.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive int, got {kernel_size!r}")
    if len(dilations) == 0 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
        raise ValueError(f"dilations must be a non-empty sequence of ints >= 1, got {dilations!r}")
    reached = torch.ones(1, dtype=torch.bool)  # one pixel reads itself
    for d in dilations:
        grown = torch.zeros(len(reached) + (kernel_size - 1) * d, dtype=torch.bool)
        for tap in range(kernel_size):
            grown[tap * d: tap * d + len(reached)] |= reached  # shift the pattern by each tap's offset
        reached = grown
    return reached


def fit_segmentation(model: nn.Module, images: Tensor, masks: Tensor, *, epochs: int, batch_size: int = 16,
                     lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Train a one-channel segmenter with the binary cross-entropy on its logits (Adam), on the CPU or GPU it is on.

    Args:
        model: ``(N, C, H, W) -> (N, 1, H, W)`` logits of the foreground.
        images (Tensor[N, C, H, W]): float inputs.
        masks (Tensor[N, H, W]): bool (or 0/1) foreground masks.
        epochs, batch_size, lr: the budget; ``seed`` draws the order of the batches.

    Returns:
        The mean training loss of each epoch.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_tensor(masks, "masks", ndim=3, shape_hint="(N, H, W)")
    if masks.shape != images.shape[:1] + images.shape[2:]:
        raise ValueError(f"masks {tuple(masks.shape)} must be (N, H, W) of images {tuple(images.shape)}")
    device = next(model.parameters()).device
    images, targets = images.to(device), masks.to(device).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(images), batch_size):
            batch = order[start:start + batch_size]
            logits = model(images[batch])[:, 0]  # (B, 1, H, W) -> (B, H, W)
            loss = F.binary_cross_entropy_with_logits(logits, targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(images))
    model.eval()
    return losses


@torch.no_grad()
def predict_masks(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """The foreground masks a one-channel segmenter predicts: ``logit > 0``, i.e. probability > 0.5.

    Args:
        model: ``(N, C, H, W) -> (N, 1, H, W)`` logits; it is put in eval mode.
        images (Tensor[N, C, H, W]): float inputs.

    Returns:
        Tensor[N, H, W] bool, on the CPU.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    model.eval()
    device = next(model.parameters()).device
    found = [model(images[i:i + batch_size].to(device))[:, 0] > 0 for i in range(0, len(images), batch_size)]
    return torch.cat(found).cpu()  # (N, H, W)


__all__ = ["bilinear_upsampling_weight", "convolutional_classifier", "dilated_stack", "fit_segmentation",
           "foreground_masks", "predict_masks", "reached_offsets"]
