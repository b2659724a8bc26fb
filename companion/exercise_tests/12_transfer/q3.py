"""Exercise 12, question 3: re-estimating batch norm's statistics on target images, ``adapt_batchnorm``.

AdaBN (Li et al., *Adaptive Batch Normalization for Practical Domain Adaptation*, 2018,
https://arxiv.org/abs/1603.04779): every batch norm's running mean and variance are replaced by
the statistics of its input over the target images, seen in one batch, as a training-mode forward
pass measures them (each layer's input normalised with the batch statistics of the layers before
it); the weights do not change and the model is returned in evaluation mode with its momenta as
they were. The reference is ``companion.transfer.recompute_batchnorm_stats`` with one batch, whose
tests compare it with the mean and unbiased variance torch computes. The grader builds a small
network with random weights and "pretrained" running statistics and calls the learner's
``adapt_batchnorm(model, images)``; the model's state, mode and batch-norm momenta come back. An
otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Forbidden, Mistake, Question
from companion.transfer import recompute_batchnorm_stats

OK_FORMAT = False
name = "q3"
points = 3


def architecture(c1, c2):
    return nn.Sequential(nn.Conv2d(1, c1, 3, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
                         nn.Conv2d(c1, c2, 3, bias=False), nn.BatchNorm2d(c2), nn.ReLU())


def build_model(state, c1, c2, momentum):
    with torch.device("meta"):
        model = architecture(c1, c2)
    model.load_state_dict(state, assign=True)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum
    return model.eval()


def outcome(model):
    """What comes back: the weights and running statistics, the mode, the momenta."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    return {"the model's weights and running statistics": state, "a layer left in training mode": any(m.training for m in model.modules()),
            "the batch norms' momentum": [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)]}


def call(adapt_batchnorm, state, images, c1, c2, momentum):
    model = build_model(state, c1, c2, momentum)
    returned = adapt_batchnorm(model, images)
    if returned is not model:
        raise TypeError("adapt_batchnorm must return the model it was given (changed in place)")
    return outcome(model)


def reference(state, images, c1, c2, momentum):
    model = build_model(state, c1, c2, momentum)
    return outcome(recompute_batchnorm_stats(model, images, batch_size=len(images)))


def random_state(draw, c1, c2):
    with torch.device("meta"):
        template = architecture(c1, c2).state_dict()
    state = {}
    for key, value in template.items():
        kind = key.rsplit(".", 1)[-1]
        if kind == "num_batches_tracked":
            state[key] = torch.tensor(100, dtype=torch.long)
        elif kind == "running_var":
            state[key] = 0.5 + draw.normal(*value.shape, dtype=torch.float32).abs()
        else:
            state[key] = draw.normal(*value.shape, scale=0.5, dtype=torch.float32)
    return state


def adapted(state, images, c1, c2, momentum, *, reset=True, unbiased=True, eval_inputs=False, leave_training=False,
            keep_momentum=True):
    """The re-estimation written out with F.batch_norm, right with the defaults, or with one thing changed."""
    model = build_model(state, c1, c2, momentum)
    x = images
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.BatchNorm2d):
                mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=unbiased)
                weight = 1.0 if reset else momentum  # without a reset: one exponential-average step
                new_mean = (1 - weight) * layer.running_mean + weight * mean
                new_var = (1 - weight) * layer.running_var + weight * var
                if eval_inputs:  # the next layers see x normalised with the old statistics
                    x = F.batch_norm(x, layer.running_mean, layer.running_var, layer.weight, layer.bias)
                else:
                    x = F.batch_norm(x, None, None, layer.weight, layer.bias, training=True)
                layer.running_mean.copy_(new_mean)
                layer.running_var.copy_(new_var)
                if not keep_momentum:
                    layer.momentum = None
            else:
                x = layer(x)
    model.train(leave_training)
    return outcome(model)


def variant(**changes):
    return lambda *args: adapted(*args, **changes)


def cases(draw):
    found = []
    for _ in range(4):
        c1, c2 = draw.int(2, 5), draw.int(2, 5)
        n, size = draw.int(4, 10), draw.int(6, 9)
        momentum = draw.choice((0.1, 0.05, 0.2))
        images = draw.uniform(-1, 2) + draw.uniform(0.5, 3) * draw.normal(n, 1, size, size, dtype=torch.float32)
        found.append(Case((random_state(draw, c1, c2), images, c1, c2, momentum),
                          f"channels ({c1}, {c2}), {n} images of shape (1, {size}, {size}), momentum={momentum}"))
    return found


QUESTION = Question(
    name="q3",
    function="adapt_batchnorm",
    points=points,
    reference=reference,
    oracle="companion.transfer.recompute_batchnorm_stats (one batch of all the images)",
    cases=cases,
    call=call,
    mistakes=(
        Mistake("the statistics keep most of the pretraining's: a forward pass in training mode with the layer's "
                "momentum m only moves each running statistic a fraction m of the way. Reset them first "
                "(m.reset_running_stats()) and set m.momentum = None (a cumulative average), or use momentum 1 "
                "for a single batch.", value=variant(reset=False)),
        Mistake("running_var is the biased variance: batch norm stores the unbiased variance of its input "
                "(divided by n - 1, n = N * H * W) in its running statistics.", value=variant(unbiased=False)),
        Mistake("the later batch norms were measured on inputs normalised with the old statistics: in the pass, "
                "every batch norm must normalise with the batch's statistics (training mode), as a training "
                "step would.", value=variant(eval_inputs=True)),
        Mistake("the model is left in training mode: return it in evaluation mode, so that it uses the new "
                "statistics and does not change them again.", value=variant(leave_training=True)),
        Mistake("the batch norms' momentum is not restored: after the pass, put back each layer's momentum, "
                "so that later training updates the statistics as before.", value=variant(keep_momentum=False)),
    ),
    hints=(
        "A batch norm in training mode updates running = (1 - momentum) * running + momentum * batch statistic. "
        "Which momentum makes one pass over one batch replace the old statistics entirely?",
        "Only the batch norms need training mode for the pass; run it under torch.no_grad(), and think about what "
        "state each layer must be in when you return.",
        "Check your answer: after adapt_batchnorm, the first batch norm's running_mean must equal "
        "model[0](images).mean(dim=(0, 2, 3)).",
    ),
    forbidden=Forbidden(
        modules=("companion.transfer",),
        names=("recompute_batchnorm_stats",),
        what="the re-estimation",
    ),
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_adapt_batchnorm(adapt_batchnorm):
    QUESTION.assert_passes(adapt_batchnorm)
