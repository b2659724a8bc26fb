"""Exercise 27, question 1: predict, then verify, the tensor a server makes from a small image, ``predicted_input``.

The server of chapter 27 (``companion.serve.preprocess`` with ``image_size=(2, 2)``, greyscale) turns a
2x2 RGB PNG, red and white over black and blue, into ``(1, 1, 2, 2)`` values in [0, 1]: Pillow's ``L``
is ``(299 R + 587 G + 114 B) / 1000`` (ITU-R 601-2 luma), so red -> 76, white -> 255, black -> 0,
blue -> 29, each divided by 255. The reference is ``preprocess`` on that PNG; the usual wrong
predictions are known mistakes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import io

import numpy as np
import torch
from otter.test_files import test_case
from PIL import Image

from companion.grade import Case, Mistake, Question
from companion.serve import preprocess

OK_FORMAT = False
name = "q1"
points = 2

PIXELS = np.array([[[255, 0, 0], [255, 255, 255]],
                   [[0, 0, 0], [0, 0, 255]]], dtype=np.uint8)  # (H, W, RGB): red, white / black, blue


def measured():
    buffer = io.BytesIO()
    Image.fromarray(PIXELS).save(buffer, format="PNG")
    return preprocess(buffer.getvalue(), image_size=(2, 2), grayscale=True)


def cases(draw):
    return [Case((), "the 2x2 PNG: red, white / black, blue")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


def _grey(weights, *, scale=255.0):
    grey = (PIXELS.astype(np.float64) * np.array(weights)).sum(-1)  # (2, 2)
    return torch.tensor(np.round(grey) / scale, dtype=torch.float32)[None, None]  # (1, 1, 2, 2)


LUMA = (0.299, 0.587, 0.114)

QUESTION = Question(
    name="q1",
    function="predicted_input",
    points=points,
    reference=measured,
    oracle="companion.serve.preprocess of the PNG with image_size=(2, 2)",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the server converts the image to greyscale (L) first: one channel, shape (1, 1, 2, 2), not the "
                "three colour channels.", matches=lambda got, expected, args: isinstance(got, torch.Tensor)
                and got.numel() == 12),
        Mistake("the values are not scaled: ToTensor, and the server, divide the bytes by 255, so the tensor is "
                "in [0, 1].", value=lambda: _grey(LUMA, scale=1.0)),
        Mistake("the average of R, G and B is not Pillow's L: L weighs the channels 299, 587 and 114 per "
                "thousand (green counts most, blue least), so pure red is 76 and pure blue 29.",
                value=lambda: _grey((1 / 3, 1 / 3, 1 / 3))),
        Mistake("red and blue are swapped (BGR, OpenCV's order): in L, red weighs 0.299 and blue 0.114.",
                value=lambda: _grey(LUMA[::-1])),
        Mistake("the server does not normalise: it only divides by 255 (no mean subtracted, no division by the "
                "standard deviation).", value=lambda: (_grey(LUMA) - 0.286) / 0.353),
        Mistake("the shape: the model takes a batch, (N, C, H, W) = (1, 1, 2, 2), not the bare image.",
                matches=lambda got, expected, args: isinstance(got, torch.Tensor) and got.numel() == 4
                and got.shape != expected.shape),
    ),
    hints=(
        "Which mode does the server convert to when grayscale=True, and how does Pillow compute it from R, G, B?",
        "L = (299 R + 587 G + 114 B) / 1000, rounded to a byte; then divide by 255.",
        "Return a float tensor of shape (1, 1, 2, 2): batch, channel, height, width.",
    ),
    rtol=0.0,
    atol=0.005,
)


@test_case(points=points)
def test_predicted_input(predicted_input):
    QUESTION.assert_passes(predicted_input)
