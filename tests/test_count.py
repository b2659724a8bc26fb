"""Parameter and multiply-add counts: against ``sum(p.numel())``, the closed formulas, and published figures.

Large torchvision models are built on the ``meta`` device: their architecture (shapes) without
allocating or initialising 138 million weights, which the counters do not need.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torchvision
from torch import nn

from companion.count import LayerRow, count_flops, count_parameters, format_table, layer_macs, layer_table


def lenet5() -> nn.Sequential:
    """LeNet-5 (LeCun et al., 1998) on 32x32 inputs, with full C3 connections and parameter-free subsampling."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),      # C1: (5*5*1 + 1) * 6 = 156;  S2
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),     # C3: (5*5*6 + 1) * 16 = 2,416;  S4
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),      # C5: (5*5*16 + 1) * 120 = 48,120
        nn.Linear(120, 84), nn.Tanh(),                       # F6: (120 + 1) * 84 = 10,164
        nn.Linear(84, 10),                                   # output: (84 + 1) * 10 = 850
    )


def on_meta(builder):
    with torch.device("meta"):
        return builder()


@pytest.mark.parametrize("builder", [torchvision.models.resnet18, torchvision.models.mobilenet_v2,
                                     torchvision.models.squeezenet1_1, torchvision.models.densenet121,
                                     torchvision.models.vit_b_16, lenet5])
def test_count_parameters_is_the_sum_of_numel(builder):
    model = on_meta(builder)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_published_parameter_counts():
    assert count_parameters(lenet5()) == 61_706
    assert count_parameters(on_meta(torchvision.models.vgg16)) == 138_357_544
    assert count_parameters(on_meta(torchvision.models.resnet18)) == 11_689_512
    assert count_parameters(on_meta(torchvision.models.alexnet)) == 61_100_840


def test_trainable_only_skips_frozen_parameters():
    model = lenet5()
    for p in model[0].parameters():  # freeze C1: 156 parameters
        p.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 61_706 - 156
    assert count_parameters(model) == 61_706


def test_shared_parameters_count_once():
    shared = nn.Linear(8, 8)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_parameters(model) == 8 * 8 + 8
    rows = layer_table(model, (1, 2, 8))
    assert [r.parameters for r in rows] == [72, 0, 0]  # the second call of `shared` adds nothing
    assert [r.macs for r in rows] == [2 * 64, 0, 2 * 64]  # but it does compute again


@pytest.mark.parametrize("seed", range(10))
def test_conv_macs_match_the_closed_formula(seed):
    rng = random.Random(seed)
    groups = rng.choice([1, 2, 4])
    c_in, c_out = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
    kh, kw = rng.randint(1, 5), rng.randint(1, 5)
    stride, padding, dilation = rng.randint(1, 3), rng.randint(0, 2), rng.randint(1, 2)
    n, h, w = rng.randint(1, 3), rng.randint(10, 20), rng.randint(10, 20)
    conv = nn.Conv2d(c_in, c_out, (kh, kw), stride=stride, padding=padding, dilation=dilation, groups=groups)
    h_out = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    w_out = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    per_image = c_out * h_out * w_out * (c_in // groups) * kh * kw
    assert count_flops(conv, (c_in, h, w)) == per_image
    assert count_flops(conv, (n, c_in, h, w)) == n * per_image  # scales with the batch
    assert count_parameters(conv) == (kh * kw * c_in // groups + 1) * c_out


def test_linear_conv1d_conv3d_and_transposed_conv_macs():
    assert count_flops(nn.Sequential(nn.Flatten(), nn.Linear(48, 10)), (3, 4, 4)) == 48 * 10
    assert count_parameters(nn.Linear(48, 10)) == (48 + 1) * 10
    depthwise = nn.Conv2d(32, 32, 3, padding=1, groups=32)
    assert count_flops(depthwise, (32, 8, 8)) == 32 * 8 * 8 * 1 * 9  # one input channel per output channel
    conv1d = nn.Conv1d(4, 6, 3)
    x = torch.zeros(2, 4, 10)
    assert layer_macs(conv1d, x, conv1d(x)) == 2 * 6 * 8 * 4 * 3  # N * C_out * L_out * C_in * k
    conv3d = nn.Conv3d(2, 3, (1, 3, 3))
    assert count_flops(nn.Sequential(nn.Unflatten(1, (2, 1)), conv3d), (2, 5, 5)) == 3 * 1 * 3 * 3 * 2 * 9
    up = nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2)
    # Each of the 4*5*5 input values is multiplied into (6/2) output channels times 2*2 taps.
    assert count_flops(up, (4, 5, 5)) == 4 * 5 * 5 * 3 * 4
    assert layer_macs(nn.ReLU(), torch.zeros(3), torch.zeros(3)) == 0


def test_published_mac_counts():
    # torchvision's model tables ("GFLOPS", counted as multiply-adds): VGG-16 15.47, ResNet-18 1.81.
    vgg = count_flops(on_meta(torchvision.models.vgg16), (3, 224, 224))
    assert round(vgg / 1e9, 2) == 15.47
    # VGG-16 by the closed formula: 3x3 convolutions at 224, 112, 56, 28, 14 pixels, then 3 FC layers.
    convs = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56), (256, 256, 56),
             (256, 256, 56), (256, 512, 28), (512, 512, 28), (512, 512, 28), (512, 512, 14), (512, 512, 14),
             (512, 512, 14)]
    by_hand = sum(c_out * s * s * c_in * 9 for c_in, c_out, s in convs) + 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000
    assert vgg == by_hand
    resnet = count_flops(on_meta(torchvision.models.resnet18), (3, 224, 224))
    assert round(resnet / 1e9, 2) == 1.81


