"""Exercise 26, question 3: find the bugs in a colleague's Grad-CAM, ``grad_cam``.

Selvaraju et al. (2017), https://arxiv.org/abs/1610.02391: ``alpha_k = mean_ij dy_c / dA^k_ij`` per
input, with ``y_c`` the class *score* (the logit), and the map ``ReLU(sum_k alpha_k A^k)``. The
reference is ``companion.interpret.grad_cam`` (equal to captum's ``LayerGradCam`` with
``relu_attributions=True``, tested). The colleague differentiates the softmax probability and
leaves out the ReLU; the other known mistakes are the weights averaged over the wrong axes (the
channels, or the batch as well), summed instead of averaged, and the log-probability.

The grader builds a small CNN in evaluation mode from random weights and calls
``grad_cam(model, layer, x, target)`` with ``layer`` its second ReLU (not in place) and one target
class per image.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Forbidden, Mistake, Question
from companion.interpret import grad_cam

OK_FORMAT = False
name = "q3"
points = 4


def architecture():
    """A small CNN for (N, 2, 6, 6) inputs and 4 classes; model[4] is the explained layer."""
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                         nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(5 * 3 * 3, 4))


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


def explain(function, state, x, target):
    """How the learner's grad_cam is called: on a fresh model, at its second ReLU."""
    model = build_model(state)
    return function(model, model[4], x, target)


def variant(*, relu=True, softmax=False, log_softmax=False, axes=(2, 3), summed=False):
    def colleague(model, layer, x, target):
        kept = []
        handle = layer.register_forward_hook(lambda m, i, out: kept.append(out))
        try:
            scores = model(x)
        finally:
            handle.remove()
        if softmax:
            scores = scores.softmax(dim=1)
        elif log_softmax:
            scores = scores.log_softmax(dim=1)
        chosen = scores.gather(1, target[:, None]).sum()
        maps = kept[0]
        (grads,) = torch.autograd.grad(chosen, maps)
        alpha = grads.sum(dim=axes, keepdim=True) if summed else grads.mean(dim=axes, keepdim=True)
        heat = (alpha * maps).sum(dim=1)
        return (heat.relu() if relu else heat).detach()

    return lambda state, x, target: explain(colleague, state, x, target)


def cases(draw):
    found = []
    for n in (3, 5, 4):
        x = draw.normal(n, 2, 6, 6)
        target = torch.randint(0, 4, (n,), generator=draw.generator)
        found.append(Case((random_state(draw), x, target),
                          f"{n} images (2, 6, 6), targets {target.tolist()}, layer model[4]: (N, 5, 6, 6)"))
    return found


QUESTION = Question(
    name="q3",
    function="grad_cam",
    points=points,
    reference=lambda state, x, target: explain(grad_cam, state, x, target),
    oracle="companion.interpret.grad_cam (== captum's LayerGradCam, relu_attributions=True)",
    cases=cases,
    call=explain,
    mistakes=(
        Mistake("still the colleague's bugs: differentiate the class *score* (the logit), not the softmax "
                "probability, and end with a ReLU, which keeps only the positions that push the score up.",
                value=variant(softmax=True, relu=False)),
        Mistake("the ReLU is missing: Grad-CAM keeps only the positions whose features raise the score, "
                "ReLU(sum_k alpha_k A^k); without it, evidence for other classes shows as negative values.",
                value=variant(relu=False)),
        Mistake("the gradient is taken of the softmax probability: Grad-CAM uses the score y_c before the "
                "softmax. The probability's gradient mixes in every other class's score, and vanishes where "
                "the network is sure.", value=variant(softmax=True)),
        Mistake("the gradient is taken of the log-probability (log-softmax): Grad-CAM uses the score y_c "
                "before any softmax.", value=variant(log_softmax=True)),
        Mistake("the gradients are averaged over the channels: alpha_k is the mean of channel k's gradient "
                "over its *positions*, the last two axes (dim=(2, 3)), one weight per image and channel.",
                value=variant(axes=(1,))),
        Mistake("the gradients are averaged over the batch as well: each image has its own weights alpha_k; "
                "average over the positions only, dim=(2, 3).", value=variant(axes=(0, 2, 3))),
        Mistake("the gradients are summed over the positions: Grad-CAM averages them (the map is h w times "
                "too large).", value=variant(summed=True)),
    ),
    hints=(
        "Record the layer's output with a forward hook, run the model, and pick each image's target score "
        "with scores.gather(1, target[:, None]).",
        "torch.autograd.grad(score.sum(), maps) gives dy / dA for every image at once (the images do not "
        "interact in evaluation mode).",
        "Compare the colleague's cell with the formula: what is differentiated, and what is applied last?",
    ),
    forbidden=Forbidden(modules=("companion.interpret", "captum"), names=("LayerGradCam", "GradCam"),
                        what="Grad-CAM"),
    rtol=1e-7,
    atol=1e-10,
)


@test_case(points=points)
def test_grad_cam(grad_cam):
    QUESTION.assert_passes(grad_cam)
