"""Exercise 17, question 2: find the bug in a colleague's Dice score computed on logits, ``dice_from_logits``.

The colleague's function puts a network's logits straight into Dice's formula
``2|A and B| / (|A| + |B|)`` (Dice, 1945), which needs binary masks: negative logits subtract, and
the result can leave [0, 1]. The learner writes ``dice_from_logits(logits, target)``: the Dice
score of the masks ``logits > 0`` (probability above 0.5) and ``target``, one per image, 1.0 where
both masks are empty. The reference is ``companion.metrics.dice_score(logits > 0, target)``. The
known mistakes are the colleague's formula on logits, a soft Dice on sigmoid probabilities,
logits thresholded at 0.5 (a probability threshold applied to logits), one score for the whole
batch, and 0 where both masks are empty.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question
from companion.metrics import dice_score

OK_FORMAT = False
name = "q2"
points = 3


def reference(logits, target):
    return dice_score(logits > 0, target)


def formula(pred, target, *, empty=1.0):
    """Dice written out for float masks, per image; ``empty`` where both sums are 0."""
    pred, target = pred.double().flatten(1), target.double().flatten(1)  # (N, H*W)
    inter, total = (pred * target).sum(1), pred.sum(1) + target.sum(1)
    return torch.where(total != 0, 2 * inter / torch.where(total != 0, total, 1.0),
                       torch.full_like(total, empty)).float()


def colleague(logits, target):
    """The colleague's function, as the notebook shows it."""
    target = target.float()
    intersection = (logits * target).sum(dim=(1, 2))
    return 2 * intersection / (logits.sum(dim=(1, 2)) + target.sum(dim=(1, 2)))


def soft(logits, target):
    return formula(logits.sigmoid(), target)


def at_half(logits, target):
    return dice_score(logits > 0.5, target)


def empty_zero(logits, target):
    pred = logits > 0
    both_empty = ~pred.flatten(1).any(1) & ~target.flatten(1).any(1)
    if not both_empty.any():
        return None
    return torch.where(both_empty, 0.0, dice_score(pred, target))


def batch_score(got, expected, args):
    return isinstance(got, torch.Tensor) and got.numel() == 1 and expected.numel() > 1


def cases(draw):
    found = []
    for n, h, w in [(4, 8, 8), (3, 12, 10), (5, 6, 9)]:
        target = torch.rand(n, h, w, generator=draw.generator) < 0.35
        noise = torch.randn(n, h, w, generator=draw.generator)
        # good but imperfect logits, with many between 0 and 0.5 (so that thresholds 0 and 0.5 differ)
        logits = 3 * (target.float() - 0.5) + 1.5 * noise
        logits[0, 0, :3] = torch.tensor([0.1, 0.3, 0.45])
        found.append(Case((logits, target), f"logits and target of shape ({n}, {h}, {w})"))
    target = torch.zeros(3, 6, 6, dtype=torch.bool)
    target[0, 1:4, 1:4] = True
    logits = -1 - torch.rand(3, 6, 6, generator=draw.generator)  # all background
    logits[0, 1:4, 1:5] = 0.2 + torch.rand(3, 4, generator=draw.generator)
    found.append(Case((logits, target), "3 images of 6x6, two of them empty in both masks"))
    return found


QUESTION = Question(
    name="q2",
    function="dice_from_logits",
    points=points,
    reference=reference,
    oracle="companion.metrics.dice_score(logits > 0, target)",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's bug: the logits go into the formula as they are. Dice compares "
                "binary masks: threshold the logits first (logits > 0) and count pixels.", value=colleague),
        Mistake("this is a soft Dice on sigmoid probabilities (a training loss, not the score): the mask is where "
                "the probability is above 0.5, i.e. logits > 0, and each pixel counts 0 or 1.", value=soft),
        Mistake("the logits are thresholded at 0.5, a threshold for probabilities: a probability of 0.5 is a "
                "logit of 0, so the mask is logits > 0.", value=at_half),
        Mistake("where both masks are empty the answer is 0 (or 0/0): nothing to find and nothing found is a "
                "perfect answer, 1.0.", value=empty_zero),
        Mistake("the answer is one number for the whole batch; return one score per image, a tensor of shape "
                "(N,): sum over the height and the width only.", matches=batch_score),
    ),
    hints=(
        "Run the colleague's function on logits that are very negative on the background: what happens to the "
        "sums? Can the result be negative?",
        "A logit of 0 is a probability of 0.5: the predicted mask is logits > 0. Then count pixels per image with "
        ".sum(dim=(1, 2)).",
        "Two empty masks agree perfectly: use torch.where to return 1.0 there instead of 0 / 0.",
    ),
    forbidden=Forbidden(modules=("companion.metrics", "torchmetrics", "sklearn.metrics"),
                        names=("dice_score", "iou_score", "binary_f1_score", "f1_score", "dice"),
                        what="the Dice score"),
    rtol=1e-5,
    atol=1e-6,
)


@test_case(points=points)
def test_dice_from_logits(dice_from_logits):
    QUESTION.assert_passes(dice_from_logits)
