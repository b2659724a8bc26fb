"""Exercise 24, question 2: predict, then verify, how many times DDIM calls the denoiser, ``predicted_calls``.

A DDIM sampler for ``T = 1000`` timesteps with the stride 40 visits ``t = 960, 920, ..., 40, 0``
(``companion.diffusion.sampling_timesteps(1000, 25)``, diffusers' "leading" spacing) and calls the
network once at each: 25 calls. The reference counts them; the usual wrong predictions are known
mistakes. Song, Meng and Ermon (2021), section 4.2, https://arxiv.org/abs/2010.02502.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from otter.test_files import test_case

from companion.diffusion import sampling_timesteps
from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2


def measured():
    visited = sampling_timesteps(1000, 25)
    assert visited == list(range(960, -1, -40))
    return len(visited)


def cases(draw):
    return [Case((), "T = 1000, stride 40, timesteps 960, 920, ..., 40, 0")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


QUESTION = Question(
    name="q2",
    function="predicted_calls",
    points=points,
    reference=measured,
    oracle="len(companion.diffusion.sampling_timesteps(1000, 25))",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("24 counts the jumps between visited timesteps (960 / 40), not the timesteps: the network is "
                "called at t = 0 too, for the last jump to the sample.", value=lambda: 24),
        Mistake("1000 is ancestral sampling with every timestep; DDIM calls the network only at the visited "
                "timesteps, one call per jump.", value=lambda: 1000),
        Mistake("one call too many: nothing is called after t = 0 (its output is the sample), and x_T is drawn "
                "from the noise, not made by the network.", value=lambda: 26),
        Mistake("a number of calls is a whole number: return an int.",
                matches=lambda got, expected, args: isinstance(got, float)),
    ),
    hints=(
        "Write the visited timesteps down: 960, 920, ..., 40, 0. How many numbers is that?",
        "From 0 to 960 in steps of 40: count both ends.",
        "Return one Python int.",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_calls(predicted_calls):
    QUESTION.assert_passes(predicted_calls)
