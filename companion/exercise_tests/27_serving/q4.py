"""Exercise 27, question 4: find the bugs in a colleague's prediction code, ``probabilities``.

The server answers the softmax of the model's logits, computed in eval mode: a freshly built model
is in training mode, where batch norm normalises with the statistics of the request's batch
instead of the running statistics learnt in training (and dropout drops units). The colleague
never calls ``model.eval()``, and wraps the network in ``nn.Softmax`` for an export and then applies
the softmax again, which flattens the probabilities towards uniform. The reference is
``torch.softmax(model.eval()(x), dim=1)``; other known mistakes: the logits returned, the softmax
over the batch axis, the log-softmax.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 3


def network() -> nn.Module:
    """A small classifier with batch norm (N, 1, 8, 8) -> (N, 4) logits, as built before loading weights."""
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(12, 4))


def loaded(state: dict) -> nn.Module:
    model = network()
    model.load_state_dict(state)
    return model  # in training mode, as every freshly built module


def run(function, state, x):
    """How the learner's answer is called: on a freshly loaded model (training mode) and a batch."""
    return function(loaded(state), x)


def reference(state, x):
    with torch.no_grad():
        return torch.softmax(loaded(state).eval()(x), dim=1)


def variant(*, train=False, twice=False, how="softmax"):
    def probabilities(state, x):
        model = loaded(state)
        model.train(train)
        with torch.no_grad():
            logits = model(x)
        if how == "logits":
            return logits
        if how == "batch axis":
            return torch.softmax(logits, dim=0)
        if how == "log":
            return torch.log_softmax(logits, dim=1)
        p = torch.softmax(logits, dim=1)
        return torch.softmax(p, dim=1) if twice else p

    return probabilities


def cases(draw):
    found = []
    for n in (5, 8, 3):
        state = {k: (draw.normal(*v.shape, dtype=torch.float32) if v.is_floating_point() else v)
                 for k, v in network().state_dict().items()}
        state["1.running_mean"] = draw.normal(3, scale=2.0, dtype=torch.float32)
        state["1.running_var"] = 0.5 + torch.rand(3, generator=draw.generator) * 4
        state["5.weight"] = state["5.weight"] * 3  # confident logits
        x = draw.normal(n, 1, 8, 8, dtype=torch.float32)
        found.append(Case((state, x), f"a freshly loaded model with batch norm, a batch of {n} images (1, 8, 8)"))
    return found


QUESTION = Question(
    name="q4",
    function="probabilities",
    points=points,
    reference=reference,
    oracle="torch.softmax(model.eval()(x), dim=1)",
    cases=cases,
    call=run,
    mistakes=(
        Mistake("still the colleague's bugs: put the model in eval mode (model.eval()) before predicting, and "
                "apply the softmax once, to the logits.", value=variant(train=True, twice=True)),
        Mistake("the model is still in training mode: batch norm used the statistics of this batch, so an "
                "image's answer depends on the other images of the request; call model.eval() first.",
                value=variant(train=True)),
        Mistake("the softmax is applied twice: the softmax of probabilities is much flatter (every value lies "
                "between 0 and 1, so their exponentials differ by at most a factor e); apply it once, to the "
                "logits.", value=variant(twice=True)),
        Mistake("these are the logits: the API answers probabilities, their softmax over the classes.",
                value=variant(how="logits")),
        Mistake("the softmax runs over the batch axis (dim=0): each image's probabilities sum to 1 over the "
                "classes, dim=1.", value=variant(how="batch axis")),
        Mistake("this is the log-softmax (log-probabilities, what the loss uses): the API answers the "
                "probabilities themselves.", value=variant(how="log")),
    ),
    hints=(
        "Which mode is a freshly built model in, and what does batch norm do in that mode?",
        "The model outputs logits. How many times should the softmax be applied, and over which axis?",
        "Return a tensor (N, number of classes) whose rows sum to 1; no gradients are needed.",
    ),
    rtol=1e-5,
    atol=1e-6,
)


@test_case(points=points)
def test_probabilities(probabilities):
    QUESTION.assert_passes(probabilities)
