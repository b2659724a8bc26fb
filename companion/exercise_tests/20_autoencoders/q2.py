"""Exercise 20, question 2: find the bug in a denoising autoencoder's loss, ``denoising_loss``.

A denoising autoencoder (Vincent, Larochelle, Bengio & Manzagol, *Extracting and Composing Robust
Features with Denoising Autoencoders*, ICML 2008,
https://www.cs.toronto.edu/~larocheh/publications/icml-2008-denoising-autoencoders.pdf) is fed a
corrupted image and trained to output the *clean* one. The notebook gives a loss that compares the
reconstruction with the noisy input, which rewards copying the noise, the method's typical bug.
The learner returns the corrected loss: ``BCE(model((clean + noise).clamp(0, 1)), clean)``, averaged
over the pixels. The grader builds a small network with random weights, calls the learner's loss,
and compares the loss and its gradient with respect to the network's first weight with torch's
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


def build(w1, b1, w2, b2):
    """A tiny conv 'autoencoder' with the case's weights: images (N, 1, H, W) -> logits (N, 1, H, W)."""
    net = nn.Sequential(nn.Conv2d(1, w1.shape[0], 3, padding=1), nn.ReLU(), nn.Conv2d(w1.shape[0], 1, 3, padding=1))
    with torch.no_grad():
        for param, value in zip(net.parameters(), (w1, b1, w2, b2)):
            param.copy_(value)
    return net.double()


def loss_and_gradient(function, clean, noise, w1, b1, w2, b2):
    """How the learner's loss is called: on a fresh network, then differentiated."""
    net = build(w1, b1, w2, b2)
    loss = function(net, clean.clone(), noise.clone())
    if not isinstance(loss, torch.Tensor) or loss.shape != () or not loss.requires_grad:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise TypeError(f"denoising_loss must return a scalar tensor that autograd can differentiate, got {got} "
                        "(do not call .item() or detach it)")
    (grad,) = torch.autograd.grad(loss, net[0].weight)
    return {"the loss": loss.detach(), "its gradient with respect to the first convolution's weight": grad}


def variant(*, target="clean", corrupt=True, clip=True, reduction="mean"):
    """The loss, right with the defaults, or with one thing changed."""

    def loss(net, clean, noise):
        noisy = clean + noise
        if clip:
            noisy = noisy.clamp(0, 1)
        logits = net(noisy if corrupt else clean)
        goal = {"clean": clean, "noisy": noisy}[target]
        return F.binary_cross_entropy_with_logits(logits, goal, reduction=reduction)

    return loss


def call_variant(**changes):
    return lambda *args: loss_and_gradient(variant(**changes), *args)


def cases(draw):
    found = []
    for n, side, hidden, level in [(2, 6, 4, 0.3), (4, 8, 3, 0.5), (1, 5, 2, 0.2), (3, 7, 4, 0.4), (5, 4, 2, 0.3)]:
        clean = torch.rand((n, 1, side, side), generator=draw.generator, dtype=torch.float64)
        noise = draw.normal(n, 1, side, side, scale=level)
        weights = (draw.normal(hidden, 1, 3, 3, scale=0.5), draw.normal(hidden, scale=0.1),
                   draw.normal(1, hidden, 3, 3, scale=0.5), draw.normal(1, scale=0.1))
        found.append(Case((clean, noise, *weights),
                          f"{n} clean images ({side}x{side}) in [0, 1], Gaussian noise of std {level}, a small "
                          f"conv net with {hidden} hidden channels"))
    return found


QUESTION = Question(
    name="q2",
    function="denoising_loss",
    points=points,
    reference=lambda *args: loss_and_gradient(variant(), *args),
    oracle="F.binary_cross_entropy_with_logits(model(noisy), clean)",
    cases=cases,
    call=loss_and_gradient,
    mistakes=(
        Mistake("this is still the colleague's bug: the reconstruction is compared with the noisy input, so "
                "the loss is lowest for a network that copies the noise. The target of a denoising autoencoder "
                "is the clean image; only the input is corrupted.", value=call_variant(target="noisy")),
        Mistake("the network sees the clean image: a denoising autoencoder is fed the corrupted copy "
                "(clean + noise, clipped to [0, 1]) and must output the clean one.",
                value=call_variant(corrupt=False)),
        Mistake("the corrupted input is not clipped to [0, 1]: clamp clean + noise, so that the network sees "
                "an image with valid pixel values, as the colleague's code does.", value=call_variant(clip=False)),
        Mistake("the loss is summed over the pixels: take the mean (reduction='mean'), so that its size does "
                "not depend on the number or size of the images.", value=call_variant(reduction="sum")),
        Mistake("the target is the noisy input and the network sees the clean image: both are the wrong way "
                "round. Feed the corrupted copy, compare with the clean image.",
                value=call_variant(target="noisy", corrupt=False)),
    ),
    hints=(
        "Write down, for a network that outputs exactly its input, the colleague's loss. Is that a network you "
        "want to reward?",
        "Which image goes into the network, and which one is the loss's target?",
        "Change one argument of one call; the rest of the colleague's code is right.",
    ),
    forbidden=Forbidden(modules=("companion.autoencoder",), names=("reconstruction_loss", "corrupt"),
                        what="the denoising loss"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_denoising_loss(denoising_loss):
    QUESTION.assert_passes(denoising_loss)
