"""Exercise 18, question 2: the integral image from scratch, ``integral_image``.

The reference is OpenCV's ``cv2.integral`` (as ``int64``): ``(H + 1, W + 1)``, a zero first row
and column, ``ii[y, x]`` the sum of ``image[:y, :x]`` (Viola and Jones, 2001, section 2.1). Each
known mistake is the reference with one thing changed: no zero row and column (the sums
*including* pixel ``(x, y)``), the running sum along one axis only, the zero row and column at
the bottom and right, the running sums kept in ``uint8`` (they wrap around at 256). The cases are
random ``uint8`` images of several shapes, and a white one (large sums). Calling ``cv2.integral``
(or scikit-image's or the companion's integral image) scores 0.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 3


def opencv_integral(image):
    return torch.from_numpy(cv2.integral(image.numpy()).astype(np.int64))


def no_zero_row(image):
    return image.long().cumsum(0).cumsum(1)  # (H, W)


def one_axis(image):
    return F.pad(image.long().cumsum(1), (1, 0, 1, 0))


def zeros_at_the_end(image):
    return F.pad(image.long().cumsum(0).cumsum(1), (0, 1, 0, 1))


def wrapped(image):
    return F.pad(image.cumsum(0, dtype=torch.uint8).cumsum(1, dtype=torch.uint8), (1, 0, 1, 0))


def cases(draw):
    found = []
    for h, w in [(5, 7), (12, 9), (1, 6), (16, 16)]:
        image = torch.randint(0, 256, (h, w), generator=draw.generator, dtype=torch.uint8)
        found.append(Case((image,), f"a random uint8 image of shape ({h}, {w})"))
    found.append(Case((torch.full((20, 30), 255, dtype=torch.uint8),), "a white uint8 image of shape (20, 30)"))
    return found


QUESTION = Question(
    name="q2",
    function="integral_image",
    points=points,
    reference=opencv_integral,
    oracle="cv2.integral",
    cases=cases,
    mistakes=(
        Mistake("the zero row and column are missing: the result is (H, W), each entry the sum *including* its own "
                "pixel. cv2.integral is (H + 1, W + 1), with ii[y, x] the sum of image[:y, :x], so that a "
                "rectangle touching the top or left edge still needs no index -1.", value=no_zero_row),
        Mistake("the running sum goes along one axis only: ii[y, x] sums a whole block, above *and* to the left, "
                "so it needs a cumulative sum down the rows and another across the columns.", value=one_axis),
        Mistake("the zero row and column are at the bottom and right; they go first (index 0), so that ii[0, :] "
                "and ii[:, 0] are 0.", value=zeros_at_the_end),
        Mistake("the sums overflow: kept in uint8, they wrap around at 256. Convert to int64 before summing.",
                value=wrapped),
    ),
    hints=(
        "torch.cumsum along dim 0, then along dim 1, gives the sums that include each pixel. What is missing?",
        "Make a zero tensor of shape (H + 1, W + 1) and dtype int64, and fill ii[1:, 1:].",
        "Check: ii[-1, -1] must be the sum of the whole image, and ii[0] and ii[:, 0] zeros.",
    ),
    forbidden=Forbidden(modules=("cv2", "companion.viola_jones", "skimage.transform"),
                        names=("integral", "integral2", "integral3", "integrate"),
                        functions=("cv2.integral", "cv2.integral2", "cv2.integral3",
                                   "skimage.transform.integral_image", "skimage.transform.integrate",
                                   "companion.viola_jones.integral_image"),
                        what="the integral image"),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_integral_image(integral_image):
    QUESTION.assert_passes(integral_image)
