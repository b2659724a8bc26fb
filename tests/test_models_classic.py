"""Tests of the classic CNNs of companion.models (AlexNet, VGG, GoogLeNet, Inception v3, SqueezeNet, MobileNet).

torchvision is the oracle: for every builder with a torchvision counterpart, the parameter names
and shapes are torchvision's, its randomly initialised weights load (strictly) and the two models
then compute the same outputs in eval mode. Where torchvision has no counterpart (MobileNet v1,
the 2012 AlexNet), parameter and multiply-add counts are checked against the papers' tables.
Plus, for every builder: a training step reaches every parameter, ``forward == head(features)``,
the minimum input size is exact, and bad input gets a clear error.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torchvision
from torch import nn

from companion.count import count_flops
from companion.models.alexnet import ALEXNET_2012, AlexNet, alexnet
from companion.models.googlenet import (GOOGLENET, GoogLeNet, GoogLeNetOutputs, InceptionBlock, InceptionRow,
                                        googlenet)
from companion.models.inception import InceptionOutputs, inception_v3
from companion.models.mobilenet import (DepthwiseSeparableConv, InvertedResidual, make_divisible, mobilenet_v1,
                                        mobilenet_v2)
from companion.models.squeezenet import Fire, squeezenet1_0, squeezenet1_1
from companion.models.vgg import VGG, vgg11, vgg16

torch.set_num_threads(1)


@dataclass(frozen=True)
class Spec:
    """One builder of ours, torchvision's builder of the same name, and what the tests need to know."""

    ours: Callable[..., nn.Module]
    torchvision: Callable[..., nn.Module]
    size: int            # a small input size the comparison runs at
    channels: int        # channels of features(x)
    paper_millions: int | None = None  # the paper's parameter count, in millions, where it matches torchvision's

    @property
    def name(self) -> str:
        return self.ours.__name__


TV = torchvision.models
COMPATIBLE = [
    Spec(alexnet, TV.alexnet, 64, 256),
    Spec(vgg11, TV.vgg11, 32, 512, paper_millions=133),  # VGG paper, Table 2
    Spec(vgg16, TV.vgg16, 32, 512, paper_millions=138),
    Spec(googlenet, TV.googlenet, 32, 1024),
    Spec(inception_v3, TV.inception_v3, 75, 2048),
    Spec(squeezenet1_0, TV.squeezenet1_0, 32, 512),
    Spec(squeezenet1_1, TV.squeezenet1_1, 32, 512),
    Spec(mobilenet_v2, TV.mobilenet_v2, 32, 1280),
]


def torchvision_model(spec: Spec, **kwargs: object) -> nn.Module:
    with warnings.catch_warnings():  # GoogLeNet and Inception warn about their default initialisation
        warnings.simplefilter("ignore", FutureWarning)
        return spec.torchvision(weights=None, **kwargs)


