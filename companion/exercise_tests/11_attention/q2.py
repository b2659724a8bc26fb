"""Exercise 11, question 2: cutting an image into patch vectors, ``patchify``.

The reference is torch's ``F.unfold`` with kernel and stride ``p``: it lists the patches row by
row, each flattened in (channel, row, column) order, which is the order in which a ``p x p``
convolution with stride ``p`` (the ViT's patch embedding) reads them. Each known mistake is the
same patches in another order. An otter-grader exception-based test file that also defines
``QUESTION`` for ``companion.grade``.
"""

import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2


def reference(x, patch_size):
    return F.unfold(x, kernel_size=patch_size, stride=patch_size).transpose(1, 2)  # (N, P, C*p*p)


def grid(x, p):
    """The patches as a 6-D tensor (N, C, rows, p, cols, p)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // p, p, w // p, p)


def variant(order):
    """Patches with their axes in ``order`` (letters of 'nchpwq': batch, channel, patch row, row in
    patch, patch column, column in patch); the first three after n index the patch, the rest its vector."""

    def patches(x, p):
        n, _, h, w = x.shape
        axes = ["nchpwq".index(a) for a in order]
        return grid(x, p).permute(*axes).reshape(n, (h // p) * (w // p), -1)  # (N, P, C*p*p)

    return patches


def not_transposed(x, p):
    return reference(x, p).transpose(1, 2)  # (N, C*p*p, P)


def cases(draw):
    found = []
    for n, c, h, w, p in [(2, 3, 8, 8, 4), (1, 2, 6, 9, 3), (3, 1, 10, 4, 2), (2, 4, 12, 8, 4), (1, 3, 14, 14, 7),
                          (2, 2, 6, 6, 2)]:
        found.append(Case((draw.normal(n, c, h, w), p), f"x of shape {(n, c, h, w)}, patch_size={p}"))
    return found


PATCHES = CONVOLUTION.extended(  # CONVOLUTION.modules is companion.conv
    ops=("aten.im2col",), modules=("companion.models.vit",), names=("Unfold", "im2col"), what="the patch extraction")

QUESTION = Question(
    name="q2",
    function="patchify",
    points=points,
    reference=reference,
    oracle="torch.nn.functional.unfold(x, patch_size, stride=patch_size).transpose(1, 2)",
    cases=cases,
    mistakes=(
        Mistake("the patches are listed column by column: number them row by row, left to right within a row "
                "(patch k sits at row k // (W / p), column k % (W / p)), as the position embeddings expect.",
                value=variant("nwhcpq")),
        Mistake("each patch is flattened with the channel last, (row, column, channel): flatten it channel "
                "first, (channel, row, column), the order of a convolution's weight (C, p, p).",
                value=variant("nhwpqc")),
        Mistake("inside each patch, rows and columns are swapped: flatten a patch row by row, "
                "(channel, row, column), not column by column.", value=variant("nhwcqp")),
        Mistake("the result is (N, patch_dim, num_patches): one row per patch is expected, (N, num_patches, "
                "patch_dim), so transpose the last two axes.", value=not_transposed),
    ),
    hints=(
        "Start with reshape: (N, C, H, W) -> (N, C, H/p, p, W/p, p) splits each axis into (which patch, "
        "where inside it). No data moves yet.",
        "Then permute so that the two 'which patch' axes come right after N and the three 'inside the patch' "
        "axes (C, p, p) come last, and reshape to (N, num_patches, C*p*p).",
        "Test on a tiny image whose pixels are numbered 0, 1, 2, ... (torch.arange): patch 0 must start "
        "with pixels 0, 1, ..., p - 1 of channel 0.",
    ),
    forbidden=PATCHES,
)


@test_case(points=points)
def test_patchify(patchify):
    QUESTION.assert_passes(patchify)
