"""companion.style: the losses against their formulas written out and F.mse_loss (values and
gradients), the feature extractor against the layers run one by one, the optimisation loop, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from companion import style
from companion.models.vgg import VGG11, VGG19


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_vgg19_layer_positions_are_torchvisions():
    assert style.vgg_layer_positions(VGG19) == style.VGG19_LAYERS
    features = torchvision.models.vgg19().features
    for name, index in style.VGG19_LAYERS.items():
        assert isinstance(features[index], nn.ReLU), name
        assert isinstance(features[index - 1], nn.Conv2d), name
    # relu4_2 follows the second 512-channel convolution after the third pool
    assert features[style.VGG19_LAYERS["relu4_2"] - 1].out_channels == 512
    assert style.vgg_layer_positions(VGG11[:5]) == {"relu1_1": 1, "relu2_1": 4, "relu3_1": 7}


def test_extractor_equals_running_the_layers_in_sequence():
    layers = style.random_vgg_layers(VGG11[:5], seed=3)
    positions = style.vgg_layer_positions(VGG11[:5])
    extractor = style.FeatureExtractor(layers, positions)
    x = torch.rand(2, 3, 20, 24, generator=_generator())
    found = extractor(x)
    mean = torch.tensor(style.IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(style.IMAGENET_STD).reshape(1, 3, 1, 1)
    h, expected = (x - mean) / std, {}
    for index, layer in enumerate(layers):
        h = layer(h)
        expected[index] = h.clone()
    assert list(found) == list(positions)
    for name, index in positions.items():
        torch.testing.assert_close(found[name], expected[index])
    # a convolution's output is kept intact although the ReLU after it is in place in `layers`
    conv_out = style.FeatureExtractor(layers, {"conv1_1": 0, "relu1_1": 1})(x)
    assert (conv_out["conv1_1"] < 0).any()
    assert not any(p.requires_grad for p in extractor.parameters())
    assert len(extractor.layers) == 8  # nothing after the deepest chosen layer is kept


def test_extractor_with_average_pooling_and_without_normalisation():
    layers = style.random_vgg_layers(VGG11[:3], seed=0)  # conv, relu, pool, conv, relu
    extractor = style.FeatureExtractor(layers, {"relu2_1": 4}, mean=None, std=None, avg_pool=True)
    x = torch.rand(1, 3, 8, 8, generator=_generator(1))
    expected = layers[4](layers[3](F.avg_pool2d(layers[1](layers[0](x)).clone(), 2)))
    torch.testing.assert_close(extractor(x)["relu2_1"], expected)


def test_random_layers_are_seeded_and_he_initialised():
    a, b = style.random_vgg_layers(seed=1), style.random_vgg_layers(seed=1)
    c = style.random_vgg_layers(seed=2)
    torch.testing.assert_close(a[0].weight, b[0].weight)
    assert not torch.equal(a[0].weight, c[0].weight)
    weight = a[style.VGG19_LAYERS["relu3_1"] - 1].weight  # (256, 128, 3, 3)
    assert abs(float(weight.detach().std()) - (2 / (256 * 9)) ** 0.5) < 0.002


def test_content_loss_is_the_mse_with_its_gradient():
    g = _generator(2)
    features = torch.randn(1, 4, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(1, 4, 5, 6, generator=g, dtype=torch.float64)
    loss = style.content_loss(features, target)
    by_hand = ((features - target) ** 2).sum() / features.numel()
    torch.testing.assert_close(loss, by_hand)
    torch.testing.assert_close(loss, F.mse_loss(features, target))
    (grad,) = torch.autograd.grad(loss, features)
    torch.testing.assert_close(grad, 2 * (features - target).detach() / features.numel())


def test_style_loss_is_the_weighted_sum_of_gram_mses_with_its_gradient():
    g = _generator(4)
    shapes = [(2, 3, 8, 8), (2, 5, 4, 4), (2, 7, 2, 3)]
    features = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes]
    targets = [torch.randn(1, s[1], s[1], generator=g, dtype=torch.float64) for s in shapes]
    weights = [0.2, 1.5, 3.0]

    def written_out(*fs):
        total = 0.0
        for f, t, w in zip(fs, targets, weights):
            n, c, h, wd = f.shape
            flat = f.reshape(n, c, h * wd)
            gram = torch.einsum("ncp,ndp->ncd", flat, flat) / (c * h * wd)
            total = total + w * ((gram - t) ** 2).sum() / gram.numel()  # t broadcast over the batch
        return total

    loss = style.style_loss(features, targets, weights)
    torch.testing.assert_close(loss, written_out(*features))
    with_mse = sum(w * F.mse_loss(style.gram_matrix(f), t.expand(2, -1, -1))
                   for f, t, w in zip(features, targets, weights))
    torch.testing.assert_close(loss, with_mse)
    ours = torch.autograd.grad(loss, features)
    theirs = torch.autograd.grad(written_out(*features), features)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    torch.autograd.gradcheck(lambda *fs: style.style_loss(fs, targets, weights), tuple(features))
    # equal weights 1/L by default
    torch.testing.assert_close(style.style_loss(features, targets),
                               sum(F.mse_loss(style.gram_matrix(f), t.expand(2, -1, -1)) / 3
                                   for f, t in zip(features, targets)))


def test_style_loss_is_zero_for_the_style_image_itself_and_blind_to_where_things_are():
    g = _generator(5)
    f = torch.randn(1, 6, 7, 7, generator=g)
    shuffled = f.flatten(2)[:, :, torch.randperm(49, generator=g)].reshape(1, 6, 7, 7)
    target = [style.gram_matrix(f)]
    assert float(style.style_loss([f], target)) == 0.0
    assert float(style.style_loss([shuffled], target)) < 1e-12  # positions shuffled: same style
    assert float(style.content_loss(shuffled, f)) > 0.5  # ... different content


def test_total_variation_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [3.0, 3.0]]]], requires_grad=True)
    # down: (3 - 0)^2, (3 - 1)^2 -> mean 6.5; across: 1^2, 0 -> mean 0.5
    torch.testing.assert_close(style.total_variation(image), torch.tensor(7.0))
    assert float(style.total_variation(torch.ones(1, 3, 5, 5))) == 0.0


def test_transfer_lowers_the_style_loss_and_optimises_a_copy_only():
    layers = style.random_vgg_layers(VGG11[:3], seed=0)
    extractor = style.FeatureExtractor(layers, {"relu1_1": 1, "relu2_1": 4}, avg_pool=True)
    g = _generator(6)
    content = torch.rand(1, 3, 16, 16, generator=g)
    texture = torch.rand(1, 3, 16, 16, generator=g) ** 3
    before = content.clone()
    weights_before = [p.clone() for p in extractor.parameters()]
    image, history = style.transfer(content, texture, extractor, content_layers=["relu2_1"],
                                    style_layers=["relu1_1", "relu2_1"], style_weight=1e8, steps=15,
                                    lr=0.05, progress=False)
    assert torch.equal(content, before)  # the content image is not modified
    assert all(torch.equal(a, b) for a, b in zip(weights_before, extractor.parameters()))
    assert image.shape == content.shape and not image.requires_grad
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert set(history) == {"content", "style", "tv", "total"} and len(history["style"]) == 16
    assert history["content"][0] == 0.0  # it starts at the content image
    assert history["style"][-1] < 0.5 * history["style"][0]
    # the last entry is the returned image's
    with torch.no_grad():
        found = extractor(image)
        gram = [style.gram_matrix(extractor(texture)[n]) for n in ("relu1_1", "relu2_1")]
    torch.testing.assert_close(history["style"][-1],
                               float(style.style_loss([found["relu1_1"], found["relu2_1"]], gram)))
    lbfgs, h = style.transfer(content, texture, extractor, content_layers=["relu2_1"], style_layers=["relu1_1"],
                              style_weight=1e8, tv_weight=1.0, steps=5, lr=1.0, optimizer="lbfgs", progress=False)
    assert h["style"][-1] < h["style"][0] and h["tv"][0] > 0


def test_errors_name_the_problem():
    f = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="detach"):
        style.content_loss(f, f.clone().requires_grad_(True))
    with pytest.raises(ValueError, match="same shape"):
        style.content_loss(f, torch.randn(1, 3, 4, 5))
    with pytest.raises(ValueError, match="one target Gram matrix per feature map"):
        style.style_loss([f, f], [style.gram_matrix(f)])
    with pytest.raises(ValueError, match="one weight per layer"):
        style.style_loss([f], [style.gram_matrix(f)], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"has shape \(1, 4, 4\)"):
        style.style_loss([f], [torch.randn(1, 4, 4)])
    with pytest.raises(ValueError, match="detach"):
        style.style_loss([f], [style.gram_matrix(f).requires_grad_(True)])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        style.total_variation(torch.randn(3, 4, 4))
    with pytest.raises(ValueError, match="outside the 8 layers"):
        style.FeatureExtractor(style.random_vgg_layers(VGG11[:5]), {"relu4_1": 11})
    with pytest.raises(ValueError, match="at least one layer"):
        style.FeatureExtractor(style.random_vgg_layers(VGG11[:5]), {})
    extractor = style.FeatureExtractor(style.random_vgg_layers(VGG11[:3]), {"relu1_1": 1})
    image = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="not among the extractor's"):
        style.transfer(image, image, extractor, content_layers=["relu4_2"], style_layers=["relu1_1"])
    with pytest.raises(ValueError, match="'adam' or 'lbfgs'"):
        style.transfer(image, image, extractor, content_layers=["relu1_1"], style_layers=["relu1_1"],
                       optimizer="sgd")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        style.transfer(image, image, extractor, content_layers=["relu1_1"], style_layers=["relu1_1"], steps=0)
