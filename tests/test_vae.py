"""The VAE of companion.vae against torch.distributions: the log-likelihoods, the KL and the ELBO; the
reparameterisation's gradients against the analytic ones; shapes, training and errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from companion import vae


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def images(n, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_parameter_count():
    model = vae.VAE(latent_dim=8)
    x = images(5)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 8)
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (5, 1, 28, 28) and out.z.shape == (5, 8)
    samples = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1
    # encoder 784*256 + 256, to mu and logvar 256*16 + 16, decoder 8*256 + 256 + 256*784 + 784
    expected = (784 * 256 + 256) + (256 * 16 + 16) + (8 * 256 + 256) + (256 * 784 + 784)
    assert sum(p.numel() for p in model.parameters()) == expected
    deeper = vae.VAE(latent_dim=2, hidden=(64, 32))
    assert deeper(x).logits.shape == (5, 1, 28, 28)
    assert [m.out_features for m in deeper.decoder if isinstance(m, torch.nn.Linear)] == [32, 64, 784]


def test_every_parameter_gets_a_gradient():
    model = vae.VAE(latent_dim=4)
    x = images(6)
    loss = -vae.elbo(x, model(x)).elbo.mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("seed", range(3))
def test_bernoulli_log_likelihood_is_torch_distributions(seed):
    logits = rand(4, 1, 28, 28, seed=seed) * 3
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x[0] = (x[0] > 0.5).double()  # binary images and grey ones
    expected = Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(vae.log_likelihood(logits, x, "bernoulli"), expected)


@pytest.mark.parametrize("sigma", [0.05, 0.1, 1.0])
def test_gaussian_log_likelihood_is_torch_distributions(sigma):
    logits = rand(3, 1, 28, 28, seed=1) * 2
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = Normal(torch.sigmoid(logits), sigma).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(vae.log_likelihood(logits, x, "gaussian", sigma=sigma), expected)


@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
def test_elbo_is_reconstruction_minus_the_kl_of_torch_distributions(beta):
    mu, logvar = rand(6, 5, seed=3), rand(6, 5, seed=4)
    logits = rand(6, 1, 28, 28, seed=5)
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    out = vae.VAEOutput(logits, mu, logvar, mu)
    terms = vae.elbo(x, out, beta=beta)
    q = Normal(mu, torch.exp(0.5 * logvar))
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)  # (6,)
    reconstruction = Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(terms.kl, kl)
    torch.testing.assert_close(terms.reconstruction, reconstruction)
    torch.testing.assert_close(terms.elbo, reconstruction - beta * kl)
    assert (terms.kl > 0).all()


def test_kl_is_zero_at_the_prior_and_its_sign_is_positive():
    zero = torch.zeros(3, 4, dtype=torch.float64)
    out = vae.VAEOutput(torch.zeros(3, 1, 28, 28, dtype=torch.float64), zero, zero, zero)
    terms = vae.elbo(torch.full((3, 1, 28, 28), 0.5, dtype=torch.float64), out)
    torch.testing.assert_close(terms.kl, torch.zeros(3, dtype=torch.float64))
    # logits 0 give p = 1/2 for every pixel: log p(x | z) = 784 log(1/2) whatever x is
    torch.testing.assert_close(terms.reconstruction, torch.full((3,), 784 * math.log(0.5), dtype=torch.float64))


def test_reparameterise_is_mu_plus_std_times_eps_with_the_analytic_gradients():
    mu, logvar = rand(7, 3, seed=1).requires_grad_(), rand(7, 3, seed=2).requires_grad_()
    eps, weights = rand(7, 3, seed=3), rand(7, 3, seed=4)
    z = vae.reparameterise(mu, logvar, eps)
    torch.testing.assert_close(z, mu + torch.exp(logvar / 2) * eps)
    grad_mu, grad_logvar = torch.autograd.grad((weights * z).sum(), (mu, logvar))
    # dz/dmu = 1, dz/dlogvar = exp(logvar / 2) * eps / 2, times the upstream gradient
    torch.testing.assert_close(grad_mu, weights)
    torch.testing.assert_close(grad_logvar, weights * torch.exp(logvar.detach() / 2) * eps / 2)
    torch.autograd.gradcheck(lambda m, lv: vae.reparameterise(m, lv, eps), (mu, logvar))


def test_reparameterised_samples_have_the_right_distribution_and_match_rsample():
    mu, logvar = torch.tensor([[1.5, -2.0]]), torch.tensor([[0.0, math.log(0.25)]])
    z = vae.reparameterise(mu.expand(200_000, 2), logvar.expand(200_000, 2),
                           generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.01, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 0.5]), atol=0.01, rtol=0)
    # torch.distributions' rsample is the same function of the same noise
    torch.manual_seed(1)
    theirs = Normal(mu, torch.exp(logvar / 2)).rsample((4,))  # (4, 1, 2)
    torch.manual_seed(1)
    eps = torch.randn(4, 1, 2)
    torch.testing.assert_close(vae.reparameterise(mu.expand(4, 2), logvar.expand(4, 2), eps[:, 0]), theirs[:, 0])


def test_gradient_of_the_expected_loss_through_the_sample_is_unbiased():
    # d/dmu E[(z - 3)^2] = 2 (mu - 3) and d/dlogvar = exp(logvar): checked on the average over
    # many reparameterised samples.
    mu, logvar = torch.tensor([0.5], requires_grad=True), torch.tensor([-1.0], requires_grad=True)
    n = 400_000
    z = vae.reparameterise(mu.expand(n, 1), logvar.expand(n, 1), generator=torch.Generator().manual_seed(0))
    grad_mu, grad_logvar = torch.autograd.grad(((z - 3) ** 2).mean(), (mu, logvar))
    torch.testing.assert_close(grad_mu, torch.tensor([2 * (0.5 - 3)]), atol=0.01, rtol=0)
    torch.testing.assert_close(grad_logvar, torch.tensor([math.exp(-1.0)]), atol=0.01, rtol=0)
    # torch.normal draws from the same distribution, and its gradients are zero
    drawn = torch.normal(mu.expand(n, 1), torch.exp(logvar / 2).expand(n, 1))
    for grad in torch.autograd.grad(((drawn - 3) ** 2).mean(), (mu, logvar)):
        assert grad.abs().max() == 0


def test_training_raises_the_elbo_and_the_autoencoder_variant_ignores_the_kl(fashion_small):
    x_train, _, x_test, _ = fashion_small
    torch.manual_seed(0)
    model = vae.VAE(latent_dim=4, hidden=(64,))
    before = vae.evaluate_elbo(model, x_test[:300])
    log = vae.train_vae(model, x_train, epochs=1, batch_size=100, lr=3e-3, seed=0)
    after = vae.evaluate_elbo(model, x_test[:300])
    assert len(log.loss) == 30 and log.seconds > 0 and not model.training
    assert after["elbo"] > before["elbo"] + 100
    assert after["elbo"] == pytest.approx(after["reconstruction"] - after["kl"])
    torch.manual_seed(0)
    ae = vae.VAE(latent_dim=4, hidden=(64,))
    vae.train_vae(ae, x_train[:1000], epochs=1, batch_size=100, lr=3e-3, deterministic=True)
    assert vae.evaluate_elbo(ae, x_test[:300])["kl"] > after["kl"]  # nothing held its codes near N(0, I)


@pytest.mark.parametrize("proposal", ["posterior", "prior"])
def test_importance_estimate_is_the_written_out_mean_of_the_weights(proposal):
    torch.manual_seed(0)
    model = vae.VAE(latent_dim=3, hidden=(32,)).double()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eps = rand(5, 4, 3, seed=2)  # (K, N, D)
    got = vae.importance_log_likelihood(model, x, 5, proposal=proposal, eps=eps)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        q = Normal(mu, torch.exp(0.5 * logvar))
        prior = Normal(torch.zeros_like(mu), torch.ones_like(mu))
        weights = []
        for k in range(5):  # w_k = p(x | z_k) p(z_k) / q(z_k | x), or p(x | z_k) for prior codes
            z = q.mean + q.stddev * eps[k] if proposal == "posterior" else eps[k]
            log_px = Bernoulli(logits=model.decode(z), validate_args=False).log_prob(x).flatten(1).sum(1)
            log_ratio = (prior.log_prob(z) - q.log_prob(z)).sum(1) if proposal == "posterior" else 0.0
            weights.append(torch.exp(log_px + log_ratio))
        expected = torch.log(torch.stack(weights).mean(0))  # small model: no underflow in float64
    torch.testing.assert_close(got, expected)


def test_more_importance_samples_tighten_the_bound_and_prior_samples_are_worse(fashion_small):
    x_train, _, x_test, _ = fashion_small
    torch.manual_seed(0)
    model = vae.VAE(latent_dim=4, hidden=(64,))
    vae.train_vae(model, x_train, epochs=2, batch_size=100, lr=3e-3, seed=0)
    x, g = x_test[:50], torch.Generator().manual_seed(0)
    one, many = (vae.importance_log_likelihood(model, x, k, generator=g).mean() for k in (1, 50))
    from_prior = vae.importance_log_likelihood(model, x, 50, proposal="prior", generator=g).mean()
    assert many > one > from_prior


def test_errors_name_the_problem():
    model = vae.VAE(latent_dim=3)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model.encode(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="3 latent dimensions"):
        model.decode(torch.rand(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        vae.reparameterise(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="eps"):
        vae.reparameterise(torch.zeros(2, 3), torch.zeros(2, 3), eps=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="floating-point"):
        vae.reparameterise(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        vae.log_likelihood(torch.zeros(1, 1, 28, 28), torch.zeros(1, 1, 28, 28), "poisson")
    with pytest.raises(ValueError, match="sigma"):
        vae.log_likelihood(torch.zeros(1, 1, 28, 28), torch.zeros(1, 1, 28, 28), "gaussian", sigma=0.0)
    with pytest.raises(ValueError, match="same shape"):
        vae.log_likelihood(torch.zeros(1, 1, 28, 28), torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="beta"):
        vae.elbo(torch.zeros(1, 1, 28, 28), model(torch.zeros(1, 1, 28, 28)), beta=-1.0)
    with pytest.raises(ValueError, match="latent_dim"):
        vae.VAE(latent_dim=0)
    with pytest.raises(ValueError, match="batch_size"):
        vae.train_vae(model, torch.rand(10, 1, 28, 28), batch_size=64)
    with pytest.raises(ValueError, match="proposal"):
        vae.importance_log_likelihood(model, torch.rand(2, 1, 28, 28), 3, proposal="uniform")
    with pytest.raises(ValueError, match=r"\(samples, N, D\)"):
        vae.importance_log_likelihood(model, torch.rand(2, 1, 28, 28), 3, eps=torch.zeros(3, 2, 2))
