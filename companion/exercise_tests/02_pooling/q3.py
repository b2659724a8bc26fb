"""Exercise 2, question 3: max pooling, ``max_pool2d``.

The reference is ``torch.nn.functional.max_pool2d``; each known mistake is a torch call on
changed arguments (stride 1, average pooling, ...). An otter-grader exception-based test file that
also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def torch_max_pool2d(x, kernel_size, stride=None):
    return F.max_pool2d(x, kernel_size, stride)


# (kernel_size, stride, shift, leftover) of each case: a negative shift makes whole windows
# negative; a leftover row/column that no window covers tells floor from ceil.
SETTINGS = [(2, None, 0, 1), (3, None, 0, 0), (2, 1, 0, 0), (3, 2, 0, 1), (2, 2, -3, 0), (2, None, -3, 1),
            (3, 1, 0, 0), (2, 3, 0, 1)]


def cases(draw):
    found = []
    for kernel_size, stride, shift, leftover in SETTINGS:
        step = stride or kernel_size
        n, c = draw.int(1, 2), draw.int(1, 3)
        h = kernel_size + step * draw.int(1, 3) + leftover
        w = kernel_size + step * draw.int(1, 3) + draw.int(0, 1)
        x = draw.normal(n, c, h, w) + shift
        found.append(Case((x, kernel_size, stride),
                          f"x of shape ({n}, {c}, {h}, {w}), kernel_size={kernel_size}, stride={stride}"))
    return found


def size_off_by_one(value, expected, args):
    return (isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[:2] == expected.shape[:2]
            and value.shape != expected.shape and all(abs(a - b) <= 1 for a, b in zip(value.shape[2:], expected.shape[2:])))


FORBIDDEN = Forbidden(
    ops=("aten.max_pool2d_with_indices", "aten.max_pool2d", "aten.max_pool1d", "aten.max_pool1d_with_indices",
         "aten.max_pool3d_with_indices", "aten.adaptive_max_pool2d", "aten.adaptive_max_pool1d",
         "aten.fractional_max_pool2d", "aten.mkldnn_max_pool2d", "aten.adaptive_max_pool3d",
         "aten.fractional_max_pool3d", "aten.quantized_max_pool1d", "aten.quantized_max_pool2d",
         "aten.quantized_max_pool3d", "torchvision.roi_pool", "torchvision.ps_roi_pool"),
    modules=("companion.pool", "torchvision.ops.roi_pool", "torchvision.ops.ps_roi_pool", "scipy.ndimage", "cv2",
             "skimage.measure", "skimage.filters", "skimage.morphology"),
    names=("max_pool1d", "max_pool2d", "max_pool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d", "adaptive_max_pool2d",
           "AdaptiveMaxPool2d", "max_pool2d_with_indices", "roi_pool", "RoIPool", "maximum_filter",
           "block_reduce"),
    what="max pooling",
)

QUESTION = Question(
    name="q3",
    function="max_pool2d",
    points=points,
    reference=torch_max_pool2d,
    oracle="torch.nn.functional.max_pool2d",
    cases=cases,
    mistakes=(
        Mistake("stride=None is taken as 1: like PyTorch, stride=None must mean stride = kernel_size "
                "(non-overlapping windows).",
                value=lambda x, k, s: F.max_pool2d(x, k, 1) if s is None else F.max_pool2d(x, k, s)),
        Mistake("the stride is ignored: the windows must move `stride` positions at a time (kernel_size "
                "positions when stride is None).",
                value=lambda x, k, s: F.max_pool2d(x, k, 1) if (s or k) > 1 else None),
        Mistake("this is average pooling: take the maximum of each window, not its mean.",
                value=lambda x, k, s: F.avg_pool2d(x, k, s)),
        Mistake("the running maximum starts at 0, so a window of negative numbers gives 0: start from the "
                "window's first value or from -inf (or use .max()/.amax()).",
                value=lambda x, k, s: F.max_pool2d(x, k, s).clamp(min=0)),
        Mistake("this takes the largest absolute value: the maximum of -5 and 2 is 2.",
                value=lambda x, k, s: F.max_pool2d(x.abs(), k, s)),
        Mistake("channels are mixed: each window's maximum is taken over all channels. Pool every "
                "(image, channel) map on its own.",
                value=lambda x, k, s: F.max_pool2d(x, k, s).amax(1, keepdim=True).expand(
                    -1, x.shape[1], -1, -1) if x.shape[1] > 1 else None),  # (N, 1, H', W') -> (N, C, H', W')
        Mistake("windows that stick out of the input are kept: like PyTorch (ceil_mode=False), keep only "
                "windows that fit inside, H' = (H - kernel_size) // stride + 1.",
                value=lambda x, k, s: F.max_pool2d(x, k, s, ceil_mode=True)),
        Mistake("the output size is off by one: H' = (H - kernel_size) // stride + 1, and likewise W'.",
                matches=size_off_by_one),
    ),
    hints=(
        "Work out the output shape (N, C, H', W') first: it is the convolution output-size formula "
        "without padding.",
        "If stride is None, use stride = kernel_size.",
        "Output (i, j) is the maximum of x[:, :, i*stride : i*stride + k, j*stride : j*stride + k] over its "
        "last two axes, for every image and channel at once (.amax(dim=(-2, -1))).",
    ),
    forbidden=FORBIDDEN,
)


@test_case(points=points)
def test_max_pool2d(max_pool2d):
    QUESTION.assert_passes(max_pool2d)
