"""Exercise 21, question 4: find the bug in a VAE loss and fix it, ``vae_loss``.

The notebook shows a colleague's loss whose KL term is ``-0.5 * torch.mean(1 + logvar - mu**2 -
logvar.exp())``: the mean over the batch *and the latent dimensions*, which divides the KL by D (a
common bug in published VAE code). The learner writes the corrected loss, minus the ELBO averaged over
the batch: the binary cross-entropy with logits summed over the pixels plus the KL summed over the latent
dimensions. The grader compares the loss and its gradients with respect to the logits, mu and logvar with
the same loss built from torch.distributions (Bernoulli log_prob and kl_divergence). Kingma & Welling
(2014), equation (10), https://arxiv.org/abs/1312.6114.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case
from torch.distributions import Bernoulli, Normal, kl_divergence

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 4


def loss_and_gradients(function, x, logits, mu, logvar):
    """How the learner's loss is called: on leaf tensors that require gradients, then differentiated."""
    lg, m, lv = (t.clone().requires_grad_(True) for t in (logits, mu, logvar))
    loss = function(x.clone(), lg, m, lv)
    if not isinstance(loss, torch.Tensor) or loss.shape != () or not loss.requires_grad:
        raise TypeError("vae_loss must return a scalar tensor that autograd can differentiate (got "
                        f"{type(loss).__name__}{' of shape ' + str(tuple(loss.shape)) if isinstance(loss, torch.Tensor) else ''}"
                        "); do not call .item() on it")
    grads = torch.autograd.grad(loss, (lg, m, lv), allow_unused=True)
    names = ("the logits", "mu", "logvar")
    return {"the loss": loss.detach(),
            **{f"its gradient with respect to {n}": torch.zeros_like(t) if g is None else g
               for n, t, g in zip(names, (lg, m, lv), grads)}}


def by_distributions(x, logits, mu, logvar):
    """Minus the ELBO, averaged over the batch, from torch.distributions."""
    reconstruction = Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1)  # (N,)
    q = Normal(mu, torch.exp(0.5 * logvar))
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)  # (N,)
    return (kl - reconstruction).mean()


def variant(*, kl_reduce="sum", kl_sign=1.0, kl_half=0.5, pixels="sum", batch="mean", sign=1.0,
            double_sigmoid=False):
    """The loss, right with the defaults, or with one thing changed."""

    def loss(x, logits, mu, logvar):
        n = len(x)
        out = torch.sigmoid(logits) if double_sigmoid else logits
        bce = F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1)  # (N, pixels)
        reconstruction = bce.sum(1) if pixels == "sum" else bce.mean(1)  # (N,)
        terms = 1 + logvar - mu**2 - logvar.exp()  # (N, D)
        if kl_reduce == "colleague":  # the mean over the batch and the latent dimensions
            return sign * (reconstruction.sum() / n - kl_sign * kl_half * terms.mean())
        kl = -kl_sign * kl_half * terms.sum(1)  # (N,)
        total = reconstruction + kl
        return sign * (total.mean() if batch == "mean" else total.sum())

    return lambda *args: loss_and_gradients(loss, *args)


def cases(draw):
    found = []
    for n, d in [(4, 8), (8, 2), (3, 16), (1, 4), (6, 3)]:
        x = torch.rand(n, 1, 28, 28, generator=draw.generator, dtype=torch.float64)
        logits = draw.normal(n, 1, 28, 28, scale=2.0)
        mu, logvar = draw.normal(n, d, scale=1.5), draw.normal(n, d)
        found.append(Case((x, logits, mu, logvar), f"{n} images, latent dimension {d}"))
    return found


QUESTION = Question(
    name="q4",
    function="vae_loss",
    points=points,
    reference=lambda *args: loss_and_gradients(by_distributions, *args),
    oracle="minus the ELBO from torch.distributions (Bernoulli log_prob and kl_divergence), batch mean",
    cases=cases,
    call=loss_and_gradients,
    mistakes=(
        Mistake("this is still the colleague's bug: torch.mean over the (N, D) terms averages the KL over the "
                "latent dimensions too, which divides it by D. Sum over the latent dimensions (dim=1), then take "
                "the mean over the batch.", value=variant(kl_reduce="colleague")),
        Mistake("the KL term has the wrong sign: the loss is minus the ELBO, reconstruction error PLUS "
                "KL(q || p) = -1/2 sum (1 + logvar - mu^2 - exp(logvar)), which is >= 0.",
                value=variant(kl_sign=-1.0)),
        Mistake("the KL term lacks its factor 1/2.", value=variant(kl_half=1.0)),
        Mistake("the reconstruction term is averaged over the pixels: log p(x | z) is a sum over the 784 "
                "pixels (reduction='none' then sum over each image, or reduction='sum' / N); the mean weighs "
                "the KL 784 times too much.", value=variant(pixels="mean")),
        Mistake("the loss is summed over the batch: average it over the N images (the check compares a mean, "
                "so the learning rate does not depend on the batch size).", value=variant(batch="sum")),
        Mistake("this is the ELBO itself: the loss to minimise is minus the ELBO.", value=variant(sign=-1.0)),
        Mistake("sigmoid is applied twice: the decoder outputs logits, and "
                "F.binary_cross_entropy_with_logits applies the sigmoid itself.",
                value=variant(double_sigmoid=True)),
    ),
    hints=(
        "Compare the colleague's KL with torch.distributions' KL for the same mu and logvar: by what factor "
        "do they differ, and what is that factor?",
        "Per image: the reconstruction term sums over its pixels and the KL over its latent dimensions; "
        "then average the sum of the two over the batch.",
        "Return a scalar tensor (no .item()), so that it can be differentiated.",
    ),
    forbidden=Forbidden(
        modules=("companion.losses", "companion.vae", "torch.distributions"),
        names=("kl_divergence", "kl_divergence_normal", "elbo"),
        what="the VAE loss",
    ),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_vae_loss(vae_loss):
    QUESTION.assert_passes(vae_loss)
