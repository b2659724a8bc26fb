"""Exercise 25, question 2: predict, then verify, the effective batch of gradient accumulation, ``predicted_accumulation``.

Micro-batches of 16 slices, gradients accumulated over 4 of them before each optimiser step, one
epoch of 1,024 slices: the optimiser sees batches of 4 * 16 = 64 slices and steps 1024 / 64 = 16
times per epoch. The reference counts the ``optimizer.step()`` calls of such a loop and the
examples behind each; the usual wrong predictions are known mistakes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from otter.test_files import test_case

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2


def measured():
    micro, k, epoch = 16, 4, 1024
    steps, seen, behind = 0, 0, []
    for start in range(0, epoch, micro):  # one micro-batch per iteration
        seen += min(micro, epoch - start)
        if (start // micro + 1) % k == 0:  # every k-th micro-batch: optimizer.step()
            steps += 1
            behind.append(seen)
            seen = 0
    assert len(set(behind)) == 1
    return (behind[0], steps)


def cases(draw):
    return [Case((), "micro-batches of 16, accumulated over 4, an epoch of 1,024 slices")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


QUESTION = Question(
    name="q2",
    function="predicted_accumulation",
    points=points,
    reference=measured,
    oracle="the optimizer.step() calls of an accumulation loop, counted",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("16 is the micro-batch, what one forward pass holds; the optimiser steps once per 4 of them, "
                "on the gradient of all 64 slices: the effective batch is 4 x 16.",
                matches=lambda got, expected, args: isinstance(got, (tuple, list)) and len(got) == 2
                and got[0] == 16),
        Mistake("64 counts the micro-batches (forward and backward passes); the optimiser steps once every 4 "
                "of them: 1024 / 64 = 16 steps.",
                matches=lambda got, expected, args: isinstance(got, (tuple, list)) and len(got) == 2
                and got[1] == 64),
        Mistake("the number of optimiser steps is the epoch divided by the *effective* batch, 1024 / 64.",
                matches=lambda got, expected, args: isinstance(got, (tuple, list)) and len(got) == 2
                and got[0] == 64 and got[1] != 16),
        Mistake("a batch size and a number of steps are whole numbers: return two ints (use //).",
                matches=lambda got, expected, args: isinstance(got, (tuple, list))
                and any(isinstance(v, float) for v in got)),
    ),
    hints=(
        "The optimiser steps once per 4 micro-batches: how many slices went into that gradient?",
        "An epoch of 1,024 slices is how many micro-batches of 16? How many optimiser steps is that?",
        "Return a tuple of two ints: (effective batch, optimiser steps per epoch).",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_accumulation(predicted_accumulation):
    QUESTION.assert_passes(predicted_accumulation)
