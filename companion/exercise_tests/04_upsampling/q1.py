"""Exercise 4, question 1: find the bug in a colleague's ``source_coordinate``, where an output pixel reads the input.

The notebook shows a colleague's version that is right for ``align_corners=True`` and half a pixel
off for ``align_corners=False``: it scales the pixel *index* instead of the pixel *centre* (a
typical bug: the "half-pixel offset" of OpenCV and TensorFlow 2's ``half_pixel_centers``). The
learner writes the fixed function.

The reference is torch itself: ``F.interpolate(mode="linear")`` applied to the ramp
``0, 1, ..., in_size - 1`` returns, at output index ``i``, the (clamped) input position it reads.
The two conventions (``align_corners``) are laid out in chapter 4 and in ``companion.upsample``.
An otter-grader exception-based test file that also defines ``QUESTION`` for
``companion.grade``.
"""

import math

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2


def torch_source_coordinate(i, in_size, out_size, align_corners):
    """The input position output index i reads: torch's linear interpolation of the ramp 0..in_size-1."""
    ramp = torch.arange(in_size, dtype=torch.float64)[None, None]  # (N=1, C=1, L)
    out = F.interpolate(ramp, size=out_size, mode="linear", align_corners=align_corners)  # (1, 1, out_size)
    return float(out[0, 0, i])


def formula(i, in_size, out_size, align_corners, *, offset=(0.5, 0.5), inverted=False, clamp=True):
    """The source coordinate written out, with the variants the known mistakes use."""
    n_in, n_out = (out_size, in_size) if inverted else (in_size, out_size)
    if align_corners:
        u = i * (n_in - 1) / (n_out - 1)
    else:
        u = (i + offset[0]) * n_in / n_out - offset[1]
    return min(max(u, 0.0), in_size - 1.0) if clamp else u


# (align_corners, in_size, out_size) of each case; the output index is random, and the
# first and last indices are drawn too (the borders are where the clamping shows).
SETTINGS = [(False, 4, 8), (False, 4, 8), (False, 5, 3), (False, 3, 7), (False, 6, 4), (False, 2, 9),
            (True, 4, 8), (True, 5, 3), (True, 3, 7), (True, 7, 4), (False, 4, 8), (True, 2, 9)]


def cases(draw):
    found = []
    for k, (align_corners, in_size, out_size) in enumerate(SETTINGS):
        i = {0: 0, 1: out_size - 1}.get(k, draw.int(1, out_size - 2))
        found.append(Case((i, in_size, out_size, align_corners),
                          f"i={i}, in_size={in_size}, out_size={out_size}, align_corners={align_corners}"))
    return found


def _same(value, candidate):
    return type(value) in (int, float) and math.isclose(value, candidate, rel_tol=1e-6, abs_tol=1e-9)


def other_convention(value, expected, args):
    i, n_in, n_out, align_corners = args
    return _same(value, torch_source_coordinate(i, n_in, n_out, not align_corners)) or _same(
        value, formula(i, n_in, n_out, not align_corners, clamp=False))


def no_half_pixel(value, expected, args):
    i, n_in, n_out, align_corners = args
    if align_corners:
        return None
    return any(_same(value, formula(i, n_in, n_out, False, offset=offset, clamp=clamp))
               for offset in ((0, 0), (0.5, 0), (0, 0.5)) for clamp in (True, False))


def inverted_scale(value, expected, args):
    i, n_in, n_out, align_corners = args
    return any(_same(value, formula(i, n_in, n_out, align_corners, inverted=True, clamp=clamp)) for clamp in (True, False))


def not_clamped(value, expected, args):
    return _same(value, formula(*args, clamp=False))


UPSAMPLING = Forbidden(
    ops=("aten.upsample_linear1d", "aten.upsample_bilinear2d", "aten._upsample_bilinear2d_aa",
         "aten.upsample_nearest1d", "aten.upsample_nearest2d", "aten._upsample_nearest_exact1d",
         "aten._upsample_nearest_exact2d", "aten.upsample_bicubic2d", "aten.grid_sampler_2d", "aten.grid_sampler",
         "aten.upsample_trilinear3d", "aten.upsample_nearest3d", "aten._upsample_nearest_exact3d",
         "aten._upsample_bicubic2d_aa", "aten._upsample_lanczos2d_aa", "aten.grid_sampler_3d",
         "aten._grid_sampler_2d_cpu_fallback", "torchvision.roi_align", "torchvision.ps_roi_align"),
    modules=("companion.upsample", "torchvision.ops.roi_align", "torchvision.ops.ps_roi_align", "torchvision.transforms",
             "scipy.ndimage", "scipy.interpolate", "cv2", "skimage.transform", "PIL"),
    names=("interpolate", "upsample", "Upsample", "upsample_bilinear", "UpsamplingBilinear2d", "UpsamplingNearest2d",
           "grid_sample", "source_coordinates", "bilinear_resize", "roi_align", "RoIAlign", "zoom", "map_coordinates"),
    what="the interpolation",
)

QUESTION = Question(
    name="q1",
    function="source_coordinate",
    points=points,
    reference=torch_source_coordinate,
    oracle="torch.nn.functional.interpolate (mode='linear') applied to the ramp 0, 1, ..., in_size - 1",
    cases=cases,
    mistakes=(
        Mistake("align_corners is mixed up: align_corners=True lines up the centres of the corner pixels, "
                "u = i * (in_size - 1) / (out_size - 1); align_corners=False lines up the outer edges of the "
                "pixel grids, u = (i + 0.5) * in_size / out_size - 0.5.", matches=other_convention),
        Mistake("this is still the colleague's bug: the half-pixel offset is missing. With align_corners=False, "
                "pixel i covers [i, i + 1) and its centre is at i + 0.5: scale the centre, not the index, and "
                "take the half pixel off again in input units.", matches=no_half_pixel),
        Mistake("the scale is inverted: one output step is in_size / out_size input steps (smaller than 1 when "
                "upsampling), not out_size / in_size.", matches=inverted_scale),
        Mistake("the coordinate is not clamped: near the borders u can fall outside the image, and torch reads "
                "the nearest position inside it, between 0 and in_size - 1.", matches=not_clamped),
    ),
    hints=(
        "Run the colleague's cell: for align_corners=False, by how much is every one of their positions off "
        "torch's, in output pixels and in input pixels?",
        "With align_corners=False, draw the pixels as unit squares: output pixel i has its centre at i + 0.5 in "
        "output units. Convert that point to input units, then to an input index (centres at j + 0.5).",
        "Clamp the result into [0, in_size - 1].",
    ),
    forbidden=UPSAMPLING,
)


@test_case(points=points)
def test_source_coordinate(source_coordinate):
    QUESTION.assert_passes(source_coordinate)
