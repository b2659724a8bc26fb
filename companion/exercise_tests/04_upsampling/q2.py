"""Exercise 4, question 2: bilinear resizing of one image, ``bilinear_resize``.

The reference is ``torch.nn.functional.interpolate(mode="bilinear")`` on a batch of one image;
each known mistake is torch on changed arguments (nearest neighbour, the other ``align_corners``,
height and width swapped) or a wrong border. Bilinear resizing as a fixed upsampling layer:
Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015,
https://arxiv.org/abs/1411.4038. An otter-grader exception-based test file that also defines
``QUESTION`` for ``companion.grade``.
"""

import runpy
from pathlib import Path

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 3

UPSAMPLING = runpy.run_path(str(Path(__file__).with_name("q1.py")))["UPSAMPLING"]


def torch_bilinear_resize(x, size, align_corners=False):
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=align_corners)[0]  # (C, H, W) -> (1, C, H, W) -> (C, h, w)


def unclamped_coordinates(n_in, n_out, align_corners):
    """Each output index's source coordinate before clamping, Tensor[n_out] (float64)."""
    i = torch.arange(n_out, dtype=torch.float64)
    if align_corners:
        return i * (n_in - 1) / max(n_out - 1, 1)
    return (i + 0.5) * n_in / n_out - 0.5


# (align_corners, (H, W), (h, w)) of each case; channels and values are random. Heights differ
# from widths, so that swapping them shows; upsampling makes the borders fall outside the image.
SETTINGS = [(False, (4, 5), (8, 11)), (True, (4, 5), (8, 11)), (False, (6, 4), (4, 7)), (True, (5, 3), (3, 6)),
            (False, (3, 6), (7, 9)), (True, (3, 6), (7, 9)), (False, (7, 5), (3, 10)), (False, (2, 3), (5, 8))]


def cases(draw):
    found = []
    for align_corners, (h_in, w_in), size in SETTINGS:
        c = draw.int(1, 3)
        x = draw.normal(c, h_in, w_in)
        found.append(Case((x, size, align_corners),
                          f"x of shape ({c}, {h_in}, {w_in}), size={size}, align_corners={align_corners}"))
    return found


def _same(value, candidate):
    return (isinstance(value, torch.Tensor) and value.shape == candidate.shape
            and torch.allclose(value.double(), candidate, rtol=1e-5, atol=1e-6))


def nearest_neighbour(value, expected, args):
    x, size, align_corners = args
    candidates = [F.interpolate(x[None], size=size, mode=mode)[0] for mode in ("nearest", "nearest-exact")]
    u = [unclamped_coordinates(n, m, align_corners).clamp(0, n - 1) for n, m in zip(x.shape[1:], size)]
    for pick in (torch.floor, torch.round):
        rows, cols = (pick(t).long() for t in u)
        candidates.append(x[:, rows[:, None], cols[None, :]])  # (C, h, 1) and (1, w) broadcast to (C, h, w)
    return any(_same(value, c) for c in candidates)


def other_convention(value, expected, args):
    x, size, align_corners = args
    return _same(value, torch_bilinear_resize(x, size, not align_corners))


def height_width_swapped(value, expected, args):
    x, (h, w), align_corners = args
    swapped = torch_bilinear_resize(x, (w, h), align_corners)  # (C, w, h)
    return _same(value, swapped) or _same(value, swapped.transpose(1, 2))  # (C, w, h) -> (C, h, w)


def border_only(value, expected, args):
    """Right inside, wrong only in rows or columns whose source coordinate leaves the image."""
    x, size, align_corners = args
    if not isinstance(value, torch.Tensor) or value.shape != expected.shape:
        return False
    outside = [(u < 0) | (u >= n - 1) for u, n in
               ((unclamped_coordinates(n, m, align_corners), n) for n, m in zip(x.shape[1:], size))]
    inside = ~outside[0][:, None] & ~outside[1][None, :]  # (h, 1) & (1, w) -> (h, w)
    wrong = ~torch.isclose(value.double(), expected, rtol=1e-5, atol=1e-6) | ~torch.isfinite(value)  # (C, h, w)
    return bool(wrong.any()) and not bool((wrong & inside).any())


QUESTION = Question(
    name="q2",
    function="bilinear_resize",
    points=points,
    reference=torch_bilinear_resize,
    oracle="torch.nn.functional.interpolate(x[None], size, mode='bilinear', align_corners=...)[0]",
    cases=cases,
    mistakes=(
        Mistake("this is nearest-neighbour resizing: each output pixel copies one input pixel. Bilinear "
                "resizing mixes the two neighbours floor(u) and floor(u) + 1 along each axis, with weights "
                "1 - t and t, where t = u - floor(u).", matches=nearest_neighbour),
        Mistake("align_corners is ignored or mixed up: the source coordinates depend on it (your "
                "source_coordinate from q1).", matches=other_convention),
        Mistake("height and width are swapped: size is (h, w), rows first; the row coordinates come from "
                "(H, h) and the column coordinates from (W, w).", matches=height_width_swapped),
        Mistake("the border is wrong: where the source coordinate leaves the image, clamp it into "
                "[0, H - 1] (and [0, W - 1]), and clamp the second neighbour floor(u) + 1 to the last pixel.",
                matches=border_only),
    ),
    hints=(
        "Resize one axis at a time: first the rows (height), then the columns; the result is the same as "
        "mixing four pixels at once.",
        "For each output row, your q1 function gives u; the two input rows are floor(u) and min(floor(u) + 1, H - 1).",
        "Vectorised: build index tensors for the rows and columns once, then index x[:, rows, :] and x[:, :, cols].",
    ),
    forbidden=UPSAMPLING,
)


@test_case(points=points)
def test_bilinear_resize(bilinear_resize):
    QUESTION.assert_passes(bilinear_resize)
