"""ResNet, ResNeXt, wide ResNets, pre-activation ResNet, SE-ResNet and DenseNet.

torchvision is the oracle: our builders hold the same parameters under the same names, load
torchvision's state dict and then compute the same function (values and input gradients). Where
torchvision has no counterpart, the parameter count is checked against the paper's figure or a
hand count from the architecture table, and blocks against a functional reference.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops import SqueezeExcitation

from companion import models
from companion.models import densenet as densenet_module
from companion.models.preact import PreActBlock, preact_resnet18
from companion.models.resnet import RESNET18_LAYERS, RESNET50_LAYERS, BasicBlock, Bottleneck, ResNet
from companion.models.se import SEBasicBlock, SEBlock, SEBottleneck, se_resnet50
from companion.models.wrn import WideBlock, blocks_per_group, wide_resnet

# (ours, torchvision's, input side): same names, same shapes, same function. The side is the smallest
# that leaves a 2x2 last feature map, so that pooling and flattening are really exercised: a ResNet
# divides by 32 rounding up (33 -> 2), DenseNet-121 gives ceil(H / 4) // 8 (61 -> 2).
TORCHVISION_TWINS = [
    (models.resnet18, torchvision.models.resnet18, 33),
    (models.resnet34, torchvision.models.resnet34, 33),
    (models.resnet50, torchvision.models.resnet50, 33),
    (models.resnext50_32x4d, torchvision.models.resnext50_32x4d, 33),
    (models.wide_resnet50_2, torchvision.models.wide_resnet50_2, 33),
    (models.densenet121, torchvision.models.densenet121, 61),
]


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomise_norms(model: nn.Module) -> None:
    """Give every batch norm random statistics and affine parameters, so that swapped or skipped norms show."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)


@pytest.fixture(scope="module", params=TORCHVISION_TWINS, ids=lambda twin: twin[0].__name__)
def twins(request) -> tuple[nn.Module, nn.Module, int]:
    ours_builder, theirs_builder, size = request.param
    torch.manual_seed(0)
    return ours_builder(), theirs_builder(weights=None), size


def test_state_dict_has_torchvision_names_and_shapes(twins):
    ours, theirs, _ = twins
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    theirs_shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert ours_shapes == theirs_shapes
    ours.load_state_dict(theirs.state_dict())   # strict, both ways
    theirs.load_state_dict(ours.state_dict())
    assert count(ours) == count(theirs)


