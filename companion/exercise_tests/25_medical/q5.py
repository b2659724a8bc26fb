"""Exercise 25, question 5: find the bugs in a colleague's gradient accumulation, ``accumulated_step``.

One optimiser step on a batch split into ``k`` micro-batches: ``optimizer.zero_grad()`` once,
then for each micro-batch ``(F.cross_entropy(model(x), y) / k).backward()`` (``backward`` adds to
``.grad``), then ``optimizer.step()`` once; return the batch's mean loss, the sum of the divided
losses. For a network without batch norm this is exactly the step on the whole batch. The
colleague reset the gradients at every micro-batch and did not divide the loss by ``k``.

The grader builds a small CNN without batch norm from a random state, makes an SGD optimiser with
momentum, and calls the learner's ``accumulated_step`` twice; it compares both returned losses and
the final weights with the same two steps done on the whole batches (the reference,
``companion.medical.accumulate_gradients`` between ``zero_grad`` and ``step``, tested equal to
the whole batch). Each known mistake is the same two calls done wrong.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q5"
points = 4


def architecture():
    """A tiny CNN for (N, 1, 6, 6) inputs and 2 classes, without batch norm."""
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))


def build_model(state):
    with torch.device("meta"):
        model = architecture()
    model.load_state_dict(state, assign=True)
    return model


def random_state(draw):
    with torch.device("meta"):
        template = architecture().state_dict()
    return {key: draw.normal(*value.shape, scale=0.5, dtype=torch.float64) for key, value in template.items()}


def two_calls(accumulated_step, state, x1, y1, x2, y2, k, lr):
    """How the learner's accumulated_step is called: twice, one batch each."""
    model = build_model(state)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    first = accumulated_step(model, optimizer, x1, y1, k)
    second = accumulated_step(model, optimizer, x2, y2, k)
    return {"the loss returned by the first call": first, "the loss returned by the second call": second,
            "the model's weights after two calls": {n: p.detach().clone() for n, p in model.state_dict().items()}}


def step_variant(*, reset_each=False, divide=True, step_each=False, reset=True, last_loss=False):
    """An accumulation step, done right with the defaults, or with one thing changed."""

    def accumulated_step(model, optimizer, images, labels, k):
        if reset and not reset_each:
            optimizer.zero_grad()
        total = 0.0
        for x, y in zip(images.chunk(k), labels.chunk(k)):
            if reset_each:
                optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            if divide:
                loss = loss / k
            loss.backward()
            if step_each:
                optimizer.step()
            total = loss.item() if last_loss else total + loss.item()
        if not step_each:
            optimizer.step()
        return total

    return accumulated_step


def variant(**changes):
    return lambda *args: two_calls(step_variant(**changes), *args)


def whole_batch(accumulated_step_unused, state, x1, y1, x2, y2, k, lr):
    """The reference: two plain steps on the whole batches (what accumulation must equal)."""

    def plain(model, optimizer, images, labels, k):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return two_calls(plain, state, x1, y1, x2, y2, k, lr)


def cases(draw):
    found = []
    for k, batch, lr in [(4, 8, 0.1), (2, 6, 0.05), (3, 12, 0.2)]:
        state = random_state(draw)
        x1, x2 = draw.normal(batch, 1, 6, 6), draw.normal(batch, 1, 6, 6)
        y1, y2 = (torch.randint(0, 2, (batch,), generator=draw.generator) for _ in range(2))
        found.append(Case((state, x1, y1, x2, y2, k, lr),
                          f"two batches of {batch} images (1, 6, 6), k = {k} micro-batches, lr = {lr}"))
    return found


QUESTION = Question(
    name="q5",
    function="accumulated_step",
    points=points,
    reference=lambda *args: whole_batch(None, *args),
    oracle="two optimiser steps on the whole batches (accumulation equals them without batch norm)",
    cases=cases,
    call=two_calls,
    mistakes=(
        Mistake("still the colleague's bugs: the gradients are reset at every micro-batch, so only the last "
                "one's survives, and the loss is not divided by k. Call optimizer.zero_grad() once, before the "
                "loop, and back-propagate loss / k for each micro-batch.",
                value=variant(reset_each=True, divide=False)),
        Mistake("the gradients are reset at every micro-batch: only the last micro-batch's gradient reaches "
                "the step. Call optimizer.zero_grad() once, before the loop; backward() adds the rest.",
                value=variant(reset_each=True)),
        Mistake("the loss is not divided by k: the accumulated gradient is the *sum* of k micro-batch means, "
                "k times the whole batch's mean gradient (and the returned loss k times too).",
                value=variant(divide=False)),
        Mistake("the optimiser steps after every micro-batch: that is k small steps, not one step on the "
                "accumulated gradient. Call optimizer.step() once, after the loop.", value=variant(step_each=True)),
        Mistake("the gradients are never reset: the second call adds to the first call's gradients. Call "
                "optimizer.zero_grad() once at the start of each call.", value=variant(reset=False)),
        Mistake("the returned loss is the last micro-batch's only: return the sum of the divided losses, the "
                "whole batch's mean.", value=variant(last_loss=True)),
    ),
    hints=(
        "backward() adds to .grad: what does optimizer.zero_grad() inside the loop throw away?",
        "Each micro-batch's loss is a mean over B / k examples; the whole batch's is the mean of k such means.",
        "Return a Python float (use .item()).",
    ),
    forbidden=Forbidden(modules=("companion.medical",), names=("accumulate_gradients",),
                        what="the accumulation"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_accumulated_step(accumulated_step):
    QUESTION.assert_passes(accumulated_step)
