"""companion.medical against its references: scikit-image's radon/iradon, scikit-learn's metrics, the
one-batch gradient, a per-slice loop; the phantom sets' promises; MedMNIST's .npz layout."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.transform import iradon, radon
from sklearn import metrics as skm
from torch import nn

from companion import medical


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    """The CT matrices are cached on disk: this module builds its own, in a fresh folder."""
    before = os.environ.get("COMPANION_DATA")
    os.environ["COMPANION_DATA"] = str(tmp_path_factory.mktemp("data"))
    medical.ct_operators.cache_clear()
    yield
    if before is None:
        del os.environ["COMPANION_DATA"]
    else:
        os.environ["COMPANION_DATA"] = before
    medical.ct_operators.cache_clear()


# --- the scanner -------------------------------------------------------------------------------------

def test_ct_operators_are_scikit_images_radon_and_iradon():
    size, angles = 16, 12
    forward, backward = medical.ct_operators(size, angles)
    assert forward.shape == (size * angles, size * size) and backward.shape == (size * size, size * angles)
    theta = np.linspace(0.0, 180.0, angles, endpoint=False)
    rng = np.random.default_rng(0)
    image = rng.random((size, size)) * medical._circle(size)  # zero outside the circle, as the scanner wants
    sinogram = radon(image, theta=theta, circle=True)  # (size, angles)
    torch.testing.assert_close(forward @ torch.from_numpy(image).float().ravel(),
                               torch.from_numpy(sinogram).float().ravel(), rtol=1e-4, atol=1e-4)
    noisy = sinogram + rng.normal(size=sinogram.shape)
    torch.testing.assert_close(backward @ torch.from_numpy(noisy).float().ravel(),
                               torch.from_numpy(iradon(noisy, theta=theta, circle=True)).float().ravel(),
                               rtol=1e-4, atol=1e-4)
    # cached: built again from the file, the same matrices
    medical.ct_operators.cache_clear()
    again, _ = medical.ct_operators(size, angles)
    torch.testing.assert_close(again, forward)


def test_scan_without_photon_noise_is_radon_then_iradon_and_noise_falls_with_the_dose():
    clean, labels, _ = medical.draw_phantoms(3, size=16, prevalence=0.5)
    assert clean.shape == (3, 16, 16) and int(labels.sum()) == 2
    theta = np.linspace(0.0, 180.0, 16, endpoint=False)
    expected = np.stack([iradon(radon(c.double().numpy(), theta=theta, circle=True), theta=theta, circle=True)
                         for c in clean])
    torch.testing.assert_close(medical.scan(clean, photons=None), torch.from_numpy(expected).float(),
                               rtol=1e-4, atol=1e-4)
    spread = [float((medical.scan(clean, photons=dose, generator=torch.Generator().manual_seed(1))
                     - medical.scan(clean, photons=None)).std()) for dose in (200.0, 20_000.0)]
    assert spread[0] > 3 * spread[1] > 0  # Poisson noise: 100 times the photons, a tenth of the spread


# --- the phantom sets ---------------------------------------------------------------------------------

def test_phantom_slices_shapes_prevalence_and_seeds():
    images, labels, masks = medical.phantom_slices(50, size=16, prevalence=0.1, seed=3, return_masks=True)
    assert images.shape == (50, 1, 16, 16) and images.dtype == torch.float32
    assert labels.shape == (50,) and labels.dtype == torch.int64 and masks.shape == (50, 16, 16)
    assert masks.dtype == torch.bool
    assert 0 <= float(images.min()) and float(images.max()) <= 1
    assert int(labels.sum()) == 5  # exactly round(n * prevalence)
    again = medical.phantom_slices(50, size=16, prevalence=0.1, seed=3)
    torch.testing.assert_close(again[0], images, rtol=0, atol=0)
    assert torch.equal(again[1], labels)
    other = medical.phantom_slices(50, size=16, prevalence=0.1, seed=4)
    assert not torch.equal(other[0], images) and not torch.equal(other[1], labels)
    assert int(medical.phantom_slices(7, size=16, prevalence=0.01)[1].sum()) == 1  # at least one positive


def test_every_positive_slice_shows_its_lesion_and_no_negative_has_one():
    images, labels, masks = medical.phantom_slices(60, size=28, prevalence=0.5, seed=0, photons=None,
                                                   return_masks=True)
    assert masks[labels == 0].sum() == 0
    assert (masks[labels == 1].flatten(1).sum(1) >= 1).all()
    # the same patients without their lesions: the lesion makes its pixels brighter, by at least 0.15
    generator = torch.Generator().manual_seed(0)
    medical._labels(60, 0.5, generator)
    jitter = medical._patients(60, 28, generator)
    healthy, _ = medical._draw(28, jitter, torch.zeros(60))
    lesion_free = medical.scan(healthy, photons=None).clamp(0, 1)
    for i in torch.nonzero(labels == 1)[:, 0]:
        gain = (images[i, 0] - lesion_free[i])[masks[i]].mean()
        assert gain > 0.15, (int(i), float(gain))
    negatives = labels == 0
    torch.testing.assert_close(images[negatives, 0], lesion_free[negatives])


def test_phantom_volumes_show_a_lesion_in_one_to_three_neighbouring_slices():
    volumes, labels, masks = medical.phantom_volumes(40, slices=6, size=16, prevalence=0.5, seed=1,
                                                     return_masks=True)
    assert volumes.shape == (40, 6, 1, 16, 16) and volumes.dtype == torch.float32
    assert labels.dtype == torch.int64 and int(labels.sum()) == 20 and masks.shape == (40, 6, 16, 16)
    assert masks[labels == 0].sum() == 0
    for i in torch.nonzero(labels == 1)[:, 0]:
        hit = torch.nonzero(masks[i].flatten(1).any(1))[:, 0]
        assert 1 <= len(hit) <= 3 and int(hit[-1] - hit[0]) == len(hit) - 1, hit.tolist()
    # the head is an ellipsoid: the end slices are its smallest cross-sections
    area = (volumes[:, :, 0] > 0.05).flatten(2).sum(2).float().mean(0)  # (6,)
    assert area[0] < area[2] and area[-1] < area[3]
    same = medical.phantom_volumes(40, slices=6, size=16, prevalence=0.5, seed=1)
    assert torch.equal(same[0], volumes) and torch.equal(same[1], labels)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be a positive int"),
    (dict(n=10, prevalence=0.0), r"prevalence must be a fraction in \(0, 1\)"),
    (dict(n=10, prevalence=1.5), r"prevalence must be a fraction in \(0, 1\)"),
    (dict(n=10, size=8), "size must be at least 16"),
    (dict(n=10, photons=-1.0), "photons must be > 0"),
])
def test_bad_phantom_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        medical.phantom_slices(**kwargs)


# --- metrics ---------------------------------------------------------------------------------------

def test_metrics_equal_scikit_learn():
    generator = torch.Generator().manual_seed(0)
    target = (torch.rand(200, generator=generator) < 0.2).long()
    predicted = torch.where(torch.rand(200, generator=generator) < 0.3, 1 - target, target)
    ours = medical.binary_metrics(predicted, target)
    y, p = target.numpy(), predicted.numpy()
    assert ours["sensitivity"] == pytest.approx(skm.recall_score(y, p))
    assert ours["specificity"] == pytest.approx(skm.recall_score(y, p, pos_label=0))
    assert ours["balanced accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    assert ours["precision"] == pytest.approx(skm.precision_score(y, p))
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert torch.equal(medical.confusion_matrix(predicted, target), torch.from_numpy(skm.confusion_matrix(y, p)))
    three = torch.tensor([0, 1, 2, 2, 1]), torch.tensor([0, 2, 2, 1, 1])
    assert torch.equal(medical.confusion_matrix(*three, num_classes=3),
                       torch.from_numpy(skm.confusion_matrix(three[1].numpy(), three[0].numpy())))


def test_bad_metric_inputs_are_named():
    with pytest.raises(TypeError, match="integer class labels"):
        medical.binary_metrics(torch.tensor([0.2, 0.9]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="must hold both classes"):
        medical.binary_metrics(torch.tensor([0, 1]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="same length"):
        medical.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=r"target must hold classes in \[0, 2\)"):
        medical.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 2]))


def test_oversampling_draws_both_classes_equally_often():
    labels = torch.tensor([1] * 5 + [0] * 95)
    sampler = medical.oversampling_sampler(labels, num_samples=20_000, generator=torch.Generator().manual_seed(0))
    drawn = labels[torch.tensor(list(sampler))]
    assert abs(float(drawn.float().mean()) - 0.5) < 0.02  # 5% of the examples, half of the draws
    assert len(list(medical.oversampling_sampler(labels))) == 100
    with pytest.raises(ValueError, match="integer classes"):
        medical.oversampling_sampler(torch.tensor([0.0, 1.0]))


# --- gradient accumulation ---------------------------------------------------------------------------

def _net(batch_norm: bool) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 4, 3, padding=1)] + ([nn.BatchNorm2d(4)] if batch_norm else []) + [
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)]
    return nn.Sequential(*layers).double()


def _gradients(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("micro_batches", [1, 2, 4, 8])
def test_accumulated_gradients_equal_the_whole_batch_without_batch_norm(micro_batches):
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    model = _net(batch_norm=False)
    F.cross_entropy(model(x), y).backward()
    whole = _gradients(model)
    model.zero_grad()
    loss = medical.accumulate_gradients(model, F.cross_entropy, x, y, micro_batches)
    for ours, reference in zip(_gradients(model), whole):
        torch.testing.assert_close(ours, reference)
    assert loss == pytest.approx(F.cross_entropy(model(x), y).item())


def test_accumulated_gradients_differ_with_batch_norm_and_bad_splits_are_named():
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    model = _net(batch_norm=True).train()
    F.cross_entropy(model(x), y).backward()
    whole = _gradients(model)
    model.zero_grad()
    medical.accumulate_gradients(model, F.cross_entropy, x, y, 4)
    conv_weight = 0
    assert not torch.allclose(_gradients(model)[conv_weight], whole[conv_weight], rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match="must split into 3 equal micro-batches"):
        medical.accumulate_gradients(model, F.cross_entropy, x, y, 3)


# --- the 2.5-D model ------------------------------------------------------------------------------------

@pytest.mark.parametrize("pool", ["max", "mean"])
def test_slice_stack_net_shares_one_cnn_and_ignores_the_slice_order(pool):
    torch.manual_seed(0)
    cnn = medical.small_vgg((4, 8)).features
    net = medical.SliceStackNet(cnn, channels=8, num_classes=2, pool=pool).double().eval()
    x = torch.randn(3, 5, 1, 16, 16, dtype=torch.float64)
    out = net(x)
    assert out.shape == (3, 2)
    per_slice = torch.stack([cnn(x[:, s]).mean(dim=(2, 3)) for s in range(5)], 1)  # (3, 5, 8): a loop
    pooled = per_slice.amax(1) if pool == "max" else per_slice.mean(1)
    torch.testing.assert_close(out, net.classifier(pooled))
    torch.testing.assert_close(net(x[:, torch.randperm(5)]), out)
    assert net(x[:, :2]).shape == (3, 2)  # any number of slices


def test_slice_stack_net_names_bad_input():
    net = medical.SliceStackNet(medical.small_vgg((4, 8)).features, channels=8)
    with pytest.raises(ValueError, match=r"\(N, S, C, H, W\)"):
        net(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="pool must be 'max' or 'mean'"):
        medical.SliceStackNet(nn.Identity(), channels=8, pool="sum")


def test_small_vgg_is_a_vgg_with_a_gap_head():
    net = medical.small_vgg((8, 16, 32), batch_norm=True)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 2)
    assert net.features(torch.zeros(1, 1, 28, 28)).shape == (1, 32, 7, 7)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 3


# --- MedMNIST -------------------------------------------------------------------------------------------

def _fake_medmnist(path, shape, n=(6, 2, 3)):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(medical.SPLITS, n):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, *shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (count, 1), dtype=np.uint8)
    np.savez(path, **arrays)
    return arrays


def test_read_medmnist_reads_the_npz_layout_in_2d_and_3d(tmp_path):
    flat = _fake_medmnist(tmp_path / "pneumoniamnist.npz", (28, 28))
    images, labels = medical.read_medmnist("pneumoniamnist", "val", root=tmp_path)
    assert images.shape == (2, 1, 28, 28) and images.dtype == torch.float32
    torch.testing.assert_close(images[:, 0], torch.from_numpy(flat["val_images"] / 255.0).float())
    assert labels.dtype == torch.int64 and labels.tolist() == flat["val_labels"][:, 0].tolist()
    cubes = _fake_medmnist(tmp_path / "nodulemnist3d.npz", (28, 28, 28))
    volumes, labels = medical.read_medmnist(str(tmp_path / "nodulemnist3d.npz"), "test")
    assert volumes.shape == (3, 28, 1, 28, 28)  # a stack of 28 slices, as phantom_volumes
    torch.testing.assert_close(volumes[:, :, 0], torch.from_numpy(cubes["test_images"] / 255.0).float())
    colour = _fake_medmnist(tmp_path / "dermamnist.npz", (28, 28, 3))
    images, _ = medical.read_medmnist("dermamnist", "train", root=tmp_path)
    assert images.shape == (6, 3, 28, 28)
    torch.testing.assert_close(images[1, 2], torch.from_numpy(colour["train_images"][1, :, :, 2] / 255.0).float())


def test_read_medmnist_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        medical.read_medmnist("pneumoniamnist", "validation", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"download=True.*zenodo\.org/records/10519652"):
        medical.read_medmnist("pneumoniamnist", root=tmp_path)
    np.savez(tmp_path / "odd.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="not in MedMNIST's layout: no train_images, train_labels"):
        medical.read_medmnist(str(tmp_path / "odd.npz"))
