"""Generative adversarial networks: the losses, the two training steps, a training loop, a 1-D toy, an anomaly score.

Goodfellow et al., *Generative Adversarial Nets*, NeurIPS 2014 (https://arxiv.org/abs/1406.2661).
A generator ``G`` maps noise ``z`` to samples; a discriminator ``D`` scores a sample with a logit
``a``, and ``D(x) = sigmoid(a)`` is its probability that ``x`` is real. The two play

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))].

* The **discriminator** maximises ``V``: it minimises the binary cross-entropy with label 1 for
  real and 0 for generated samples, ``softplus(-a_real) + softplus(a_fake)`` in logits
  (:func:`discriminator_loss`; ``-log sigmoid(a) = softplus(-a)`` and ``-log(1 - sigmoid(a)) =
  softplus(a)``).
* The **generator** of the minimax game minimises ``log(1 - D(G(z))) = -softplus(a_fake)``, the
  *saturating* loss. Its gradient with respect to the logit is ``-sigmoid(a) = -D(G(z))``, which
  vanishes exactly when the generator is bad and ``D`` rejects its samples (``D(G(z))`` near 0),
  i.e. at the start of training. The paper therefore trains ``G`` to maximise ``log D(G(z))``
  instead, the *non-saturating* loss ``softplus(-a_fake)``, with gradient ``-(1 - D(G(z)))``: close
  to -1 where the other is close to 0 (:func:`generator_loss`).

One training iteration (:func:`train_step`) is a discriminator step on a real batch and a generated
batch that is **detached** from the generator (the discriminator's loss must not move ``G``; see
:func:`discriminator_step`), then a generator step through the discriminator, whose optimiser
only holds the generator's parameters (:func:`generator_step`). :func:`train_gan` loops over
shuffled batches with Adam (lr 2e-4, betas (0.5, 0.999): the DCGAN paper's choice, Radford, Metz &
Chintala, 2016, https://arxiv.org/abs/1511.06434) and keeps copies of the generator at chosen steps.

The 1-D toy (:func:`toy_generator`, :func:`toy_discriminator`) follows Dev Nag's *Generative
Adversarial Networks (GANs) in 50 lines of code (PyTorch)* (2017): two small MLPs, real samples
from a 1-D Gaussian.

Anomaly detection (:func:`latent_search`, :func:`anomaly_score`, :func:`anomaly_auc`) follows
AnoGAN (Schlegl et al., *Unsupervised Anomaly Detection with Generative Adversarial Networks to
Guide Marker Discovery*, IPMI 2017, https://arxiv.org/abs/1703.05921): train a GAN on normal images
only, find for a test image ``x`` the noise ``z*`` whose ``G(z*)`` is closest to it by gradient
descent on ``z``, and score it by the residual ``|x - G(z*)|``, optionally mixed with the
discriminator's ``-log D(x)`` (AnoGAN mixes in a discriminator-feature residual instead). An image
the generator cannot reproduce is unlike the training data.

Introduced in chapter 22, *GANs*.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor
from companion.verification import roc_auc

__all__ = ["GENERATOR_LOSSES", "GANLog", "anomaly_auc", "anomaly_score", "discriminator_loss",
           "discriminator_step", "generator_loss", "generator_step", "latent_search", "sample",
           "toy_discriminator", "toy_generator", "train_gan", "train_step"]

#: The generator losses :func:`generator_loss` knows.
GENERATOR_LOSSES = ("non_saturating", "saturating")


def _check_logits(logits: object, name: str) -> Tensor:
    logits = check_tensor(logits, name, ndim=1, shape_hint="(N,)", floating=True)
    if len(logits) == 0:
        raise ValueError(f"{name} must hold at least one logit, got an empty tensor")
    return logits


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's binary cross-entropy: label 1 for real, 0 for generated samples.

    ``mean(softplus(-real_logits)) + mean(softplus(fake_logits))``
    ``= -mean log D(x) - mean log(1 - D(G(z)))``: ``-V(D, G)`` of the minimax game, in logits.

    Args:
        real_logits (Tensor[N]): the discriminator's logits for real samples.
        fake_logits (Tensor[M]): its logits for generated samples.

    Returns:
        A scalar tensor.

    Raises:
        TypeError, ValueError: the logits are not non-empty 1-D floating-point tensors.
    """
    real_logits = _check_logits(real_logits, "real_logits")
    fake_logits = _check_logits(fake_logits, "fake_logits")
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor, kind: str = "non_saturating") -> Tensor:
    """The generator's loss on the discriminator's logits ``a`` for generated samples.

    * ``"non_saturating"`` (Goodfellow et al.'s practical choice): ``mean(softplus(-a))
      = -mean log D(G(z))``; gradient per logit ``-(1 - D(G(z))) / N``.
    * ``"saturating"`` (the minimax game itself): ``-mean(softplus(a)) = mean log(1 - D(G(z)))``;
      gradient per logit ``-D(G(z)) / N``, which vanishes when ``D`` rejects the samples.

    Raises:
        TypeError, ValueError: the logits are not a non-empty 1-D floating-point tensor, or ``kind``
            is unknown.
    """
    fake_logits = _check_logits(fake_logits, "fake_logits")
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    if kind == "saturating":
        return -F.softplus(fake_logits).mean()
    raise ValueError(f"kind must be one of {GENERATOR_LOSSES}, got {kind!r}")


