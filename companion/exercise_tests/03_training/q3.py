"""Exercise 3, question 3: find the bug in a colleague's training step and fix it, ``train_step``.

The notebook shows a colleague's training step that never resets the gradients (a typical bug of
the hand-written loop: ``backward()`` adds to the gradients of the previous steps).

The grader builds a small CNN with batch norm from a random state, puts it in *evaluation* mode,
makes an SGD optimiser with momentum, and calls the learner's ``train_step`` twice; it compares
both losses and the final weights and buffers with the same two steps done right. Each known
mistake is the same two steps done wrong (no ``zero_grad``, no ``model.train()``, ...).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from torch import nn
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def architecture():
    """A tiny CNN for (N, 1, 6, 6) inputs and 4 classes, with batch norm."""
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))


def build_model(state):
    """The CNN with the given weights and buffers (built on the meta device: no random init, no allocation)."""
    with torch.device("meta"):
        model = architecture()
    model.load_state_dict(state, assign=True)
    return model


def random_state(draw):
    """Random weights and biases, fresh batch-norm buffers."""
    with torch.device("meta"):
        template = architecture().state_dict()
    buffers = {"running_mean": torch.zeros, "running_var": torch.ones}
    state = {}
    for key, value in template.items():
        kind = key.rsplit(".", 1)[-1]
        if kind in ("weight", "bias"):
            state[key] = draw.normal(*value.shape, scale=0.5, dtype=torch.float32)
        elif kind in buffers:
            state[key] = buffers[kind](value.shape)
        else:  # num_batches_tracked
            state[key] = torch.zeros((), dtype=value.dtype)
    return state


def two_steps(train_step, state, x1, y1, x2, y2, lr):
    """How the learner's train_step is called: twice, on a model that starts in evaluation mode."""
    model = build_model(state)
    model.eval()  # train_step must switch to training mode itself
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    first = train_step(model, optimizer, x1, y1)
    second = train_step(model, optimizer, x2, y2)
    return {"the loss returned by the first call": first, "the loss returned by the second call": second,
            "the model's state after two calls": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def step_variant(*, zero_grad=True, train=True, update=True, softmax=False, reduction="mean"):
    """A training step, done right with the defaults, or with one thing changed."""

    def train_step(model, optimizer, x, y):
        if train:
            model.train()
        if zero_grad:
            optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.softmax(dim=1) if softmax else logits, y, reduction=reduction)
        loss.backward()
        if update:
            optimizer.step()
        return loss.item()

    return train_step


def cases(draw):
    found = []
    for lr in (0.1, 0.05, 0.2):
        state = random_state(draw)
        x1, x2 = draw.normal(8, 1, 6, 6, dtype=torch.float32), draw.normal(8, 1, 6, 6, dtype=torch.float32)
        y1, y2 = (torch.randint(0, 4, (8,), generator=draw.generator) for _ in range(2))
        found.append(Case((state, x1, y1, x2, y2, lr), f"two batches of 8 images of shape (1, 6, 6), lr={lr}"))
    return found


def variant(**changes):
    return lambda *args: two_steps(step_variant(**changes), *args)


QUESTION = Question(
    name="q3",
    function="train_step",
    points=points,
    reference=lambda *args: two_steps(step_variant(), *args),
    oracle="two reference training steps (zero_grad, cross-entropy, backward, SGD step)",
    cases=cases,
    call=two_steps,
    mistakes=(
        Mistake("this is still the colleague's bug: the gradients are not reset. Call optimizer.zero_grad() "
                "before loss.backward(), or every step adds its gradient to the previous ones.",
                value=variant(zero_grad=False)),
        Mistake("the model is not put in training mode: call model.train() first (the grader hands over a model "
                "in evaluation mode, as after an evaluate()), or batch norm uses its running statistics.",
                value=variant(train=False)),
        Mistake("the weights never change: call loss.backward() and then optimizer.step(), in that order, with "
                "optimizer.zero_grad() before backward (zero_grad between backward and step, or step before "
                "backward, throws the gradients away).", value=variant(update=False)),
        Mistake("softmax is applied before the loss: F.cross_entropy takes the raw logits (it applies "
                "log-softmax itself).", value=variant(softmax=True)),
        Mistake("the loss is summed over the batch: use the mean (F.cross_entropy's default reduction).",
                value=variant(reduction="sum")),
    ),
    hints=(
        "Print the norm of a weight's .grad after each of the colleague's steps: what does backward() do to "
        "a gradient that is already there?",
        "The loss is the cross-entropy of the raw logits (no softmax first), averaged over the batch.",
        "Return a Python number, not a tensor.",
    ),
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_train_step(train_step):
    QUESTION.assert_passes(train_step)
