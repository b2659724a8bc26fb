"""Chapter 9's additions to ``companion.models.densenet``: ``feature_reuse`` and ``reuse_by_ablation``.

The oracle for ``feature_reuse``'s extra row is the weights themselves: a transition's (or the
classifier's) weight set slice by slice to known values must come back as those values, and a layer
reading the wrong number of channels gets a clear message. The oracle for ``reuse_by_ablation`` is
the whole model run with one weight slice zeroed at a time. The channels and parameters that
exercise 9 measures (questions 1 and 2) are checked against the companion and the formulas here too.
"""

import runpy
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from companion.models import densenet as densenet_module

ROOT = Path(__file__).resolve().parents[1]


def _block_with_known_weights():
    """A block of 3 layers on 5 channels with k = 2, each slice of each conv1 set to 10 * row + source."""
    block = densenet_module.DenseBlock(num_layers=3, in_channels=5, growth_rate=2, bn_size=2)
    with torch.no_grad():
        for i, layer in enumerate(block.values()):  # layer i + 1 reads 5 + 2 i channels
            w = layer.conv1.weight  # (4, 5 + 2 i, 1, 1)
            w[:, :5] = -10.0 * (i + 1)  # negative: the map uses |w|
            for s in range(1, i + 1):
                w[:, 5 + 2 * (s - 1):5 + 2 * s] = 10.0 * (i + 1) + s
    return block


@pytest.mark.parametrize("kind", ["transition", "classifier"])
def test_feature_reuse_adds_a_row_for_the_layer_after_the_block(kind):
    block = _block_with_known_weights()  # outputs 5 + 3 * 2 = 11 channels
    after = densenet_module.Transition(11, 5) if kind == "transition" else nn.Linear(11, 10)
    weight = after.conv.weight if kind == "transition" else after.weight  # (5, 11, 1, 1) or (10, 11)
    with torch.no_grad():
        weight[:, :5] = 40.0
        for s in range(1, 4):
            weight[:, 5 + 2 * (s - 1):5 + 2 * s] = -(40.0 + s)
    reuse = densenet_module.feature_reuse(block, after)
    nan = float("nan")
    expected = torch.tensor([[10.0, nan, nan, nan],
                             [20.0, 21.0, nan, nan],
                             [30.0, 31.0, 32.0, nan],
                             [40.0, 41.0, 42.0, 43.0]])
    torch.testing.assert_close(reuse, expected, equal_nan=True)
    torch.testing.assert_close(densenet_module.feature_reuse(block), expected[:3, :3], equal_nan=True)


def test_feature_reuse_of_a_trained_style_model_reads_its_own_weights():
    # The whole DenseNet: the rows of block 1 + transition 1 are means of slices of the live weights.
    torch.manual_seed(0)
    model = densenet_module.DenseNet(4, (3, 2), 8, num_classes=3, small_input=True)
    reuse = densenet_module.feature_reuse(model.features.denseblock1, model.features.transition1)
    w = model.features.transition1.conv.weight.abs()  # (10, 20, 1, 1): reads 8 + 3 * 4 channels
    torch.testing.assert_close(reuse[3], torch.stack([w[:, :8].mean()] + [w[:, 8 + 4 * s:12 + 4 * s].mean()
                                                                          for s in range(3)]))
    last = densenet_module.feature_reuse(model.features.denseblock2, model.classifier)  # 10 + 2 * 4 = 18 channels
    assert last.shape == (3, 3) and not last[-1].isnan().any()


def test_feature_reuse_explains_a_wrong_following_layer():
    block = _block_with_known_weights()
    message = r"after must read the block's 11 output channels \(5 \+ 3 x 2\), but it takes 12"
    with pytest.raises(ValueError, match=message):
        densenet_module.feature_reuse(block, nn.Linear(12, 10))
    with pytest.raises(TypeError, match="after must be the Transition or the nn.Linear classifier"):
        densenet_module.feature_reuse(block, nn.Conv2d(11, 5, 1))