def test_same_outputs_and_input_gradients_as_torchvision_in_eval_mode(twins):
    ours, theirs, size = twins
    torch.manual_seed(1)
    randomise_norms(theirs)
    ours.eval()
    theirs.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert not torch.allclose(ours(x), theirs(x), atol=1e-3), "before loading, different weights must differ"
    ours.load_state_dict(theirs.state_dict())

    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    torch.testing.assert_close(out_ours, out_theirs, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(out_ours)
    # autograd.grad computes only what the input's gradient needs, not the weights' gradients.
    (grad_ours,) = torch.autograd.grad((out_ours * weights).sum(), x_ours)
    (grad_theirs,) = torch.autograd.grad((out_theirs * weights).sum(), x_theirs)
    torch.testing.assert_close(grad_ours, grad_theirs, atol=1e-5, rtol=1e-4)

    with torch.no_grad():
        z = ours.features(x)
        classifier = theirs.fc if hasattr(theirs, "fc") else theirs.classifier
        assert z.shape == (2, classifier.in_features, 2, 2)   # the map before global pooling
        torch.testing.assert_close(ours.head(z), out_ours.detach(), atol=0, rtol=0)


def test_every_parameter_gets_a_gradient_in_training(twins):
    ours, _, size = twins
    ours.train()
    torch.manual_seed(2)
    x, y = torch.randn(2, 3, size, size), torch.randint(0, 1000, (2,))
    logits = ours(x)
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    F.cross_entropy(logits, y).backward()
    for name, p in ours.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    ours.zero_grad(set_to_none=True)


# Small-input variants, as the chapters train them on Fashion-MNIST (1 channel), and the builders with no
# torchvision twin: builder, input side, last feature map. The ResNet family shares one stem and one
# builder, so ResNet-18 stands for the other small-input ResNets.
SMALL_INPUT = [
    (lambda: models.resnet18(10, in_channels=1, small_input=True), 28, (512, 4, 4)),
    (lambda: models.densenet121(10, in_channels=1, small_input=True), 28, (1024, 3, 3)),
    (lambda: preact_resnet18(10, in_channels=1, small_input=True), 28, (512, 4, 4)),
    (lambda: preact_resnet18(10, in_channels=1), 33, (512, 2, 2)),
    (lambda: se_resnet50(10, in_channels=1), 33, (2048, 2, 2)),
    (lambda: wide_resnet(16, 4, 10, dropout=0.3, in_channels=1), 28, (256, 7, 7)),
    # The paper's CIFAR ResNet-20 (Section 4.2), its plain twin, and the same net with SE blocks.
    (lambda: ResNet(BasicBlock, (3, 3, 3), 10, widths=(16, 32, 64), in_channels=1, small_input=True), 28, (64, 7, 7)),
    (lambda: ResNet(BasicBlock, (3, 3, 3), 10, widths=(16, 32, 64), in_channels=1, small_input=True,
                    residual=False), 28, (64, 7, 7)),
    # (A 16-channel SE block with reduction 16 has a single hidden unit, which a ReLU can switch off for a
    # whole batch; 32 channels and more keep several.)
    (lambda: ResNet(SEBasicBlock, (3, 3, 3), 10, widths=(32, 64, 128), in_channels=1, small_input=True), 28,
     (128, 7, 7)),
]
SMALL_IDS = ["resnet18", "densenet121", "preact_resnet18_small", "preact_resnet18", "se_resnet50",
             "wrn_16_4", "cifar_resnet20", "cifar_plain20", "cifar_se_resnet20"]


@pytest.mark.parametrize(("build", "side", "last_map"), SMALL_INPUT, ids=SMALL_IDS)
def test_small_input_variants_shapes_halves_and_gradients(build, side, last_map):
    torch.manual_seed(0)
    model = build()
    x, y = torch.randn(2, 1, side, side), torch.tensor([3, 7])
    z = model.features(x)
    assert z.shape == (2, *last_map)
    logits = model.head(z)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    F.cross_entropy(logits, y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(model.features(x)), atol=0, rtol=0)


# --- blocks --------------------------------------------------------------------------------------

def test_plain_network_drops_exactly_the_shortcuts():
    torch.manual_seed(0)
    residual = ResNet(BasicBlock, RESNET18_LAYERS, 10, small_input=True)
    plain = ResNet(BasicBlock, RESNET18_LAYERS, 10, small_input=True, residual=False)
    missing, unexpected = plain.load_state_dict(residual.state_dict(), strict=False)
    assert missing == [] and unexpected and all(".downsample." in k for k in unexpected)
    residual.eval()
    plain.eval()
    block_r, block_p = residual.layer1[0], plain.layer1[0]   # identity shortcut: 64 -> 64, stride 1
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block_r(x), torch.relu(block_r.branch(x) + x))
        torch.testing.assert_close(block_p(x), torch.relu(block_p.branch(x)))
        assert not torch.allclose(block_r(x), block_p(x))


