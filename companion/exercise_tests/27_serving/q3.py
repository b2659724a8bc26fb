"""Exercise 27, question 3: find the bugs in a colleague's server preprocessing, ``preprocess``.

The model was trained on ``ToTensor`` images: greyscale (Pillow's ``L``), 28x28, scaled to [0, 1],
no normalisation. The server must make exactly that tensor, ``(1, 1, 28, 28)``, from an uploaded
file: the reference is ``companion.serve.preprocess`` (bilinear resizing). The colleague keeps the red
channel of an RGB conversion instead of ``L`` and normalises with Fashion-MNIST's mean and standard
deviation (0.286, 0.353), which the training never did. Other known mistakes: another resampling
filter, no scaling, a missing batch axis.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import io

import numpy as np
import torch
from otter.test_files import test_case
from PIL import Image

from companion.grade import Case, Forbidden, Mistake, Question
from companion.serve import preprocess

OK_FORMAT = False
name = "q3"
points = 3


def png(pixels: torch.Tensor) -> bytes:
    """A uint8 tensor (H, W) or (H, W, 3) -> the PNG file a client uploads."""
    buffer = io.BytesIO()
    Image.fromarray(pixels.numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(function, pixels):
    """How the learner's answer is called: on the PNG bytes of the case's image."""
    return function(png(pixels))


def reference(pixels):
    return preprocess(png(pixels))


def variant(*, mode="L", normalise=False, resample=Image.BILINEAR, scale=255.0, batch=True):
    def prepare(pixels):
        image = Image.open(io.BytesIO(png(pixels)))
        image = image.convert("RGB" if mode == "R" else "L")
        image = image.resize((28, 28), resample)
        x = np.asarray(image, dtype=np.float32)
        x = x[:, :, 0] if mode == "R" else x  # (28, 28)
        x = torch.from_numpy(x / scale)
        if normalise:
            x = (x - 0.286) / 0.353
        return x[None, None] if batch else x[None]

    return prepare


def cases(draw):
    found = []
    for shape in [(28, 28), (28, 28, 3), (40, 30, 3), (20, 36), (64, 64, 3)]:
        pixels = torch.randint(0, 256, shape, generator=draw.generator, dtype=torch.uint8)
        kind = "RGB" if len(shape) == 3 else "greyscale"
        found.append(Case((pixels,), f"a {shape[0]}x{shape[1]} {kind} PNG"))
    return found


QUESTION = Question(
    name="q3",
    function="preprocess",
    points=points,
    reference=reference,
    oracle="companion.serve.preprocess (the training transform: L, 28x28 bilinear, ToTensor's scaling)",
    cases=cases,
    call=upload,
    mistakes=(
        Mistake("still the colleague's bugs: the model was trained on Pillow's greyscale (L), not the red channel "
                "of RGB, and without normalisation: only divide by 255.", value=variant(mode="R", normalise=True)),
        Mistake("the normalisation: the model was trained on ToTensor's [0, 1] values, with no mean subtracted "
                "and no division by a standard deviation; served normalised, it loses about 25 points of accuracy.",
                value=variant(normalise=True)),
        Mistake("the red channel is not the greyscale image: convert to L, which weighs R, G and B (299, 587, 114 "
                "per thousand), as the training images were.", value=variant(mode="R")),
        Mistake("the resampling filter: the training transform resizes bilinearly (Image.BILINEAR); Pillow's "
                "default for resize is bicubic.", value=variant(resample=Image.BICUBIC)),
        Mistake("the resampling filter: nearest-neighbour resizing picks pixels, the training transform "
                "interpolates them bilinearly (Image.BILINEAR).", value=variant(resample=Image.NEAREST)),
        Mistake("the values are not scaled: divide the bytes by 255, as ToTensor does.", value=variant(scale=1.0)),
        Mistake("the batch axis is missing: the model takes (N, C, H, W), here (1, 1, 28, 28).",
                value=variant(batch=False)),
    ),
    hints=(
        "What did the training images look like? One channel, 28x28, values in [0, 1], nothing else.",
        "Decode the bytes with Pillow (through io.BytesIO), convert to mode 'L', resize to 28x28 with the "
        "bilinear filter.",
        "Scale as ToTensor does, and add the batch and channel axes: (1, 1, 28, 28).",
    ),
    forbidden=Forbidden(modules=("companion.serve",), names=("preprocess",), what="the server's preprocessing"),
    rtol=0.0,
    atol=1e-6,
)


@test_case(points=points)
def test_preprocess(preprocess):
    QUESTION.assert_passes(preprocess)
