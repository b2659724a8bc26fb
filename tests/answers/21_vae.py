"""Answers to exercise 21_vae: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

import companion.losses
import companion.vae

PREDICTIONS = {None: 3.625, "sign": -3.625, "mean": 3.625 / 4, "no 1/2": 7.25, "no -1": 5.625,
               "exp as std": 0.5 * (5 + 1 + 16 + 1 + 1 / 16 - 4), "means only": 2.5}


def predicted_kl(*, mistake=None):
    return PREDICTIONS[mistake]


def kl_term(mu, logvar, *, mistake=None):
    if mistake == "logvar as std":
        var = logvar**2
        return 0.5 * (mu**2 + var - 1 - torch.log(var)).sum(dim=1)
    if mistake == "exp as std":
        var = torch.exp(2 * logvar)
        return 0.5 * (mu**2 + var - 1 - torch.log(var)).sum(dim=1)
    terms = 1 + logvar - mu**2 - torch.exp(logvar)  # (N, D)
    half = {"sign": 0.5, "no 1/2": -1.0}.get(mistake, -0.5)
    if mistake == "mean over D":
        return half * terms.mean(dim=1)
    if mistake == "mean of all":
        return half * torch.mean(terms)
    if mistake == "sum of all":
        return half * terms.sum()
    if mistake == "batch mean":
        return (half * terms.sum(dim=1)).mean()
    return half * terms.sum(dim=1)


def reparameterise(mu, logvar, eps, *, mistake=None):
    if mistake == "torch.normal":
        return torch.normal(mu, torch.exp(0.5 * logvar))
    std = {"exp as std": lambda v: torch.exp(v), "logvar as std": lambda v: v,
           "no std": torch.ones_like}.get(mistake, lambda v: torch.exp(0.5 * v))(logvar)
    z = mu + std * eps
    return z.detach() if mistake == "detached" else z


def vae_loss(x, logits, mu, logvar, *, mistake=None):
    out = torch.sigmoid(logits) if mistake == "double sigmoid" else logits
    if mistake == "pixel mean":
        reconstruction = F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).mean(1)
    else:
        reconstruction = F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
    terms = 1 + logvar - mu**2 - logvar.exp()
    if mistake == "colleague":
        return reconstruction.mean() - 0.5 * torch.mean(terms)
    half = {"kl sign": 0.5, "no 1/2": -1.0}.get(mistake, -0.5)
    total = reconstruction + half * terms.sum(1)
    if mistake == "batch sum":
        return total.sum()
    return -total.mean() if mistake == "elbo" else total.mean()


WRONG = [
    ("q1", predicted_kl, "sign", "sign is flipped"),
    ("q1", predicted_kl, "mean", "mean over the 4 coordinates"),
    ("q1", predicted_kl, "no 1/2", "factor 1/2 is missing"),
    ("q1", predicted_kl, "no -1", "-1 of each coordinate"),
    ("q1", predicted_kl, "exp as std", "exp(logvar) was taken as the standard deviation"),
    ("q1", predicted_kl, "means only", "only the means count"),
    ("q2", kl_term, "sign", "sign is flipped"),
    ("q2", kl_term, "mean over D", "mean over the latent dimensions"),
    ("q2", kl_term, "mean of all", "mean over every element"),
    ("q2", kl_term, "sum of all", "sum over dim=1 only"),
    ("q2", kl_term, "batch mean", "batch mean of the KL"),
    ("q2", kl_term, "logvar as std", "logvar is used as a standard deviation"),
    ("q2", kl_term, "exp as std", "exp(logvar) is used as the standard deviation"),
    ("q2", kl_term, "no 1/2", "factor 1/2 is missing"),
    ("q3", reparameterise, "exp as std", "exp(logvar) is used as the standard deviation"),
    ("q3", reparameterise, "logvar as std", "logvar is used as the standard deviation"),
    ("q3", reparameterise, "no std", "z = mu + eps"),
    ("q3", reparameterise, "detached", "right values but no gradient"),
    ("q3", reparameterise, "torch.normal", "torch.normal"),
    ("q4", vae_loss, "colleague", "still the colleague's bug"),
    ("q4", vae_loss, "kl sign", "KL term has the wrong sign"),
    ("q4", vae_loss, "no 1/2", "lacks its factor 1/2"),
    ("q4", vae_loss, "pixel mean", "averaged over the pixels"),
    ("q4", vae_loss, "batch sum", "summed over the batch"),
    ("q4", vae_loss, "elbo", "ELBO itself"),
    ("q4", vae_loss, "double sigmoid", "sigmoid is applied twice"),
]


def _kl_by_distributions(mu, logvar):
    q = Normal(mu, torch.exp(0.5 * logvar))
    return kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)


def _loss_by_companion(x, logits, mu, logvar):
    out = companion.vae.VAEOutput(logits, mu, logvar, mu)
    return -companion.vae.elbo(x, out).elbo.mean()


def _loss_with_kl_divergence_normal(x, logits, mu, logvar):
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    return (reconstruction + companion.losses.kl_divergence_normal(mu, logvar)).mean()


CHEATS = [
    ("q2", lambda mu, logvar: companion.losses.kl_divergence_normal(mu, logvar)),
    ("q2", _kl_by_distributions),
    ("q3", lambda mu, logvar, eps: companion.vae.reparameterise(mu, logvar, eps)),
    ("q3", lambda mu, logvar, eps: Normal(mu, torch.exp(0.5 * logvar)).rsample()),
    ("q4", _loss_by_companion),
    ("q4", _loss_with_kl_divergence_normal),
]