def _check_noise(z: object, nz: int | None = None) -> Tensor:
    z = check_tensor(z, "z", ndim=2, shape_hint="(N, nz)", floating=True)
    if nz is not None and z.shape[1] != nz:
        raise ValueError(f"z must have {nz} noise dimensions per sample, got shape {tuple(z.shape)}")
    return z


def discriminator_step(generator: nn.Module, discriminator: nn.Module, optimizer: torch.optim.Optimizer,
                       real: Tensor, z: Tensor) -> float:
    """One update of the discriminator on a real batch and ``G(z)``; returns its loss.

    The generated batch is detached: the discriminator's loss sends no gradient into the generator
    (without ``detach`` the backward pass would also fill the generator's ``.grad``, which the
    generator's next step would then add to its own gradient).

    Args:
        generator: noise ``(M, nz)`` -> samples shaped like ``real``.
        discriminator: samples ``(N, ...)`` -> logits ``(N,)``.
        optimizer: the discriminator's optimiser (over its parameters only).
        real (Tensor[N, ...]): a batch of real samples.
        z (Tensor[M, nz]): noise for the generated batch.
    """
    z = _check_noise(z)
    fake = generator(z).detach()  # (M, ...): no gradient into G
    loss = discriminator_loss(discriminator(real), discriminator(fake))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def generator_step(generator: nn.Module, discriminator: nn.Module, optimizer: torch.optim.Optimizer, z: Tensor,
                   kind: str = "non_saturating") -> float:
    """One update of the generator through the discriminator; returns its loss.

    ``optimizer`` holds the generator's parameters only, so the discriminator is not moved (its
    ``.grad`` is filled, and cleared by its own next step).
    """
    z = _check_noise(z)
    loss = generator_loss(discriminator(generator(z)), kind)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def train_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, real: Tensor, z: Tensor,
               kind: str = "non_saturating") -> tuple[float, float]:
    """A discriminator step then a generator step on the same noise; returns ``(d_loss, g_loss)``."""
    if kind not in GENERATOR_LOSSES:
        raise ValueError(f"kind must be one of {GENERATOR_LOSSES}, got {kind!r}")
    d_loss = discriminator_step(generator, discriminator, opt_d, real, z)
    g_loss = generator_step(generator, discriminator, opt_g, z, kind)
    return d_loss, g_loss


@dataclass
class GANLog:
    """What :func:`train_gan` records: per-step losses, the mean ``D(G(z))`` the generator step saw,
    copies of the generator (``state_dict``) at the requested steps, and the wall time."""

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    checkpoints: dict[int, dict[str, Tensor]] = field(default_factory=dict)
    seconds: float = 0.0


