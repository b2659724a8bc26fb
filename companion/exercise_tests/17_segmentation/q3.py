"""Exercise 17, question 3: the skip connection of the unpadded U-Net, ``crop_and_concat``.

In Ronneberger et al.'s U-Net (2015, https://arxiv.org/abs/1505.04597) the 3x3 convolutions are
unpadded, so an encoder map is larger than the decoder map of the same level (64x64 against 56x56
at the top of the paper's figure 1). The skip connection crops the encoder map around its centre
to the decoder map's size and concatenates the two along the channels, the encoder's first. The
learner writes ``crop_and_concat(skip, x)``; the reference is written with slicing and
``torch.cat``. The known mistakes: a crop from the top-left corner, the two maps in the other
order, the encoder map resized instead of cropped, the height's margin used for the width too,
and the maps added instead of concatenated.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def crop(skip, h, w, *, corner=False):
    dh, dw = skip.shape[-2] - h, skip.shape[-1] - w
    top, left = (0, 0) if corner else (dh // 2, dw // 2)
    return skip[..., top:top + h, left:left + w]  # (N, C_skip, h, w)


def reference(skip, x):
    return torch.cat([crop(skip, *x.shape[-2:]), x], dim=1)  # (N, C_skip + C_x, h, w)


def corner(skip, x):
    return torch.cat([crop(skip, *x.shape[-2:], corner=True), x], dim=1)


def swapped(skip, x):
    return torch.cat([x, crop(skip, *x.shape[-2:])], dim=1)


def resized(skip, x):
    return torch.cat([F.interpolate(skip, size=x.shape[-2:], mode="bilinear", align_corners=False), x], dim=1)


def same_margin(skip, x):
    h, w = x.shape[-2:]
    dh, dw = skip.shape[-2] - h, skip.shape[-1] - w
    if dh == dw or dh // 2 + w > skip.shape[-1]:
        return None  # the mistake cannot show, or cannot run
    top = left = dh // 2
    return torch.cat([skip[..., top:top + h, left:left + w], x], dim=1)


def added(got, expected, args):
    skip, x = args
    if skip.shape[1] != x.shape[1] or not isinstance(got, torch.Tensor):
        return None
    return got.shape == x.shape and torch.allclose(got, crop(skip, *x.shape[-2:]) + x)


def cases(draw):
    found = []
    for n, c_skip, c_x, (h, w), (dh, dw) in [(2, 4, 4, (6, 6), (8, 8)), (1, 3, 5, (5, 7), (4, 2)),
                                             (2, 6, 6, (8, 4), (2, 6)), (3, 2, 3, (3, 3), (4, 4))]:
        skip = torch.randn(n, c_skip, h + dh, w + dw, generator=draw.generator)
        x = torch.randn(n, c_x, h, w, generator=draw.generator)
        found.append(Case((skip, x), f"skip {tuple(skip.shape)}, x {tuple(x.shape)}"))
    return found


QUESTION = Question(
    name="q3",
    function="crop_and_concat",
    points=points,
    reference=reference,
    oracle="the centre crop and torch.cat written out",
    cases=cases,
    mistakes=(
        Mistake("the encoder map is cropped from its top-left corner, which shifts it against the decoder map: "
                "crop around the centre, dropping (H_skip - H) // 2 rows above and as many below.", value=corner),
        Mistake("the two maps are concatenated in the other order: the encoder's (skip) channels come first, "
                "then the decoder's.", value=swapped),
        Mistake("the encoder map is resized, which blurs and shifts the detail the skip is there to carry; the "
                "paper crops it (the missing border was lost to the unpadded convolutions).", value=resized),
        Mistake("the height's margin is used for the width too: the two margins differ when the maps are not "
                "square, (H_skip - H) // 2 rows and (W_skip - W) // 2 columns.", value=same_margin),
        Mistake("the maps are added, not concatenated: a U-Net's skip stacks the encoder's channels next to the "
                "decoder's (torch.cat along dim=1), so the result has C_skip + C channels.", matches=added),
    ),
    hints=(
        "Draw a 64x64 map with a 56x56 one centred on it: how many rows stick out above? How many to the left?",
        "Slice the skip as skip[:, :, top:top + H, left:left + W], then torch.cat along the channels (dim=1).",
        "Test on a non-square case, e.g. skip (1, 2, 9, 13) and x (1, 3, 5, 7).",
    ),
    forbidden=Forbidden(modules=("companion.models.unet", "torchvision.transforms"),
                        names=("center_crop", "CenterCrop"),
                        what="the crop"),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_crop_and_concat(crop_and_concat):
    QUESTION.assert_passes(crop_and_concat)
