"""DenseNet: every layer sees the feature maps of all the layers before it in its block.

Huang, Liu, van der Maaten & Weinberger, *Densely Connected Convolutional Networks*, CVPR 2017
(https://arxiv.org/abs/1608.06993). Inside a dense block, layer ``l`` takes the concatenation
``[x_0, x_1, ..., x_{l-1}]`` of the block's input and all earlier outputs and adds ``k`` new
channels (the growth rate), so a block of ``L`` layers turns ``C`` channels into ``C + L k``.
Features are reused rather than recomputed, which makes DenseNets small for their accuracy.

DenseNet-121 is the paper's DenseNet-BC (Table 1): each dense layer is a "bottleneck"
BN-ReLU-conv1x1 (to ``bn_size * k = 4k`` channels) then BN-ReLU-conv3x3 (to ``k = 32``), and
each transition between blocks is BN-ReLU-conv1x1 halving the channels (compression 0.5) then 2x2
average pooling. Blocks hold ``(6, 12, 24, 16)`` layers: 1 + 2 * 58 + 3 + 1 = 121 layers.

Parameter names and shapes are torchvision's (``features.denseblock1.denselayer1.conv1.weight``, ...),
so ``model.load_state_dict(torchvision_model.state_dict())`` works. ``features`` is the
convolutional trunk, an ``nn.Sequential`` as in torchvision, so ``model.features(x)`` gives the last
feature map; it ends with the final ReLU (``relu5``, parameter-free), which torchvision applies in
``forward``. ``small_input=True`` (the course's option) replaces the 7x7/2 stem and its max-pool with
one 3x3/1 convolution, as the paper's CIFAR networks do, for 28x28 and 32x32 images.

Introduced in chapter 9, *DenseNet*.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor
from companion.models._input import CheckedSequential

#: Dense layers per block of DenseNet-121 (the paper's Table 1).
DENSENET121_BLOCKS = (6, 12, 24, 16)


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (to ``bn_size * growth_rate`` channels), BN-ReLU-conv3x3 (to ``growth_rate``).

    Args:
        in_channels: channels of the concatenated input ``[x_0, ..., x_{l-1}]``.
        growth_rate: ``k``, the channels it adds.
        bn_size: width of the 1x1 bottleneck, in multiples of ``k``.
        drop_rate: dropout after the 3x3 convolution (0: none).

    Shapes:
        ``(N, in_channels, H, W) -> (N, growth_rate, H, W)``: only the new features.
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # relu1 may work in place: norm1 made a new tensor, and x (the block's concatenation) is kept.
        out = self.conv1(self.relu1(self.norm1(x)))
        return self.dropout(self.conv2(self.relu2(self.norm2(out))))


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers, each fed the concatenation of the block's input and all earlier outputs.

    The layers are named ``denselayer1``, ``denselayer2``, ... (torchvision's names).

    Shapes:
        ``(N, C, H, W) -> (N, C + num_layers * growth_rate, H, W)``.
    """

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int = 4,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.values():
            x = torch.cat([x, layer(x)], dim=1)  # (N, C + (l + 1) * k, H, W)
        return x


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 to ``out_channels``, then 2x2 average pooling.

    Shapes:
        ``(N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(OrderedDict([
            ("norm", nn.BatchNorm2d(in_channels)),
            ("relu", nn.ReLU(inplace=True)),
            ("conv", nn.Conv2d(in_channels, out_channels, 1, bias=False)),
            ("pool", nn.AvgPool2d(2, stride=2)),
        ]))


def min_input_size(num_blocks: int, small_input: bool = False) -> int:
    """The smallest height/width a DenseNet with ``num_blocks`` dense blocks accepts.

    Each of the ``num_blocks - 1`` transitions halves the map (rounding down) and needs at least
    2x2 pixels, so the stem must output at least ``2 ** (num_blocks - 1)`` pixels. The 3x3/1 small
    stem keeps the size; the 7x7/2 convolution and the 3x3/2 max-pool (both padded) each halve it
    rounding up, ``ceil(H / 4)``, so ``H >= 4 * (2 ** (num_blocks - 1) - 1) + 1`` (29 for DenseNet-121).
    """
    need = 2 ** (num_blocks - 1)
    return need if small_input else 4 * (need - 1) + 1


class DenseNet(nn.Module):
    """DenseNet-BC: stem, dense blocks separated by transitions, BN-ReLU, global average pooling, classifier.

    Args:
        growth_rate: ``k``, channels each dense layer adds.
        block_config: dense layers per block, e.g. :data:`DENSENET121_BLOCKS`.
        num_init_features: channels of the stem convolution.
        bn_size: bottleneck width of the dense layers, in multiples of ``k``.
        drop_rate: dropout after each dense layer.
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
        small_input: a 3x3/1 stem without max-pool, for 28x28 and 32x32 images.

    ``features(x)``: ``(N, in_channels, H, W) -> (N, C, h, w)``; for DenseNet-121 ``C = 1024`` and
    ``h = ceil(H / 4) // 8`` (``H // 8`` with ``small_input``). ``head(z)``: ``(N, C, h, w) -> (N, num_classes)``.
    """

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = DENSENET121_BLOCKS,
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0.0, num_classes: int = 1000, *,
                 in_channels: int = 3, small_input: bool = False) -> None:
        super().__init__()
        for value, name in [(growth_rate, "growth_rate"), (num_init_features, "num_init_features"),
                            (bn_size, "bn_size"), (num_classes, "num_classes"), (in_channels, "in_channels")]:
            check_positive_int(value, name)
        if len(block_config) == 0:
            raise ValueError("block_config must list the layers of at least one dense block, got an empty sequence")
        for n in block_config:
            check_positive_int(n, "every entry of block_config")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be a probability in [0, 1), got {drop_rate!r}")

        if small_input:
            stem = [("conv0", nn.Conv2d(in_channels, num_init_features, 3, padding=1, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.Identity())]
        else:
            stem = [("conv0", nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(3, stride=2, padding=1))]
        layers: list[tuple[str, nn.Module]] = stem
        channels = num_init_features
        for i, n in enumerate(block_config):
            layers.append((f"denseblock{i + 1}", DenseBlock(n, channels, growth_rate, bn_size, drop_rate)))
            channels += n * growth_rate
            if i < len(block_config) - 1:
                layers.append((f"transition{i + 1}", Transition(channels, channels // 2)))  # compression 0.5
                channels //= 2
        layers += [("norm5", nn.BatchNorm2d(channels)), ("relu5", nn.ReLU(inplace=True))]
        self.out_channels = channels
        self.features = CheckedSequential(OrderedDict(layers), channels=in_channels,
                                          min_size=min_input_size(len(block_config), small_input),
                                          model=f"DenseNet(block_config={tuple(block_config)})")
        self.classifier = nn.Linear(channels, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def head(self, x: Tensor) -> Tensor:
        """Global average pooling and the classifier: ``(N, C, h, w) -> (N, num_classes)``."""
        check_tensor(x, "x", ndim=4, shape_hint=f"(N, {self.out_channels}, h, w)", floating=True)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)  # (N, C)
        return self.classifier(x)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W) -> (N, num_classes)`` logits."""
        return self.head(self.features(x))


def densenet121(num_classes: int = 1000, *, in_channels: int = 3, small_input: bool = False) -> DenseNet:
    """DenseNet-121 (k = 32, blocks ``(6, 12, 24, 16)``); 7,978,856 parameters for 1000 classes."""
    return DenseNet(32, DENSENET121_BLOCKS, 64, num_classes=num_classes, in_channels=in_channels,
                    small_input=small_input)


def feature_reuse(block: DenseBlock, after: Transition | nn.Linear | None = None) -> Tensor:
    """How strongly each layer of a dense block uses each of its sources (the paper's Figure 5).

    Layer ``l`` reads ``[x_0, x_1, ..., x_{l-1}]``: the block's input and the outputs of layers
    ``1 .. l-1``. Its first convolution's weights split along the input channels into one slice per
    source; the mean absolute weight of a slice measures how much the layer draws on that source.

    Args:
        block: a trained (or untrained) :class:`DenseBlock`.
        after: the layer that reads the block's whole output, ``[x_0, ..., x_L]``: the
            :class:`Transition` that follows it, or, after the last block, the classifier
            (``nn.Linear``; the final BN-ReLU and global pooling keep the channels in order). Its
            weights get one more row, as in the paper's figure.

    Returns:
        ``Tensor[L, L]`` (``Tensor[L + 1, L + 1]`` with ``after``): entry ``[l - 1, s]`` is layer
        ``l``'s mean ``|w|`` on source ``s`` (``s = 0``: the block's input), and NaN where ``s >= l``
        (a layer cannot read later ones); the last row, with ``after``, covers all ``L + 1`` sources.

    Raises:
        TypeError: ``block`` is not a :class:`DenseBlock`, or ``after`` is neither a
            :class:`Transition` nor an ``nn.Linear``.
        ValueError: ``after`` does not take the block's ``C + L k`` output channels.
    """
    if not isinstance(block, DenseBlock):
        raise TypeError(f"block must be a DenseBlock, got {type(block).__name__}")
    layers = list(block.values())
    input_channels = layers[0].conv1.in_channels
    growth = layers[0].conv2.out_channels
    rows = len(layers) + (after is not None)
    reuse = torch.full((rows, rows), float("nan"))
    weights = [layer.conv1.weight for layer in layers]  # layer i + 1: (bn_size * k, C + i * k, 1, 1)
    if after is not None:
        if isinstance(after, Transition):
            weight = after.conv.weight  # (C_out, C + L k, 1, 1)
        elif isinstance(after, nn.Linear):
            weight = after.weight  # (num_classes, C + L k)
        else:
            raise TypeError(f"after must be the Transition or the nn.Linear classifier that follows the block, "
                            f"got {type(after).__name__}")
        block_out = input_channels + len(layers) * growth
        if weight.shape[1] != block_out:
            raise ValueError(f"after must read the block's {block_out} output channels "
                             f"({input_channels} + {len(layers)} x {growth}), but it takes {weight.shape[1]}")
        weights.append(weight)
    for i, weight in enumerate(weights):  # row i reads the block input and layers 1 .. i
        w = weight.detach().abs()
        reuse[i, 0] = w[:, :input_channels].mean()
        for s in range(1, i + 1):
            start = input_channels + (s - 1) * growth
            reuse[i, s] = w[:, start:start + growth].mean()
    return reuse


def _source_slices(block: DenseBlock) -> list[slice]:
    """The input channels of each source of a block: ``x_0`` (the block's input), then layers ``1 .. L``."""
    layers = list(block.values())
    start, growth = layers[0].conv1.in_channels, layers[0].conv2.out_channels
    return [slice(0, start)] + [slice(start + s * growth, start + (s + 1) * growth) for s in range(len(layers))]


@torch.no_grad()
def reuse_by_ablation(model: DenseNet, block: int, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Feature reuse measured by ablation: what cutting one connection of a dense block costs on held-out data.

    For every target (each dense layer of block ``block``, then the layer that reads the whole block:
    the next transition, or the classifier after the last block) and every source it reads (the
    block's input ``x_0`` and the earlier layers' outputs), the source's channels are set to zero at
    the input of the target's first convolution (after the target's own BN-ReLU; for the classifier,
    after the final BN-ReLU and pooling), which is the same as zeroing that slice of the target's
    weight. The rest of the network is unchanged; the drop in accuracy and the rise of the
    cross-entropy over ``images`` say how much the trained network relies on that connection.
    Unlike ``feature_reuse`` (the mean ``|w|`` of each slice, the paper's Figure 5), this measures
    what the connection does, not how large its weights are.

    Args:
        model: a trained :class:`DenseNet`; it is evaluated in ``eval()`` mode and left in its mode.
        block: which dense block, 1-based (``denseblock1`` is 1).
        images: ``Tensor[N, C, H, W]`` held-out images.
        labels: ``Tensor[N]`` their classes.

    Returns:
        ``(accuracy_drop, loss_increase)``, each ``Tensor[L + 1, L + 1]``: entry ``[t, s]`` for target
        ``t`` (``0 .. L - 1`` the dense layers, ``L`` the transition or classifier) and source ``s``
        (``0``: the block's input, ``s``: layer ``s``); NaN where ``s > t`` (no connection). Accuracy
        in fractions (0.05 is five points), loss in nats per image, both against the intact model.

    Raises:
        ValueError: ``block`` is not one of the model's blocks, or ``images`` and ``labels`` differ in length.
    """
    if not isinstance(model, DenseNet):
        raise TypeError(f"model must be a DenseNet, got {type(model).__name__}")
    names = [name for name in model.features._modules if name.startswith("denseblock")]
    if block not in range(1, len(names) + 1):
        raise ValueError(f"block must be 1 .. {len(names)} (the model's dense blocks), got {block!r}")
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length, got {len(images)} and {len(labels)}")
    dense = model.features._modules[f"denseblock{block}"]
    assert isinstance(dense, DenseBlock)
    after = model.classifier if block == len(names) else model.features._modules[f"transition{block}"]
    targets = [layer.conv1.weight for layer in dense.values()]  # layer l: (bn_size * k, C + (l - 1) k, 1, 1)
    targets.append(after.weight if isinstance(after, nn.Linear) else after.conv.weight)  # (out, C + L k, ...)
    sources = _source_slices(dense)

    was_training = model.training
    model.eval()
    children = list(model.features._modules.values())
    start = list(model.features._modules).index(f"denseblock{block}")
    layers = list(dense.values())
    # The network up to the block, and the block up to each target, do not change: run them once.
    # inputs[t]: the concatenation [x_0, ..., x_t] that target t reads, (N, C + t k, h, w)
    z = images
    for module in children[:start]:
        z = module(z)
    inputs = [z]
    for layer in layers:
        inputs.append(torch.cat([inputs[-1], layer(inputs[-1])], dim=1))

    def evaluate(t: int) -> tuple[float, float]:
        """Accuracy and loss, running the network from target ``t`` (its weights as they are now)."""
        out = inputs[t]
        for layer in layers[t:]:
            out = torch.cat([out, layer(out)], dim=1)  # (N, C + (l + 1) k, h, w)
        for module in children[start + 1:]:
            out = module(out)
        logits = model.head(out)  # (N, num_classes)
        loss = nn.functional.cross_entropy(logits, labels)
        return float((logits.argmax(1) == labels).float().mean()), float(loss)

    base_acc, base_loss = evaluate(len(layers))
    rows = len(targets)
    accuracy_drop = torch.full((rows, rows), float("nan"))
    loss_increase = torch.full((rows, rows), float("nan"))
    try:
        for t, weight in enumerate(targets):
            for s in range(t + 1):  # target t reads x_0 and layers 1 .. t
                kept = weight[:, sources[s]].clone()
                weight[:, sources[s]] = 0.0  # the source's channels no longer reach the target
                try:
                    acc, loss = evaluate(t)
                finally:
                    weight[:, sources[s]] = kept
                accuracy_drop[t, s], loss_increase[t, s] = base_acc - acc, loss - base_loss
    finally:
        model.train(was_training)
    return accuracy_drop, loss_increase


__all__ = ["DENSENET121_BLOCKS", "DenseBlock", "DenseLayer", "DenseNet", "Transition", "densenet121",
           "feature_reuse", "min_input_size", "reuse_by_ablation"]
