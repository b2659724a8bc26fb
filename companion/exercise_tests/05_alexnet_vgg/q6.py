"""Exercise 5, question 6: find the bug in a colleague's colour covariance for fancy PCA, ``rgb_covariance``.

AlexNet's "fancy PCA" (Krizhevsky, Sutskever & Hinton, 2012, Section 4.1) shifts the colours of a
training image along the principal components of the 3x3 covariance of the RGB values over all
training pixels. The notebook shows a colleague's covariance that centres each *pixel* (the mean
of its three values) instead of each *channel* (the mean over the pixels): a typical bug, which
removes brightness, the strongest component of natural images, and leaves a matrix of rank 2.
The learner writes the fixed function. The reference is ``torch.cov`` of the transposed pixel
matrix (variables in rows), divided by N - 1.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q6"
points = 2


def torch_rgb_covariance(pixels):
    return torch.cov(pixels.T)  # (3, N): torch.cov wants one variable per row


def centred_over(pixels, dim, correction=1):
    centred = pixels - pixels.mean(dim=dim, keepdim=True)
    return centred.T @ centred / (pixels.shape[0] - correction)  # (3, 3)


def pixel_gram(value, expected, args):
    """The covariance of the pixels, (N, N), instead of the channels', (3, 3)."""
    (pixels,) = args
    return isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == pixels.shape[0] != 3


# (N,) of each case: a few pixels, where N - 1 and N differ visibly, and more. The pixels are
# random RGB values in [0, 1] with correlated channels, like those of photographs.
SIZES = [5, 8, 12, 40, 200, 7]


def cases(draw):
    found = []
    for n in SIZES:
        brightness = draw.uniform(0.2, 0.8) + 0.2 * draw.normal(n, 1)  # (N, 1): shared by the channels
        pixels = (brightness + 0.05 * draw.normal(n, 3)).clamp(0, 1)  # (N, 3)
        found.append(Case((pixels,), f"pixels of shape ({n}, 3)"))
    return found


COVARIANCE = Forbidden(
    functions=("torch.cov", "torch.corrcoef", "numpy.cov", "numpy.corrcoef"),
    modules=("companion.augment",),
    names=("cov", "corrcoef", "rgb_covariance", "principal_components"),
    what="the covariance",
)

QUESTION = Question(
    name="q6",
    function="rgb_covariance",
    points=points,
    reference=torch_rgb_covariance,
    oracle="torch.cov(pixels.T)",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's bug: each pixel is centred on the mean of its own three values "
                "(dim=1). The covariance of the channels centres each channel on its mean over all the pixels "
                "(dim=0); centring each pixel removes brightness, the strongest component.",
                value=lambda p: centred_over(p, 1)),
        Mistake("the pixels are not centred: subtract each channel's mean over the pixels before multiplying.",
                value=lambda p: p.T @ p / (p.shape[0] - 1)),
        Mistake("divided by N: the question asks for N - 1, as torch.cov and np.cov do.",
                value=lambda p: centred_over(p, 0, correction=0)),
        Mistake("that is an (N, N) matrix, one entry per pair of pixels: the covariance of the colour channels "
                "is (3, 3), centred.T @ centred for centred of shape (N, 3).", matches=pixel_gram),
    ),
    hints=(
        "Run the colleague's cell: which axis does their mean run over, and what shape does it have before "
        "keepdim broadcasts it?",
        "A channel's mean is one number per channel: three numbers in all, each over the N pixels.",
        "With centred of shape (N, 3), the (3, 3) matrix of sums of products is centred.T @ centred; divide by "
        "N - 1.",
    ),
    forbidden=COVARIANCE,
    rtol=1e-5,
    atol=1e-8,
)


@test_case(points=points)
def test_rgb_covariance(rgb_covariance):
    QUESTION.assert_passes(rgb_covariance)
