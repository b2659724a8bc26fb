"""Tests of companion.losses.nt_xent and companion.simclr (chapter 13).

NT-Xent is compared with an independent implementation, ``F.cross_entropy`` over the cosine
similarity matrix with its diagonal masked out (values, gradients, gradcheck in float64); each
augmentation step with torchvision's own function; the linear probe with scikit-learn's
logistic regression.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from companion import simclr
from companion.losses import nt_xent


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent from torch's pieces: cosine similarities, the diagonal masked, F.cross_entropy."""
    n = len(z1)
    z = torch.cat([z1, z2])  # (2N, D)
    sim = F.cosine_similarity(z[:, None, :], z[None, :, :], dim=-1, eps=1e-12) / temperature  # (2N, 2N)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    targets = torch.cat([torch.arange(n) + n, torch.arange(n)])  # view i of image k <-> the other view
    return F.cross_entropy(sim, targets)


# --- NT-Xent ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_nt_xent_matches_cross_entropy_over_the_masked_similarities(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n, d = int(torch.randint(2, 17, (), generator=g)), int(torch.randint(1, 33, (), generator=g))
    temperature = float(torch.empty(()).uniform_(0.05, 2.0, generator=g))
    z1 = (3 * torch.randn(n, d, generator=g)).requires_grad_(True)
    z2 = (torch.randn(n, d, generator=g) + z1.detach()).requires_grad_(True)
    ours, theirs = nt_xent(z1, z2, temperature), reference_nt_xent(z1, z2, temperature)
    assert ours.shape == ()
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours, (z1, z2)), torch.autograd.grad(theirs, (z1, z2)))


def test_nt_xent_gradcheck_float64() -> None:
    z1 = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.3), (z1, z2))


def test_nt_xent_values_of_known_similarity_patterns() -> None:
    n, temperature = 6, 0.5
    # All 2N projections equal: every candidate is as similar as the positive, loss = log(2N - 1).
    same = torch.ones(n, 4)
    torch.testing.assert_close(nt_xent(same, same, temperature), torch.tensor(math.log(2 * n - 1)))
    # Each pair identical, pairs mutually orthogonal: s = 1 for the positive, 0 for the 2N - 2 negatives.
    eye = torch.eye(n)
    expected = -1 / temperature + math.log(math.exp(1 / temperature) + 2 * n - 2)
    torch.testing.assert_close(nt_xent(eye, eye, temperature), torch.tensor(expected))
    # Scaling a projection does not change the cosine similarities, so nor the loss.
    z1, z2 = torch.randn(n, 3), torch.randn(n, 3)
    torch.testing.assert_close(nt_xent(5 * z1, z2 * torch.rand(n, 1) + 0, temperature),
                               nt_xent(z1, F.normalize(z2 * torch.rand(n, 1)), temperature))


def test_nt_xent_leaves_the_anchor_out_and_the_positive_in_the_denominator() -> None:
    # With the anchor in its own denominator (similarity 1 with itself), the orthogonal pattern's loss
    # would be -1/T + log(2 e^(1/T) + 2N - 2); without the positive, -1/T + log(2N - 2).
    n, temperature = 4, 0.2
    eye = torch.eye(n)
    loss = float(nt_xent(eye, eye, temperature))
    assert loss != pytest.approx(-1 / temperature + math.log(2 * math.exp(1 / temperature) + 2 * n - 2))
    assert loss != pytest.approx(-1 / temperature + math.log(2 * n - 2))
    assert loss == pytest.approx(-1 / temperature + math.log(math.exp(1 / temperature) + 2 * n - 2))


def test_nt_xent_is_symmetric_in_the_two_views_and_finite_at_low_temperature() -> None:
    z1, z2 = torch.randn(8, 5), torch.randn(8, 5)
    torch.testing.assert_close(nt_xent(z1, z2), nt_xent(z2, z1))
    z1.requires_grad_(True)
    loss = nt_xent(z1, z2, temperature=1e-3)
    assert torch.isfinite(loss) and torch.isfinite(torch.autograd.grad(loss, z1)[0]).all()


def test_nt_xent_refuses_bad_inputs_with_clear_messages() -> None:
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z, torch.randn(4, 5))
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z, torch.randn(3, 3))
    with pytest.raises(ValueError, match="N >= 2"):
        nt_xent(z[:1], z[:1])
    for bad in (0, 0.0, -0.5):
        with pytest.raises(ValueError, match="temperature must be a number > 0"):
            nt_xent(z, z, bad)
    with pytest.raises(ValueError, match="2-D"):
        nt_xent(torch.randn(4, 3, 2), torch.randn(4, 3, 2))
    with pytest.raises(TypeError, match="floating-point"):
        nt_xent(z.long(), z.long())
    with pytest.raises(TypeError, match="same dtype"):
        nt_xent(z, z.double())


