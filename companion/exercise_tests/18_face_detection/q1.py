"""Exercise 18, question 1: predict, then verify, how many window sizes a ``scale_factor`` gives, ``predicted_scales``.

``detectMultiScale`` tries the window sides ``round(24 * scale_factor**k)``, ``k = 0, 1, ...``;
the learner predicts how many of them lie between 24 and 100 pixels with ``scale_factor=1.25``.
The reference is ``companion.viola_jones.window_sizes`` (tested against the sizes of the boxes
OpenCV returns): 24, 30, 38, 47, 59, 73, 92, that is 7. The usual wrong predictions are known
mistakes. Viola and Jones, 2001, scan the image at scales 1.25 apart.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from otter.test_files import test_case

from companion.grade import Case, Mistake, Question
from companion.viola_jones import window_sizes

OK_FORMAT = False
name = "q1"
points = 2


def measured():
    return len(window_sizes(24, 100, 1.25))


def cases(draw):
    return [Case((), "window sides from 24 to 100 pixels, scale_factor 1.25")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


QUESTION = Question(
    name="q1",
    function="predicted_scales",
    points=points,
    reference=measured,
    oracle="companion.viola_jones.window_sizes(24, 100, 1.25)",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("6 counts the steps between sizes, not the sizes: the first size, 24 (k = 0), is a scale too.",
                value=lambda: 6),
        Mistake("8 rounds the number of steps up: 24 * 1.25**7 is about 114 pixels, larger than 100, so that "
                "size is not tried.", value=lambda: 8),
        Mistake("the window does not grow by a fixed number of pixels (24 * 0.25 = 6 each time): it is "
                "*multiplied* by 1.25 at each scale, so the sizes grow geometrically and there are far fewer.",
                matches=lambda got, expected, args: isinstance(got, int) and got in (12, 13, 14)),
        Mistake("a number of scales is a whole number: return an int.",
                matches=lambda got, expected, args: isinstance(got, float)),
    ),
    hints=(
        "Write the sizes down: 24, then 24 * 1.25, then that times 1.25, ... Where do you pass 100?",
        "Solve 24 * 1.25**k <= 100 for the largest whole k; how many values of k does that make?",
        "Return one Python int.",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_scales(predicted_scales):
    QUESTION.assert_passes(predicted_scales)
