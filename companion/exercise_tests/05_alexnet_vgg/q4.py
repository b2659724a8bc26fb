"""Exercise 5, question 4: find the bug in a colleague's local response normalisation, ``local_response_norm``.

The notebook shows a colleague's version that slides its window along the width (the last axis,
where ``F.pad(x, (a, b))`` pads) instead of across the channels: a typical bug, since the
normalisation looks the same along any axis. The learner writes the fixed function.

AlexNet's normalisation divides each activation by a power of the energy of its neighbouring
channels at the same position. The reference is ``torch.nn.functional.local_response_norm``
(which divides ``alpha`` by ``size``, unlike the paper's formula). Each known mistake is the same
normalisation written with one thing changed (the paper's ``alpha``, a window that is not
centred, the squares or the power forgotten, ...). The cases use large ``alpha`` so that every
term shows in the output.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 3


def torch_lrn(x, size, alpha, beta, k):
    return F.local_response_norm(x, size, alpha=alpha, beta=beta, k=k)


def written_out(x, size, alpha, beta, k, *, before=None, after=None, square=True, per_size=True, count_pad=True,
                power=True, use_k=True):
    """The normalisation with an explicit window over the channels, with the mistakes' variants."""
    channels = x.shape[1]
    before = size // 2 if before is None else before  # torch's window: c - size//2 .. c + (size-1)//2
    after = (size - 1) // 2 if after is None else after
    energy = x * x if square else x
    total = torch.zeros_like(x)
    count = torch.zeros(channels, dtype=x.dtype)
    for c in range(channels):
        lo, hi = max(0, c - before), min(channels - 1, c + after)
        total[:, c] = energy[:, lo:hi + 1].sum(dim=1)  # (N, H, W)
        count[c] = hi - lo + 1
    mean = total / (size if count_pad else count.view(1, -1, 1, 1))  # (N, C, H, W)
    scale = (k if use_k else 0.0) + (alpha * mean if per_size else alpha * total)
    return x / (scale ** beta if power else scale)


def variant(**changes):
    return lambda *args: written_out(*args, **changes)


def forward_window(x, size, alpha, beta, k):
    return None if size == 1 else written_out(x, size, alpha, beta, k, before=0, after=size - 1)


def mirrored_window(x, size, alpha, beta, k):
    return None if size % 2 else written_out(x, size, alpha, beta, k, before=(size - 1) // 2, after=size // 2)


def spatial_window(x, size, alpha, beta, k):
    """The colleague's bug: the window runs over neighbouring columns (or rows), not channels.

    Returns the variant along the width and along the height, for ``matches`` to compare with both.
    """
    found = []
    for axis in (3, 2):
        moved = x.movedim(axis, 1)  # the spatial axis where the channels should be
        found.append(written_out(moved, size, alpha, beta, k).movedim(1, axis))
    return found


def wrong_axis(value, expected, args):
    if not isinstance(value, torch.Tensor) or value.shape != expected.shape:
        return False
    return any(torch.allclose(value.double(), v.double(), rtol=1e-5, atol=1e-7) for v in spatial_window(*args))


SETTINGS = [  # (N, C, H, W, size)
    (2, 6, 3, 3, 3), (1, 7, 2, 4, 5), (2, 5, 3, 2, 2), (1, 8, 2, 2, 4), (2, 4, 3, 3, 1), (1, 6, 4, 3, 6),
    (2, 9, 2, 2, 5), (1, 3, 5, 5, 2),
]


def cases(draw):
    found = []
    for n, c, h, w, size in SETTINGS:
        x = draw.normal(n, c, h, w, scale=1.5).abs()  # non-negative, like the ReLU outputs AlexNet normalises
        alpha, beta, k = draw.uniform(0.5, 3.0), draw.uniform(0.5, 1.0), draw.uniform(1.0, 2.5)
        found.append(Case((x, size, alpha, beta, k),
                          f"x of shape ({n}, {c}, {h}, {w}), size={size}, alpha={alpha:.3f}, beta={beta:.3f}, "
                          f"k={k:.3f}"))
    return found


LRN = Forbidden(
    ops=("aten.avg_pool3d", "aten.avg_pool2d", "aten.avg_pool1d"),  # what F.local_response_norm runs
    functions=("torch.nn.functional.local_response_norm",),
    modules=("torch.nn.modules.normalization",),
    names=("local_response_norm", "LocalResponseNorm"),
    what="the normalisation",
)

QUESTION = Question(
    name="q4",
    function="local_response_norm",
    points=points,
    reference=torch_lrn,
    oracle="torch.nn.functional.local_response_norm",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's bug: the window slides over neighbouring columns or rows of one "
                "channel. Local response normalisation sums the squares of neighbouring *channels* at the same "
                "position: the window runs along dim 1 of (N, C, H, W).", matches=wrong_axis),
        Mistake("alpha is not divided by size: that is the 2012 paper's formula; PyTorch (like Caffe) averages "
                "the squares over the window, k + alpha / size * sum.", value=variant(per_size=False)),
        Mistake("the window is not centred on the channel: it runs from c - size // 2 to c + (size - 1) // 2.",
                value=forward_window),
        Mistake("for an even size the window is shifted by one channel: it runs from c - size // 2 to "
                "c + (size - 1) // 2, one more channel before c than after it.", value=mirrored_window),
        Mistake("the edges are averaged over the channels that exist: the channels beyond the first and the last "
                "count as zeros, and the sum is always divided by size.", value=variant(count_pad=False)),
        Mistake("the activations are not squared: the window sums the squares x ** 2 of the neighbouring "
                "channels.", value=variant(square=False)),
        Mistake("the power beta is forgotten: the divisor is (k + alpha / size * sum) ** beta.",
                value=variant(power=False)),
        Mistake("k is forgotten: the divisor starts from k, (k + alpha / size * sum) ** beta.",
                value=variant(use_k=False)),
    ),
    hints=(
        "Run the colleague's cell: which axis of x does their F.pad pad, and which axis does their window slide "
        "along? Which one should it be?",
        "Work on one channel c first: which channels are in its window, and what happens near channel 0 and "
        "channel C - 1?",
        "Square x once, then for each channel sum the squares of its window over the channel axis (dim 1); the "
        "positions (H, W) and the images (N) are independent.",
        "Compare with F.local_response_norm on a small x of 5 channels and size 3, with alpha=1 so that the "
        "normalisation is large enough to see.",
    ),
    forbidden=LRN,
    rtol=1e-6,
    atol=1e-8,
)


@test_case(points=points)
def test_local_response_norm(local_response_norm):
    QUESTION.assert_passes(local_response_norm)