# --- augmentations -----------------------------------------------------------------------------------

IDENTITY = simclr.Augmentation(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=0.0, jitter=0.0, blur=0.0)


def test_resized_crop_of_the_whole_image_is_the_identity_and_flip_is_torch_flip() -> None:
    x = torch.rand(3, 2, 9, 7)
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(3, 1)  # (3, 4)
    torch.testing.assert_close(simclr.resized_crop(x, whole), x)
    flip = torch.tensor([True, False, True])
    expected = torch.where(flip[:, None, None, None], x.flip(-1), x)
    torch.testing.assert_close(simclr.resized_crop(x, whole, flip), expected)
    torch.testing.assert_close(simclr.random_view(x, IDENTITY), x)
    flip_all = simclr.Augmentation(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=1.0, jitter=0.0, blur=0.0)
    torch.testing.assert_close(simclr.random_view(x, flip_all), x.flip(-1))


def test_resized_crop_matches_torchvision_resized_crop_inside_the_box() -> None:
    # A box of 8x8 pixels whose top-left pixel is (4, 6) in a 16x16 image, resized to 16x16. Away
    # from the box's border both resample the same pixels; at its border torchvision clamps to the
    # box and grid_sample reads the neighbouring pixels of the image.
    x = torch.rand(2, 1, 16, 16)
    top, left, size = 4, 6, 8
    cx, cy = (left + size / 2) / 16 * 2 - 1, (top + size / 2) / 16 * 2 - 1
    box = torch.tensor([[cx, cy, size / 16, size / 16]]).repeat(2, 1)
    ours = simclr.resized_crop(x, box)
    theirs = TF.resized_crop(x, top, left, size, size, [16, 16], antialias=False)
    torch.testing.assert_close(ours[..., 1:-1, 1:-1], theirs[..., 1:-1, 1:-1])


def test_brightness_contrast_matches_torchvision() -> None:
    x = torch.rand(4, 1, 6, 5)
    b, c = torch.tensor([0.6, 1.0, 1.4, 1.2]), torch.tensor([1.3, 0.7, 1.0, 0.6])
    expected = torch.stack([TF.adjust_contrast(TF.adjust_brightness(x[i], float(b[i])), float(c[i]))
                            for i in range(4)])
    torch.testing.assert_close(simclr.brightness_contrast(x, b, c), expected)


@pytest.mark.parametrize("sigma", [0.1, 0.5, 1.0, 2.0])
def test_gaussian_blur3_matches_torchvision(sigma: float) -> None:
    x = torch.rand(3, 2, 8, 9)
    expected = TF.gaussian_blur(x, kernel_size=[3, 3], sigma=[sigma, sigma])
    torch.testing.assert_close(simclr.gaussian_blur3(x, torch.full((3,), sigma)), expected)
    torch.testing.assert_close(simclr.gaussian_blur3(x, torch.zeros(3)), x)


def test_views_are_in_range_random_and_repeatable() -> None:
    x = torch.rand(16, 1, 28, 28)
    v1, v2 = simclr.augment_pair(x, generator=torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == x.shape
    assert v1.min() >= 0 and v1.max() <= 1
    assert (v1 - v2).abs().amax(dim=(1, 2, 3)).min() > 0  # the two views of every image differ
    w1, w2 = simclr.augment_pair(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close((v1, v2), (w1, w2))


def test_augmentation_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="flip is a probability"):
        simclr.Augmentation(flip=1.5)
    with pytest.raises(ValueError, match="crop_scale must be a range"):
        simclr.Augmentation(crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="at most 1"):
        simclr.Augmentation(crop_scale=(0.5, 1.2))
    with pytest.raises(ValueError, match="brightness must be in"):
        simclr.Augmentation(brightness=1.0)
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\)"):
        simclr.random_view(torch.rand(28, 28))
    with pytest.raises(TypeError, match="Augmentation"):
        simclr.random_view(torch.rand(2, 1, 8, 8), aug={"flip": 0.5})


# --- encoder, head, pre-training ---------------------------------------------------------------------------

def test_encoder_head_and_simclr_shapes_and_gradients() -> None:
    model = simclr.SimCLR(simclr.encoder(((4, 1, True), (8, 1, False))), simclr.ProjectionHead(8, 16, 5))
    x = torch.rand(6, 1, 28, 28)
    assert model.features(x).shape == (6, 8)
    z = model(x)
    assert z.shape == (6, 5)
    z.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    default = simclr.SimCLR()
    assert default.features(x).shape == (6, simclr.ENCODER_STAGES[-1][0])
    assert default.head.fc2.out_features == 64
    net = simclr.classifier(simclr.encoder(((4, 2, False),)), 10)
    assert net(x).shape == (6, 10) and net.features(x).shape == (6, 4)
    with pytest.raises(ValueError, match="positive int"):
        simclr.ProjectionHead(0)


