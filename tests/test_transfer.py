"""Transfer-learning helpers (companion.transfer) and the Keras twin (companion.keras_transfer).

The framework is the oracle: a frozen parameter gets no gradient from autograd and no update from
an optimiser, ``batchnorm_eval`` matches torchvision's ``FrozenBatchNorm2d``, recomputed running
statistics equal the data's own statistics, and the Keras twin computes what PyTorch computes.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from companion import nets, norm
from companion.transfer import (TransferClassifier, batchnorm_eval, batchnorm_layers, extract_features,
                                few_shot_subset, freeze, recompute_batchnorm_stats, trainable_parameters,
                                unfreeze, unfreeze_top)


def randomize_batchnorms(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for m in batchnorm_layers(model):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.3)
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return randomize_batchnorms(nets.fashion_cnn(num_classes=5).backbone)


# --- freezing ------------------------------------------------------------------------------------

def test_freeze_stops_gradients_and_updates_and_unfreeze_restores_them():
    torch.manual_seed(0)
    model = nets.fashion_cnn(num_classes=5)
    freeze(model.backbone)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    F.cross_entropy(model(torch.rand(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.classifier.parameters())
    after = model.state_dict()
    for name, p in model.backbone.named_parameters():
        torch.testing.assert_close(after[f"backbone.{name}"], before[f"backbone.{name}"], rtol=0, atol=0)
    assert not torch.equal(after["classifier.1.weight"], before["classifier.1.weight"])
    unfreeze(model.backbone)
    assert all(p.requires_grad for p in model.parameters())


def test_trainable_parameters_counts_what_requires_grad():
    torch.manual_seed(0)
    model = nets.fashion_cnn(num_classes=5)
    total = sum(p.numel() for p in model.parameters())
    assert trainable_parameters(model) == total
    freeze(model.backbone)
    assert trainable_parameters(model) == sum(p.numel() for p in model.classifier.parameters())
    freeze(model)
    assert trainable_parameters(model) == 0


def test_unfreeze_top_counts_only_layers_with_parameters():
    net = backbone()  # conv, bn, relu, pool, conv, bn, relu, pool
    unfreeze_top(net, 2)  # the last conv and its batch norm
    assert [any(p.requires_grad for p in m.parameters()) for m in net if any(True for _ in m.parameters())] == [
        False, False, True, True]
    assert trainable_parameters(net) == net[4].weight.numel() + 2 * net[5].num_features
    unfreeze_top(net, 1)  # freezes the rest again
    assert trainable_parameters(net) == 2 * net[5].num_features


def test_unfreeze_top_errors():
    with pytest.raises(ValueError, match="only 4 direct children with parameters"):
        unfreeze_top(backbone(), 5)
    with pytest.raises(ValueError, match="n must be a positive int"):
        unfreeze_top(backbone(), 0)
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        freeze([nn.Linear(2, 2)])


# --- batch norm under transfer ---------------------------------------------------------------------

def test_batchnorm_eval_matches_torchvisions_frozen_batchnorm_in_training_mode():
    net = backbone()
    frozen = nets.fashion_cnn(num_classes=5).backbone
    for i, m in enumerate(net):  # torchvision's detection models fine-tune with these
        if isinstance(m, nn.BatchNorm2d):
            frozen[i] = FrozenBatchNorm2d(m.num_features, eps=m.eps)
    frozen.load_state_dict(net.state_dict(), strict=False)  # FrozenBatchNorm2d has no num_batches_tracked
    net.train()
    batchnorm_eval(net)
    assert net.training and all(not m.training for m in batchnorm_layers(net))
    x = torch.rand(6, 1, 28, 28)
    stats = [m.running_mean.clone() for m in batchnorm_layers(net)]
    torch.testing.assert_close(net(x), frozen.train()(x))
    for m, before in zip(batchnorm_layers(net), stats):
        torch.testing.assert_close(m.running_mean, before, rtol=0, atol=0)


def test_a_backbone_in_training_mode_moves_its_running_statistics_and_its_features():
    net = backbone()
    x = torch.rand(16, 1, 28, 28)
    eval_features = extract_features(net, x)
    net.train()
    with torch.no_grad():
        net(x)  # one forward pass in training mode, no optimiser at all
    moved = [m.running_mean for m in batchnorm_layers(net)]
    assert not any(torch.equal(m, b) for m, b in zip(moved, [m.running_mean for m in batchnorm_layers(backbone())]))
    assert (extract_features(net, x) - eval_features).abs().max() > 1e-2


def test_transfer_classifier_keeps_backbone_batchnorm_in_inference_mode():
    head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(32 * 7 * 7, 5))
    model = TransferClassifier(backbone(), head)
    model.train()
    assert model.training and model.classifier[1].training
    assert all(not m.training for m in batchnorm_layers(model.backbone))
    assert model.backbone[2].training  # the other layers follow model.train()
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model.features(x), extract_features(backbone(), x))
    assert model(x).shape == (4, 5)
    loose = TransferClassifier(backbone(), head, freeze_batchnorm=False).train()
    assert all(m.training for m in batchnorm_layers(loose.backbone))


def test_batchnorm_helpers_know_the_companions_own_batchnorm():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), norm.BatchNorm2d(3), nn.ReLU()).train()
    assert len(batchnorm_layers(net)) == 1
    batchnorm_eval(net)
    assert not net[1].training and net[0].training


def test_recompute_batchnorm_stats_gives_the_datas_mean_and_unbiased_variance():
    torch.manual_seed(0)
    net = randomize_batchnorms(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=0.3), nn.ReLU(),
                                             nn.Conv2d(4, 3, 3), nn.BatchNorm2d(3)))
    x = torch.rand(20, 1, 10, 10) * 3 + 1
    weights = {k: v.clone() for k, v in net.named_parameters()}
    recompute_batchnorm_stats(net, x, batch_size=len(x))
    inputs = [net[0](x)]  # what the first batch norm sees, then (in the pass, batch statistics) the second
    bn1 = net[1]
    inputs.append(net[3](F.relu(F.batch_norm(inputs[0], None, None, bn1.weight, bn1.bias, training=True))))
    for bn, z in zip((net[1], net[4]), inputs):
        torch.testing.assert_close(bn.running_mean, z.mean(dim=(0, 2, 3)))
        torch.testing.assert_close(bn.running_var, z.var(dim=(0, 2, 3), unbiased=True))
    assert not net.training and net[1].momentum == 0.3
    for k, v in net.named_parameters():
        torch.testing.assert_close(v, weights[k], rtol=0, atol=0)
    # several batches: the cumulative average of the batch statistics
    recompute_batchnorm_stats(net, x, batch_size=5)
    first = net[0](x).reshape(4, 5, 4, 8, 8)  # (batches, N, C, H, W)
    torch.testing.assert_close(net[1].running_mean, first.mean(dim=(1, 3, 4)).mean(0))


def test_recompute_batchnorm_stats_errors():
    with pytest.raises(ValueError, match="no batch-norm layer"):
        recompute_batchnorm_stats(nn.Sequential(nn.Conv2d(1, 2, 3)), torch.rand(2, 1, 5, 5))
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\)"):
        recompute_batchnorm_stats(backbone(), torch.rand(2, 28, 28))


def test_extract_features_batches_restores_the_mode_and_checks_its_input():
    net = backbone().train()
    x = torch.rand(7, 1, 28, 28)
    z = extract_features(net, x, batch_size=3)
    assert net.training and not z.requires_grad
    torch.testing.assert_close(z, net.eval()(x))
    with pytest.raises(TypeError, match="floating-point"):
        extract_features(net, torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


# --- few-shot subsets --------------------------------------------------------------------------------

def test_few_shot_subset_takes_k_of_each_class_without_repeats():
    labels = torch.arange(5).repeat_interleave(torch.tensor([10, 7, 12, 9, 20]))[torch.randperm(58)] + 5
    index = few_shot_subset(labels, 6, seed=1)
    assert index.dtype == torch.int64 and len(index) == 30 and len(set(index.tolist())) == 30
    assert labels[index].tolist() == [c for c in range(5, 10) for _ in range(6)]
    assert torch.equal(index, few_shot_subset(labels, 6, seed=1))
    assert not torch.equal(index, few_shot_subset(labels, 6, seed=2))


def test_few_shot_subsets_are_nested_in_k():
    labels = torch.randint(0, 4, (200,))
    small, large = few_shot_subset(labels, 3, seed=7), few_shot_subset(labels, 20, seed=7)
    assert set(small.tolist()) <= set(large.tolist())


def test_few_shot_subset_errors():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    with pytest.raises(ValueError, match="class 2 has only 1 examples, fewer than k=2"):
        few_shot_subset(labels, 2)
    with pytest.raises(ValueError, match="k must be a positive int"):
        few_shot_subset(labels, 0)
    with pytest.raises(TypeError, match="integer class indices"):
        few_shot_subset(labels.float(), 1)
    with pytest.raises(ValueError, match=r"1-D \(N,\)"):
        few_shot_subset(labels[None], 1)


# --- the Keras twin ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras was imported on another backend")
    return keras


def test_keras_twin_computes_what_pytorch_computes(keras):
    from companion.keras_transfer import keras_twin

    torch.manual_seed(0)
    model = nets.fashion_cnn(num_classes=5)
    randomize_batchnorms(model)
    torch_net = nn.Sequential(*model.backbone, *model.classifier)
    twin = keras_twin(torch_net, (1, 28, 28))
    x = torch.rand(6, 1, 28, 28)
    torch_net.eval()
    torch.testing.assert_close(twin(x, training=False), torch_net(x), rtol=1e-4, atol=1e-5)
    # training mode: batch statistics, input gradients through both frameworks, moving averages
    torch_net.train()
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = twin(x1, training=True), torch_net(x2)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    upstream = torch.randn_like(ours)
    (ours * upstream).sum().backward()
    (theirs * upstream).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    bn = [layer for layer in twin.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer, m in zip(bn, batchnorm_layers(torch_net)):
        torch.testing.assert_close(torch.as_tensor(layer.moving_mean.numpy()), m.running_mean, rtol=1e-4, atol=1e-5)
        # Keras averages the biased batch variance, torch the unbiased one: n / (n - 1) apart
        torch.testing.assert_close(torch.as_tensor(layer.moving_variance.numpy()), m.running_var, rtol=1e-3, atol=1e-4)


def test_keras_twin_pads_strides_and_pools_like_pytorch(keras):
    from companion.keras_transfer import keras_twin

    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 5, padding=1, bias=False),
                        nn.AvgPool2d(2), nn.Sequential(nn.MaxPool2d(2, stride=1), nn.Flatten()), nn.Dropout(0.2),
                        nn.Linear(4 * 2 * 2, 3))
    twin = keras_twin(net, (2, 17, 17))
    x = torch.rand(3, 2, 17, 17)
    torch.testing.assert_close(twin(x, training=False), net.eval()(x), rtol=1e-4, atol=1e-5)


def test_keras_twin_without_weights_has_the_architecture_but_its_own_weights(keras):
    from companion.keras_transfer import keras_twin

    net = backbone()
    twin = keras_twin(net, (1, 28, 28), copy_weights=False, name="fresh")
    assert twin.count_params() == sum(p.numel() for p in net.parameters()) + sum(
        2 * m.num_features for m in batchnorm_layers(net))  # Keras counts the moving statistics too
    x = torch.rand(2, 1, 28, 28)
    assert twin(x, training=False).shape == net.eval()(x).shape
    assert not torch.allclose(twin(x, training=False), net(x))


def test_keras_twin_errors(keras):
    from companion.keras_transfer import keras_twin

    with pytest.raises(TypeError, match="nn.Sequential"):
        keras_twin(nets.fashion_cnn(), (1, 28, 28))
    with pytest.raises(ValueError, match="no Keras twin for GELU"):
        keras_twin(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.GELU()), (1, 2, 2))
    with pytest.raises(ValueError, match="only plain convolutions"):
        keras_twin(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)), (2, 5, 5))
