"""Exercise 6, question 3: what factorising an n x n convolution saves, ``factorised_macs``.

Inception v3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR
2016, https://arxiv.org/abs/1512.00567, section 3.2) replaces an n x n convolution by a 1 x n
convolution followed by an n x 1 one, which sees the same n x n window. The reference counts the
multiply-adds of both versions (``padding`` keeps the size) with ``companion.count`` on
``nn.Conv2d`` layers; each known mistake is a wrong count of the factorised pair.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from torch import nn
from otter.test_files import test_case

from companion.count import count_flops
from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 2


def torch_factorised_macs(c_in, c_mid, c_out, n, height, width):
    """(multiply-adds of the n x n convolution, of the 1 x n then n x 1 pair), counted on nn.Conv2d layers."""
    full = nn.Conv2d(c_in, c_out, n, padding=n // 2)
    pair = nn.Sequential(nn.Conv2d(c_in, c_mid, (1, n), padding=(0, n // 2)),
                         nn.Conv2d(c_mid, c_out, (n, 1), padding=(n // 2, 0)))
    return count_flops(full, (c_in, height, width)), count_flops(pair, (c_in, height, width))


def pair_as(count):
    return lambda *args: (torch_factorised_macs(*args)[0], count(*args))


# (c_in, c_mid, c_out, n) of each case; the grid size is random. Inception v3's 17x17 modules
# (n = 7, 768 channels, 128 to 192 in the middle), and small ones with c_mid != c_out.
SETTINGS = [(768, 128, 192, 7), (768, 160, 160, 7), (128, 128, 128, 7), (64, 32, 96, 3), (5, 3, 7, 5),
            (12, 4, 6, 3), (9, 11, 2, 5), (16, 8, 8, 9)]


def cases(draw):
    found = []
    for c_in, c_mid, c_out, n in SETTINGS:
        height, width = draw.int(4, 17), draw.int(4, 17)
        found.append(Case((c_in, c_mid, c_out, n, height, width),
                          f"c_in={c_in}, c_mid={c_mid}, c_out={c_out}, n={n}, height={height}, width={width}"))
    return found


FORBIDDEN = Forbidden(
    ops=("aten.convolution", "aten._convolution", "aten.conv2d", "aten.mkldnn_convolution"),
    modules=("companion.count",),
    names=("Conv2d", "conv2d", "count_flops", "layer_table"),
    what="the count (with the formula, not by building the layers)",
)

QUESTION = Question(
    name="q3",
    function="factorised_macs",
    points=points,
    reference=torch_factorised_macs,
    oracle="companion.count.count_flops on nn.Conv2d layers",
    cases=cases,
    mistakes=(
        Mistake("each factor is counted as an n x n convolution: a 1 x n kernel has n taps, not n * n, and so has "
                "an n x 1 kernel.",
                value=pair_as(lambda ci, cm, co, n, h, w: h * w * (ci * cm + cm * co) * n * n)),
        Mistake("c_mid is ignored: the 1 x n convolution maps c_in to c_mid channels and the n x 1 one maps c_mid "
                "to c_out.", value=pair_as(lambda ci, cm, co, n, h, w: 2 * h * w * ci * co * n)),
        Mistake("the two factors are multiplied instead of added: the pair runs one convolution after the other, "
                "so their costs add up.",
                value=pair_as(lambda ci, cm, co, n, h, w: (h * w * ci * cm * n) * (h * w * cm * co * n))),
        Mistake("multiply-adds are counted as two operations: count one multiply-add per weight per output "
                "position (the papers' convention).",
                value=lambda *args: tuple(2 * m for m in torch_factorised_macs(*args))),
        Mistake("the counts are per output position: multiply by the height * width positions (padding keeps "
                "the size).", value=lambda ci, cm, co, n, h, w: (ci * co * n * n, (ci * cm + cm * co) * n)),
    ),
    hints=(
        "A convolution costs (output positions) * (output channels) * (input channels) * (taps of its kernel) "
        "multiply-adds.",
        "The factorised version is two convolutions in a row: which channels does each read and write, and "
        "how many taps does each kernel have?",
        "Check yourself: with c_in = c_mid = c_out, the pair costs 2 / n of the n x n convolution.",
    ),
    forbidden=FORBIDDEN,
)


@test_case(points=points)
def test_factorised_macs(factorised_macs):
    QUESTION.assert_passes(factorised_macs)
