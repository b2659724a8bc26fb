"""Exercise 18, question 5: place the eyes found inside a face back in the photograph, ``eye_corners``.

The eyes are searched in the face's crop ``image[y:y + h, x:x + w]``, so OpenCV returns their
boxes ``(x, y, w, h)`` relative to the crop. The learner returns them as corners
``(x0, y0, x1, y1)`` in the whole photograph (the format of ``torchvision.ops`` and of
``cv2.rectangle``'s two points). The reference converts with ``torchvision.ops.box_convert`` after
adding the face's corner. The known mistakes: the colleague's, the eyes' ``(x, y, w, h)`` read as
corners; the face's offset forgotten; the boxes left as ``(x, y, w, h)``; the face's size added
instead of its corner.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torchvision.ops import box_convert

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q5"
points = 2


def reference(face, eyes):
    shifted = eyes + torch.stack([face[0], face[1], face[0] * 0, face[1] * 0])  # (N, 4) in the photo
    return box_convert(shifted, "xywh", "xyxy")


def read_as_corners(face, eyes):
    return eyes + torch.stack([face[0], face[1], face[0], face[1]])


def no_offset(face, eyes):
    return box_convert(eyes, "xywh", "xyxy")


def left_as_xywh(face, eyes):
    return eyes + torch.stack([face[0], face[1], face[0] * 0, face[1] * 0])


def size_added(face, eyes):
    return box_convert(eyes + torch.stack([face[2], face[3], face[0] * 0, face[1] * 0]), "xywh", "xyxy")


def cases(draw):
    found = []
    for n in (2, 1, 3, 4):
        x, y, side = draw.int(0, 300), draw.int(0, 200), draw.int(60, 160)
        face = torch.tensor([x, y, side, side])
        ex = torch.randint(0, side // 2, (n, 1), generator=draw.generator)
        ey = torch.randint(0, side // 2, (n, 1), generator=draw.generator)
        s = torch.randint(10, side // 2, (n, 1), generator=draw.generator)
        found.append(Case((face, torch.cat([ex, ey, s, s], dim=1)),
                          f"a face at ({x}, {y}) of side {side}, {n} eye box(es) inside it"))
    return found


QUESTION = Question(
    name="q5",
    function="eye_corners",
    points=points,
    reference=reference,
    oracle="torchvision.ops.box_convert after shifting by the face's corner",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's bug: an eye box is (x, y, w, h); its third and fourth numbers are a "
                "width and a height, not the far corner. The far corner is (x + w, y + h).", value=read_as_corners),
        Mistake("the eyes' boxes are relative to the face's crop image[y:y + h, x:x + w]: add the face's corner "
                "(x, y) to place them in the photograph.", value=no_offset),
        Mistake("the boxes are still (x, y, w, h); the question asks for the corners (x0, y0, x1, y1).",
                value=left_as_xywh),
        Mistake("the face's width and height are added; the crop starts at the face's corner (x, y), which is "
                "what must be added.", value=size_added),
    ),
    hints=(
        "Take one eye at (10, 20, 30, 30) in a face at (100, 50, 120, 120): where is its top-left pixel in the "
        "photograph, and where its bottom-right corner?",
        "Both corners move by the face's (x, y); the far corner also adds the eye's (w, h).",
        "Return an (N, 4) int64 tensor.",
    ),
    forbidden=Forbidden(names=("box_convert",), modules=("torchvision.ops",), what="the box conversion"),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_eye_corners(eye_corners):
    QUESTION.assert_passes(eye_corners)