def train_gan(generator: nn.Module, discriminator: nn.Module, data: Tensor, *, steps: int, nz: int,
              batch_size: int = 64, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
              kind: str = "non_saturating", checkpoints: Sequence[int] = (), seed: int = 0) -> GANLog:
    """Train a GAN for ``steps`` iterations of :func:`train_step` with Adam; the modules change in place.

    Args:
        generator: noise ``(B, nz)`` -> samples shaped like ``data[i]``.
        discriminator: samples -> logits ``(B,)``.
        data (Tensor[N, ...]): the real samples (images in [-1, 1] for a tanh generator), on the
            modules' device; batches are drawn by reshuffling once per pass.
        steps: training iterations; nz: noise dimensions; batch_size: samples per batch.
        lr, betas: Adam's, for both networks (the DCGAN paper's defaults).
        kind: the generator loss (:data:`GENERATOR_LOSSES`).
        checkpoints: steps (0 = before training) at which to keep a copy of the generator's state.
        seed: seeds the shuffling and the noise.

    Raises:
        ValueError: non-positive sizes, fewer samples than a batch, a checkpoint outside
            ``[0, steps]``, or an unknown ``kind``.
    """
    check_positive_int(steps, "steps")
    check_positive_int(nz, "nz")
    check_positive_int(batch_size, "batch_size")
    data = check_tensor(data, "data", floating=True)
    if data.dim() < 2 or len(data) < batch_size:
        raise ValueError(f"data must hold at least batch_size={batch_size} samples (N, ...), "
                         f"got shape {tuple(data.shape)}")
    if kind not in GENERATOR_LOSSES:
        raise ValueError(f"kind must be one of {GENERATOR_LOSSES}, got {kind!r}")
    wanted = set(checkpoints)
    if any(not isinstance(s, int) or not 0 <= s <= steps for s in wanted):
        raise ValueError(f"checkpoints must be steps in [0, {steps}], got {sorted(checkpoints)}")
    rng = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    log = GANLog()
    generator.train()
    discriminator.train()
    if 0 in wanted:
        log.checkpoints[0] = copy.deepcopy(generator.state_dict())
    start, order, position = time.perf_counter(), torch.randperm(len(data), generator=rng), 0
    for step in range(1, steps + 1):
        if position + batch_size > len(data):
            order, position = torch.randperm(len(data), generator=rng), 0
        real = data[order[position:position + batch_size].to(data.device)]  # (B, ...)
        position += batch_size
        z = torch.randn(batch_size, nz, generator=rng).to(data.device)  # (B, nz)
        d_loss, g_loss = train_step(generator, discriminator, opt_g, opt_d, real, z, kind)
        log.d_loss.append(d_loss)
        log.g_loss.append(g_loss)
        if step in wanted:
            log.checkpoints[step] = copy.deepcopy(generator.state_dict())
    log.seconds = time.perf_counter() - start
    return log


@torch.no_grad()
def sample(generator: nn.Module, n: int, nz: int, *, seed: int = 0, batch_size: int = 500) -> Tensor:
    """``n`` samples of ``generator`` in eval mode (batch norm uses its running statistics), on the CPU.

    Returns:
        Tensor[n, ...]: the generator's outputs for ``n`` noise vectors drawn from N(0, I) with ``seed``.
    """
    check_positive_int(n, "n")
    check_positive_int(nz, "nz")
    check_positive_int(batch_size, "batch_size")
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    z = torch.randn(n, nz, generator=torch.Generator().manual_seed(seed))  # (n, nz)
    out = torch.cat([generator(z[i:i + batch_size].to(device)).cpu() for i in range(0, n, batch_size)])
    generator.train(was_training)
    return out


# --- the 1-D toy of "GANs in 50 lines" -----------------------------------------------------------------