def randomise_batch_norms(model: nn.Module, seed: int = 0) -> None:
    """Give every batch norm random statistics and affine parameters, so that a mistake in them shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.normal_(1.0, 0.2, generator=gen)
                m.bias.normal_(0.0, 0.2, generator=gen)


def images(size: int, channels: int = 3, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module", params=COMPATIBLE, ids=lambda spec: spec.name)
def pair(request: pytest.FixtureRequest) -> tuple[Spec, nn.Module, nn.Module]:
    """Ours and torchvision's model, built once per builder (VGG's take seconds)."""
    spec = request.param
    # VGG's own initialisation of its 100M-weight classifier takes seconds; PyTorch's default one is random too.
    theirs = torchvision_model(spec, init_weights=False) if spec.name.startswith("vgg") else torchvision_model(spec)
    randomise_batch_norms(theirs)
    return spec, spec.ours(), theirs


def test_parameter_names_shapes_and_count_are_torchvision_s(pair) -> None:
    spec, ours, theirs = pair
    ours_shapes, their_shapes = shapes(ours), shapes(theirs)
    assert sorted(set(their_shapes) - set(ours_shapes)) == [], "missing in ours"
    assert sorted(set(ours_shapes) - set(their_shapes)) == [], "not in torchvision's"
    assert ours_shapes == their_shapes
    assert count(ours) == count(theirs)
    if spec.paper_millions is not None:
        assert round(count(ours) / 1e6) == spec.paper_millions


def test_torchvision_weights_load_and_give_the_same_outputs(pair) -> None:
    spec, ours, theirs = pair
    ours.load_state_dict(theirs.state_dict())  # strict: every name and shape must match
    ours.eval()
    theirs.eval()
    x = images(spec.size)
    with torch.no_grad():
        expected = theirs(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-4, atol=1e-5)
        if isinstance(getattr(theirs, "features", None), nn.Module):  # AlexNet, VGG, SqueezeNet, MobileNetV2
            torch.testing.assert_close(ours.features(x), theirs.features(x), rtol=1e-4, atol=1e-5)
    assert expected.std() > 1e-3  # the outputs are not all (nearly) equal: the comparison means something


def test_forward_is_head_of_features(pair) -> None:
    spec, ours, _ = pair
    ours.eval()
    x = images(spec.size, seed=1)
    with torch.no_grad():
        z = ours.features(x)
        assert z.dim() == 4 and z.shape[:2] == (2, spec.channels)  # a map (N, C, h, w), before global pooling
        torch.testing.assert_close(ours.head(z), ours(x))


def test_min_input_size_is_exact(pair) -> None:
    spec, ours, theirs = pair
    ours.eval()
    theirs.eval()
    m = getattr(ours, "min_size", 1)
    with torch.no_grad():
        assert ours(images(m)).shape == (2, 1000)
        if m == 1:
            return  # MobileNet v2 is padded everywhere: any size works
        with pytest.raises(ValueError, match=rf"needs inputs of at least {m}x{m} pixels, got {m - 1}x{m - 1}"):
            ours(images(m - 1))
        with pytest.raises(RuntimeError):  # torchvision's fails too: the minimum is not stricter than needed
            theirs(images(m - 1))


def test_a_training_step_reaches_every_parameter(pair) -> None:
    spec, ours, _ = pair
    # Inception v3's auxiliary classifier needs the 17x17 grid of a 299x299 image.
    size = 299 if spec.name == "inception_v3" else spec.size
    buffers = {name: b.clone() for name, b in ours.named_buffers()}
    ours.train()
    ours.zero_grad(set_to_none=True)
    out = ours(images(size))
    outputs = list(out) if isinstance(out, tuple) else [out]  # GoogLeNet / Inception: logits and auxiliary logits
    assert len(outputs) == {"googlenet": 3, "inception_v3": 2}.get(spec.name, 1)
    for o in outputs:
        assert o.shape == (2, 1000) and torch.isfinite(o).all()
    sum((o * torch.randn_like(o)).sum() for o in outputs).backward()
    for name, p in ours.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        norm = torch.linalg.vector_norm(p.grad)  # finite iff every entry is, > 0 iff one is not zero
        assert torch.isfinite(norm) and norm > 0, f"{name} has a non-finite or all-zero gradient"
    ours.zero_grad(set_to_none=True)
    ours.load_state_dict(buffers, strict=False)  # undo the batch-norm statistics of this training step


def test_mobilenet_v1_training_step_reaches_every_parameter() -> None:
    model = mobilenet_v1(num_classes=10, width_mult=0.25).train()
    out = model(images(32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        norm = torch.linalg.vector_norm(p.grad)
        assert torch.isfinite(norm) and norm > 0, f"{name} has a non-finite or all-zero gradient"


@pytest.mark.parametrize("width, millions, mult_adds", [(1.0, 4.2, 569), (0.75, 2.6, 325), (0.5, 1.3, 149),
                                                        (0.25, 0.5, 41)])
def test_mobilenet_v1_matches_the_paper(width: float, millions: float, mult_adds: int) -> None:
    # The paper's Table 6 (width multiplier alpha, 224x224): parameters and millions of multiply-adds.
    model = mobilenet_v1(width_mult=width)
    assert round(count(model) / 1e6, 1) == millions
    assert round(count_flops(model, (3, 224, 224)) / 1e6) == mult_adds
    assert model.features(images(224, batch=1)).shape == (1, int(1024 * width), 7, 7)


def test_alexnet_2012_has_the_paper_s_60_million_parameters() -> None:
    model = AlexNet(ALEXNET_2012)
    assert count(model) == 60_965_224  # "60 million parameters": conv2, conv4, conv5 split over two GPUs
    assert 60e6 <= count(model) < 61e6
    grouped = [m for m in model.features if isinstance(m, nn.Conv2d) and m.groups == 2]
    assert len(grouped) == 3
    assert model(images(63)).shape == (2, 1000)


def test_googlenet_and_inception_return_auxiliary_logits_in_training_mode_only() -> None:
    model = googlenet(num_classes=7)
    out = model.train()(images(32))
    assert isinstance(out, GoogLeNetOutputs) and [o.shape for o in out] == [(2, 7)] * 3
    model.eval()
    with torch.no_grad():
        assert isinstance(model(images(32)), torch.Tensor)
    plain = googlenet(num_classes=7, aux_logits=False).train()
    assert isinstance(plain(images(32)), torch.Tensor) and plain.aux1 is None
    inception = inception_v3(num_classes=7)
    with pytest.raises(ValueError, match="training mode with aux_logits=True.*at least 299x299 pixels"):
        inception.train()(images(75))
    inception.eval()
    with torch.no_grad():
        assert inception(images(75)).shape == (2, 7)
    assert InceptionOutputs._fields == ("logits", "aux_logits")


@pytest.mark.parametrize("transform_input", [False, True])
def test_googlenet_without_aux_and_with_transform_input_matches_torchvision(transform_input: bool) -> None:
    # torchvision's pretrained GoogLeNet has no auxiliary heads and transforms its input.
    theirs = torchvision_model(COMPATIBLE[3], aux_logits=False, transform_input=transform_input, init_weights=True)
    randomise_batch_norms(theirs)
    ours = googlenet(aux_logits=False, transform_input=transform_input)
    ours.load_state_dict(theirs.state_dict())
    x = images(40)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=1e-4, atol=1e-5)


def test_inception_without_aux_and_with_transform_input_matches_torchvision() -> None:
    theirs = torchvision_model(COMPATIBLE[4], aux_logits=False, transform_input=True, init_weights=True)
    randomise_batch_norms(theirs)
    ours = inception_v3(aux_logits=False, transform_input=True)
    assert count(ours) == count(theirs) == 23_834_568
    ours.load_state_dict(theirs.state_dict())
    x = images(80).double()
    with torch.no_grad():  # in float64: Inception's 94 layers amplify float32 rounding differences
        torch.testing.assert_close(ours.double().eval()(x), theirs.double().eval()(x))


def test_googlenet_with_the_paper_s_5x5_kernels() -> None:
    # Only the "5x5" convolutions change: each has (25 - 9) * ch5x5red * ch5x5 more weights.
    extra = sum(16 * row.ch5x5red * row.ch5x5 for row in GOOGLENET if isinstance(row, InceptionRow))
    paper = count(GoogLeNet(GOOGLENET, aux_logits=False, kernel_5x5=5))
    assert paper - count(googlenet(aux_logits=False)) == extra
    block = InceptionBlock(192, 64, 96, 128, 16, 32, 32, kernel_5x5=5)
    assert block(torch.randn(1, 192, 9, 9)).shape == (1, 256, 9, 9)


@pytest.mark.parametrize("width", [0.5, 1.4])
def test_mobilenet_v2_width_multiplier_matches_torchvision(width: float) -> None:
    theirs = torchvision_model(COMPATIBLE[7], width_mult=width)
    randomise_batch_norms(theirs)
    ours = mobilenet_v2(width_mult=width)
    ours.load_state_dict(theirs.state_dict())
    x = images(32)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=1e-4, atol=1e-5)


def test_make_divisible_rounds_to_multiples_of_8_never_more_than_10_percent_down() -> None:
    assert [make_divisible(v) for v in (32, 16, 11.2, 24 * 0.5, 1280 * 1.4, 7.0)] == [32, 16, 16, 16, 1792, 8]
    for value in torch.linspace(1, 500, 997).tolist():
        rounded = make_divisible(value)
        assert rounded % 8 == 0 and rounded >= 0.9 * value and rounded >= 8


def test_vgg_config_and_batch_norm_match_torchvision_make_layers() -> None:
    config = [8, "M", 16, 16, "M", 32]
    theirs = torchvision.models.vgg.make_layers(config, batch_norm=True)
    randomise_batch_norms(theirs)
    ours = VGG(config, num_classes=10, batch_norm=True)
    ours.features.load_state_dict(theirs.state_dict())
    x = images(12)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval().features(x), theirs.eval()(x))
    assert ours.min_size == 4  # two max-pools
    assert ours(images(4)).shape == (2, 10)


SMALL_INPUT = [
    (alexnet, 256, {28: 2, 32: 3}),
    (vgg11, 512, {28: 1, 32: 2}),
    (vgg16, 512, {28: 1, 32: 2}),
    (googlenet, 1024, {28: 4, 32: 4}),
    (squeezenet1_0, 512, {28: 3, 32: 4}),
    (squeezenet1_1, 512, {28: 3, 32: 4}),
    (mobilenet_v1, 1024, {28: 4, 32: 4}),
    (mobilenet_v2, 1280, {28: 4, 32: 4}),
]


@pytest.mark.parametrize("builder, channels, map_sizes", SMALL_INPUT, ids=lambda v: getattr(v, "__name__", ""))
def test_small_input_variants_take_fashion_mnist_and_cifar_sizes(builder, channels: int, map_sizes: dict) -> None:
    for size, in_channels in ((28, 1), (32, 3)):
        model = builder(num_classes=10, in_channels=in_channels, small_input=True).eval()
        x = images(size, channels=in_channels)
        with torch.no_grad():
            z = model.features(x)
            assert z.shape == (2, channels, map_sizes[size], map_sizes[size])
            assert model(x).shape == (2, 10)


@pytest.mark.parametrize("builder", [alexnet, vgg11, googlenet, squeezenet1_0, squeezenet1_1],
                         ids=lambda b: b.__name__)
def test_small_input_min_size_is_exact(builder) -> None:
    model = builder(num_classes=10, in_channels=1, small_input=True).eval()
    m = model.min_size
    with torch.no_grad():
        assert model(images(m, channels=1)).shape == (2, 10)
        with pytest.raises(ValueError, match=f"at least {m}x{m} pixels"):
            model(images(m - 1, channels=1))
        model.min_size = 1  # switch the check off: torch itself must now fail one pixel below the minimum
        if hasattr(model.features, "min_size"):
            model.features.min_size = 1
        with pytest.raises(RuntimeError):
            model(images(m - 1, channels=1))


def test_squeezenet_simple_bypass_wraps_fire_3_5_7_9_and_adds_no_parameters() -> None:
    for builder in (squeezenet1_0, squeezenet1_1):
        plain, bypassed = builder(), builder(bypass=True)
        fires = [m for m in bypassed.features if isinstance(m, Fire)]  # fire2 .. fire9
        assert [i + 2 for i, fire in enumerate(fires) if fire.bypass] == [3, 5, 7, 9]
        assert count(plain) == count(bypassed)
        bypassed.load_state_dict(plain.state_dict())
        x = images(64)
        with torch.no_grad():
            assert not torch.allclose(plain.eval()(x), bypassed.eval()(x))


def test_fire_module_bypass_adds_its_input() -> None:
    fire = Fire(32, 8, 16, 16)
    x = torch.randn(2, 32, 5, 5)
    out = fire(x)
    assert out.shape == (2, 32, 5, 5) and (out >= 0).all()  # two ReLU'd expand outputs, concatenated
    fire.bypass = True
    torch.testing.assert_close(fire(x), out + x)


def test_squeezenet_complex_bypass_puts_a_1x1_convolution_on_fire_2_4_6_8() -> None:
    simple, complex_ = squeezenet1_0(bypass=True), squeezenet1_0(bypass=True, complex_bypass=True)
    fires = [m for m in complex_.features if isinstance(m, Fire)]  # fire2 .. fire9
    assert [i + 2 for i, fire in enumerate(fires) if fire.bypass] == [3, 5, 7, 9]
    assert [i + 2 for i, fire in enumerate(fires) if fire.shortcut is not None] == [2, 4, 6, 8]
    # 96 -> 128, 128 -> 256, 256 -> 384, 384 -> 512, weights and biases
    extra = sum(c_in * c_out + c_out for c_in, c_out in [(96, 128), (128, 256), (256, 384), (384, 512)])
    assert count(complex_) - count(simple) == extra == 341_248
    assert count(squeezenet1_0(complex_bypass=True)) == count(complex_)  # the identity ones are free


def test_fire_module_complex_bypass_adds_the_projected_input() -> None:
    torch.manual_seed(0)
    fire = Fire(12, 4, 8, 8, complex_bypass=True)
    x = torch.randn(2, 12, 5, 5)
    plain = Fire(12, 4, 8, 8)
    plain.load_state_dict({k: v for k, v in fire.state_dict().items() if not k.startswith("shortcut")})
    projected = torch.nn.functional.conv2d(x, fire.shortcut.weight, fire.shortcut.bias)  # (2, 16, 5, 5)
    torch.testing.assert_close(fire(x), projected + plain(x))
    out = fire(x)
    out.sum().backward()
    assert fire.shortcut.weight.grad is not None and fire.squeeze.weight.grad is not None
    with pytest.raises(ValueError, match="choose bypass .* or complex_bypass"):
        Fire(16, 4, 8, 8, bypass=True, complex_bypass=True)
    with pytest.raises(ValueError, match="needs in_channels == expand1x1 \\+ expand3x3"):
        Fire(12, 4, 8, 8, bypass=True)


def test_inverted_residual_uses_its_shortcut_only_when_the_shapes_allow() -> None:
    same = InvertedResidual(16, 16, stride=1, expand_ratio=6).eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(same(x), x + same.conv(x))
    assert not InvertedResidual(16, 16, stride=2, expand_ratio=6).use_residual
    assert not InvertedResidual(16, 24, stride=1, expand_ratio=6).use_residual
    assert len(InvertedResidual(16, 16, 1, expand_ratio=1).conv) == 3  # t = 1: no expansion convolution


def test_depthwise_separable_conv_costs_1_over_c_out_plus_1_over_9_of_a_3x3_conv() -> None:
    c_in, c_out = 64, 128
    layer = DepthwiseSeparableConv(c_in, c_out, stride=2)
    weights = layer.depthwise[0].weight.numel() + layer.pointwise[0].weight.numel()
    assert layer.depthwise[0].groups == c_in
    assert weights == 9 * c_in + c_in * c_out
    assert weights / (9 * c_in * c_out) == pytest.approx(1 / c_out + 1 / 9)
    assert layer(torch.randn(2, c_in, 9, 9)).shape == (2, c_out, 5, 5)


def check_bad_input_errors(model: nn.Module, channels: int, size: int) -> None:
    """Every kind of bad input to ``model`` and to its ``head`` gets a clear error."""
    model.eval()
    good = images(size, channels=channels)
    with pytest.raises(ValueError, match=rf"expects {channels} input channel.*\(N, {channels}, H, W\)"):
        model(images(size, channels=channels + 1))
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        model(good[0])
    with pytest.raises(TypeError, match="floating-point dtype"):
        model(good.long())
    with pytest.raises(TypeError, match="torch.Tensor"):
        model(good.numpy())
    with torch.no_grad():
        z = model.features(good)
    with pytest.raises(ValueError, match=rf"head expects the feature map .*\(N, {z.shape[1]}, h, w\)"):
        model.head(z[:, 1:])


def test_bad_input_gets_a_clear_error(pair) -> None:
    spec, ours, _ = pair
    check_bad_input_errors(ours, 3, spec.size)


@pytest.mark.parametrize("make", [lambda: mobilenet_v1(num_classes=10, width_mult=0.25, in_channels=1),
                                  lambda: squeezenet1_1(num_classes=10, in_channels=1, small_input=True),
                                  lambda: googlenet(num_classes=10, in_channels=1, small_input=True)],
                         ids=["mobilenet_v1", "squeezenet1_1", "googlenet"])
def test_bad_input_gets_a_clear_error_with_one_input_channel(make) -> None:
    check_bad_input_errors(make(), 1, 28)


@pytest.mark.parametrize("name", ["alexnet", "vgg11", "vgg16", "googlenet", "inception_v3", "squeezenet1_0",
                                  "squeezenet1_1", "mobilenet_v1", "mobilenet_v2"])
@pytest.mark.parametrize("num_classes", [0, -3, 2.5])
def test_num_classes_must_be_a_positive_int(name: str, num_classes) -> None:
    builder = {b.__name__: b for b in (alexnet, vgg11, vgg16, googlenet, inception_v3, squeezenet1_0, squeezenet1_1,
                                       mobilenet_v1, mobilenet_v2)}[name]
    with pytest.raises(ValueError, match=r"num_classes must be a positive int"):
        builder(num_classes=num_classes)


def test_bad_arguments_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        vgg11(in_channels=0)
    with pytest.raises(ValueError, match=r"a VGG config holds positive ints .* and 'M'"):
        VGG([64, "X", 128])
    with pytest.raises(ValueError, match="at least one convolution width"):
        VGG(["M"])
    with pytest.raises(ValueError, match=r"config must be rows \(c_out, kernel, stride, padding, groups, pool\)"):
        AlexNet([(64, 11, 4, 2)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="width_mult must be a positive number"):
        mobilenet_v1(width_mult=0)
    with pytest.raises(ValueError, match="width_mult must be a positive number"):
        mobilenet_v2(width_mult=-1.0)
    with pytest.raises(ValueError, match="transform_input=True rescales the 3 ImageNet channels"):
        googlenet(in_channels=1, transform_input=True)
    with pytest.raises(ValueError, match="transform_input=True rescales the 3 ImageNet channels"):
        inception_v3(in_channels=1, transform_input=True)
    with pytest.raises(ValueError, match="dropout must be a probability"):
        squeezenet1_0(dropout=1.5)
    with pytest.raises(ValueError, match="kernel_5x5 must be odd"):
        InceptionBlock(192, 64, 96, 128, 16, 32, 32, kernel_5x5=4)
    with pytest.raises(ValueError, match=r"needs in_channels == expand1x1 \+ expand3x3, got 96 and 64 \+ 64"):
        Fire(96, 16, 64, 64, bypass=True)
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        InvertedResidual(16, 16, stride=3, expand_ratio=6)
    with pytest.raises(ValueError, match=r"aux_logits=True needs the modules \['inception4a', 'inception4d'\]"):
        GoogLeNet(GOOGLENET[:2])
