"""Exercise 16, question 4: decode YOLO's boxes, ``decode_boxes``.

The reference is ``companion.yolo.cells_to_boxes`` on every predictor's ``(x, y, sqrt(w),
sqrt(h))`` (Redmon et al., 2016): predictor ``b`` of cell ``(i, j)`` has its centre at
``((j + x) W / S, (i + y) H / S)`` and the size ``(sqrt(w)^2 W, sqrt(h)^2 H)``; the output is
``(N, S, S, B, 4)`` ``xyxy`` in pixels. Each known mistake is the reference with one thing
changed: sizes not squared, rows and columns swapped, the cell's offset left out, the corners a
whole width (not half) from the centre, the boxes left as ``cxcywh``.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion import yolo
from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 3


def reference(pred, num_boxes, image_size):
    n, s = pred.shape[:2]
    cells = pred[..., :5 * num_boxes].reshape(n, s, s, num_boxes, 5)[..., :4]
    return yolo.cells_to_boxes(cells.movedim(3, 1), image_size).movedim(1, 3)  # (N, S, S, B, 4)


def written_out(pred, num_boxes, image_size, *, square=True, swap=False, offset=True, half=True, fmt="xyxy"):
    n, s = pred.shape[:2]
    cells = pred[..., :5 * num_boxes].reshape(n, s, s, num_boxes, 5)
    j = torch.arange(s, dtype=pred.dtype)[None, None, :, None]  # columns
    i = torch.arange(s, dtype=pred.dtype)[None, :, None, None]  # rows
    if swap:
        i, j = j, i
    if not offset:
        i, j = 0 * i, 0 * j
    cx = (cells[..., 0] + j) / s * image_size
    cy = (cells[..., 1] + i) / s * image_size
    w, h = cells[..., 2], cells[..., 3]
    if square:
        w, h = w ** 2, h ** 2
    w, h = w * image_size, h * image_size
    if fmt == "cxcywh":
        return torch.stack([cx, cy, w, h], -1)
    k = 2 if half else 1
    return torch.stack([cx - w / k, cy - h / k, cx + w / k, cy + h / k], -1)


def variant(**changes):
    def value(pred, num_boxes, image_size):
        return written_out(pred, num_boxes, image_size, **changes)
    return value


def cases(draw):
    found = []
    for n, s, b, c, size in [(2, 4, 2, 3, 64), (1, 7, 2, 5, 448), (3, 5, 3, 2, 80), (2, 6, 1, 4, 96)]:
        pred = torch.rand(n, s, s, 5 * b + c, generator=draw.generator)
        found.append(Case((pred, b, size), f"pred ({n}, {s}, {s}, {5 * b + c}), num_boxes={b}, image_size={size}"))
    return found


QUESTION = Question(
    name="q4",
    function="decode_boxes",
    points=points,
    reference=reference,
    oracle="companion.yolo.cells_to_boxes",
    cases=cases,
    mistakes=(
        Mistake("the widths and heights are not squared: the network predicts sqrt(w) and sqrt(h), so the box's "
                "width is sqrt(w)**2 * W.", value=variant(square=False)),
        Mistake("rows and columns are swapped: the centre's x adds the column j (the third dimension of pred), "
                "its y the row i (the second).", value=variant(swap=True)),
        Mistake("the cell's position is left out: x and y are offsets inside cell (i, j), so the centre is at "
                "((j + x) / S * W, (i + y) / S * H).", value=variant(offset=False)),
        Mistake("the corners are a whole width from the centre: x0 = cx - w / 2, x1 = cx + w / 2.",
                value=variant(half=False)),
        Mistake("the boxes are (cx, cy, w, h); return the corners, xyxy.", value=variant(fmt="cxcywh")),
    ),
    hints=(
        "Reshape the first 5 * B numbers of each cell to (B, 5); you need the first four of each.",
        "torch.arange(S) with None indexing gives the row index i and the column index j in shapes that "
        "broadcast against (N, S, S, B).",
        "Test with one cell: pred with x = y = 0.5 and sqrt(w) = sqrt(h) = 1 in cell (0, 0) is a box the size "
        "of the image centred on the cell's centre.",
    ),
    forbidden=Forbidden(modules=("companion.yolo", "companion.boxes"),
                        names=("cells_to_boxes", "decode", "box_convert"),
                        what="the box decoding"),
    rtol=1e-5,
    atol=1e-4,
)


@test_case(points=points)
def test_decode_boxes(decode_boxes):
    QUESTION.assert_passes(decode_boxes)