def toy_generator(nz: int = 4, hidden: int = 16) -> nn.Sequential:
    """An MLP ``(N, nz) -> (N, 1)``: noise to one real number (two hidden ELU layers)."""
    check_positive_int(nz, "nz")
    check_positive_int(hidden, "hidden")
    return nn.Sequential(nn.Linear(nz, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(),
                         nn.Linear(hidden, 1))


class _Flatten1(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.flatten()  # (N, 1) -> (N,)


def toy_discriminator(hidden: int = 16) -> nn.Sequential:
    """An MLP ``(N, 1) -> (N,)`` logits: is this number a real sample? (two hidden ELU layers)."""
    check_positive_int(hidden, "hidden")
    return nn.Sequential(nn.Linear(1, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(),
                         nn.Linear(hidden, 1), _Flatten1())


# --- anomaly detection in the spirit of AnoGAN ------------------------------------------------------

def latent_search(generator: nn.Module, images: Tensor, nz: int, *, steps: int = 100, lr: float = 0.05,
                  seed: int = 0) -> tuple[Tensor, Tensor]:
    """For each image, the noise ``z*`` whose ``G(z*)`` is closest to it (AnoGAN's mapping to latent space).

    Minimises the mean absolute residual ``|x - G(z)|`` of every image over its own ``z`` with Adam,
    from ``z ~ N(0, I)``, the generator in eval mode and its parameters untouched (gradients are
    taken with respect to ``z`` only).

    Args:
        generator: noise ``(N, nz)`` -> images shaped like ``images``.
        images (Tensor[N, C, H, W]): in the generator's range ([-1, 1] for tanh).
        nz: noise dimensions; steps, lr: Adam's iterations and step size; seed: the starting ``z``.

    Returns:
        ``z*`` (Tensor[N, nz]) and ``G(z*)`` (Tensor[N, C, H, W]), detached.
    """
    images = check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_positive_int(nz, "nz")
    check_positive_int(steps, "steps")
    was_training = generator.training
    generator.eval()
    device = images.device
    z = torch.randn(len(images), nz, generator=torch.Generator().manual_seed(seed)).to(device)
    z.requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        # summed over images: each image's z gets its own residual's gradient
        residual = (generator(z) - images).abs().flatten(1).mean(1).sum()
        (grad,) = torch.autograd.grad(residual, z)
        z.grad = grad
        optimizer.step()
    with torch.no_grad():
        reconstructions = generator(z.detach())  # (N, C, H, W), still in eval mode
    generator.train(was_training)
    return z.detach(), reconstructions


def anomaly_score(images: Tensor, reconstructions: Tensor, logits: Tensor | None = None,
                  weight: float = 0.0) -> Tensor:
    """AnoGAN-style anomaly score per image: ``(1 - weight) * R + weight * softplus(-logits)``.

    ``R`` is the mean absolute residual ``|x - G(z*)|`` over the pixels; ``softplus(-a) = -log D(x)``
    is large when the discriminator calls the image fake. Higher means more anomalous.

    Args:
        images, reconstructions (Tensor[N, C, H, W]): the images and ``G(z*)`` from :func:`latent_search`.
        logits (Tensor[N] | None): the discriminator's logits for ``images``; needed when ``weight > 0``.
        weight: in [0, 1]; 0 scores by the residual alone, 1 by the discriminator alone.

    Returns:
        Tensor[N].
    """
    images = check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    reconstructions = check_tensor(reconstructions, "reconstructions", ndim=4, shape_hint="(N, C, H, W)",
                                   floating=True)
    if images.shape != reconstructions.shape:
        raise ValueError(f"images and reconstructions must have the same shape, got {tuple(images.shape)} "
                         f"and {tuple(reconstructions.shape)}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    residual = (images - reconstructions).abs().flatten(1).mean(1)  # (N,)
    if weight == 0.0:
        return residual
    if logits is None:
        raise ValueError("logits (the discriminator's, for the images) are needed when weight > 0")
    logits = _check_logits(logits, "logits")
    if len(logits) != len(images):
        raise ValueError(f"logits must hold one logit per image ({len(images)}), got {len(logits)}")
    return (1 - weight) * residual + weight * F.softplus(-logits)


def anomaly_auc(normal_scores: Tensor, anomalous_scores: Tensor) -> float:
    """The area under the ROC curve of anomaly scores: P(score of an anomaly > score of a normal image).

    It is the Mann-Whitney statistic (pairs ranked right, ties counting 1/2), computed as the area
    under chapter 19's ROC curve (:func:`companion.verification.roc_auc`) with anomalies as the
    positive class: equal to ``sklearn.metrics.roc_auc_score``. 1 separates perfectly, 0.5 is chance.

    Raises:
        TypeError, ValueError: the scores are not non-empty 1-D tensors, or hold NaN.
    """
    normal = check_tensor(normal_scores, "normal_scores", ndim=1, shape_hint="(N,)").double()
    anomalous = check_tensor(anomalous_scores, "anomalous_scores", ndim=1, shape_hint="(M,)").double()
    if len(normal) == 0 or len(anomalous) == 0:
        raise ValueError("normal_scores and anomalous_scores must each hold at least one score")
    if torch.isnan(normal).any() or torch.isnan(anomalous).any():
        raise ValueError("the scores contain NaN")
    scores = torch.cat([anomalous, normal])  # (M + N,)
    is_anomaly = torch.cat([torch.ones(len(anomalous)), torch.zeros(len(normal))])  # (M + N,)
    return roc_auc(scores, is_anomaly)
