"""Tests of what chapter 5 added to companion.models.vgg: ``kernel_size``, ``convolutional_head``, multi-scale testing.

The framework is the oracle: a VGG built with another kernel size is compared with the same
network written out with ``nn.Conv2d`` layers by hand (values and gradients), and the classifier
rewritten as convolutions with the classifier itself, on a 7x7 map and window by window on a
larger one.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import torch.nn.functional as F

from companion.models.vgg import VGG, VGG11, convolutional_head, make_layers, multi_scale_posteriors

torch.set_num_threads(1)

SMALL = (8, "M", 16, 16, "M", 12)  # a config with every kind of entry and a width change after a pool


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randomise_batch_norms(model: nn.Module) -> None:
    gen = generator(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.normal_(1.0, 0.2, generator=gen)
                m.bias.normal_(0.0, 0.2, generator=gen)


def by_hand(config, in_channels: int, kernel_size: int, batch_norm: bool) -> nn.Sequential:
    """The layers of ``make_layers`` written out directly with torch's modules."""
    layers, c = [], in_channels
    for entry in config:
        if entry == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(c, entry, kernel_size, padding=kernel_size // 2))
        layers += [nn.BatchNorm2d(entry)] if batch_norm else []
        layers.append(nn.ReLU())
        c = entry
    return nn.Sequential(*layers)


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 7])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_make_layers_with_any_odd_kernel_matches_the_layers_written_by_hand(kernel_size: int, batch_norm: bool) -> None:
    ours = nn.Sequential(*make_layers(SMALL, in_channels=2, batch_norm=batch_norm, kernel_size=kernel_size))
    theirs = by_hand(SMALL, 2, kernel_size, batch_norm)
    randomise_batch_norms(theirs)
    ours.load_state_dict(theirs.state_dict())  # strict: same positions, names and shapes
    ours.eval()
    theirs.eval()
    x = torch.randn(3, 2, 12, 12, generator=generator(), requires_grad=True)
    out_ours, out_theirs = ours(x), theirs(x)
    assert out_ours.shape == (3, 12, 3, 3)  # padding k // 2 keeps the size; the two pools halve it
    torch.testing.assert_close(out_ours, out_theirs)
    g = torch.randn(out_ours.shape, generator=generator(2))
    grads_ours = torch.autograd.grad(out_ours, [x, *ours.parameters()], g)
    grads_theirs = torch.autograd.grad(out_theirs, [x, *theirs.parameters()], g)
    for a, b in zip(grads_ours, grads_theirs):
        torch.testing.assert_close(a, b)


def test_kernel_size_3_is_torchvision_s_make_layers_and_5_costs_25_over_9() -> None:
    with torch.device("meta"):
        theirs = nn.Sequential(*torchvision.models.vgg.make_layers(list(VGG11)))
        three = nn.Sequential(*make_layers(VGG11))
        five = nn.Sequential(*make_layers(VGG11, kernel_size=5))
    assert {k: v.shape for k, v in three.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    widths = [c for c in VGG11 if c != "M"]
    pairs = list(zip([3, *widths[:-1]], widths))  # (C_in, C_out) of each convolution
    for k, model in ((3, three), (5, five)):
        assert sum(p.numel() for p in model.parameters()) == sum((k * k * a + 1) * b for a, b in pairs)


def test_vgg_passes_its_kernel_size_on() -> None:
    model = VGG((4, "M", 8), num_classes=3, in_channels=1, small_input=True, kernel_size=5)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (5, 5)] and [c.padding for c in convs] == [(2, 2), (2, 2)]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


@pytest.mark.parametrize("kernel_size", [0, 2, 4, -3, 3.0, True])
def test_an_even_or_non_integer_kernel_size_is_refused(kernel_size) -> None:
    with pytest.raises(ValueError, match="kernel_size must be a positive odd int"):
        make_layers(SMALL, kernel_size=kernel_size)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd int"):
        VGG(SMALL, num_classes=3, kernel_size=kernel_size)


@pytest.fixture(scope="module")
def vgg() -> VGG:
    """A small VGG with the full 7x7 pool and three-layer classifier (4096 wide, as in the paper)."""
    torch.manual_seed(0)
    model = VGG((4, "M", 6), num_classes=5, in_channels=1)
    with torch.no_grad():
        for m in model.classifier:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, (2 / m.in_features) ** 0.5)  # large enough that every layer matters
                m.bias.normal_(0, 0.1)
    return model.eval()


