"""Exercise 10, question 1: predict, then measure, a Fire module's parameters and a separable layer's cost.

The learner writes down two numbers before building anything: the parameters of SqueezeNet's
``Fire(128, 32, 128, 128)`` (a 1x1 squeeze to 32 channels, then 128 1x1 and 128 3x3 expand filters,
every convolution with a bias; Iandola et al., 2016, https://arxiv.org/abs/1602.07360), and the
multiply-adds of a depthwise-separable layer (Howard et al., 2017, https://arxiv.org/abs/1704.04861)
that replaces a 3x3 convolution from 128 to 128 channels on a 14x14 map (stride 1, padding 1, no
biases). The reference measures both with torch modules and the course's counter; the common wrong
predictions are known mistakes (biases forgotten, the 3x3 expand counted as 1x1, the squeeze skipped,
the standard convolution's cost, the pointwise layer forgotten, the depthwise layer counted as a full
convolution, one pixel only).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2
C_IN, S, E1, E3 = 128, 32, 128, 128  # the Fire module
C, K, SIZE = 128, 3, 14  # the separable layer: channels in and out, kernel, map size


def measured():
    """(Fire parameters, separable multiply-adds), measured with torch modules and companion.count."""
    from torch import nn

    from companion.count import count_flops, count_parameters
    from companion.models.squeezenet import Fire

    separable = nn.Sequential(nn.Conv2d(C, C, K, padding=1, groups=C, bias=False), nn.Conv2d(C, C, 1, bias=False))
    return count_parameters(Fire(C_IN, S, E1, E3)), count_flops(separable, (C, SIZE, SIZE))


def cases(draw):
    return [Case((), "Fire(128, 32, 128, 128); a separable 3x3 layer from 128 to 128 channels on 14x14")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    answer = function()
    if isinstance(answer, (tuple, list)) and len(answer) == 2:
        return tuple(answer)
    raise TypeError("predicted_costs must return two numbers: (Fire parameters, separable multiply-adds)")


def part(index, *values):
    def matches(got, expected, args):
        return isinstance(got, (tuple, list)) and len(got) == 2 and got[index] in values
    return matches


PIXELS = SIZE * SIZE
QUESTION = Question(
    name="q1",
    function="predicted_costs",
    points=points,
    reference=measured,
    oracle="count_parameters(Fire(128, 32, 128, 128)) and count_flops of nn.Conv2d(groups=128) + nn.Conv2d 1x1",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the Fire module's biases are forgotten: each of its three convolutions has one bias per output "
                "channel (32 + 128 + 128).", matches=part(0, C_IN * S + S * E1 + 9 * S * E3)),
        Mistake("the 3x3 expand filters are counted as 1x1: each of the 128 has 3 * 3 * 32 weights.",
                matches=part(0, (C_IN + 1) * S + (S + 1) * E1 + (S + 1) * E3)),
        Mistake("the squeeze is skipped: the expand filters read the 32 squeezed channels, not the 128 "
                "input channels.", matches=part(0, (C_IN + 1) * S + (C_IN + 1) * E1 + (9 * C_IN + 1) * E3,
                                                (C_IN + 1) * E1 + (9 * C_IN + 1) * E3)),
        Mistake("that is the standard 3x3 convolution's cost, 3 * 3 * 128 * 128 per pixel: the separable layer "
                "is a depthwise 3x3 (3 * 3 * 128) plus a pointwise 1x1 (128 * 128) per pixel.",
                matches=part(1, K * K * C * C * PIXELS)),
        Mistake("the pointwise 1x1 convolution is forgotten: it mixes the channels and costs 128 * 128 "
                "multiply-adds per pixel, most of the layer.", matches=part(1, K * K * C * PIXELS)),
        Mistake("the depthwise convolution is counted as a full convolution: with groups = 128 each filter sees "
                "one channel, 3 * 3 * 128 multiply-adds per pixel in all.",
                matches=part(1, (K * K * C * C + C * C) * PIXELS)),
        Mistake("the multiply-adds are counted for one pixel only: every weight is used once per output pixel, "
                "14 * 14 of them.", matches=part(1, K * K * C + C * C)),
    ),
    hints=(
        "A convolution from a to b channels with a k x k kernel has a * b * k * k weights (a / groups * b * k * k "
        "with groups), plus b biases if it has them.",
        "Fire: squeeze 128 -> 32 (1x1), then expand 32 -> 128 (1x1) and 32 -> 128 (3x3) side by side.",
        "Multiply-adds: every weight once per output pixel; biases are not multiply-adds.",
    ),
    forbidden=Forbidden(modules=("companion.models", "companion.count", "torchvision.models",
                                 "torch.nn.modules.conv"),
                        names=("Conv2d", "conv2d", "Fire", "count_parameters", "count_flops"),
                        what="the prediction (without building the layers)"),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_costs(predicted_costs):
    QUESTION.assert_passes(predicted_costs)
