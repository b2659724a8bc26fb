"""Answers to exercise 09_densenet: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import math

import torch
import torchvision
from torch import nn

import companion.count
import companion.models.densenet


def densenet_channels(num_init_features, growth_rate, block_config, compression=0.5, *, mistake=None):
    theta = 1.0 if mistake == "no compression" else compression
    channels = num_init_features
    for i, n in enumerate(block_config):
        added = growth_rate if mistake == "growth once" else n * growth_rate
        channels = added if mistake == "input lost" else channels + added
        if i < len(block_config) - 1 or mistake == "compress last":
            channels = math.ceil(theta * channels) if mistake == "round up" else int(theta * channels)
    return channels


def dense_layer_parameters(in_channels, growth_rate, bn_size=4, *, mistake=None):
    bn = {"no bn": 0, "running stats": 4}.get(mistake, 2)
    kernel = 1 if mistake == "kernel" else 9
    bias = mistake == "bias"
    if mistake == "no bottleneck":
        return bn * in_channels + in_channels * growth_rate * kernel
    wide = (4 if mistake == "bn_size" else bn_size) * growth_rate
    return (bn * in_channels + in_channels * wide + bias * wide + bn * wide + wide * growth_rate * kernel
            + bias * growth_rate)


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
    ("q1", densenet_channels, "no compression", "transitions do not compress"),
    ("q1", densenet_channels, "compress last", "last block is compressed too"),
    ("q1", densenet_channels, "round up", "rounds up"),
    ("q1", densenet_channels, "growth once", "adds the growth rate only once"),
    ("q1", densenet_channels, "input lost", "input channels are lost"),
    ("q2", dense_layer_parameters, "no bn", "batch norms are not counted"),
    ("q2", dense_layer_parameters, "running stats", "running statistics are counted"),
    ("q2", dense_layer_parameters, "bias", "convolutions have a bias"),
    ("q2", dense_layer_parameters, "kernel", "3x3 kernel is forgotten"),
    ("q2", dense_layer_parameters, "no bottleneck", "bottleneck is missing"),
    ("q2", dense_layer_parameters, "bn_size", "bn_size is ignored"),
    ("q3", dense_layer, "concatenate", "returns the concatenation"),
    ("q3", dense_layer, "final relu", "output goes through a ReLU"),
    ("q3", dense_layer, "no padding", "no padding"),
    ("q3", dense_layer, "relu first", "ReLU comes before the batch norm"),
    ("q3", dense_layer, "second relu", "between norm2 and conv2 is missing"),
    ("q4", dense_block, "no input", "input is missing from its output"),
    ("q4", dense_block, "last only", "only the last layer's output"),
    ("q4", dense_block, "reversed", "wrong order"),
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


CHEATS = [
    ("q1", lambda c, k, blocks, theta=0.5: torchvision.models.DenseNet(k, blocks, c).classifier.in_features),
    ("q1", lambda c, k, blocks, theta=0.5: companion.models.densenet.DenseNet(k, blocks, c).out_channels),
    ("q2", lambda m, k, b=4: companion.count.count_parameters(companion.models.densenet.DenseLayer(m, k, b))),
    ("q2", lambda m, k, b=4: sum(p.numel()
                                 for p in torchvision.models.densenet._DenseLayer(m, k, b, 0.0).parameters())),
    ("q2", lambda m, k, b=4: sum(p.numel() for p in nn.Sequential(nn.BatchNorm2d(m), nn.Conv2d(m, b * k, 1, bias=False),
                                                                  nn.BatchNorm2d(b * k),
                                                                  nn.Conv2d(b * k, k, 3, bias=False)).parameters())),
    ("q3", _companion_layer),
    ("q3", _torchvision_layer),
    ("q4", _companion_block),
    ("q4", _torchvision_block),
]
