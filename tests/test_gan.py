"""companion.gan: the GAN losses against torch's binary cross-entropy (values and gradients), the
discriminator step that must not reach the generator, the generator step that must not move the
discriminator, the training loop, the anomaly score and its AUC against scikit-learn; and the 28x28
DCGAN variants of companion.models.gan."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from companion import gan
from companion.models.gan import SmallDCGANDiscriminator, SmallDCGANGenerator, dcgan_init


def _logits(n: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    return scale * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- losses -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_real, n_fake, seed", [(1, 1, 0), (5, 3, 1), (64, 64, 2), (7, 20, 3)])
def test_discriminator_loss_is_the_binary_cross_entropy_with_labels_1_and_0(n_real, n_fake, seed):
    real, fake = _logits(n_real, seed).requires_grad_(), _logits(n_fake, seed + 100).requires_grad_()
    ours = gan.discriminator_loss(real, fake)
    theirs = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
              + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(ours, theirs)
    grads = torch.autograd.grad(ours, (real, fake))
    expected = torch.autograd.grad(theirs, (real, fake))
    torch.testing.assert_close(grads, expected)
    # written out: -mean log D(x) - mean log(1 - D(G(z)))
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    written = -(d_real.log().mean() + (1 - d_fake).log().mean())
    torch.testing.assert_close(ours, written)


@pytest.mark.parametrize("n, seed", [(1, 0), (8, 1), (100, 2)])
def test_generator_losses_against_the_framework_and_their_written_out_gradients(n, seed):
    a = _logits(n, seed).requires_grad_()
    ns = gan.generator_loss(a, "non_saturating")
    sat = gan.generator_loss(a, "saturating")
    torch.testing.assert_close(ns, F.binary_cross_entropy_with_logits(a, torch.ones_like(a)))
    # the minimax game's generator term: mean log(1 - D(G(z)))
    torch.testing.assert_close(sat, -F.binary_cross_entropy_with_logits(a, torch.zeros_like(a)))
    torch.testing.assert_close(sat, torch.log1p(-torch.sigmoid(a)).mean())
    (g_ns,) = torch.autograd.grad(ns, a)
    (g_sat,) = torch.autograd.grad(sat, a)
    d = torch.sigmoid(a.detach())
    torch.testing.assert_close(g_ns, -(1 - d) / n)
    torch.testing.assert_close(g_sat, -d / n)


def test_the_saturating_loss_has_no_gradient_where_the_discriminator_rejects_the_samples():
    a = torch.full((10,), -12.0, dtype=torch.float64, requires_grad=True)  # D(G(z)) ~ 6e-6
    (g_sat,) = torch.autograd.grad(gan.generator_loss(a, "saturating"), a)
    (g_ns,) = torch.autograd.grad(gan.generator_loss(a, "non_saturating"), a)
    assert g_sat.abs().max() < 1e-6 and (g_ns + 0.1).abs().max() < 1e-5  # -D/N vs -(1-D)/N, N = 10
    # stable for huge logits: no inf or nan
    big = torch.tensor([-800.0, 800.0], dtype=torch.float64)
    for kind in gan.GENERATOR_LOSSES:
        assert torch.isfinite(gan.generator_loss(big, kind))
    assert torch.isfinite(gan.discriminator_loss(big, big))


def test_losses_name_bad_inputs():
    with pytest.raises(ValueError, match="kind"):
        gan.generator_loss(torch.zeros(3), "wasserstein")
    with pytest.raises(ValueError, match=r"\(N,\)"):
        gan.discriminator_loss(torch.zeros(3, 1), torch.zeros(3))
    with pytest.raises(ValueError, match="at least one"):
        gan.generator_loss(torch.zeros(0))
    with pytest.raises(TypeError, match="floating"):
        gan.discriminator_loss(torch.zeros(3, dtype=torch.long), torch.zeros(3))


# --- the two steps ----------------------------------------------------------------------------------

def _toy_pair(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return gan.toy_generator(nz=3, hidden=8), gan.toy_discriminator(hidden=8)


def _buggy_discriminator_step(generator, discriminator, optimizer, real, z):
    fake = generator(z)  # the bug: no detach
    loss = gan.discriminator_loss(discriminator(real), discriminator(fake))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_the_discriminator_step_sends_no_gradient_into_the_generator():
    g, d = _toy_pair()
    g_before = [p.detach().clone() for p in g.parameters()]
    d_before = [p.detach().clone() for p in d.parameters()]
    real, z = torch.randn(16, 1) + 4, torch.randn(16, 3)
    loss = gan.discriminator_step(g, d, torch.optim.SGD(d.parameters(), lr=0.1), real, z)
    assert isinstance(loss, float)
    assert all(p.grad is None for p in g.parameters())  # nothing reached G
    assert all(torch.equal(p, q) for p, q in zip(g.parameters(), g_before))
    assert any(not torch.equal(p, q) for p, q in zip(d.parameters(), d_before))  # D moved
    # the loss it reports is the discriminator loss before the step
    torch.testing.assert_close(loss, float(gan.discriminator_loss(
        torch.func.functional_call(d, dict(zip([n for n, _ in d.named_parameters()], d_before)), (real,)),
        torch.func.functional_call(d, dict(zip([n for n, _ in d.named_parameters()], d_before)),
                                   (g(z).detach(),)))))
    # the check above can fail: the same step without detach fills the generator's gradients
    g2, d2 = _toy_pair()
    _buggy_discriminator_step(g2, d2, torch.optim.SGD(d2.parameters(), lr=0.1), real, z)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g2.parameters())


def test_the_generator_step_moves_the_generator_only_and_follows_the_chosen_loss():
    for kind in gan.GENERATOR_LOSSES:
        g, d = _toy_pair(1)
        d_before = [p.detach().clone() for p in d.parameters()]
        g_before = [p.detach().clone() for p in g.parameters()]
        z = torch.randn(16, 3)
        expected = float(gan.generator_loss(d(g(z)), kind).detach())
        # SGD with lr 1: the change of each generator weight is minus its gradient
        loss = gan.generator_step(g, d, torch.optim.SGD(g.parameters(), lr=1.0), z, kind)
        assert loss == pytest.approx(expected, rel=1e-6)
        assert all(torch.equal(p, q) for p, q in zip(d.parameters(), d_before))
        g_ref = gan.toy_generator(nz=3, hidden=8)
        g_ref.load_state_dict(dict(zip(g.state_dict(), g_before)))
        grads = torch.autograd.grad(gan.generator_loss(d(g_ref(z)), kind), list(g_ref.parameters()))
        for p, q, grad in zip(g.parameters(), g_before, grads):
            torch.testing.assert_close(p.detach(), q - grad)


def test_train_step_checks_its_kind_and_noise():
    g, d = _toy_pair()
    opt_g, opt_d = torch.optim.SGD(g.parameters(), lr=0.1), torch.optim.SGD(d.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="kind"):
        gan.train_step(g, d, opt_g, opt_d, torch.randn(4, 1), torch.randn(4, 3), "minimax")
    with pytest.raises(ValueError, match=r"\(N, nz\)"):
        gan.train_step(g, d, opt_g, opt_d, torch.randn(4, 1), torch.randn(4, 3, 1, 1))


# --- the loop ---------------------------------------------------------------------------------------

def test_train_gan_logs_every_step_keeps_checkpoints_and_learns_the_toy_distribution():
    torch.manual_seed(0)
    g, d = gan.toy_generator(nz=4, hidden=16), gan.toy_discriminator(hidden=16)
    real = 4 + 1.25 * torch.randn(4096, 1, generator=torch.Generator().manual_seed(0))
    before = gan.sample(g, 2000, 4, seed=1)
    log = gan.train_gan(g, d, real, steps=300, nz=4, batch_size=64, lr=1e-3, checkpoints=(0, 150, 300))
    assert len(log.d_loss) == len(log.g_loss) == 300 and log.seconds > 0
    assert sorted(log.checkpoints) == [0, 150, 300]
    assert all(torch.equal(a, b) for a, b in zip(log.checkpoints[300].values(), g.state_dict().values()))
    after = gan.sample(g, 2000, 4, seed=1)
    assert abs(float(after.mean()) - 4) < 0.5 < abs(float(before.mean()) - 4)


def test_train_gan_names_bad_arguments():
    g, d = _toy_pair()
    real = torch.randn(100, 1)
    with pytest.raises(ValueError, match="checkpoints"):
        gan.train_gan(g, d, real, steps=10, nz=3, batch_size=8, checkpoints=(11,))
    with pytest.raises(ValueError, match="batch_size"):
        gan.train_gan(g, d, real[:4], steps=10, nz=3, batch_size=8)
    with pytest.raises(ValueError, match="kind"):
        gan.train_gan(g, d, real, steps=10, nz=3, batch_size=8, kind="hinge")
    with pytest.raises(ValueError, match="steps"):
        gan.train_gan(g, d, real, steps=0, nz=3, batch_size=8)


# --- anomaly detection ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_anomaly_auc_equals_sklearns_roc_auc_score_with_ties(seed):
    gen = torch.Generator().manual_seed(seed)
    normal = torch.randint(0, 6, (int(torch.randint(1, 40, (), generator=gen)),), generator=gen).double()
    anomalous = torch.randint(2, 9, (int(torch.randint(1, 40, (), generator=gen)),), generator=gen).double()
    labels = [0] * len(normal) + [1] * len(anomalous)
    expected = roc_auc_score(labels, torch.cat([normal, anomalous]).numpy())
    assert gan.anomaly_auc(normal, anomalous) == pytest.approx(expected, abs=1e-12)
    assert gan.anomaly_auc(anomalous, normal) == pytest.approx(1 - expected, abs=1e-12)


def test_anomaly_auc_names_bad_scores():
    with pytest.raises(ValueError, match="at least one"):
        gan.anomaly_auc(torch.zeros(0), torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        gan.anomaly_auc(torch.tensor([float("nan")]), torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(N,\)"):
        gan.anomaly_auc(torch.zeros(3, 1), torch.zeros(3))


def test_latent_search_finds_a_generated_image_and_leaves_the_generator_alone():
    torch.manual_seed(0)
    g = SmallDCGANGenerator(nz=8, ngf=8)
    g.apply(dcgan_init)
    g.eval()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    with torch.no_grad():
        made = g(torch.randn(6, 8))  # images the generator can make
    noise = torch.rand(6, 1, 28, 28) * 2 - 1  # images it cannot
    g.train()
    z, rebuilt = gan.latent_search(g, torch.cat([made, noise]), 8, steps=150, lr=0.05)
    assert z.shape == (12, 8) and rebuilt.shape == (12, 1, 28, 28)
    assert g.training  # mode restored
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in g.parameters())
    score = gan.anomaly_score(torch.cat([made, noise]), rebuilt)  # (12,)
    start = gan.anomaly_score(torch.cat([made, noise]), g.eval()(torch.randn(12, 8)).detach())
    assert (score[:6] < start[:6]).all()  # the search improved on a random z
    assert gan.anomaly_auc(score[:6], score[6:]) == 1.0


def test_anomaly_score_mixes_the_residual_and_the_discriminator_and_names_bad_inputs():
    x, r = torch.rand(4, 1, 5, 5), torch.rand(4, 1, 5, 5)
    logits = torch.randn(4)
    residual = (x - r).abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(gan.anomaly_score(x, r), residual)
    torch.testing.assert_close(gan.anomaly_score(x, r, logits, 0.25),
                               0.75 * residual - 0.25 * F.logsigmoid(logits))
    with pytest.raises(ValueError, match="logits"):
        gan.anomaly_score(x, r, weight=0.5)
    with pytest.raises(ValueError, match="same shape"):
        gan.anomaly_score(x, r[:3])
    with pytest.raises(ValueError, match="weight"):
        gan.anomaly_score(x, r, logits, 1.5)


# --- the 28x28 DCGAN ---------------------------------------------------------------------------------

def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_small_dcgan_shapes_parameter_counts_and_errors():
    g, d = SmallDCGANGenerator(nz=32, ngf=16), SmallDCGANDiscriminator(ndf=16)
    assert g(torch.randn(3, 32)).shape == (3, 1, 28, 28)
    assert g(torch.randn(3, 32, 1, 1)).shape == (3, 1, 28, 28)
    assert d(torch.randn(3, 1, 28, 28)).shape == (3,)
    # written out: 7x7 transposed conv 32 -> 32, 4x4 32 -> 16, 4x4 16 -> 1 (no biases), two batch norms
    assert _count(g) == 32 * 32 * 49 + 32 * 16 * 16 + 16 * 1 * 16 + 2 * (32 + 16)
    assert _count(d) == 1 * 16 * 16 + 16 * 32 * 16 + 2 * 32 + 32 * 49
    with pytest.raises(ValueError, match=r"\(N, 32\)"):
        g(torch.randn(3, 31))
    with pytest.raises(ValueError, match="28x28"):
        d(torch.randn(3, 1, 32, 32))
    with pytest.raises(ValueError, match="channel"):
        d(torch.randn(3, 3, 28, 28))


def test_the_sagan_generator_adds_an_attention_layer_that_starts_as_the_identity():
    torch.manual_seed(0)
    plain = SmallDCGANGenerator(nz=8, ngf=16)
    attn = SmallDCGANGenerator(nz=8, ngf=16, attention=True)
    # 1x1 convolutions: queries and keys 16 -> 2, values 16 -> 16 (with biases), and gamma
    assert _count(attn) - _count(plain) == 2 * (16 * 2 + 2) + (16 * 16 + 16) + 1
    mapping = {k: v for k, v in plain.state_dict().items()}
    mapping = {(k.replace("main.6.", "main.7.") if k.startswith("main.6.") else k): v for k, v in mapping.items()}
    missing = attn.load_state_dict(mapping, strict=False)
    assert all(k.startswith("main.6.") for k in missing.missing_keys) and not missing.unexpected_keys
    z = torch.randn(4, 8)
    plain.eval()
    attn.eval()
    torch.testing.assert_close(attn(z), plain(z))  # gamma = 0: the identity
    with torch.no_grad():
        attn.main[6].gamma.fill_(1.0)
    assert not torch.allclose(attn(z), plain(z))
