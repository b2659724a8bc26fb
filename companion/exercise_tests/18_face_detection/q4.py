"""Exercise 18, question 4: find the bug in a colleague's grey conversion, ``to_gray``.

Images from scikit-image, PIL and matplotlib are RGB; OpenCV's ``cv2.imread`` gives BGR. The
colleague converts an RGB image with ``cv2.COLOR_BGR2GRAY``, which weighs red by 0.114 and blue by
0.299 instead of the other way round. The reference is ``cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)``
(ITU-R BT.601 weights, 0.299 R + 0.587 G + 0.114 B); the answer is compared within one grey level,
so that the formula written out in floating point passes too. The known mistakes: the BGR code,
the plain mean of the channels, and a result scaled to [0, 1].
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import cv2
import numpy as np
import torch
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 2


def _grey(rgb, code):
    return torch.from_numpy(cv2.cvtColor(np.ascontiguousarray(rgb.numpy()), code)).to(torch.float64)


def as_float(function, rgb):
    """How the learner's answer is called: its grey image as float64, so that it is compared within 1 level."""
    out = function(rgb)
    return torch.as_tensor(np.asarray(out)).to(torch.float64)


def cases(draw):
    found = []
    for h, w in [(6, 9), (16, 12), (3, 40)]:
        rgb = torch.randint(0, 256, (h, w, 3), generator=draw.generator, dtype=torch.uint8)
        found.append(Case((rgb,), f"a random RGB uint8 image of shape ({h}, {w}, 3)"))
    red = torch.zeros(4, 5, 3, dtype=torch.uint8)
    red[..., 0] = 200
    found.append(Case((red,), "a red RGB image of shape (4, 5, 3)"))
    return found


QUESTION = Question(
    name="q4",
    function="to_gray",
    points=points,
    reference=lambda rgb: _grey(rgb, cv2.COLOR_RGB2GRAY),
    oracle="cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)",
    cases=cases,
    call=as_float,
    mistakes=(
        Mistake("this is still the colleague's bug: the image is RGB (scikit-image, PIL and matplotlib give RGB), "
                "and COLOR_BGR2GRAY reads its first channel as blue, so red gets the weight of blue (0.114 instead "
                "of 0.299) and blue that of red. Use cv2.COLOR_RGB2GRAY.",
                value=lambda rgb: _grey(rgb, cv2.COLOR_BGR2GRAY)),
        Mistake("the plain mean of the three channels is not the grey OpenCV computes: it weighs them "
                "0.299 R + 0.587 G + 0.114 B (the eye is most sensitive to green).",
                value=lambda rgb: rgb.to(torch.float64).mean(dim=-1).round()),
        Mistake("the grey levels are scaled to [0, 1]; keep them in 0-255 (uint8), as the cascade expects.",
                value=lambda rgb: _grey(rgb, cv2.COLOR_RGB2GRAY) / 255),
    ),
    hints=(
        "Print rgb[0, 0] for a red image and look at which channel holds the 200.",
        "What does cv2.imread return, and what does skimage.data.astronaut() return?",
        "Return an (H, W) uint8 array or tensor.",
    ),
    rtol=0.0,
    atol=1.0,
)


@test_case(points=points)
def test_to_gray(to_gray):
    QUESTION.assert_passes(to_gray)
