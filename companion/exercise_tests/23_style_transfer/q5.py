"""Exercise 23, question 5: find the bug in a colleague's optimisation loop, ``stylise``.

Style transfer optimises the *image*, a copy of the content image, with the network fixed
(Gatys et al., 2016, section 3). The colleague's loop gives Adam the network's weights, so the
image never changes. The learner writes ``stylise(content, weight, style_gram, steps, lr)``: a
copy of ``content`` is the only tensor optimised, by ``steps`` Adam steps of ``lr`` on the loss
of the notebook's ``transfer_loss`` (content MSE at a fixed target + 100 x the Gram MSE), the
pixels clamped to [0, 1] after each step; it returns the image. The network is one random 3x3
convolution and a ReLU. The check looks at the returned image, at the content image after the
call, and at the weights after the call. The known mistakes: the colleague's (the weights
optimised), the content image optimised in place, the gradients never zeroed, no clamping.
Calling ``companion.style.transfer`` scores 0.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q5"
points = 3


def features(image, weight):
    return torch.relu(F.conv2d(image, weight, padding=1))


def transfer_loss(image, weight, target, style_gram):
    f = features(image, weight)
    gram = torch.einsum("nchw,ndhw->ncd", f, f) / f[0].numel()
    return F.mse_loss(f, target) + 100 * F.mse_loss(gram, style_gram)


def loop(content, weight, style_gram, steps, lr, *, copy=True, on_weights=False, zero=True, clamp=True):
    """The reference loop, and the known mistakes as changes to it; returns (image, content, weight)."""
    content, weight = content.clone(), weight.clone()
    with torch.no_grad():
        target = features(content, weight)
    image = content.clone() if copy else content
    image.requires_grad_(True)
    if on_weights:
        weight.requires_grad_(True)
    opt = torch.optim.Adam([weight] if on_weights else [image], lr=lr)
    for _ in range(steps):
        if zero:
            opt.zero_grad()
        transfer_loss(image, weight, target, style_gram).backward()
        opt.step()
        if clamp:
            with torch.no_grad():
                image.clamp_(0, 1)
    return image.detach().clone(), content.detach(), weight.detach()


def observe(function, content, weight, style_gram, steps, lr):
    """How the learner's answer is called: (its image, the content image after, the weights after)."""
    image = function(content, weight, style_gram, steps, lr)
    return torch.as_tensor(image).detach().clone(), content.detach(), weight.detach()


def cases(draw):
    found = []
    for side, channels, steps, lr in [(6, 4, 5, 0.1), (8, 3, 8, 0.05), (5, 6, 4, 0.2)]:
        content = torch.rand(1, 3, side, side, generator=draw.generator, dtype=torch.float64)
        weight = draw.normal(channels, 3, 3, 3, scale=0.5)
        style = torch.rand(1, 3, side, side, generator=draw.generator, dtype=torch.float64)
        f = features(style, weight)
        style_gram = torch.einsum("nchw,ndhw->ncd", f, f) / f[0].numel()
        found.append(Case((content, weight, style_gram, steps, lr),
                          f"a ({side} x {side}) content image, {channels} filters, {steps} steps of lr {lr}"))
    return found


QUESTION = Question(
    name="q5",
    function="stylise",
    points=points,
    reference=loop,
    oracle="Adam on a copy of the content image, the network fixed",
    cases=cases,
    call=observe,
    mistakes=(
        Mistake("this is still the colleague's bug: the optimiser holds the network's weights, so the weights "
                "change and the image does not. Give Adam the image, [image], and leave the network fixed.",
                value=lambda *args: loop(*args, on_weights=True)),
        Mistake("the content image itself is optimised: after the call, the caller's content image has changed "
                "too. Optimise a copy, content.clone().", value=lambda *args: loop(*args, copy=False)),
        Mistake("the gradients are never zeroed: backward() adds to .grad, so each step uses the sum of all "
                "gradients so far. Call opt.zero_grad() at every step.",
                value=lambda *args: loop(*args, zero=False)),
        Mistake("the pixels are not clamped to [0, 1] after each step (under torch.no_grad()).",
                value=lambda *args: loop(*args, clamp=False)),
    ),
    hints=(
        "Print the weights and the image before and after the colleague's loop: which one changed?",
        "image = content.clone().requires_grad_(True); the optimiser gets [image] only.",
        "Each step: zero the gradients, compute transfer_loss, backward, step, then clamp the image "
        "in place under torch.no_grad(). Return the image, detached.",
    ),
    forbidden=Forbidden(functions=("companion.style.transfer",), names=("transfer",),
                        what="the optimisation loop"),
)


@test_case(points=points)
def test_stylise(stylise):
    QUESTION.assert_passes(stylise)
