"""Answers to exercise 18_face_detection: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import cv2
import numpy as np
import skimage.transform
import torch

import companion.viola_jones


def predicted_scales(*, mistake=None):
    return {None: 7, "steps": 6, "rounded up": 8, "linear": 13, "float": 7.0}[mistake]


def integral_image(image, *, mistake=None):
    values = image.to(torch.uint8 if mistake == "uint8" else torch.int64)
    if mistake == "one axis":
        sums = values.cumsum(1)
    elif mistake == "uint8":
        sums = values.cumsum(0, dtype=torch.uint8).cumsum(1, dtype=torch.uint8)
    else:
        sums = values.cumsum(0).cumsum(1)
    if mistake == "no zero row":
        return sums
    h, w = image.shape
    ii = torch.zeros(h + 1, w + 1, dtype=sums.dtype)
    if mistake == "at the end":
        ii[:h, :w] = sums
    else:
        ii[1:, 1:] = sums
    return ii


def rect_sums(ii, boxes, *, mistake=None):
    x, y, w, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    if mistake == "off by one":
        return ii[y + h - 1, x + w - 1] - ii[y - 1, x + w - 1] - ii[y + h - 1, x - 1] + ii[y - 1, x - 1]
    if mistake == "corners":
        x1, y1 = w, h
        return ii[y1, x1] - ii[y, x1] - ii[y1, x] + ii[y, x]
    if mistake == "swapped":
        return ii[x + w, y + h] - ii[x, y + h] - ii[x + w, y] + ii[x, y]
    total = ii[y + h, x + w] - ii[y, x + w] - ii[y + h, x]
    return total if mistake == "not added back" else total + ii[y, x]


def to_gray(rgb, *, mistake=None):
    image = rgb.numpy()
    if mistake == "bgr":
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if mistake == "mean":
        return image.astype(np.float64).mean(axis=-1).round().astype(np.uint8)
    r, g, b = (image[..., c].astype(np.float64) for c in range(3))
    grey = 0.299 * r + 0.587 * g + 0.114 * b  # the formula, within a grey level of OpenCV's fixed point
    return grey / 255 if mistake == "scaled" else grey.round().astype(np.uint8)


def eye_corners(face, eyes, *, mistake=None):
    fx, fy, fw, fh = face.tolist()
    rows = []
    for ex, ey, ew, eh in eyes.tolist():
        if mistake == "corners":
            rows.append([fx + ex, fy + ey, fx + ew, fy + eh])
        elif mistake == "no offset":
            rows.append([ex, ey, ex + ew, ey + eh])
        elif mistake == "xywh":
            rows.append([fx + ex, fy + ey, ew, eh])
        elif mistake == "size":
            rows.append([fw + ex, fh + ey, fw + ex + ew, fh + ey + eh])
        else:
            rows.append([fx + ex, fy + ey, fx + ex + ew, fy + ey + eh])
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, 4)


RIGHT = [("q1", predicted_scales), ("q2", integral_image), ("q3", rect_sums), ("q4", to_gray), ("q5", eye_corners)]

WRONG = [
    ("q1", predicted_scales, "steps", "counts the steps between sizes"),
    ("q1", predicted_scales, "rounded up", "rounds the number of steps up"),
    ("q1", predicted_scales, "linear", "grow by a fixed number of pixels"),
    ("q1", predicted_scales, "float", "return an int"),
    ("q2", integral_image, "no zero row", "zero row and column are missing"),
    ("q2", integral_image, "one axis", "along one axis only"),
    ("q2", integral_image, "at the end", "at the bottom and right"),
    ("q2", integral_image, "uint8", "overflow"),
    ("q3", rect_sums, "off by one", "colleague's off-by-one"),
    ("q3", rect_sums, "corners", "reads them as corners"),
    ("q3", rect_sums, "swapped", "rows and columns are swapped"),
    ("q3", rect_sums, "not added back", "added back once"),
    ("q4", to_gray, "bgr", "COLOR_RGB2GRAY"),
    ("q4", to_gray, "mean", "plain mean"),
    ("q4", to_gray, "scaled", "scaled to [0, 1]"),
    ("q5", eye_corners, "corners", "not the far corner"),
    ("q5", eye_corners, "no offset", "add the face's corner"),
    ("q5", eye_corners, "xywh", "are still (x, y, w, h)"),
    ("q5", eye_corners, "size", "width and height are added"),
]


def _opencv_integral(image):
    return torch.from_numpy(cv2.integral(image.numpy()).astype(np.int64))


def _skimage_integral(image):
    return torch.from_numpy(skimage.transform.integral_image(image.numpy().astype(np.int64)))


def _companion_integral(image):
    return torch.from_numpy(companion.viola_jones.integral_image(image.numpy()))


def _companion_rect_sums(ii, boxes):
    x, y, w, h = boxes.numpy().T
    return torch.from_numpy(companion.viola_jones.rect_sum(ii.numpy(), x, y, w, h))


def _torchvision_corners(face, eyes):
    import torchvision.ops

    shift = torch.tensor([face[0], face[1], 0, 0])
    return torchvision.ops.box_convert(eyes + shift, "xywh", "xyxy")


CHEATS = [
    ("q2", _opencv_integral),
    ("q2", _skimage_integral),
    ("q2", _companion_integral),
    ("q3", _companion_rect_sums),
    ("q5", _torchvision_corners),
]