def test_pretrain_lowers_the_loss_on_a_small_set() -> None:
    torch.manual_seed(0)
    images = torch.rand(64, 1, 12, 12)
    images[:32, :, :6] = 0  # two kinds of image, so there is something to learn
    model = simclr.SimCLR(simclr.encoder(((8, 1, True), (16, 1, False))), simclr.ProjectionHead(16, 16, 8))
    log = simclr.pretrain(model, images, epochs=30, batch_size=32, lr=3e-3)
    assert len(log.loss) == 60 and not model.training
    first, last = sum(log.loss[:6]) / 6, sum(log.loss[-6:]) / 6
    assert last < first - 0.3, (first, last)
    with pytest.raises(ValueError, match="batch_size must be in"):
        simclr.pretrain(model, images, batch_size=100)


def test_extract_features_uses_eval_mode_and_keeps_the_mode() -> None:
    model = simclr.SimCLR(simclr.encoder(((4, 1, False),)), simclr.ProjectionHead(4, 4, 2)).train()
    x = torch.rand(10, 1, 5, 5)
    features = simclr.extract_features(model, x, batch_size=3)
    assert model.training
    model.eval()
    torch.testing.assert_close(features, model.features(x).detach())


# --- labels and the linear probe ---------------------------------------------------------------------------

def test_label_subset_is_balanced_repeatable_and_checked() -> None:
    labels = torch.arange(100) % 4
    index = simclr.label_subset(labels, 5, seed=1)
    assert len(index) == 20 and len(index.unique()) == 20
    assert torch.bincount(labels[index]).tolist() == [5, 5, 5, 5]
    torch.testing.assert_close(index, simclr.label_subset(labels, 5, seed=1))
    assert not torch.equal(index, simclr.label_subset(labels, 5, seed=2))
    with pytest.raises(ValueError, match="fewer than per_class"):
        simclr.label_subset(labels, 26)


def test_linear_probe_agrees_with_scikit_learn_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    g = torch.Generator().manual_seed(0)
    centres = 1.5 * torch.randn(4, 10, generator=g)
    y_train, y_test = torch.randint(0, 4, (80,), generator=g), torch.randint(0, 4, (400,), generator=g)
    x_train = centres[y_train] + torch.randn(80, 10, generator=g) * 2
    x_test = centres[y_test] + torch.randn(400, 10, generator=g) * 2
    weight_decay = 0.05
    ours = simclr.linear_probe(x_train, y_train, x_test, y_test, weight_decay=weight_decay)
    scaler = StandardScaler().fit(x_train.double().numpy())
    sk = LogisticRegression(C=1 / (weight_decay * len(x_train)), max_iter=5000, tol=1e-10)
    sk.fit(scaler.transform(x_train.double().numpy()), y_train.numpy())
    theirs = sk.score(scaler.transform(x_test.double().numpy()), y_test.numpy())
    assert 0.4 < ours < 1.0
    assert ours == pytest.approx(theirs, abs=1 / 400 + 1e-9)  # at most one test point decided differently


def test_linear_probe_separates_separable_data_and_checks_its_inputs() -> None:
    x = torch.tensor([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]])
    y = torch.tensor([0, 0, 1, 1])
    assert simclr.linear_probe(x, y, x, y) == 1.0
    with pytest.raises(ValueError, match="same length"):
        simclr.linear_probe(x, y[:3], x, y)
    with pytest.raises(ValueError, match="same width"):
        simclr.linear_probe(x, y, x[:, :1], y)
    with pytest.raises(TypeError, match="int64"):
        simclr.linear_probe(x, y.int(), x, y.int())
    with pytest.raises(ValueError, match=r"2-D \(N, D\)"):
        simclr.linear_probe(x[:, 0], y, x, y)


def test_fit_linear_folds_the_standardisation_into_the_layer() -> None:
    g = torch.Generator().manual_seed(1)
    x = 5 + 3 * torch.randn(60, 6, generator=g)  # far from standardised
    y = (x[:, 0] + x[:, 1] > 10).long() + (x[:, 2] > 5).long()  # 3 classes
    layer = simclr.fit_linear(x, y, weight_decay=0.01)
    assert isinstance(layer, torch.nn.Linear) and layer.weight.shape == (3, 6)
    accuracy = float((layer(x.double()).argmax(1) == y).double().mean())
    assert accuracy == simclr.linear_probe(x, y, x, y, weight_decay=0.01) > 0.7
    with pytest.raises(ValueError, match="same, non-zero length"):
        simclr.fit_linear(x, y[:5])