def test_convolutional_head_on_a_7x7_map_is_the_classifier(vgg: VGG) -> None:
    head = convolutional_head(vgg).eval()
    z = torch.randn(3, 6, 7, 7, generator=generator(), requires_grad=True)
    ours, theirs = head(z), vgg.classifier(torch.flatten(z, 1))  # (3, 5, 1, 1), (3, 5)
    assert ours.shape == (3, 5, 1, 1)
    torch.testing.assert_close(ours[:, :, 0, 0], theirs)
    assert theirs.std() > 1e-2
    g = torch.randn(3, 5, generator=generator(1))
    torch.testing.assert_close(torch.autograd.grad(ours[:, :, 0, 0], z, g)[0], torch.autograd.grad(theirs, z, g)[0])


def test_convolutional_head_on_a_larger_map_scores_every_7x7_window(vgg: VGG) -> None:
    head = convolutional_head(vgg).eval()
    z = torch.randn(2, 6, 9, 10, generator=generator(3))
    with torch.no_grad():
        scores = head(z)  # (2, 5, 3, 4): one score vector per window position
        assert scores.shape == (2, 5, 3, 4)
        for i in range(3):
            for j in range(4):
                window = z[:, :, i:i + 7, j:j + 7]  # (2, 6, 7, 7)
                torch.testing.assert_close(scores[:, :, i, j], vgg.classifier(torch.flatten(window, 1)))


def test_convolutional_head_copies_the_weights_and_leaves_the_model_alone(vgg: VGG) -> None:
    before = {k: v.clone() for k, v in vgg.state_dict().items()}
    head = convolutional_head(vgg)
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
    assert all(torch.equal(before[k], v) for k, v in vgg.state_dict().items())
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.5, 0.5]


def test_convolutional_head_refuses_a_small_input_model_and_other_modules() -> None:
    with pytest.raises(ValueError, match="without small_input=True"):
        convolutional_head(VGG((4, "M", 6), num_classes=5, small_input=True))
    with pytest.raises(TypeError, match="model must be a VGG, got Sequential"):
        convolutional_head(nn.Sequential(nn.Linear(2, 2)))


def small_vgg() -> VGG:
    torch.manual_seed(0)
    model = VGG((4, "M", 6), num_classes=5, in_channels=1, batch_norm=True, small_input=True).double().eval()
    randomise_batch_norms(model)
    return model


def test_a_small_input_vgg_is_fully_convolutional_its_logits_average_a_score_map() -> None:
    # global average pooling then a linear layer == a 1x1 convolution (the same weights) averaged over its map
    model = small_vgg()
    x = torch.randn(3, 1, 13, 17, dtype=torch.float64)
    z = model.features(x)  # (3, 6, 6, 8)
    score_map = F.conv2d(z, model.classifier.weight[:, :, None, None], model.classifier.bias)  # (3, 5, 6, 8)
    torch.testing.assert_close(model(x), score_map.mean(dim=(2, 3)))


def test_multi_scale_posteriors_average_the_softmax_over_scales_and_flips() -> None:
    model = small_vgg()
    images = torch.randn(7, 1, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        single = multi_scale_posteriors(model, images, [12])
        torch.testing.assert_close(single, model(images).softmax(1))  # Q = the image size: no resize
        expected = sum(model(F.interpolate(images, size=q, mode="bilinear", align_corners=False)).softmax(1)
                       for q in (10, 16)) / 2
        torch.testing.assert_close(multi_scale_posteriors(model, images, [10, 16], batch_size=3), expected)
        flipped = (model(images).softmax(1) + model(images.flip(-1)).softmax(1)) / 2
        torch.testing.assert_close(multi_scale_posteriors(model, images, [12], flip=True), flipped)
    torch.testing.assert_close(expected.sum(1), torch.ones(7, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least one test scale"):
        multi_scale_posteriors(model, images, [])


def test_multi_scale_posteriors_with_the_dense_head_of_a_full_vgg() -> None:
    # The paper's way: the convolutional head's score map, averaged, then the softmax, per scale.
    torch.manual_seed(0)
    model = VGG((4, "M", 4, "M", 4, "M", 4, "M", 4, "M"), num_classes=3, dropout=0.0).double().eval()
    head = convolutional_head(model).double().eval()

    def dense(x: torch.Tensor) -> torch.Tensor:
        return head(model.features(x)).mean(dim=(2, 3))  # (N, 3, h - 6, w - 6) -> (N, 3)

    images = torch.randn(2, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        at_224 = multi_scale_posteriors(dense, images, [224])
        torch.testing.assert_close(at_224, model(images).softmax(1))  # a 7x7 map: one window, the classifier
        both = multi_scale_posteriors(dense, images, [224, 256])
        torch.testing.assert_close(both, (at_224 + multi_scale_posteriors(dense, images, [256])) / 2)
