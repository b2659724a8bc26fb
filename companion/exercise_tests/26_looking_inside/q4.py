"""Exercise 26, question 4: find the bugs in a colleague's feature hook, ``layer_output``.

``layer_output(model, layer, x)`` runs ``model(x)`` and returns what ``layer`` output during that
pass, leaving no hook behind. The colleague's hook keeps a *reference* to the output, which the
in-place ReLU after the layer then overwrites, and never removes the hook, so each call adds one.
The reference is ``companion.interpret.feature_maps`` (a copy of the output, the hook removed).
Other known mistakes: the layer's input instead of its output, and the model's output.

The grader builds a small CNN in evaluation mode from random weights, whose batch norm
(``model[1]``) is followed by ``nn.ReLU(inplace=True)``, and asks for the batch norm's output.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Forbidden, Mistake, Question
from companion.interpret import feature_maps

OK_FORMAT = False
name = "q4"
points = 3

HOOKS = "forward hooks left on the layer after the call"


def architecture():
    """A small CNN for (N, 1, 6, 6) inputs; model[1] is a batch norm followed by an in-place ReLU."""
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(inplace=True),
                         nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def build_model(state):
    with torch.device("meta"):
        model = architecture()
    model.load_state_dict(state, assign=True)
    return model.double().eval()


def random_state(draw):
    with torch.device("meta"):
        template = architecture().state_dict()
    state = {}
    for key, value in template.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=value.dtype)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=draw.generator, dtype=torch.float64)
        else:
            state[key] = draw.normal(*value.shape, scale=0.7)
    return state


def record(function, state, x):
    """How the learner's layer_output is called: on a fresh model, for its batch norm, without gradients."""
    model = build_model(state)
    layer = model[1]
    with torch.no_grad():
        found = function(model, layer, x)
    return {"the returned output": found, HOOKS: len(layer._forward_hooks)}


def reference(state, x):
    return record(lambda model, layer, x: feature_maps(model, {"bn": layer}, x)["bn"], state, x)


def variant(*, copy=True, remove=True, what="output"):
    def colleague(model, layer, x):
        kept = []

        def hook(module, inputs, output):
            value = {"output": output, "input": inputs[0]}.get(what, output)
            kept.append(value.clone() if copy else value)

        handle = layer.register_forward_hook(hook)
        scores = model(x)
        if remove:
            handle.remove()
        return scores if what == "model" else kept[0]

    return lambda state, x: record(colleague, state, x)


def cases(draw):
    found = []
    for n in (2, 3):
        x = draw.normal(n, 1, 6, 6)
        found.append(Case((random_state(draw), x), f"{n} images (1, 6, 6), layer model[1] (batch norm)"))
    return found


QUESTION = Question(
    name="q4",
    function="layer_output",
    points=points,
    reference=reference,
    oracle="companion.interpret.feature_maps (a copy of the output, the hook removed)",
    cases=cases,
    call=record,
    mistakes=(
        Mistake("still the colleague's bugs: the hook keeps a reference to the output, which the in-place "
                "ReLU after the layer overwrites (keep output.clone()), and the hook is never removed (call "
                "handle.remove(), in a finally block).", value=variant(copy=False, remove=False)),
        Mistake("the hook keeps a reference to the output: the ReLU(inplace=True) after the batch norm "
                "overwrites that very tensor, so its negative values are gone. Keep output.clone() (or "
                "output.detach().clone()).", value=variant(copy=False)),
        Mistake("the hook is still registered after the call: keep the handle that register_forward_hook "
                "returns and call handle.remove() (in a finally block), or every call adds one more hook.",
                value=variant(remove=False)),
        Mistake("this is the layer's input (inputs[0], the convolution's output), not its output: the hook's "
                "third argument is the output.", value=variant(what="input")),
        Mistake("this is the model's output (the scores), not the layer's: return what the hook recorded.",
                value=variant(what="model")),
    ),
    hints=(
        "layer.register_forward_hook(fn) calls fn(module, inputs, output) after the layer runs, and returns "
        "a handle.",
        "Which layer comes right after model[1]? What does inplace=True do to the tensor your hook saw?",
        "handle.remove() takes the hook off again; try/finally makes sure it happens.",
    ),
    forbidden=Forbidden(modules=("companion.interpret",), names=("record_outputs", "feature_maps"),
                        what="the hook"),
    rtol=1e-9,
    atol=1e-12,
)


@test_case(points=points)
def test_layer_output(layer_output):
    QUESTION.assert_passes(layer_output)
