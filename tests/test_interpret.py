"""companion.interpret: grad_cam and occlusion against captum (the oracle), CAM against its formula and
Grad-CAM, the hooks against the layers run one by one, the rank correlation against SciPy, and the
randomisation of Adebayo et al.'s sanity check."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerGradCam, Occlusion
from scipy.stats import spearmanr
from torch import nn


def small_cnn(num_classes: int = 4) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


@pytest.mark.parametrize("layer_index", [0, 3, 4])
@pytest.mark.parametrize("target", [2, "per-input"])
def test_equals_captum(layer_index, target):
    from companion.interpret import grad_cam

    model = small_cnn().eval()
    x = torch.randn(5, 1, 12, 12)
    t = torch.tensor([0, 1, 2, 3, 1]) if target == "per-input" else target
    layer = model[layer_index]  # the conv (followed by an in-place ReLU), a later conv, a batch norm
    expected = LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)  # (N, 1, h, w)
    ours = grad_cam(model, layer, x, t)
    assert ours.shape == expected.shape[:1] + expected.shape[2:]
    torch.testing.assert_close(ours, expected[:, 0])
    assert all(p.grad is None for p in model.parameters()), "parameters' gradients untouched"


def test_grad_cam_is_cam_for_a_global_average_pooling_head():
    from companion.interpret import grad_cam

    model = small_cnn().eval()
    x = torch.randn(3, 1, 12, 12)
    features = model[:6](x)  # (N, 8, 6, 6): the maps the head pools
    weights = model[8].weight  # (classes, 8)
    cam = torch.relu(torch.einsum("k,nkhw->nhw", weights[1], features)) / (6 * 6)
    torch.testing.assert_close(grad_cam(model, model[5], x, 1), cam.detach())


def test_bad_input_is_named():
    from companion.interpret import grad_cam

    model = small_cnn().eval()
    with pytest.raises(ValueError, match="layer must be a module inside model"):
        grad_cam(model, nn.Conv2d(1, 1, 1), torch.randn(1, 1, 12, 12), 0)
    with pytest.raises(ValueError, match=r"classes in \[0, 4\)"):
        grad_cam(model, model[3], torch.randn(2, 1, 12, 12), 4)
    with pytest.raises(ValueError, match="must output a feature map"):
        grad_cam(model, model[8], torch.randn(2, 1, 12, 12), 0)


def gap_cnn(num_classes: int = 5) -> nn.Sequential:
    """A network with Zhou et al.'s head: convolutions, global average pooling, one linear layer."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2), nn.Conv2d(6, 7, 3, padding=1), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(7, num_classes))


# --- feature-map hooks ---------------------------------------------------------------------------


def test_record_outputs_keeps_what_each_layer_produced_and_removes_its_hooks():
    from companion.interpret import record_outputs

    model = small_cnn().eval()
    x = torch.randn(3, 1, 12, 12)
    layers = {"conv1": model[0], "conv2": model[3], "bn": model[4], "pool": model[6]}
    with record_outputs(layers) as maps:
        assert maps == {}
        scores = model(x)
    # the layers run one by one, without in-place ReLUs
    by_hand, h = {}, x
    for i, layer in enumerate(model):
        h = torch.relu(h) if isinstance(layer, nn.ReLU) else layer(h)
        by_hand[i] = h
    for name, index in {"conv1": 0, "conv2": 3, "bn": 4, "pool": 6}.items():
        torch.testing.assert_close(maps[name], by_hand[index].detach())
    torch.testing.assert_close(scores, by_hand[8])
    # conv1 and bn are followed by in-place ReLUs: the record keeps their negative values
    assert (maps["conv1"] < 0).any() and (maps["bn"] < 0).any()
    assert not maps["conv1"].requires_grad
    assert all(not m._forward_hooks for m in model.modules()), "hooks removed after the block"


def test_record_outputs_removes_its_hooks_after_an_error():
    from companion.interpret import record_outputs

    model = small_cnn()
    with pytest.raises(RuntimeError), record_outputs({"conv": model[0]}):
        model(torch.randn(1, 3, 12, 12))  # three channels for a one-channel conv
    assert all(not m._forward_hooks for m in model.modules())