def test_layer_table_of_lenet():
    model = lenet5()
    rows = layer_table(model, (1, 32, 32))
    assert all(isinstance(r, LayerRow) for r in rows)
    assert [r.name for r in rows] == [str(i) for i in range(12)]
    assert [r.type for r in rows][:3] == ["Conv2d", "Tanh", "AvgPool2d"]
    assert [r.output_shape for r in rows if r.type == "Conv2d"] == [(1, 6, 28, 28), (1, 16, 10, 10), (1, 120, 1, 1)]
    assert [r.parameters for r in rows if r.parameters] == [156, 2_416, 48_120, 10_164, 850]
    assert [r.macs for r in rows if r.macs] == [6 * 28 * 28 * 25, 16 * 10 * 10 * 150, 120 * 400, 120 * 84, 84 * 10]
    assert sum(r.parameters for r in rows) == count_parameters(model)
    assert sum(r.macs for r in rows) == count_flops(model, (1, 32, 32))


def test_layer_table_names_nested_layers_and_restores_training_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.BatchNorm2d(4), nn.ReLU()))
    model.train()
    model[1].eval()
    rows = layer_table(model, (3, 3, 3))  # a 1x1 output with a batch of one: fails in train mode
    assert [r.name for r in rows] == ["0", "1.0", "1.1"]
    assert model.training and model[0].training and not model[1].training and not model[1][0].training


def test_format_table_is_aligned_with_totals():
    rows = layer_table(lenet5(), (1, 32, 32))
    text = format_table(rows)
    lines = text.splitlines()
    assert len(lines) == 1 + 1 + len(rows) + 1 + 1  # header, rule, rows, rule, total
    assert lines[0].split() == ["layer", "type", "output", "shape", "parameters", "MACs"]
    assert len({len(line) for line in lines}) == 1  # every line as wide as the header: aligned
    assert lines[-1].split() == ["total", "61,706", "416,520"]
    assert "(1, 6, 28, 28)" in lines[2] and lines[2].rstrip().endswith("117,600")


def test_errors():
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got function"):
        count_parameters(lenet5)
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got str"):
        count_flops("vgg16", (3, 224, 224))
    with pytest.raises(TypeError, match=r"input_size must be a tuple \(C, H, W\) or \(N, C, H, W\), got 224"):
        count_flops(lenet5(), 224)
    for bad in [(32, 32), (1, 1, 1, 32, 32), (1, 0, 32), (1, 32.0, 32), (1, True, 32)]:
        with pytest.raises(ValueError, match=r"input_size must be \(C, H, W\) or \(N, C, H, W\) of positive ints"):
            count_flops(lenet5(), bad)
    with pytest.raises(ValueError, match=r"Sequential cannot run on an input of size \(3, 32, 32\) .*RuntimeError"):
        layer_table(lenet5(), (3, 32, 32))  # LeNet takes one channel
    with pytest.raises(TypeError, match=r"rows must be a list of LayerRow"):
        format_table([("conv", 1)])


def test_counts_on_a_real_model_run_on_its_device_and_dtype():
    model = lenet5().double()
    assert count_flops(model, (1, 32, 32)) == 416_520
    assert math.prod(layer_table(model, (4, 1, 32, 32))[-1].output_shape) == 4 * 10


def test_output_bytes_is_the_memory_of_each_layers_output_and_grows_with_the_batch():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 5))
    one, four = layer_table(model, (3, 8, 8)), layer_table(model, (4, 3, 8, 8))
    assert [r.output_bytes for r in one] == [8 * 8 * 8 * 4, 8 * 8 * 8 * 4, 8 * 4 * 4 * 4, 128 * 4, 5 * 4]
    assert [r.output_bytes for r in four] == [4 * r.output_bytes for r in one]
    doubled = layer_table(model.double(), (3, 8, 8))  # float64: eight bytes per value
    assert [r.output_bytes for r in doubled] == [2 * r.output_bytes for r in one]
