"""Exercise 12, question 2: a fine-tuning step that keeps the backbone's batch norms in inference mode, ``fine_tune_step``.

The grader builds a small pretrained-looking network from a random state (a backbone of two
conv-batch norm-ReLU stages with random running statistics, the first stage frozen, and a head with
dropout), puts it in *evaluation* mode, makes an SGD optimiser with momentum over the trainable
parameters, and calls the learner's ``fine_tune_step`` twice, seeding torch's generator before each
call so that the head's dropout draws the same masks. It compares both losses and the final
weights and buffers (running statistics included) with the same two steps done right: the head in
training mode, the backbone's batch norms in inference mode, as ``companion.transfer.TransferClassifier``
does (and Keras, for batch norm layers left frozen). Each known mistake is the two
steps done with one thing changed, the first of them the typical bug of fine-tuning, batch norm
left in training mode by ``model.train()``. An otter-grader exception-based test file that also
defines ``QUESTION`` for ``companion.grade``.
"""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Forbidden, Mistake, Question


def architecture():
    """A backbone (two conv-BN-ReLU stages) and a head with dropout, for (N, 1, 6, 6) inputs and 3 classes.

    An ``nn.Sequential`` with named halves (``model.backbone``, ``model.head``): torch's own classes only,
    so that nothing of the checks' folder runs inside the learner's step.
    """
    backbone = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.Conv2d(4, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 4 * 4, 3))
    return nn.Sequential(OrderedDict([("backbone", backbone), ("head", head)]))


OK_FORMAT = False
name = "q2"
points = 3

TRAINABLE = ("backbone.3.", "backbone.4.", "head.")  # the top stage and the head; the first stage is frozen


def build_model(state):
    """The network with the given weights and buffers, first stage frozen (built on meta: no allocation)."""
    with torch.device("meta"):
        model = architecture()
    model.load_state_dict(state, assign=True)
    for key, p in model.named_parameters():
        p.requires_grad_(key.startswith(TRAINABLE))
    return model


def random_state(draw):
    """Random weights, and running statistics as a pretraining would have left them."""
    with torch.device("meta"):
        template = architecture().state_dict()
    state = {}
    for key, value in template.items():
        kind = key.rsplit(".", 1)[-1]
        if kind == "num_batches_tracked":
            state[key] = torch.tensor(100, dtype=torch.long)
        elif kind == "running_var":
            state[key] = 0.5 + draw.normal(*value.shape, dtype=torch.float32).abs()
        elif kind == "weight" and "backbone" in key and value.dim() == 1:  # batch norm gamma
            state[key] = 1 + 0.2 * draw.normal(*value.shape, dtype=torch.float32)
        else:
            state[key] = draw.normal(*value.shape, scale=0.5, dtype=torch.float32)
    return state


def two_steps(fine_tune_step, state, x1, y1, x2, y2, lr):
    """How the learner's step is called: twice, on a model handed over in evaluation mode."""
    model = build_model(state)
    model.eval()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    losses = []
    for x, y in ((x1, y1), (x2, y2)):
        torch.manual_seed(1234)  # the same dropout masks for every answer
        losses.append(fine_tune_step(model, optimizer, x, y))
    return {"the loss returned by the first call": losses[0], "the loss returned by the second call": losses[1],
            "the model's state after two calls (weights and running statistics)":
                {k: v.detach().clone() for k, v in model.state_dict().items()}}


def step_variant(*, bn_train=False, head_train=True, zero_grad=True):
    """A fine-tuning step, right with the defaults, or with one thing changed."""

    def fine_tune_step(model, optimizer, x, y):
        model.train(head_train)
        if not bn_train:
            for m in model.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        if zero_grad:
            optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return fine_tune_step


def cases(draw):
    found = []
    for lr in (0.1, 0.05, 0.2):
        state = random_state(draw)
        # target images: another mean and spread than the statistics the backbone was pretrained on
        x1, x2 = (1.5 + 2 * draw.normal(6, 1, 6, 6, dtype=torch.float32) for _ in range(2))
        y1, y2 = (torch.randint(0, 3, (6,), generator=draw.generator) for _ in range(2))
        found.append(Case((state, x1, y1, x2, y2, lr), f"two batches of 6 images of shape (1, 6, 6), lr={lr}"))
    return found


def variant(**changes):
    return lambda *args: two_steps(step_variant(**changes), *args)


QUESTION = Question(
    name="q2",
    function="fine_tune_step",
    points=points,
    reference=lambda *args: two_steps(step_variant(), *args),
    oracle="two reference fine-tuning steps (head in training mode, the backbone's batch norms in inference mode)",
    cases=cases,
    call=two_steps,
    mistakes=(
        Mistake("the backbone's batch norms are in training mode: model.train() switches them to the statistics "
                "of the batch, and every forward pass overwrites the running statistics of the pretraining. After "
                "model.train(), put every nn.BatchNorm2d inside model.backbone back in eval mode (m.eval()).",
                value=variant(bn_train=True)),
        Mistake("the head is not in training mode, so its dropout is off: call model.train() first (the grader "
                "hands over a model in evaluation mode), then put only the backbone's batch norms in eval mode.",
                value=variant(head_train=False)),
        Mistake("the gradients are not reset: call optimizer.zero_grad() before loss.backward(), or every step "
                "adds its gradient to the previous ones.", value=variant(zero_grad=False)),
    ),
    hints=(
        "The buggy step is right about everything except one mode. Which layers does model.train() change, "
        "and which of them behave differently in training and in evaluation mode?",
        "model.backbone.modules() walks every layer of the backbone; isinstance(m, nn.BatchNorm2d) finds the "
        "batch norms. The order matters: model.train() first, then the batch norms.",
        "Compare the running_mean of the first batch norm before and after your step: it must not change.",
    ),
    forbidden=Forbidden(
        modules=("companion.transfer",),
        names=("batchnorm_eval", "TransferClassifier"),
        what="the mode switching",
    ),
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_fine_tune_step(fine_tune_step):
    QUESTION.assert_passes(fine_tune_step)
