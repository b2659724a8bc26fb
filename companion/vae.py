"""Variational autoencoders for 28x28 greyscale images: encoder, reparameterisation, decoder, ELBO.

Kingma & Welling, *Auto-Encoding Variational Bayes*, ICLR 2014 (https://arxiv.org/abs/1312.6114),
and, at the same time, Rezende, Mohamed & Wierstra, *Stochastic Backpropagation and Approximate
Inference in Deep Generative Models*, ICML 2014 (https://arxiv.org/abs/1401.4082).

A latent-variable model ``p(x) = integral p(x | z) p(z) dz`` with a standard normal prior
``p(z) = N(0, I)`` and a decoder network for ``p(x | z)``. An encoder network gives an approximate
posterior ``q(z | x) = N(mu(x), diag(exp(logvar(x))))``, and both are trained by maximising the
evidence lower bound (ELBO) of each image,

    log p(x) >= ELBO(x) = E_{q(z|x)}[log p(x | z)] - KL(q(z | x) || p(z)),

the first term estimated with one sample ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)`` (the
reparameterisation trick: the randomness sits in ``eps``, so gradients flow to ``mu`` and
``logvar``), the second in closed form (:func:`companion.losses.kl_divergence_normal`, the
paper's appendix B).

The networks follow the paper's MNIST experiments (its appendix C): fully connected, one hidden
layer in the encoder and one in the decoder (a table, :data:`HIDDEN`). Deviations: 256 ReLU units
instead of 500 tanh units (half the time per step on a CPU; ReLU is the later standard), and
Adam instead of Adagrad. The decoder outputs one logit per pixel.

The likelihood ``p(x | z)`` (:func:`log_likelihood`), two choices:

* ``"bernoulli"`` (the default, the paper's choice for MNIST): each pixel is a coin with
  probability ``sigmoid(logit)``, ``log p = -BCE(logits, x)`` summed over the pixels. Fashion-MNIST
  is grey, not binary; used with grey values in [0, 1] it is not a normalised density of ``x``
  (Loaiza-Ganem & Cunningham, 2019, *The continuous Bernoulli*), so the ELBO in nats is a
  training objective, comparable between models on the same images, not a log-likelihood to
  compare with papers. Its best possible value for a grey image is below 0 (``-H(x)``).
* ``"gaussian"``: ``x ~ N(sigmoid(logit), sigma^2 I)`` with a fixed ``sigma``; ``log p =
  -||x - mean||^2 / (2 sigma^2) - D log(sigma sqrt(2 pi))``. A smaller ``sigma`` weighs the
  reconstruction more against the KL term.

Images shown and measured are the decoder's means, ``sigmoid(logits)``, not samples of
``p(x | z)`` (a Bernoulli sample of a grey image is salt-and-pepper noise).

Introduced in chapter 21, *Variational autoencoders*.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor
from companion.losses import kl_divergence_normal

__all__ = ["ELBOTerms", "HIDDEN", "IMAGE_SHAPE", "LIKELIHOODS", "TrainLog", "VAE", "VAEOutput", "elbo",
           "evaluate_elbo", "importance_log_likelihood", "log_likelihood", "reparameterise", "train_vae"]

IMAGE_SHAPE = (1, 28, 28)
PIXELS = 28 * 28
LIKELIHOODS = ("bernoulli", "gaussian")

#: Hidden layer widths of the encoder (input to code); the decoder uses them reversed. The paper's
#: MNIST networks have one hidden layer of 500 units; 256 train twice as fast on a CPU.
HIDDEN: tuple[int, ...] = (256,)


class VAEOutput(NamedTuple):
    """What :meth:`VAE.forward` returns, for a batch of N images and D latent dimensions."""

    logits: Tensor  # (N, 1, 28, 28): the decoder's pixel logits for the sampled codes
    mu: Tensor  # (N, D)
    logvar: Tensor  # (N, D)
    z: Tensor  # (N, D): the sampled codes, mu + exp(logvar / 2) * eps


class ELBOTerms(NamedTuple):
    """The ELBO of each image and its two terms, in nats: ``elbo = reconstruction - kl``."""

    elbo: Tensor  # (N,)
    reconstruction: Tensor  # (N,): log p(x | z) for the sampled z
    kl: Tensor  # (N,): KL(q(z | x) || N(0, I))


def _mlp(widths: Sequence[int]) -> list[nn.Module]:
    """A Linear-ReLU pair from each width to the next: ``(784, 500)`` -> Linear(784, 500), ReLU."""
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True)]
    return layers


class VAE(nn.Module):
    """A fully connected VAE for ``(N, 1, 28, 28)`` images in [0, 1], after Kingma & Welling's appendix C.

    Encoder: 784 -> ``hidden`` -> ``2 * latent_dim`` (mu and logvar); decoder: ``latent_dim`` ->
    ``hidden`` reversed -> 784 logits.

    Args:
        latent_dim: D, the dimensions of the code ``z``.
        hidden: widths of the encoder's hidden layers (the decoder's, reversed).
    """

    def __init__(self, latent_dim: int = 16, hidden: Sequence[int] = HIDDEN) -> None:
        super().__init__()
        check_positive_int(latent_dim, "latent_dim")
        for width in hidden:
            check_positive_int(width, "each hidden width")
        self.latent_dim = latent_dim
        widths = (PIXELS, *hidden)
        self.encoder = nn.Sequential(nn.Flatten(), *_mlp(widths))  # (N, 784) -> (N, hidden[-1])
        self.to_stats = nn.Linear(widths[-1], 2 * latent_dim)  # mu and logvar side by side
        back = (latent_dim, *reversed(hidden))
        self.decoder = nn.Sequential(*_mlp(back), nn.Linear(back[-1], PIXELS),
                                     nn.Unflatten(1, IMAGE_SHAPE))  # (N, 784) -> (N, 1, 28, 28)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``q(z | x)``: images ``(N, 1, 28, 28)`` -> ``mu, logvar``, each ``(N, D)``."""
        _check_images(x, "x")
        stats = self.to_stats(self.encoder(x))  # (N, 2D)
        mu, logvar = stats.chunk(2, dim=1)  # (N, D) each
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """``p(x | z)``'s logits: codes ``(N, D)`` -> ``(N, 1, 28, 28)``; ``sigmoid`` of them is the mean image."""
        check_tensor(z, "z", ndim=2, shape_hint="(N, latent_dim)", floating=True)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have {self.latent_dim} latent dimensions, got shape {tuple(z.shape)}")
        return self.decoder(z)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, sample one code per image with :func:`reparameterise`, decode."""
        mu, logvar = self.encode(x)
        z = reparameterise(mu, logvar, generator=generator)
        return VAEOutput(self.decode(z), mu, logvar, z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new images: codes from the prior ``N(0, I)``, decoded to mean images ``(n, 1, 28, 28)`` in [0, 1]."""
        check_positive_int(n, "n")
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=generator.device
                        if generator is not None else device).to(device)
        return torch.sigmoid(self.decode(z))


