"""Exercise 7, question 5: predict, then measure, which parameters of a zero-initialised block learn first.

The learner writes down one number before running anything: a basic block with an identity
shortcut whose last batch norm has gamma = 0 (the zero-init of Goyal et al., 2017, section 5.1,
https://arxiv.org/abs/1706.02677, torchvision's ``zero_init_residual=True``) computes relu(x) at the
start; how many of its 6 parameter tensors (conv1.weight, bn1.weight, bn1.bias, conv2.weight,
bn2.weight, bn2.bias) get a non-zero gradient in the first backward pass? Only the last batch
norm's two: everything before it reaches the output through gamma = 0. The reference measures it
with autograd on torchvision's ``BasicBlock``; the common wrong predictions are known mistakes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torchvision.models.resnet import BasicBlock

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q5"
points = 2


def measured(seed):
    """How many parameter tensors of a zero-initialised basic block get a non-zero gradient."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        block = BasicBlock(8, 8).train()
    torch.nn.init.zeros_(block.bn2.weight)  # the zero-init
    x = torch.randn(4, 8, 6, 6, generator=generator)
    loss = (block(x) * torch.randn(4, 8, 6, 6, generator=generator)).sum()
    loss.backward()
    return sum(int(p.grad is not None and p.grad.abs().max().item() > 0) for p in block.parameters())


def cases(draw):
    return [Case((draw.int(0, 2**30),), "torchvision's BasicBlock(8, 8) with bn2.weight = 0, training mode, "
                                        "one backward pass on random inputs")]


def predict(function, *args):
    """How the learner's answer is called: it takes no arguments; the seed is the grader's."""
    return function()


def equals(value):
    return lambda got, expected, args: isinstance(got, (int, float)) and got == value


QUESTION = Question(
    name="q5",
    function="predicted_nonzero_gradients",
    points=points,
    reference=measured,
    oracle="the number of parameter tensors with a non-zero .grad after one backward pass, measured",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("6 would mean every tensor learns from the first step. But the branch reaches the output only "
                "through bn2's gamma, which is 0: whatever conv1, bn1 and conv2 do, the output does not change, "
                "so their gradient is exactly 0.", matches=equals(6)),
        Mistake("0 would mean the block never starts learning. The output is relu(x + gamma * x_hat + beta): "
                "it depends on gamma and beta themselves, so they get a gradient.", matches=equals(0)),
        Mistake("1 forgets one of the last batch norm's two parameters: both gamma (multiplying the normalised "
                "conv2 output, which is not 0) and beta (added to the output) get a gradient.",
                matches=equals(1)),
        Mistake("conv2's weight does not learn yet: its output is multiplied by gamma = 0 before it reaches the "
                "addition, so changing it changes nothing.", matches=equals(3)),
    ),
    hints=(
        "Write the block's output with bn2 spelled out: relu(x + gamma * x_hat + beta), where x_hat is the "
        "normalised output of conv2.",
        "A parameter gets a gradient only if a small change to it changes the loss. With gamma = 0, does a small "
        "change to conv1 or conv2 change the output?",
        "Return one Python int, between 0 and 6.",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_nonzero_gradients(predicted_nonzero_gradients):
    QUESTION.assert_passes(predicted_nonzero_gradients)
