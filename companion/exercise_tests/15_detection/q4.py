"""Exercise 15, question 4: the anchors of a feature map, ``anchor_grid``.

The reference is torchvision's ``AnchorGenerator(sizes=(sizes,), aspect_ratios=(aspect_ratios,))``
on one feature map of ``(H, W)`` cells over one image of ``(height, width)`` pixels (Ren et al.,
*Faster R-CNN*, 2015, https://arxiv.org/abs/1506.01497): ``H * W * A`` boxes, ``xyxy``, cell by
cell (rows, then columns), the ``A`` anchors of a cell ratio-major, each centred on the cell's
top-left corner ``(j * stride_w, i * stride_h)`` and rounded to whole pixels. Each known mistake is
the reference with one thing changed: anchors centred on the cell's centre (half a stride off),
the ratio taken as width / height, the anchors size-major, not rounded, or the two strides
swapped.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 3


def torchvision_anchors(feature_size, image_size, sizes, aspect_ratios):
    generator = AnchorGenerator(sizes=(tuple(sizes),), aspect_ratios=(tuple(aspect_ratios),))
    images = ImageList(torch.zeros(1, 1, *image_size), [tuple(image_size)])
    return generator(images, [torch.zeros(1, 1, *feature_size)])[0]


def written_out(feature_size, image_size, sizes, aspect_ratios, *, centre=False, inverted=False,
                size_major=False, rounded=True, swapped=False):
    """The anchors written out, right with the defaults."""
    scales = torch.tensor(sizes, dtype=torch.float32)
    ratios = torch.tensor(aspect_ratios, dtype=torch.float32)
    h_ratios = torch.sqrt(1 / ratios if inverted else ratios)
    w_ratios = 1 / h_ratios
    if size_major:
        ws, hs = (scales[:, None] * w_ratios[None]).reshape(-1), (scales[:, None] * h_ratios[None]).reshape(-1)
    else:
        ws, hs = (w_ratios[:, None] * scales[None]).reshape(-1), (h_ratios[:, None] * scales[None]).reshape(-1)
    base = torch.stack([-ws, -hs, ws, hs], dim=1) / 2
    if rounded:
        base = base.round()
    (gh, gw), (height, width) = feature_size, image_size
    sh, sw = height // gh, width // gw
    if swapped:
        sh, sw = sw, sh
    ys, xs = torch.meshgrid(torch.arange(gh) * sh, torch.arange(gw) * sw, indexing="ij")
    xs, ys = xs.float(), ys.float()
    if centre:
        xs, ys = xs + sw / 2, ys + sh / 2
    shifts = torch.stack([xs, ys, xs, ys], dim=-1).reshape(-1, 1, 4)
    return (shifts + base[None]).reshape(-1, 4)


def variant(**changes):
    def value(feature_size, image_size, sizes, aspect_ratios):
        out = written_out(feature_size, image_size, sizes, aspect_ratios, **changes)
        right = written_out(feature_size, image_size, sizes, aspect_ratios)
        return None if torch.equal(out, right) else out
    return value


def cases(draw):
    found = []
    for feature, image, sizes, ratios in [((4, 4), (64, 64), (16, 32), (0.5, 1.0, 2.0)),
                                          ((3, 5), (48, 100), (8, 24, 40), (0.5, 2.0)),
                                          ((5, 3), (100, 48), (12, 30), (1.0, 0.5)),
                                          ((2, 6), (64, 192), (20, 50, 100), (0.25, 1.0, 4.0))]:
        sizes = tuple(s + draw.int(0, 3) for s in sizes)
        found.append(Case((feature, image, sizes, ratios),
                          f"feature_size={feature}, image_size={image}, sizes={sizes}, aspect_ratios={ratios}"))
    return found


QUESTION = Question(
    name="q4",
    function="anchor_grid",
    points=points,
    reference=torchvision_anchors,
    oracle="torchvision.models.detection.anchor_utils.AnchorGenerator",
    cases=cases,
    mistakes=(
        Mistake("the anchors are half a stride off: torchvision centres the anchors of cell (i, j) on "
                "(j * stride_w, i * stride_h), the cell's top-left corner, not on its centre.",
                value=variant(centre=True)),
        Mistake("the aspect ratio is upside down: it is height / width, so ratio 2 is a tall box: "
                "height = size * sqrt(ratio), width = size / sqrt(ratio).", value=variant(inverted=True)),
        Mistake("the anchors of a cell are in the wrong order: ratio-major (all sizes of the first ratio, then "
                "all sizes of the second ratio, ...), not size-major.", value=variant(size_major=True)),
        Mistake("the corners are not rounded: torchvision rounds the corners of the anchors centred on (0, 0), "
                "(-w/2, -h/2, w/2, h/2), to whole pixels before shifting them.", value=variant(rounded=False)),
        Mistake("the strides are swapped: stride_h = height // H moves the rows (y), stride_w = width // W the "
                "columns (x).", value=variant(swapped=True)),
    ),
    hints=(
        "Start with the A anchors of cell (0, 0): each is centred on (0, 0), so (-w/2, -h/2, w/2, h/2) rounded.",
        "Then shift them to every cell: torch.meshgrid of the rows' y and the columns' x, with indexing='ij', "
        "and broadcast (H*W, 1, 4) + (1, A, 4).",
        "Compare the first rows of your answer with the chapter's table of the anchors of cell (0, 0).",
    ),
    forbidden=Forbidden(modules=("companion.boxes", "torchvision.models.detection"),
                        names=("AnchorGenerator", "anchor_boxes", "grid_anchors", "generate_anchors",
                               "DefaultBoxGenerator"),
                        what="the anchor generator"),
    rtol=1e-5,
    atol=1e-4,
)


@test_case(points=points)
def test_anchor_grid(anchor_grid):
    QUESTION.assert_passes(anchor_grid)