def _check_images(x: object, name: str) -> Tensor:
    x = check_tensor(x, name, ndim=4, shape_hint="(N, 1, 28, 28)", floating=True)
    if tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"{name} must be (N, 1, 28, 28) images, got shape {tuple(x.shape)}")
    return x


def reparameterise(mu: Tensor, logvar: Tensor, eps: Tensor | None = None,
                   generator: torch.Generator | None = None) -> Tensor:
    """A sample of ``N(mu, diag(exp(logvar)))`` that gradients flow through: ``mu + exp(logvar / 2) * eps``.

    ``eps ~ N(0, I)`` carries the randomness and does not depend on the parameters, so
    ``dz/dmu = 1`` and ``dz/dlogvar = exp(logvar / 2) * eps / 2``. (``torch.normal(mu, std)`` draws
    from the same distribution, but the gradients it passes back to ``mu`` and ``std`` are zero.)

    Args:
        mu, logvar (Tensor[N, D]): the encoder's mean and log-variance.
        eps (Tensor[N, D]): the standard normal noise; drawn (with ``generator``) when ``None``.
        generator: for drawing ``eps`` reproducibly.

    Returns:
        Tensor[N, D]: ``z``.

    Raises:
        TypeError, ValueError: not floating-point ``(N, D)`` tensors of one shape.
    """
    check_tensor(mu, "mu", ndim=2, shape_hint="(N, D)", floating=True)
    check_tensor(logvar, "logvar", ndim=2, shape_hint="(N, D)", floating=True)
    if mu.shape != logvar.shape:
        raise ValueError(f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must have the same shape (N, D)")
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype,
                          device=generator.device if generator is not None else mu.device).to(mu.device)
    elif eps.shape != mu.shape:
        raise ValueError(f"eps {tuple(eps.shape)} must have the shape of mu {tuple(mu.shape)}")
    std = torch.exp(0.5 * logvar)  # (N, D): the standard deviation, sqrt(exp(logvar))
    return mu + std * eps


