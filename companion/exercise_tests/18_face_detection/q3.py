"""Exercise 18, question 3: find the off-by-one in a colleague's rectangle sums, ``rect_sums``.

Given the integral image ``ii`` of ``cv2.integral`` (``(H + 1, W + 1)``, a zero first row and
column) and boxes ``(x, y, w, h)``, return the sum of the pixels of each box,
``ii[y + h, x + w] - ii[y, x + w] - ii[y + h, x] + ii[y, x]`` (Viola and Jones, 2001, figure 3).
The reference sums the pixels of each box one by one (the image is recovered from ``ii`` by
differences). The known mistakes: the colleague's formula for an integral image *without* the
zero row and column (every index one less), the boxes read as corners ``(x0, y0, x1, y1)``, rows
and columns swapped, and the top-left block not added back. The cases are random boxes on
non-square images and a square one, with boxes touching every edge.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def pixel_sums(ii, boxes):
    image = ii.diff(dim=0).diff(dim=1)  # (H, W): the pixels back
    return torch.stack([image[y:y + h, x:x + w].sum() for x, y, w, h in boxes.tolist()])


def off_by_one(ii, boxes):
    x, y, w, h = boxes.unbind(1)
    return ii[y + h - 1, x + w - 1] - ii[y - 1, x + w - 1] - ii[y + h - 1, x - 1] + ii[y - 1, x - 1]


def as_corners(ii, boxes):
    x0, y0, x1, y1 = boxes.unbind(1)
    return ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]


def swapped(ii, boxes):
    x, y, w, h = boxes.unbind(1)
    return ii[x + w, y + h] - ii[x, y + h] - ii[x + w, y] + ii[x, y]


def not_added_back(ii, boxes):
    x, y, w, h = boxes.unbind(1)
    return ii[y + h, x + w] - ii[y, x + w] - ii[y + h, x]


def random_boxes(draw, height, width, n):
    x = torch.randint(0, width, (n,), generator=draw.generator)
    y = torch.randint(0, height, (n,), generator=draw.generator)
    w = 1 + (torch.rand(n, generator=draw.generator) * (width - x)).long()
    h = 1 + (torch.rand(n, generator=draw.generator) * (height - y)).long()
    edges = torch.tensor([[0, 0, width, height], [0, 2, 3, height - 2], [width - 3, 0, 3, 2], [width - 1, height - 1, 1, 1]])
    return torch.cat([torch.stack([x, y, w, h], dim=1), edges])  # (n + 4, 4), int64


def cases(draw):
    found = []
    for height, width, n in [(12, 20, 10), (30, 17, 15), (16, 16, 12), (9, 40, 8)]:
        image = torch.randint(0, 256, (height, width), generator=draw.generator)
        ii = F.pad(image.cumsum(0).cumsum(1), (1, 0, 1, 0))  # (H + 1, W + 1) int64, as cv2.integral
        found.append(Case((ii, random_boxes(draw, height, width, n)),
                          f"the integral image of a ({height}, {width}) image, {n + 4} boxes, some at the edges"))
    return found


QUESTION = Question(
    name="q3",
    function="rect_sums",
    points=points,
    reference=pixel_sums,
    oracle="the pixels of each box summed one by one",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's off-by-one: y + h - 1, x - 1, ... is the formula for an integral "
                "image *without* the zero row and column. With them, ii[y, x] already sums the pixels before row y "
                "and column x: use ii[y + h, x + w], ii[y, x + w], ii[y + h, x] and ii[y, x]. (At x = 0 the "
                "index -1 silently reads the last column.)", value=off_by_one),
        Mistake("the boxes are (x, y, w, h), a corner and a size, as OpenCV returns them; the answer reads them "
                "as corners (x0, y0, x1, y1). The far corner is (x + w, y + h).", value=as_corners),
        Mistake("rows and columns are swapped: ii is indexed [row, column], that is [y, x].", value=swapped),
        Mistake("the top-left block ii[y, x] is subtracted twice (once with the strip above, once with the strip "
                "to the left) and must be added back once.", value=not_added_back),
    ),
    hints=(
        "Try the colleague's function on a box at x = 0, y = 0 and compare with image[:h, :w].sum(). What does "
        "index -1 read?",
        "ii[y, x] is the sum of image[:y, :x]. Write the box's sum with four such blocks.",
        "Index all boxes at once: ii[rows, columns] with two (N,) tensors gives (N,) values.",
    ),
    forbidden=Forbidden(modules=("cv2", "companion.viola_jones"),
                        names=("rect_sum", "cell_sums"),
                        what="the rectangle sums"),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_rect_sums(rect_sums):
    QUESTION.assert_passes(rect_sums)
