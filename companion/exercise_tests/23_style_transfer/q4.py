"""Exercise 23, question 4: the style loss over several layers, ``style_loss``.

``style_loss(features, style_features, weights)``: for each layer ``l``, the Gram matrices of the
image's and of the style image's feature maps (normalised by ``C * H * W``), their mean squared
difference, times ``weights[l]``, summed over the layers (Gatys et al., 2016, equations 4-5). The
reference uses ``companion.style.style_loss``. The known mistakes: Gram matrices not normalised
(the largest layer dominates), the squared differences summed instead of averaged, the weights
ignored, the features compared instead of their Gram matrices (a content loss), and the norm of
the difference instead of its square. The learner's own ``gram_matrix`` of question 3 is allowed;
``companion.style`` is not. The cases: two or three layers of different sizes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question
from companion.style import gram_matrix, style_loss

OK_FORMAT = False
name = "q4"
points = 3


def reference(features, style_features, weights):
    return style_loss(features, [gram_matrix(s) for s in style_features], weights)


def _raw(f):
    flat = f.flatten(2)
    return flat @ flat.transpose(1, 2)


def _each(features, style_features, weights, term):
    return sum(w * term(f, s) for f, s, w in zip(features, style_features, weights))


def cases(draw):
    found = []
    for shapes, weights in [([(1, 3, 12, 12), (1, 5, 6, 6), (1, 8, 3, 3)], (0.2, 0.3, 0.5)),
                            ([(1, 4, 8, 10), (1, 6, 4, 5)], (1.0, 2.0)),
                            ([(1, 2, 16, 16), (1, 4, 8, 8), (1, 8, 4, 4)], (1 / 3, 1 / 3, 1 / 3))]:
        features = tuple(draw.normal(*s).abs() for s in shapes)
        style_features = tuple(draw.normal(*s).abs() * 2 for s in shapes)
        found.append(Case((features, style_features, weights),
                          f"{len(shapes)} layers of shapes {shapes}, weights {tuple(round(w, 3) for w in weights)}"))
    return found


QUESTION = Question(
    name="q4",
    function="style_loss",
    points=points,
    reference=reference,
    oracle="companion.style.style_loss",
    cases=cases,
    mistakes=(
        Mistake("the Gram matrices are not normalised: unnormalised, the layer with the most positions "
                "(C * H * W) gets by far the largest Gram matrices and dominates the sum. Divide by C * H * W.",
                value=lambda f, s, w: _each(f, s, w, lambda a, b: F.mse_loss(_raw(a), _raw(b)))),
        Mistake("the squared differences are summed; the style loss takes their mean over the C x C entries.",
                value=lambda f, s, w: _each(f, s, w, lambda a, b: ((gram_matrix(a) - gram_matrix(b)) ** 2).sum())),
        Mistake("the layers' weights are ignored: multiply each layer's term by its weight.",
                value=lambda f, s, w: _each(f, s, [1.0] * len(w),
                                            lambda a, b: F.mse_loss(gram_matrix(a), gram_matrix(b)))),
        Mistake("the feature maps themselves are compared (that is the content loss); style compares their "
                "Gram matrices, which forget where things are.",
                value=lambda f, s, w: _each(f, s, w, lambda a, b: F.mse_loss(a, b))),
        Mistake("this is the norm of the difference; the loss is the mean of its *squares*.",
                value=lambda f, s, w: _each(f, s, w, lambda a, b: (gram_matrix(a) - gram_matrix(b)).norm())),
    ),
    hints=(
        "One term per layer: the Gram matrix of features[l] and of style_features[l], with your gram_matrix.",
        "Each term is the mean of the squared differences of the two C x C matrices, times weights[l].",
        "Return one scalar tensor: the sum of the terms.",
    ),
    forbidden=Forbidden(modules=("companion.style",), what="the style loss"),
)


@test_case(points=points)
def test_style_loss(style_loss):
    QUESTION.assert_passes(style_loss)