def log_likelihood(logits: Tensor, x: Tensor, likelihood: str = "bernoulli", sigma: float = 0.1) -> Tensor:
    """``log p(x | z)`` of each image, summed over its pixels, for the decoder's ``logits``.

    Args:
        logits (Tensor[N, 1, 28, 28]): the decoder's output.
        x (Tensor[N, 1, 28, 28]): the images, in [0, 1].
        likelihood: ``"bernoulli"``: ``-BCE(logits, x)`` (with grey ``x`` not a normalised density;
            see the module docstring); ``"gaussian"``: ``log N(x; sigmoid(logits), sigma^2 I)``.
        sigma: the Gaussian's fixed standard deviation.

    Returns:
        Tensor[N] in nats.

    Raises:
        TypeError, ValueError: shapes that differ, an unknown likelihood, ``sigma <= 0``.
    """
    check_tensor(logits, "logits", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_tensor(x, "x", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    if logits.shape != x.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and x {tuple(x.shape)} must have the same shape")
    if likelihood == "bernoulli":
        per_pixel = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")  # (N, C, H, W)
    elif likelihood == "gaussian":
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        mean = torch.sigmoid(logits)  # (N, C, H, W)
        per_pixel = -(x - mean) ** 2 / (2 * sigma**2) - math.log(sigma * math.sqrt(2 * math.pi))
    else:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return per_pixel.flatten(1).sum(dim=1)  # (N,)


def elbo(x: Tensor, output: VAEOutput, likelihood: str = "bernoulli", sigma: float = 0.1,
         beta: float = 1.0) -> ELBOTerms:
    """The one-sample ELBO of each image, ``log p(x | z) - beta * KL(q(z | x) || N(0, I))``.

    ``beta = 1`` is the ELBO; other values give the beta-VAE objective (Higgins et al., 2017), and
    ``beta = 0`` drops the KL term (a plain autoencoder with a noisy code).

    Args:
        x (Tensor[N, 1, 28, 28]): the images, in [0, 1].
        output: ``model(x)``.
        likelihood, sigma: see :func:`log_likelihood`.
        beta: the weight of the KL term, >= 0.

    Returns:
        :class:`ELBOTerms` of ``(N,)`` tensors in nats; the training loss is ``-terms.elbo.mean()``.
    """
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")
    reconstruction = log_likelihood(output.logits, x, likelihood, sigma)  # (N,)
    kl = kl_divergence_normal(output.mu, output.logvar)  # (N,), summed over the D dimensions
    return ELBOTerms(reconstruction - beta * kl, reconstruction, kl)


@dataclass
class TrainLog:
    """What :func:`train_vae` measured: the loss (minus the ELBO per image) of every step, and the wall time."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_vae(model: VAE, images: Tensor, *, epochs: int = 1, batch_size: int = 128, lr: float = 1e-3,
              likelihood: str = "bernoulli", sigma: float = 0.1, beta: float = 1.0,
              deterministic: bool = False, time_budget: float | None = None, seed: int = 0) -> TrainLog:
    """Maximise the ELBO of ``images`` with Adam (the paper: Adagrad), in minibatches.

    Args:
        model: trained in place, on the images' device.
        images (Tensor[N, 1, 28, 28]): training images in [0, 1].
        epochs: passes over ``images`` (an upper bound with ``time_budget``).
        batch_size: images per step; the last incomplete batch is dropped.
        lr: Adam's learning rate.
        likelihood, sigma, beta: see :func:`elbo`.
        deterministic: decode ``mu`` itself, with no noise and no KL term: a plain autoencoder with
            the same networks (the comparison of chapter 21).
        time_budget: stop after this many seconds.
        seed: the order of the images and the noise ``eps``.
    """
    _check_images(images, "images")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if len(images) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} images, got {len(images)}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    log, start = TrainLog(), time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for first in range(0, len(images) - batch_size + 1, batch_size):
            x = images[order[first:first + batch_size]]  # (B, 1, 28, 28)
            if deterministic:
                mu, logvar = model.encode(x)
                out = VAEOutput(model.decode(mu), mu, logvar, mu)
                loss = -log_likelihood(out.logits, x, likelihood, sigma).mean()
            else:
                out = model(x, generator=generator)
                loss = -elbo(x, out, likelihood, sigma, beta).elbo.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            log.loss.append(loss.item())
            if time_budget is not None and time.perf_counter() - start > time_budget:
                break
        else:
            continue
        break
    log.seconds = time.perf_counter() - start
    model.eval()
    return log


@torch.no_grad()
def importance_log_likelihood(model: VAE, x: Tensor, samples: int, proposal: str = "posterior",
                              likelihood: str = "bernoulli", sigma: float = 0.1,
                              eps: Tensor | None = None,
                              generator: torch.Generator | None = None) -> Tensor:
    """An estimate of ``log p(x)`` from ``K = samples`` codes per image: ``log (1/K) sum_k w_k``.

    With codes from the encoder (``proposal="posterior"``), ``w_k = p(x | z_k) p(z_k) / q(z_k | x)``:
    the importance-weighted bound of Burda, Grosse & Salakhutdinov (2016,
    https://arxiv.org/abs/1509.00519). For ``K = 1`` its expectation is the ELBO; it rises with
    ``K`` and tends to ``log p(x)``. With codes from the prior (``proposal="prior"``),
    ``w_k = p(x | z_k)``: the naive Monte-Carlo estimate of ``integral p(x | z) p(z) dz``, also a lower
    bound in expectation, and a poor one, since few prior codes explain a given image.

    Args:
        model: a trained :class:`VAE`.
        x (Tensor[N, 1, 28, 28]): images in [0, 1].
        samples: K, codes per image.
        proposal: ``"posterior"`` (the encoder's ``q(z | x)``) or ``"prior"`` (``N(0, I)``).
        likelihood, sigma: see :func:`log_likelihood`.
        eps (Tensor[K, N, D]): the standard normal noise of the codes; drawn when ``None``.
        generator: for drawing ``eps``.

    Returns:
        Tensor[N]: the estimate for each image, in nats.
    """
    _check_images(x, "x")
    check_positive_int(samples, "samples")
    if proposal not in ("posterior", "prior"):
        raise ValueError(f"proposal must be 'posterior' or 'prior', got {proposal!r}")
    n, d = len(x), model.latent_dim
    if eps is None:
        eps = torch.randn(samples, n, d, generator=generator)
    elif eps.shape != (samples, n, d):
        raise ValueError(f"eps must have shape (samples, N, D) = {(samples, n, d)}, got {tuple(eps.shape)}")
    eps = eps.to(x.device, x.dtype)
    log_w = []
    mu, logvar = model.encode(x)  # (N, D) each
    for k in range(samples):
        if proposal == "posterior":
            z = mu + torch.exp(0.5 * logvar) * eps[k]  # (N, D)
            # log p(z) - log q(z | x), summed over D; the 2 pi terms cancel
            log_prior_over_q = (-0.5 * z**2 + 0.5 * eps[k] ** 2 + 0.5 * logvar).sum(dim=1)  # (N,)
        else:
            z, log_prior_over_q = eps[k], torch.zeros(n, dtype=x.dtype, device=x.device)
        log_w.append(log_likelihood(model.decode(z), x, likelihood, sigma) + log_prior_over_q)
    return torch.logsumexp(torch.stack(log_w), dim=0) - math.log(samples)  # (K, N) -> (N,)


@torch.no_grad()
def evaluate_elbo(model: VAE, images: Tensor, likelihood: str = "bernoulli", sigma: float = 0.1,
                  batch_size: int = 1000, seed: int = 0) -> dict[str, float]:
    """The mean one-sample ELBO of ``images`` and its two terms, in nats per image.

    Returns:
        ``{"elbo": ..., "reconstruction": ..., "kl": ...}`` averaged over the images.
    """
    _check_images(images, "images")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    totals = torch.zeros(3, dtype=torch.float64)
    for first in range(0, len(images), batch_size):
        x = images[first:first + batch_size]
        terms = elbo(x, model(x, generator=generator), likelihood, sigma)
        totals += torch.stack([t.double().sum() for t in terms])  # (3,)
    mean = totals / len(images)
    return {"elbo": float(mean[0]), "reconstruction": float(mean[1]), "kl": float(mean[2])}