def test_the_channels_and_parameters_of_exercise_9_match_the_companion_and_the_formulas():
    """Exercise 9's predictions (q1, q2) are measured on torchvision; the companion and the formulas agree."""
    channels = runpy.run_path(str(ROOT / "companion" / "exercise_tests" / "09_densenet" / "q1.py"))["measured"]()
    parameters = runpy.run_path(str(ROOT / "companion" / "exercise_tests" / "09_densenet" / "q2.py"))["measured"]()
    ours = densenet_module.DenseNet(12, (5, 4), 24)
    after, reads, out = (24 + 5 * 12) // 2, (24 + 5 * 12) // 2 + 2 * 12, (24 + 5 * 12) // 2 + 4 * 12
    assert channels == (ours.features.transition1.conv.out_channels,
                        ours.features.denseblock2.denselayer3.conv1.in_channels, ours.out_channels) == (after, reads, out)
    m, k = reads, 12
    layer = 2 * m + m * 4 * k + 2 * 4 * k + 4 * k * k * 9  # the chapter's P_l
    assert parameters == (sum(p.numel() for p in ours.features.denseblock2.denselayer3.parameters()),
                          sum(p.numel() for p in ours.features.transition1.parameters())) == (layer, 2 * 84 + 84 * 42)


def _ablated_by_hand(model, weight, columns, x, y):
    """Accuracy and loss of the whole model with weight[:, columns] set to zero (restored afterwards)."""
    kept = weight.data[:, columns].clone()
    weight.data[:, columns] = 0.0
    with torch.no_grad():
        logits = model(x)
    weight.data[:, columns] = kept
    return float((logits.argmax(1) == y).float().mean()), float(nn.functional.cross_entropy(logits, y))


@pytest.mark.parametrize("block", [1, 2])
def test_reuse_by_ablation_equals_zeroing_each_slice_and_running_the_whole_model(block):
    torch.manual_seed(0)
    model = densenet_module.DenseNet(growth_rate=3, block_config=(3, 2), num_init_features=4, num_classes=5,
                                     in_channels=1, small_input=True)
    for m in model.modules():  # non-trivial batch norms, so that zeroing after BN-ReLU matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.normal_(0, 0.5)
    model.train()
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 5, (64,))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    drop, rise = densenet_module.reuse_by_ablation(model, block, x, y)
    assert model.training  # its mode is given back
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # and its weights
    model.eval()
    with torch.no_grad():
        logits = model(x)
    base_acc, base_loss = float((logits.argmax(1) == y).float().mean()), float(nn.functional.cross_entropy(logits, y))
    dense = getattr(model.features, f"denseblock{block}")
    layers = list(dense.values())
    after = model.classifier.weight if block == 2 else model.features.transition1.conv.weight
    targets = [layer.conv1.weight for layer in layers] + [after]
    c, k = 4 if block == 1 else (4 + 3 * 3) // 2, 3
    assert drop.shape == rise.shape == (len(layers) + 1, len(layers) + 1)
    for t, weight in enumerate(targets):
        for s in range(len(targets)):
            if s > t:
                assert drop[t, s].isnan() and rise[t, s].isnan()
                continue
            columns = slice(0, c) if s == 0 else slice(c + (s - 1) * k, c + s * k)
            acc, loss = _ablated_by_hand(model, weight, columns, x, y)
            assert drop[t, s] == pytest.approx(base_acc - acc, abs=1e-6)
            assert rise[t, s] == pytest.approx(loss - base_loss, abs=1e-5)
    assert (rise.nan_to_num() != 0).any()  # the cut connections change the function


def test_reuse_by_ablation_names_a_wrong_block_and_wrong_data():
    model = densenet_module.DenseNet(growth_rate=3, block_config=(2, 2), num_init_features=4, num_classes=5,
                                     in_channels=1, small_input=True)
    x, y = torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"block must be 1 \.\. 2"):
        densenet_module.reuse_by_ablation(model, 3, x, y)
    with pytest.raises(ValueError, match="same length"):
        densenet_module.reuse_by_ablation(model, 1, x, y[:3])
    with pytest.raises(TypeError, match="must be a DenseNet"):
        densenet_module.reuse_by_ablation(nn.Linear(2, 2), 1, x, y)
