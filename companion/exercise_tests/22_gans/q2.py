"""Exercise 22, question 2: find the bug in a GAN's discriminator step, ``discriminator_step``.

Goodfellow et al., *Generative Adversarial Nets*, NeurIPS 2014 (https://arxiv.org/abs/1406.2661),
algorithm 1: the discriminator ascends ``log D(x) + log(1 - D(G(z)))`` with the generator held
fixed. The notebook gives a step that feeds ``G(z)`` to the discriminator without ``detach``, so the
discriminator's backward pass also fills the generator's gradients (which the generator's next step
then adds to its own), the method's typical bug. The grader builds a small generator and
discriminator (MLPs on 1-D samples) from the case's weights, fills the discriminator's ``.grad`` as
a previous generator step leaves it, calls the learner's step with an SGD optimiser over the
discriminator's parameters, and compares the loss returned, the discriminator's weights after the
step and what reached the generator's gradients with the reference step written with
``F.binary_cross_entropy_with_logits``. An otter-grader exception-based test file that also defines
``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 3


def build(weights, nz, hidden):
    """(generator, discriminator) MLPs with the case's weights, float64."""
    g = nn.Sequential(nn.Linear(nz, hidden), nn.ELU(), nn.Linear(hidden, 1)).double()
    d = nn.Sequential(nn.Linear(1, hidden), nn.ELU(), nn.Linear(hidden, 1), nn.Flatten(0)).double()
    with torch.no_grad():
        for param, value in zip(list(g.parameters()) + list(d.parameters()), weights):
            param.copy_(value)
    return g, d


def run(function, real, z, *weights):
    nz, hidden = z.shape[1], weights[0].shape[0]
    g, d = build(weights, nz, hidden)
    # what a previous generator step leaves in the discriminator's .grad
    F.softplus(-d(g(z))).mean().backward()
    for p in g.parameters():
        p.grad = None
    optimizer = torch.optim.SGD(d.parameters(), lr=0.1)
    loss = function(g, d, optimizer, real.clone(), z.clone())
    if isinstance(loss, torch.Tensor):
        raise TypeError("discriminator_step must return the loss as a Python float: return loss.item()")
    if not isinstance(loss, float):
        raise TypeError(f"discriminator_step must return the loss as a Python float, got {type(loss).__name__}")
    leaked = [p.grad.flatten() for p in g.parameters() if p.grad is not None]
    return {"the loss returned": torch.tensor(loss, dtype=torch.float64),
            "the discriminator's weights after the step": torch.cat([p.detach().flatten() for p in d.parameters()]),
            "the size of the gradient that reached the generator": torch.cat(leaked).norm() if leaked
            else torch.tensor(0.0, dtype=torch.float64)}


def variant(*, detach=True, real_label=1.0, fake_label=0.0, zero_grad=True, reduction="mean"):
    """The step, right with the defaults, or with one thing changed."""

    def step(g, d, optimizer, real, z):
        fake = g(z).detach() if detach else g(z)
        real_logits, fake_logits = d(real), d(fake)
        loss = (F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label),
                                                   reduction=reduction)
                + F.binary_cross_entropy_with_logits(fake_logits, torch.full_like(fake_logits, fake_label),
                                                     reduction=reduction))
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def call_variant(**changes):
    return lambda *args: run(variant(**changes), *args)


def cases(draw):
    found = []
    for n, nz, hidden in [(8, 3, 6), (4, 2, 5), (16, 4, 8), (5, 1, 3)]:
        real = 4 + 1.25 * draw.normal(n, 1)
        z = draw.normal(n, nz)
        weights = (draw.normal(hidden, nz, scale=0.5), draw.normal(hidden, scale=0.1),
                   draw.normal(1, hidden, scale=0.5), draw.normal(1, scale=0.1),
                   draw.normal(hidden, 1, scale=0.5), draw.normal(hidden, scale=0.1),
                   draw.normal(1, hidden, scale=0.5), draw.normal(1, scale=0.1))
        found.append(Case((real, z, *weights), f"{n} real numbers and {n} noise vectors of size {nz}, "
                                               f"MLPs with {hidden} hidden units"))
    return found


QUESTION = Question(
    name="q2",
    function="discriminator_step",
    points=points,
    reference=lambda *args: run(variant(), *args),
    oracle="the discriminator step with G(z).detach() and F.binary_cross_entropy_with_logits",
    cases=cases,
    call=run,
    mistakes=(
        Mistake("this is still the colleague's bug: G(z) is not detached, so the discriminator's backward "
                "pass runs on into the generator and fills its .grad, which the generator's next step adds "
                "to its own gradient (and the backward pass costs a generator's worth more). Use "
                "generator(z).detach().", value=call_variant(detach=False)),
        Mistake("the real samples are labelled 0: the discriminator's target is 1 for real samples and 0 for "
                "generated ones.", value=call_variant(real_label=0.0)),
        Mistake("the generated samples are labelled 1: the discriminator's target is 0 for generated "
                "samples (and 1 for real ones).", value=call_variant(fake_label=1.0)),
        Mistake("the labels are swapped in both terms: real samples get 1, generated ones 0.",
                value=call_variant(real_label=0.0, fake_label=1.0)),
        Mistake("the gradients are not zeroed before backward: the discriminator's .grad still holds what "
                "the generator's step left there, and the step adds it. Call optimizer.zero_grad() first.",
                value=call_variant(zero_grad=False)),
        Mistake("the loss is summed over the batch: take the mean of each term.",
                value=call_variant(reduction="sum")),
    ),
    hints=(
        "After your step, print [p.grad for p in generator.parameters()]. Should the discriminator's loss "
        "have reached them?",
        "Which tensor connects the discriminator's loss to the generator's weights in the autograd graph?",
        "One call on one tensor cuts the graph there; the rest of the colleague's code is right.",
    ),
    forbidden=Forbidden(modules=("companion.gan",), names=("discriminator_loss",),
                        what="the discriminator step"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_discriminator_step(discriminator_step):
    QUESTION.assert_passes(discriminator_step)