def test_a_hook_that_keeps_a_reference_sees_the_in_place_relu():
    """Why record_outputs copies: the bug it avoids is real."""
    model = small_cnn().eval()
    kept = []
    handle = model[4].register_forward_hook(lambda m, i, out: kept.append(out))  # the batch norm
    model(torch.randn(2, 1, 12, 12))
    handle.remove()
    assert (kept[0] >= 0).all(), "the in-place ReLU after the batch norm overwrote the kept tensor"


def test_feature_maps_and_bad_layers():
    from companion.interpret import feature_maps, record_outputs

    model = small_cnn().eval()
    x = torch.randn(2, 1, 12, 12)
    maps = feature_maps(model, {"c": model[3]}, x)
    torch.testing.assert_close(maps["c"], model[3](model[2](torch.relu(model[0](x)))))
    with pytest.raises(ValueError, match="not a module inside model"):
        feature_maps(model, {"c": nn.Conv2d(1, 1, 1)}, x)
    with pytest.raises(ValueError, match="non-empty dict"):
        with record_outputs({}):
            pass
    with pytest.raises(ValueError, match=r"layers\['c'\] must be an nn.Module"):
        with record_outputs({"c": "conv"}):
            pass


# --- CAM ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [3, "per-input"])
def test_cam_is_the_formula_its_mean_is_the_score_and_grad_cam_is_its_relu(target):
    from companion.interpret import cam, feature_maps, grad_cam

    model = gap_cnn().eval()
    x = torch.randn(4, 2, 10, 10)
    t = torch.tensor([0, 4, 2, 3]) if target == "per-input" else target
    targets = torch.as_tensor(t).expand(4)
    features = feature_maps(model, {"last": model[5]}, x)["last"]  # (N, 7, 5, 5)
    fc = model[8]
    ours = cam(features, fc.weight, t)
    assert ours.shape == (4, 5, 5)
    by_hand = torch.zeros(4, 5, 5)
    for n in range(4):
        for k in range(7):
            by_hand[n] += fc.weight[targets[n], k] * features[n, k]
    torch.testing.assert_close(ours, by_hand.detach())
    # global average pooling is linear: the map's mean plus the bias is the score
    scores = model(x).detach()
    torch.testing.assert_close(ours.mean(dim=(1, 2)) + fc.bias[targets].detach(), scores[torch.arange(4), targets])
    # Grad-CAM's channel weights are w_k^c / (h w): Grad-CAM == ReLU(CAM) / (h w)
    torch.testing.assert_close(grad_cam(model, model[5], x, t), torch.relu(ours) / 25)
    # and captum's LayerGradCam agrees
    expected = LayerGradCam(model, model[5]).attribute(x, target=t, relu_attributions=True)[:, 0]
    torch.testing.assert_close(torch.relu(ours) / 25, expected.detach())


def test_cam_bad_input_is_named():
    from companion.interpret import cam

    features = torch.randn(2, 7, 5, 5)
    with pytest.raises(ValueError, match="weight has 6 inputs per class but features have 7 channels"):
        cam(features, torch.randn(5, 6), 0)
    with pytest.raises(ValueError, match=r"classes in \[0, 5\)"):
        cam(features, torch.randn(5, 7), 5)
    with pytest.raises(ValueError, match=r"Tensor\[2\]"):
        cam(features, torch.randn(5, 7), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="must be 4-D"):
        cam(features[0], torch.randn(5, 7), 0)


# --- occlusion ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window, stride", [((3, 3), (1, 1)), ((4, 4), (2, 2)), ((5, 3), (4, 2)), ((10, 10), (1, 1)),
                                            ((3, 4), (3, 3))])
@pytest.mark.parametrize("target, baseline", [(1, 0.0), ("per-input", 0.5)])
def test_occlusion_equals_captum(window, stride, target, baseline):
    from companion.interpret import occlusion

    model = gap_cnn().eval()
    x = torch.randn(3, 2, 10, 10)
    t = torch.tensor([4, 0, 2]) if target == "per-input" else target
    expected = Occlusion(model).attribute(x, sliding_window_shapes=(2, *window), strides=(2, *stride),
                                          baselines=baseline, target=t)  # (N, C, H, W), equal channels
    ours = occlusion(model, x, t, window=window, stride=stride, baseline=baseline, batch_size=7)
    assert ours.shape == (3, 10, 10)
    torch.testing.assert_close(ours, expected[:, 0])
    torch.testing.assert_close(expected[:, 1], expected[:, 0])