def test_bottleneck_widths_follow_groups_and_width_per_group():
    # (groups, width_per_group) -> width of the 3x3 convolution for channels=64: ResNet-50, ResNeXt 32x4d, WRN-50-2.
    for groups, width_per_group, width in [(1, 64, 64), (32, 4, 128), (1, 128, 128)]:
        block = Bottleneck(256, 64, groups=groups, width_per_group=width_per_group)
        assert block.conv2.weight.shape == (width, width // groups, 3, 3)
        assert block.conv3.weight.shape == (256, width, 1, 1)
        assert block.downsample is None  # 256 in, 4 * 64 out, stride 1: identity shortcut


def _preact_reference(block: PreActBlock, x: torch.Tensor) -> torch.Tensor:
    """The pre-activation block written with functional ops from its equation (eval mode)."""
    def bn(m: nn.BatchNorm2d, t: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, training=False, eps=m.eps)
    pre = F.relu(bn(block.bn1, x))
    shortcut = x if block.shortcut is None else F.conv2d(pre, block.shortcut.weight, stride=block.conv1.stride)
    out = F.conv2d(pre, block.conv1.weight, stride=block.conv1.stride, padding=1)
    out = F.conv2d(F.relu(bn(block.bn2, out)), block.conv2.weight, padding=1)
    return out + shortcut


@pytest.mark.parametrize(("c_in", "c_out", "stride"), [(8, 8, 1), (8, 16, 2), (6, 12, 1), (8, 8, 2)])
def test_preact_block_matches_its_equation_values_and_gradients(c_in, c_out, stride, same_function):
    torch.manual_seed(c_in + c_out + stride)
    block = PreActBlock(c_in, c_out, stride).double()
    randomise_norms(block)
    block.eval()
    assert (block.shortcut is None) == (c_in == c_out and stride == 1)
    same_function(block, lambda x: _preact_reference(block, x), torch.randn(2, c_in, 7, 6, dtype=torch.float64))
    assert torch.autograd.gradcheck(block, (torch.randn(1, c_in, 4, 4, dtype=torch.float64, requires_grad=True),))


def test_se_block_equals_torchvision_squeeze_excitation_values_and_gradients(same_function):
    torch.manual_seed(0)
    for channels, reduction, size in [(32, 16, (5, 7)), (48, 4, (3, 3)), (8, 16, (6, 2))]:
        ours = SEBlock(channels, reduction)
        theirs = SqueezeExcitation(channels, max(1, channels // reduction))
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(3, channels, *size)
        same_function(ours, theirs, x)
        gates = ours.gates(x)
        assert gates.shape == (3, channels, 1, 1) and ((gates > 0) & (gates < 1)).all()
    block = SEBlock(8, 4).double()
    assert torch.autograd.gradcheck(block, (torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True),))


@pytest.mark.parametrize(("se_block", "block"), [(SEBottleneck(64, 16), Bottleneck(64, 16)),  # 64 -> 4 * 16
                                                 (SEBasicBlock(64, 64), BasicBlock(64, 64))],
                         ids=["bottleneck", "basic"])
def test_se_blocks_recalibrate_the_branch_before_the_addition(se_block, block):
    torch.manual_seed(0)
    se_block.eval()
    block.eval()
    excitation = SqueezeExcitation(64, 4).eval()    # reduction 16: 64 -> 4 -> 64
    missing, unexpected = block.load_state_dict(se_block.state_dict(), strict=False)
    assert missing == [] and sorted(unexpected) == ["se.fc1.bias", "se.fc1.weight", "se.fc2.bias", "se.fc2.weight"]
    excitation.load_state_dict(se_block.se.state_dict())
    x = torch.randn(2, 64, 5, 5)                    # identity shortcut: 64 channels in and out
    with torch.no_grad():
        torch.testing.assert_close(se_block(x), torch.relu(excitation(block.branch(x)) + x))


# --- parameter counts where torchvision has no twin -----------------------------------------------

def test_se_resnet50_count_is_resnet50_plus_the_se_blocks_and_the_papers_figure():
    # Each SE block on C channels: fc1 C -> C/16 and fc2 C/16 -> C, with biases.
    expected = count(torchvision.models.resnet50(weights=None))
    for n, width in zip(RESNET50_LAYERS, (64, 128, 256, 512)):
        c = 4 * width
        expected += n * (c * (c // 16) + c // 16 + (c // 16) * c + c)
    n_params = count(se_resnet50())
    assert n_params == expected
    assert round(n_params / 1e6, 1) == 28.1  # Hu et al.: 28.1M for SE-ResNet-50 with r = 16


@pytest.mark.parametrize(("depth", "k", "millions"), [(28, 10, 36.5), (16, 8, 11.0), (40, 4, 8.9)])
def test_wide_resnet_counts_match_the_paper(depth, k, millions):
    # Zagoruyko & Komodakis, Table 4 (CIFAR-10), rounded to 0.1M as the paper prints them.
    assert round(count(wide_resnet(depth, k, num_classes=10)) / 1e6, 1) == millions


def test_preact_resnet18_count_follows_its_table():
    def conv(c_in: int, c_out: int, k: int) -> int:
        return c_in * c_out * k * k
    expected, c_in = conv(3, 64, 7), 64
    for i, (n, width) in enumerate(zip(RESNET18_LAYERS, (64, 128, 256, 512))):
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            expected += 2 * c_in + conv(c_in, width, 3) + 2 * width + conv(width, width, 3)  # bn1, conv1, bn2, conv2
            if stride != 1 or c_in != width:
                expected += conv(c_in, width, 1)                                             # projection shortcut
            c_in = width
    expected += 2 * 512 + 512 * 1000 + 1000                                                   # final bn, fc
    assert count(preact_resnet18()) == expected


def test_wide_resnet_layout_and_dropout():
    model = wide_resnet(22, 2, num_classes=100, dropout=0.3)
    assert [len(stage) for stage in model.stages] == [3, 3, 3]
    assert model.conv1.out_channels == 16 and model.fc.in_features == 128
    x = torch.randn(2, 3, 32, 32)
    assert model.features(x).shape == (2, 128, 8, 8)
    model.train()
    assert not torch.allclose(model(x), model(x))       # dropout is active in training ...
    model.eval()
    torch.testing.assert_close(model(x), model(x))      # ... and off in evaluation


# --- DenseNet ---------------------------------------------------------------------------------------

def test_densenet_minimum_input_size_is_exact():
    for small_input, smallest in [(False, 29), (True, 8)]:
        model = models.densenet121(10, small_input=small_input).eval()
        assert model.features.min_size == smallest == densenet_module.min_input_size(4, small_input)
        with torch.no_grad():
            assert model(torch.randn(1, 3, smallest, smallest)).shape == (1, 10)
            too_small = torch.randn(1, 3, smallest - 1, smallest - 1)
            with pytest.raises(RuntimeError):   # torch itself fails one pixel below the minimum ...
                nn.Sequential.forward(model.features, too_small)
            with pytest.raises(ValueError, match=f"at least {smallest}x{smallest} pixels, got {smallest - 1}x"):
                model(too_small)                # ... and we say so first, clearly


def test_feature_reuse_reads_each_source_slice():
    block = densenet_module.DenseBlock(num_layers=3, in_channels=5, growth_rate=2, bn_size=2)
    with torch.no_grad():
        for i, layer in enumerate(block.values()):   # layer i + 1
            w = layer.conv1.weight                    # (4, 5 + 2 i, 1, 1)
            w[:, :5] = -(10.0 * (i + 1))              # source 0, the block input
            for s in range(1, i + 1):
                w[:, 5 + 2 * (s - 1): 5 + 2 * s] = 10.0 * (i + 1) + s
    reuse = densenet_module.feature_reuse(block)
    expected = torch.tensor([[10.0, float("nan"), float("nan")],
                             [20.0, 21.0, float("nan")],
                             [30.0, 31.0, 32.0]])
    torch.testing.assert_close(reuse, expected, equal_nan=True)


def test_dense_block_concatenates_the_new_features():
    torch.manual_seed(0)
    block = densenet_module.DenseBlock(num_layers=3, in_channels=4, growth_rate=3).eval()
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        out = block(x)
        assert out.shape == (2, 4 + 3 * 3, 5, 5)
        torch.testing.assert_close(out[:, :4], x)                        # the input is passed on unchanged
        first = block["denselayer1"](x)
        torch.testing.assert_close(out[:, 4:7], first)
        torch.testing.assert_close(out[:, 7:10], block["denselayer2"](torch.cat([x, first], 1)))


# --- errors -----------------------------------------------------------------------------------------

ALL_BUILDERS = [models.resnet18, models.resnet34, models.resnet50, models.resnext50_32x4d, models.wide_resnet50_2,
                models.densenet121, preact_resnet18, se_resnet50]


@pytest.mark.parametrize("build", ALL_BUILDERS, ids=lambda b: b.__name__)
def test_bad_num_classes_is_refused(build):
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        build(num_classes=0)


@pytest.mark.parametrize("build", [lambda: models.resnet18(10, small_input=True),
                                   lambda: models.densenet121(10, small_input=True),
                                   lambda: preact_resnet18(10, small_input=True),
                                   lambda: wide_resnet(10, 1)], ids=["resnet", "densenet", "preact", "wrn"])
def test_bad_inputs_get_clear_messages(build):
    model = build()
    with pytest.raises(ValueError, match=r"expects 3 input channels: x must be \(N, 3, H, W\), got shape \(2, 1, 32,"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, 3, H, W\), got a 3-D tensor"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(TypeError, match="floating-point dtype"):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        model([[0.0]])
    with pytest.raises(ValueError, match="must be 4-D"):
        model.head(torch.randn(2, 7))


def test_bad_architecture_arguments():
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 4 .* got 27"):
        wide_resnet(27, 10)
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 4 .* got 4"):
        wide_resnet(4, 10)
    with pytest.raises(ValueError, match="widen_factor must be a positive int, got 0"):
        wide_resnet(16, 0)
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\), got 1.5"):
        wide_resnet(16, 4, dropout=1.5)
    with pytest.raises(ValueError, match="BasicBlock supports only groups=1 and width_per_group=64"):
        ResNet(BasicBlock, RESNET18_LAYERS, groups=32, width_per_group=4)
    with pytest.raises(ValueError, match="layers and widths must be non-empty and of the same length"):
        ResNet(BasicBlock, (2, 2, 2), widths=(64, 128))
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        models.resnet18(in_channels=0)
    with pytest.raises(ValueError, match="block_config must list the layers of at least one dense block"):
        models.DenseNet(block_config=())
    with pytest.raises(ValueError, match=r"SEBlock\(16\) expects x of shape \(N, 16, H, W\), got \(1, 8, 4, 4\)"):
        SEBlock(16)(torch.randn(1, 8, 4, 4))
    with pytest.raises(TypeError, match="block must be a DenseBlock"):
        densenet_module.feature_reuse(nn.Linear(2, 2))


# --- WRN block types and dropout placement (Zagoruyko & Komodakis, section 2.1 and 2.4) ----------

def _copy_preact_into_wide(block: PreActBlock, wide) -> None:
    """Load a PreActBlock's weights into a WideBlock B(3,3) (different names, same tensors)."""
    wide.norms[0].load_state_dict(block.bn1.state_dict())
    wide.norms[1].load_state_dict(block.bn2.state_dict())
    wide.convs[0].load_state_dict(block.conv1.state_dict())
    wide.convs[1].load_state_dict(block.conv2.state_dict())
    if block.shortcut is not None:
        wide.shortcut.load_state_dict(block.shortcut.state_dict())


@pytest.mark.parametrize(("c_in", "c_out", "stride"), [(8, 8, 1), (8, 16, 2)])
def test_wide_block_b33_is_the_preact_block_with_dropout_between_the_convolutions(c_in, c_out, stride):
    torch.manual_seed(0)
    block = PreActBlock(c_in, c_out, stride, dropout=0.3)
    randomise_norms(block)
    wide = WideBlock(c_in, c_out, stride, kernels=(3, 3), dropout=0.3)
    _copy_preact_into_wide(block, wide)
    x = torch.randn(2, c_in, 7, 6, requires_grad=True)
    for mode in ("eval", "train"):
        getattr(block, mode)()
        getattr(wide, mode)()
        torch.manual_seed(1)
        ours = wide(x)
        torch.manual_seed(1)  # the same dropout mask
        theirs = block(x)
        torch.testing.assert_close(ours, theirs)
        upstream = torch.randn_like(ours)
        torch.testing.assert_close(torch.autograd.grad(ours, x, upstream)[0],
                                   torch.autograd.grad(theirs, x, upstream)[0])


def test_wide_block_dropout_on_the_output_drops_the_shortcut_too():
    torch.manual_seed(0)
    p = 0.3
    between = WideBlock(16, 16, dropout=p, dropout_at="between").train()
    output = WideBlock(16, 16, dropout=p, dropout_at="output").train()
    output.load_state_dict(between.state_dict())
    with torch.no_grad():
        for block in (between, output):
            block.convs[-1].weight.zero_()  # F(x) = 0: only the shortcut is left
        x = torch.randn(8, 16, 8, 8) + 3.0  # no zeros in x
        # dropout inside the branch cannot touch the identity path
        torch.testing.assert_close(between(x), x)
        torch.manual_seed(2)
        y = output(x)
        torch.manual_seed(2)
        mask = F.dropout(torch.ones_like(x), p, training=True)  # 0 or 1 / (1 - p)
        torch.testing.assert_close(y, x * mask)
        kept = (y != 0).float().mean().item()
        assert abs(kept - (1 - p)) < 0.03
        output.eval()
        torch.testing.assert_close(output(x), x)  # evaluation: no dropout anywhere


def _wide_block_count(c_in: int, c: int, kernels: tuple[int, ...]) -> int:
    convs = sum(ci * c * k * k for ci, k in zip([c_in] + [c] * (len(kernels) - 1), kernels))
    norms = 2 * (c_in + c * (len(kernels) - 1))  # one batch norm before each convolution
    return convs + norms + (c_in * c if c_in != c else 0)


@pytest.mark.parametrize("kernels", [(3, 3), (3, 1, 3), (1, 3, 1), (1, 3), (3, 1), (3, 1, 1)])
def test_wide_block_types_count_and_shape(kernels):
    for c_in, c, stride in [(32, 32, 1), (32, 64, 2)]:
        block = WideBlock(c_in, c, stride, kernels=kernels)
        assert count(block) == _wide_block_count(c_in, c, kernels)
        assert block(torch.randn(2, c_in, 9, 9)).shape == (2, c, -(-9 // stride), -(-9 // stride))
    # one strided convolution: the first one with a kernel larger than 1
    strides = [conv.stride[0] for conv in WideBlock(8, 16, 2, kernels=kernels).convs]
    assert strides.count(2) == 1 and kernels[strides.index(2)] == 3


def test_wide_resnet_block_types_depth_rule_and_counts():
    # the paper's Table 2 (k = 2): n = (d - 4) / 6 blocks per group whatever the block type,
    # which gives its parameter counts (millions)
    assert blocks_per_group(40) == 6 and blocks_per_group(22) == 3
    table = [((1, 3, 1), 40, 1.4), ((3, 1), 40, 1.2), ((1, 3), 40, 1.3), ((3, 1, 1), 40, 1.3),
             ((3, 3), 28, 1.5), ((3, 1, 3), 22, 1.1)]
    for kernels, depth, millions in table:
        with torch.device("meta"):
            assert round(count(wide_resnet(depth, 2, block=kernels)) / 1e6, 1) == millions
    model = wide_resnet(22, 2, block=(3, 1, 3))
    assert [len(stage) for stage in model.stages] == [3, 3, 3]
    assert all(isinstance(b, WideBlock) for stage in model.stages for b in stage)
    expected = 3 * 16 * 9 + 2 * 128 + 128 * 10 + 10  # stem, final batch norm, classifier
    c_in = 16
    for width in (32, 64, 128):
        for _ in range(3):
            expected += _wide_block_count(c_in, width, (3, 1, 3))
            c_in = width
    assert count(model) == expected
    # B(3,3) with dropout between the convolutions is PreActBlock, with the same count
    assert isinstance(wide_resnet(16, 2).stages[0][0], PreActBlock)
    assert count(wide_resnet(16, 2, block=(3, 3), dropout_at="output")) == count(wide_resnet(16, 2))
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 4 .* got 27"):
        wide_resnet(27, 2, block=(3, 1, 3))
    with pytest.raises(ValueError, match="kernels must be a non-empty list of odd kernel sizes"):
        WideBlock(8, 8, kernels=(3, 2))
    with pytest.raises(ValueError, match="dropout_at must be 'between' or 'output'"):
        WideBlock(8, 8, dropout_at="shortcut")
    with pytest.raises(ValueError, match="block must list the kernel sizes"):
        wide_resnet(16, 2, block=())
