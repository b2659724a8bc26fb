"""Exercise 10, question 2: find the bug in a colleague's channel rounding and fix it, ``make_divisible``.

The notebook shows a colleague's rounding that goes to the nearest multiple of the divisor and
stops there: the "never more than 10% down" correction is missing, so thin layers lose up to half
their channels (32 * 0.35 = 11.2 becomes 8, not 16), the chapter's typical bug.

The reference is torchvision's own ``torchvision.models._utils._make_divisible`` (taken, as its
docstring says, from the MobileNet authors' TensorFlow code), which rounds every width of
MobileNet v2 (and v3, EfficientNet, ...) under a width multiplier. Each known mistake is a rounding
rule that differs from it: no "never more than 10% down" correction, rounding down, rounding up.
Sandler et al., *MobileNetV2* (2018), https://arxiv.org/abs/1801.04381.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import math

from otter.test_files import test_case
from torchvision.models._utils import _make_divisible

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2


def torchvision_make_divisible(value, divisor=8):
    return _make_divisible(value, divisor)


def nearest_only(value, divisor=8):
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def corrected(rounded, value, divisor):
    return rounded + divisor if rounded < 0.9 * value else rounded


def rounded_down(value, divisor=8):
    return corrected(max(divisor, int(value) // divisor * divisor), value, divisor)


def rounded_up(value, divisor=8):
    return max(divisor, math.ceil(value / divisor) * divisor)


# Widths of MobileNet v2 times a width multiplier, with divisor 8 (and some with 4 or 16); the
# first ones are chosen so that every mistake shows: 32 * 0.35 = 11.2 (the nearest multiple, 8, is
# more than 10% down), 34 (nearest 32, next 40), 76 (nearest 80, floor 72), 3 (at least the divisor).
FIXED = [(11.2, 8), (34.0, 8), (76.0, 8), (20.0, 16), (3.0, 8), (1280 * 1.4, 8), (24 * 0.5, 8), (62.0, 4)]
WIDTHS = (16, 24, 32, 64, 96, 160, 320)
ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def cases(draw):
    found = [Case((v, d), f"value={v}, divisor={d}") for v, d in FIXED]
    for _ in range(6):
        v, d = round(draw.choice(WIDTHS) * draw.choice(ALPHAS), 4), draw.choice([8, 8, 4, 16])
        found.append(Case((v, d), f"value={v}, divisor={d}"))
    return found


QUESTION = Question(
    name="q2",
    function="make_divisible",
    points=points,
    reference=torchvision_make_divisible,
    oracle="torchvision.models._utils._make_divisible",
    cases=cases,
    mistakes=(
        Mistake("the 10% correction is still missing, the colleague's bug: after rounding to the nearest multiple "
                "of divisor, add one more "
                "divisor if the result is smaller than 0.9 * value (e.g. 11.2 rounds to 8, which loses 29%, "
                "so the answer is 16).", value=nearest_only),
        Mistake("the value is rounded down (int(value) // divisor): round to the nearest multiple instead, "
                "int(value + divisor / 2) // divisor * divisor.", value=rounded_down),
        Mistake("the value is rounded up to the next multiple: round to the nearest multiple, and go up only "
                "when the nearest one is more than 10% below value.", value=rounded_up),
    ),
    hints=(
        "Start from the nearest multiple of divisor (halfway cases go up), but never less than divisor itself.",
        "Rounding down can remove too many channels from a thin layer: compare the result with 0.9 * value.",
        "Return a Python int.",
    ),
    forbidden=Forbidden(modules=("companion.models.mobilenet", "torchvision.models._utils"),
                        names=("_make_divisible", "make_divisible"), what="the rounding"),
)


@test_case(points=points)
def test_make_divisible(make_divisible):
    QUESTION.assert_passes(make_divisible)
