"""Exercise 16, question 2: find the bug in a colleague's YOLO target assignment, ``yolo_targets``.

The colleague's function takes the row of a box's cell from its centre's ``x`` and the column
from its ``y``, so every object lands in the mirror cell across the diagonal. The reference is
``companion.yolo.assign_targets`` on one image (Redmon et al., 2016, section 2): the cell of the
box's centre, row from ``y`` and column from ``x``; per cell ``(x, y, sqrt(w), sqrt(h), 1,
one-hot class)`` with ``x, y`` the centre's place inside the cell and ``w, h`` fractions of the
image. The known mistakes are the colleague's swap, the widths and heights without square roots,
the centre measured across the image instead of inside its cell, and the cell taken from the
box's top-left corner instead of its centre. The cases draw 1 to 4 boxes whose centres fall in
different cells.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion import yolo
from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 3


def reference(boxes, labels, grid, num_classes, image_size):
    return yolo.assign_targets([{"boxes": boxes, "labels": labels}], grid, num_classes, image_size)[0]


def swapped(boxes, labels, grid, num_classes, image_size):
    return reference(boxes, labels, grid, num_classes, image_size).transpose(0, 1)


def no_sqrt(boxes, labels, grid, num_classes, image_size):
    out = reference(boxes, labels, grid, num_classes, image_size)
    out[..., 2:4] = out[..., 2:4] ** 2
    return out


def across_image(boxes, labels, grid, num_classes, image_size):
    out = reference(boxes, labels, grid, num_classes, image_size)
    j = torch.arange(grid, dtype=out.dtype)
    has = out[..., 4] > 0
    out[..., 0] = torch.where(has, (out[..., 0] + j) / grid, out[..., 0])
    out[..., 1] = torch.where(has, (out[..., 1] + j[:, None]) / grid, out[..., 1])
    return out


def corner(boxes, labels, grid, num_classes, image_size):
    half = (boxes[:, 2:] - boxes[:, :2]) / 2
    moved = boxes - torch.cat([half, half], dim=1)  # centred on the old top-left corner
    return reference(moved, labels, grid, num_classes, image_size)


def cases(draw):
    found = []
    for grid, num_classes, image_size, k in [(4, 3, 64, 2), (8, 5, 64, 4), (7, 2, 56, 3), (6, 4, 96, 1),
                                             (5, 3, 80, 3)]:
        cell = image_size / grid
        chosen, boxes = set(), []
        while len(boxes) < k:
            i, j = draw.int(0, grid - 1), draw.int(0, grid - 1)
            if (i, j) in chosen or i == j:  # different cells, off the diagonal (a swap shows)
                continue
            chosen.add((i, j))
            cx, cy = (j + draw.uniform(0.05, 0.95)) * cell, (i + draw.uniform(0.05, 0.95)) * cell
            w, h = draw.uniform(0.1, 0.5) * image_size, draw.uniform(0.1, 0.5) * image_size
            boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        labels = torch.tensor([draw.int(0, num_classes - 1) for _ in boxes])
        found.append(Case((torch.tensor(boxes, dtype=torch.float32), labels, grid, num_classes, image_size),
                          f"{k} boxes, grid={grid}, num_classes={num_classes}, image_size={image_size}"))
    return found


QUESTION = Question(
    name="q2",
    function="yolo_targets",
    points=points,
    reference=reference,
    oracle="companion.yolo.assign_targets",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's bug: rows and columns are swapped. The row i of a cell comes from "
                "the centre's y (down the image), the column j from its x; the target goes into out[i, j].",
                value=swapped),
        Mistake("the widths and heights have no square roots: YOLO's targets are sqrt(w) and sqrt(h), w and h as "
                "fractions of the image.", value=no_sqrt),
        Mistake("x and y are measured across the whole image; they are the centre's place inside its cell: "
                "S * cx / W - j, between 0 and 1.", value=across_image),
        Mistake("the cell comes from the box's top-left corner (x0, y0); YOLO gives an object to the cell that "
                "holds the box's centre ((x0 + x1) / 2, (y0 + y1) / 2).", value=corner),
    ),
    hints=(
        "Print the colleague's output for one box near the top right of the image: which cell is filled?",
        "For a box with centre (cx, cy): j = floor(S * cx / W), i = floor(S * cy / H); write into out[i, j].",
        "out[i, j] holds S * cx / W - j, S * cy / H - i, sqrt(w / W), sqrt(h / H), 1.0, then the one-hot class.",
    ),
    forbidden=Forbidden(modules=("companion.yolo",), names=("assign_targets", "cells_to_boxes"),
                        what="the target assignment"),
    rtol=1e-5,
    atol=1e-5,
)


@test_case(points=points)
def test_yolo_targets(yolo_targets):
    QUESTION.assert_passes(yolo_targets)