def test_occlusion_is_the_score_drop_of_covering_a_patch():
    """With a window the size of the stride, each pixel's value is the drop of covering its own tile."""
    from companion.interpret import occlusion

    model = gap_cnn().eval()
    x = torch.randn(1, 2, 10, 10)
    ours = occlusion(model, x, 2, window=5, stride=5)
    covered = x.clone()
    covered[..., 5:, :5] = 0.0  # the bottom-left tile
    drop = (model(x) - model(covered))[0, 2].detach()
    torch.testing.assert_close(ours[0, 5:, :5], drop.expand(5, 5))


def test_occlusion_bad_input_is_named():
    from companion.interpret import occlusion

    model = gap_cnn().eval()
    x = torch.randn(1, 2, 10, 10)
    with pytest.raises(ValueError, match="larger than the images"):
        occlusion(model, x, 0, window=11)
    with pytest.raises(ValueError, match="must not exceed the window"):
        occlusion(model, x, 0, window=3, stride=4)
    with pytest.raises(ValueError, match=r"classes in \[0, 5\)"):
        occlusion(model, x, 7, window=3)
    with pytest.raises(ValueError, match="must be 4-D"):
        occlusion(model, x[0], 0, window=3)


# --- rank correlation and randomisation ---------------------------------------------------------------


def test_rank_correlation_equals_scipy_with_ties_and_is_nan_for_a_constant_map():
    from companion.interpret import rank_correlation

    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 7, 7, generator=g)
    b = a + torch.randn(6, 7, 7, generator=g)
    a, b = torch.relu(a), torch.relu(b).round(decimals=1)  # many ties, at 0 and from rounding
    ours = rank_correlation(a, b)
    expected = torch.tensor([spearmanr(a[n].flatten(), b[n].flatten()).statistic for n in range(6)],
                            dtype=torch.float64)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(rank_correlation(a, a), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(rank_correlation(a, -a), -torch.ones(6, dtype=torch.float64))
    flat = rank_correlation(a[:2], torch.zeros(2, 7, 7))
    assert torch.isnan(flat).all()
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(a, b[:, :6])


def test_randomize_layers_changes_exactly_the_named_layers():
    from companion.interpret import randomize_layers

    model = small_cnn().eval()
    with torch.no_grad():  # trained-looking batch-norm statistics, so that a reset shows
        for tensor, value in ((model[4].running_mean, 0.3), (model[4].running_var, 2.0),
                              (model[4].weight, 2.0), (model[4].bias, 0.1)):
            tensor.fill_(value)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    random = randomize_layers(model, ["8", "4"], seed=3)
    assert torch.equal(torch.get_rng_state(), state), "the global random state is left as it was"
    for key, value in random.state_dict().items():
        layer = key.split(".")[0]
        changed = not torch.equal(value, before[key])
        if key.endswith("num_batches_tracked"):
            continue
        assert changed == (layer in ("8", "4")), key
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"the original model changed: {key}"
    again = randomize_layers(model, ["4", "8"], seed=3)  # the order does not matter
    alone = randomize_layers(model, ["8"], seed=3)  # nor the other layers
    other = randomize_layers(model, ["8"], seed=4)
    torch.testing.assert_close(again[8].weight, random[8].weight)
    torch.testing.assert_close(alone[8].weight, random[8].weight)
    assert not torch.equal(other[8].weight, random[8].weight)


def test_cascading_randomization_goes_from_the_top_down():
    from companion.interpret import cascading_randomization

    model = small_cnn().eval()
    names = ["0", "3", "8"]  # the convolutions and the linear layer
    steps = list(cascading_randomization(model, names, seed=0))
    assert [name for name, _ in steps] == ["8", "3", "0"]
    for k, (_, random) in enumerate(steps):
        for i, name in enumerate(names):
            same = torch.equal(random[int(name)].weight, model[int(name)].weight)
            assert same == (i < len(names) - 1 - k), (k, name)
    # a layer keeps its random weights as the cascade goes down
    torch.testing.assert_close(steps[-1][1][8].weight, steps[0][1][8].weight)


def test_randomize_bad_names():
    from companion.interpret import cascading_randomization, randomize_layers

    model = small_cnn()
    with pytest.raises(ValueError, match="no module 'fc'"):
        randomize_layers(model, ["fc"])
    with pytest.raises(ValueError, match="no weights of its own"):
        randomize_layers(model, ["1"])  # a ReLU
    with pytest.raises(ValueError, match="at least one layer"):
        list(cascading_randomization(model, []))
