"""Exercise 22, question 3: find the two bugs in a GAN's generator step, ``generator_step``.

Goodfellow et al., *Generative Adversarial Nets*, NeurIPS 2014 (https://arxiv.org/abs/1406.2661):
the generator is updated with the discriminator held fixed, and in practice it maximises
``log D(G(z))`` (the non-saturating loss) rather than minimising the game's ``log(1 - D(G(z)))``,
whose gradient vanishes when the discriminator rejects the samples. The notebook gives a step with
both typical bugs: the game's saturating loss, and an optimiser over the generator *and* the
discriminator, so the generator's step also moves the discriminator (towards being fooled). The
grader builds a small generator and discriminator (MLPs on 1-D samples) from the case's weights,
calls the learner's step, and compares the loss returned and both networks' weights after the step
with one SGD step on the generator's parameters of ``F.binary_cross_entropy_with_logits(D(G(z)),
ones)``. An otter-grader exception-based test file that also defines ``QUESTION`` for
``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def build(weights, nz, hidden):
    """(generator, discriminator) MLPs with the case's weights, float64."""
    g = nn.Sequential(nn.Linear(nz, hidden), nn.ELU(), nn.Linear(hidden, 1)).double()
    d = nn.Sequential(nn.Linear(1, hidden), nn.ELU(), nn.Linear(hidden, 1), nn.Flatten(0)).double()
    with torch.no_grad():
        for param, value in zip(list(g.parameters()) + list(d.parameters()), weights):
            param.copy_(value)
    return g, d


def run(function, z, lr, *weights):
    g, d = build(weights, z.shape[1], weights[0].shape[0])
    loss = function(g, d, z.clone(), lr)
    if isinstance(loss, torch.Tensor):
        raise TypeError("generator_step must return the loss as a Python float: return loss.item()")
    if not isinstance(loss, float):
        raise TypeError(f"generator_step must return the loss as a Python float, got {type(loss).__name__}")
    return {"the loss returned": torch.tensor(loss, dtype=torch.float64),
            "the generator's weights after the step": torch.cat([p.detach().flatten() for p in g.parameters()]),
            "the discriminator's weights after the step":
                torch.cat([p.detach().flatten() for p in d.parameters()])}


def variant(*, saturating=False, both=False, label=1.0, reduction="mean"):
    """The step, right with the defaults, or with one thing changed."""

    def step(g, d, z, lr):
        params = list(g.parameters()) + (list(d.parameters()) if both else [])
        optimizer = torch.optim.SGD(params, lr=lr)
        logits = d(g(z))
        if saturating:
            loss = -F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction=reduction)
        else:
            loss = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label), reduction=reduction)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def call_variant(**changes):
    return lambda *args: run(variant(**changes), *args)


def cases(draw):
    found = []
    for n, nz, hidden, lr in [(8, 3, 6, 0.1), (4, 2, 5, 0.5), (16, 4, 8, 0.05), (5, 1, 3, 0.2)]:
        z = draw.normal(n, nz)
        weights = (draw.normal(hidden, nz, scale=0.5), draw.normal(hidden, scale=0.1),
                   draw.normal(1, hidden, scale=0.5), draw.normal(1, scale=0.1),
                   draw.normal(hidden, 1, scale=0.5), draw.normal(hidden, scale=0.1),
                   draw.normal(1, hidden, scale=0.5), draw.normal(1, scale=0.1))
        found.append(Case((z, lr, *weights), f"{n} noise vectors of size {nz}, MLPs with {hidden} hidden "
                                             f"units, lr {lr}"))
    return found


QUESTION = Question(
    name="q3",
    function="generator_step",
    points=points,
    reference=lambda *args: run(variant(), *args),
    oracle="one SGD step on the generator's parameters of F.binary_cross_entropy_with_logits(D(G(z)), ones)",
    cases=cases,
    call=run,
    mistakes=(
        Mistake("this is still the colleague's code, with both bugs: the loss is the saturating "
                "log(1 - D(G(z))), and the optimiser holds the discriminator's parameters too, so the "
                "generator's step also moves the discriminator. Use -log D(G(z)) (label 1) and an optimiser "
                "over generator.parameters() only.", value=call_variant(saturating=True, both=True)),
        Mistake("the optimiser holds the discriminator's parameters too: the generator's step then also moves "
                "the discriminator, towards calling the fakes real. Give it generator.parameters() only.",
                value=call_variant(both=True)),
        Mistake("the loss is the saturating log(1 - D(G(z))), the minimax game's own: its gradient per logit "
                "is -D(G(z)), almost 0 when the discriminator rejects the samples. Minimise -log D(G(z)): "
                "the cross-entropy with label 1.", value=call_variant(saturating=True)),
        Mistake("the generated samples are labelled 0: that is the discriminator's target for them. The "
                "generator wants them called real, label 1.", value=call_variant(label=0.0)),
        Mistake("the loss is summed over the batch: take the mean.", value=call_variant(reduction="sum")),
    ),
    hints=(
        "Print the discriminator's weights before and after the colleague's step. Should they change?",
        "Section 1 of the chapter compares the two generator losses' gradients where D(G(z)) is small.",
        "Two changes: which parameters the optimiser is given, and which label the cross-entropy uses.",
    ),
    forbidden=Forbidden(modules=("companion.gan",), names=("generator_loss",), what="the generator step"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_generator_step(generator_step):
    QUESTION.assert_passes(generator_step)
