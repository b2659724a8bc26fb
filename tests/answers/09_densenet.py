"""Answers to exercise 09_densenet: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torchvision
from torch import nn

import companion.count
import companion.models.densenet


def predicted_channels(*, mistake=None):
    block1 = (0 if mistake == "input lost" else 24) + 5 * 12
    after = block1 if mistake == "no compression" else block1 // 2
    reads = after + {"own output": 3 * 12, "no input": 2 * 12 - after}.get(mistake, 2 * 12)
    out = after + 4 * 12
    out = {"compress last": out // 2, "block output": 4 * 12}.get(mistake, out)
    return after, reads, out


def predicted_parameters(*, mistake=None):
    m, k, wide = 66, 12, 48
    if mistake == "wrong m":
        m = 42 + 3 * k
    bn = {"no bn": 0, "running stats": 4}.get(mistake, 2)
    bias = mistake == "bias"
    kernel = 1 if mistake == "kernel" else 9
    layer = bn * m + m * wide + bias * wide + bn * wide + wide * k * kernel + bias * k
    if mistake == "no bottleneck":
        layer = 2 * m + m * k * 9
    transition = 2 * 84 + 84 * (84 if mistake == "no compression" else 42)
    return layer, transition


def dense_layer(in_channels, growth_rate, bn_size=4, *, mistake=None):
    class DenseLayer(nn.Module):
        def __init__(self):
            super().__init__()
            wide = bn_size * growth_rate
            self.norm1 = nn.BatchNorm2d(in_channels)
            self.conv1 = nn.Conv2d(in_channels, wide, 1, bias=False)
            self.norm2 = nn.BatchNorm2d(wide)
            self.conv2 = nn.Conv2d(wide, growth_rate, 3, padding=0 if mistake == "no padding" else 1, bias=False)

        def bn_relu(self, norm, t, relu=True):
            if not relu:
                return norm(t)
            return norm(torch.relu(t)) if mistake == "relu first" else torch.relu(norm(t))

        def forward(self, x):
            out = self.conv1(self.bn_relu(self.norm1, x))
            out = self.conv2(self.bn_relu(self.norm2, out, relu=mistake != "second relu"))
            if mistake == "final relu":
                out = torch.relu(out)
            return torch.cat([x, out], 1) if mistake == "concatenate" else out

    return DenseLayer()


def dense_block(num_layers, in_channels, growth_rate, bn_size=4, *, mistake=None):
    class DenseBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(dense_layer(in_channels + i * growth_rate, growth_rate, bn_size)
                                        for i in range(num_layers))

        def forward(self, x):
            new = []
            for layer in self.layers:
                out = layer(x)
                new.append(out)
                x = torch.cat([out, x] if mistake == "reversed" else [x, out], 1)
            if mistake == "last only":
                return new[-1]
            return torch.cat(new, 1) if mistake == "no input" else x

    return DenseBlock()


WRONG = [
    ("q1", predicted_channels, "no compression", "transition does not compress"),
    ("q1", predicted_channels, "input lost", "block's input is forgotten"),
    ("q1", predicted_channels, "own output", "cannot read its own output"),
    ("q1", predicted_channels, "no input", "reads the block's input too"),
    ("q1", predicted_channels, "compress last", "no transition after the last block"),
    ("q1", predicted_channels, "block output", "output keeps its input"),
    ("q2", predicted_parameters, "no compression", "without compression"),
    ("q2", predicted_parameters, "no bn", "batch norms are not counted"),
    ("q2", predicted_parameters, "running stats", "running statistics are counted"),
    ("q2", predicted_parameters, "bias", "convolutions have a bias"),
    ("q2", predicted_parameters, "no bottleneck", "bottleneck is missing"),
    ("q2", predicted_parameters, "kernel", "3x3 kernel is forgotten"),
    ("q2", predicted_parameters, "wrong m", "layer's input is wrong"),
    ("q3", dense_layer, "concatenate", "returns the concatenation"),
    ("q3", dense_layer, "final relu", "output goes through a ReLU"),
    ("q3", dense_layer, "no padding", "no padding"),
    ("q3", dense_layer, "relu first", "ReLU comes before the batch norm"),
    ("q3", dense_layer, "second relu", "between norm2 and conv2 is missing"),
    ("q4", dense_block, "no input", "input is missing from its output"),
    ("q4", dense_block, "last only", "only the last layer's output"),
    ("q4", dense_block, "reversed", "wrong order, the colleague's bug"),
]


def _companion_layer(in_channels, growth_rate, bn_size=4):
    return companion.models.densenet.DenseLayer(in_channels, growth_rate, bn_size)


def _torchvision_layer(in_channels, growth_rate, bn_size=4):
    return torchvision.models.densenet._DenseLayer(in_channels, growth_rate, bn_size, 0.0)


def _companion_block(num_layers, in_channels, growth_rate, bn_size=4):
    class Renamed(nn.Module):  # the companion's block under the question's names
        def __init__(self):
            super().__init__()
            self.block = companion.models.densenet.DenseBlock(num_layers, in_channels, growth_rate, bn_size)
            self.layers = nn.ModuleList(self.block.values())

        def state_dict(self, *args, **kwargs):
            return {k: v for k, v in super().state_dict(*args, **kwargs).items() if k.startswith("layers.")}

        def load_state_dict(self, state, strict=True):
            return super().load_state_dict(state, strict=False)

        def forward(self, x):
            return self.block(x)

    return Renamed()


def _torchvision_block(num_layers, in_channels, growth_rate, bn_size=4):
    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(torchvision.models.densenet._DenseLayer(in_channels + i * growth_rate,
                                                                                growth_rate, bn_size, 0.0)
                                        for i in range(num_layers))

        def forward(self, x):
            features = [x]
            for layer in self.layers:
                features.append(layer(features))  # torchvision's layer concatenates the list itself
            return torch.cat(features, 1)

    return Wrapped()


def _measured_channels():
    model = companion.models.densenet.DenseNet(12, (5, 4), 24)
    return (model.features.transition1.conv.out_channels,
            model.features.denseblock2.denselayer3.conv1.in_channels, model.classifier.in_features)


def _counted_parameters():
    model = torchvision.models.DenseNet(12, (5, 4), 24)
    return (companion.count.count_parameters(model.features.denseblock2.denselayer3),
            companion.count.count_parameters(model.features.transition1))


CHEATS = [
    ("q1", _measured_channels),
    ("q1", lambda: (torchvision.models.DenseNet(12, (5, 4), 24).features.transition1.conv.out_channels, 66, 90)),
    ("q2", _counted_parameters),
    ("q2", lambda: (8580, sum(p.numel() for p in nn.Sequential(nn.BatchNorm2d(84), nn.Conv2d(84, 42, 1, bias=False))
                                   .parameters()))),
    ("q3", _companion_layer),
    ("q3", _torchvision_layer),
    ("q4", _companion_block),
    ("q4", _torchvision_block),
]
