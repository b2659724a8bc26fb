"""Exercise 13, question 4: a random resized crop as one affine map, ``crop_theta``.

SimCLR's most important augmentation is the random resized crop (Chen et al., *A Simple Framework
for Contrastive Learning of Visual Representations*, ICML 2020, https://arxiv.org/abs/2002.05709,
section 3 and Figure 5). The companion makes all the crops of a batch at once with
``F.affine_grid`` and ``F.grid_sample``; the learner writes the 2x3 matrix ``theta`` of one crop.
The grader resamples a random image with the learner's ``theta`` and compares the result with
torchvision's ``resized_crop`` (followed by ``horizontal_flip`` when asked), away from the crop's
outer rows and columns, where torchvision clamps to the box and ``grid_sample`` reads the image's
neighbouring pixels. An otter-grader exception-based test file that also defines ``QUESTION`` for
``companion.grade``.
"""

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 3


def resample(theta, x):
    """The crop that ``theta`` describes, at the image's size; its inner pixels."""
    if not isinstance(theta, torch.Tensor) or tuple(theta.shape) != (2, 3):
        got = tuple(theta.shape) if isinstance(theta, torch.Tensor) else type(theta).__name__
        raise ValueError(f"crop_theta must return a tensor of shape (2, 3), got {got}")
    grid = F.affine_grid(theta.to(x.dtype)[None], list(x.shape), align_corners=False)  # (1, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)[..., 1:-1, 1:-1]


def apply_crop_theta(crop_theta, x, top, left, height, width, flip):
    theta = crop_theta(top, left, height, width, x.shape[-2], x.shape[-1], flip)
    return resample(theta, x)


def reference(x, top, left, height, width, flip):
    out = TF.resized_crop(x, top, left, height, width, list(x.shape[-2:]), antialias=False)
    return (TF.horizontal_flip(out) if flip else out)[..., 1:-1, 1:-1]


def theta_formula(top, left, height, width, image_height, image_width, flip, *, centre="middle",
                  scale="fraction", swap=False, use_flip=True):
    """theta written out, right with the defaults, or with one thing changed."""
    h, w = image_height, image_width
    if centre == "middle":
        cx, cy = (left + width / 2) / w * 2 - 1, (top + height / 2) / h * 2 - 1
    elif centre == "corner":
        cx, cy = left / w * 2 - 1, top / h * 2 - 1
    else:  # pixel centres at -1 and 1 (align_corners=True)
        cx, cy = (left + (width - 1) / 2) / (w - 1) * 2 - 1, (top + (height - 1) / 2) / (h - 1) * 2 - 1
    sx, sy = (width / w, height / h) if scale == "fraction" else (w / width, h / height)
    if swap:
        cx, cy, sx, sy = cy, cx, sy, sx
    if flip and use_flip:
        sx = -sx
    return torch.tensor([[sx, 0.0, cx], [0.0, sy, cy]], dtype=torch.float64)


def variant(**changes):
    def value(x, top, left, height, width, flip):
        if changes.get("use_flip") is False and not flip:
            return None
        if changes.get("swap") and (height, width, top, left) == (width, height, left, top) \
                and x.shape[-1] == x.shape[-2]:
            return None
        return resample(theta_formula(top, left, height, width, x.shape[-2], x.shape[-1], flip, **changes), x)
    return value


# (image height, image width, top, left, crop height, crop width, flip)
SETTINGS = [(28, 28, 4, 6, 14, 14, False), (28, 28, 0, 0, 20, 12, True), (20, 24, 3, 9, 10, 12, False),
            (16, 16, 5, 2, 8, 8, True), (28, 28, 7, 3, 16, 21, True)]


def cases(draw):
    found = []
    for h, w, top, left, height, width, flip in SETTINGS + [(None,) * 7]:
        if h is None:
            h, w = draw.int(12, 30), draw.int(12, 30)
            # at most a 2x zoom: then only the outer row and column see outside the box
            height, width = draw.int((h + 1) // 2, h - 1), draw.int((w + 1) // 2, w - 1)
            top, left, flip = draw.int(0, h - height), draw.int(0, w - width), bool(draw.int(0, 1))
        x = torch.rand((1, 1, h, w), generator=draw.generator, dtype=torch.float64)
        found.append(Case((x, top, left, height, width, flip),
                          f"a ({h}, {w}) image, top={top}, left={left}, height={height}, width={width}, "
                          f"flip={flip}"))
    return found


QUESTION = Question(
    name="q4",
    function="crop_theta",
    points=points,
    reference=reference,
    oracle="torchvision.transforms.v2.functional.resized_crop (then horizontal_flip)",
    cases=cases,
    call=apply_crop_theta,
    mistakes=(
        Mistake("the translation points at the crop's top-left corner: theta's last column is the crop's "
                "centre, (left + width / 2, top + height / 2) in pixels, mapped to [-1, 1].",
                value=variant(centre="corner")),
        Mistake("the scale is inverted: theta maps the output grid into the input image, so a crop a third "
                "as wide as the image has scale 1/3 (width / image_width), not 3.",
                value=variant(scale="inverse")),
        Mistake("x and y are swapped: theta's first row is x (columns: left, width, image_width), its second "
                "row y (rows: top, height, image_height).", value=variant(swap=True)),
        Mistake("the flip is ignored: a horizontal flip reverses x, which is the sign of theta[0, 0].",
                value=variant(use_flip=False)),
        Mistake("the coordinates put -1 and 1 at the centres of the outer pixels (align_corners=True); "
                "with align_corners=False, -1 and 1 are the outer edges of the image, so pixel j covers "
                "[j, j + 1) and the crop's centre is left + width / 2.", value=variant(centre="pixel")),
    ),
    hints=(
        "In grid_sample's coordinates (align_corners=False) -1 is the left edge of the image and 1 its right "
        "edge. Where do the crop's edges and its centre fall?",
        "theta maps the output's coordinates to the input's: x_in = theta[0, 0] * x_out + theta[0, 2]. The "
        "output's edges -1 and 1 must land on the crop's edges.",
        "A horizontal flip is x_out -> -x_out.",
    ),
    forbidden=Forbidden(modules=("companion.simclr",), what="the crop's matrix"),
    rtol=1e-5,
    atol=2e-5,  # theta in float32 moves a sampling point by ~1e-6 pixel
)


@test_case(points=points)
def test_crop_theta(crop_theta):
    QUESTION.assert_passes(crop_theta)
