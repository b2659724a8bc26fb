"""Answers to exercise 27_serving: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import io

import numpy as np
import torch
from PIL import Image

import companion.serve

GREY = {None: [76, 255, 0, 29], "mean": [85, 255, 0, 85], "bgr": [29, 255, 0, 76]}


def predicted_input(*, mistake=None):
    values = torch.tensor(GREY.get(mistake, GREY[None]), dtype=torch.float32)  # red, white, black, blue
    if mistake == "rgb":
        return torch.tensor([[[255, 255], [0, 0]], [[0, 255], [0, 0]], [[0, 255], [0, 255]]])[None] / 255.0
    if mistake == "not scaled":
        return values.view(1, 1, 2, 2)
    x = values.view(1, 1, 2, 2) / 255
    if mistake == "normalised":
        return (x - 0.286) / 0.353
    if mistake == "no batch":
        return x[0]
    return x


P95 = {None: 48.0, "max": 95.0, "mean": 353.3 / 21, "median": 11.0, "unsorted": 10.3, "descending": 9.7}


def predicted_p95(*, mistake=None):
    return P95[mistake]


def preprocess(data, *, mistake=None):
    image = Image.open(io.BytesIO(data))
    red = mistake in ("colleague", "red")
    image = image.convert("RGB" if red else "L")
    resample = {"bicubic": Image.BICUBIC, "nearest": Image.NEAREST}.get(mistake, Image.BILINEAR)
    image = image.resize((28, 28), resample)
    x = np.asarray(image, dtype=np.float32)  # (28, 28) or (28, 28, 3)
    x = torch.from_numpy(x[:, :, 0] if red else x)  # (28, 28)
    x = x if mistake == "not scaled" else x / 255
    if mistake in ("colleague", "normalised"):
        x = (x - 0.286) / 0.353
    return x[None] if mistake == "no batch" else x[None, None]


def probabilities(model, x, *, mistake=None):
    if mistake not in ("colleague", "train"):
        model.eval()
    with torch.no_grad():
        logits = model(x)
    if mistake == "logits":
        return logits
    if mistake == "log":
        return torch.log_softmax(logits, dim=1)
    p = torch.softmax(logits, dim=0 if mistake == "batch axis" else 1)
    return torch.softmax(p, dim=1) if mistake in ("colleague", "twice") else p


WRONG = [
    ("q1", predicted_input, "rgb", "one channel"),
    ("q1", predicted_input, "not scaled", "the values are not scaled"),
    ("q1", predicted_input, "mean", "the average of R, G and B"),
    ("q1", predicted_input, "bgr", "red and blue are swapped"),
    ("q1", predicted_input, "normalised", "does not normalise"),
    ("q1", predicted_input, "no batch", "the model takes a batch"),
    ("q2", predicted_p95, "max", "the maximum (p100)"),
    ("q2", predicted_p95, "mean", "this is the mean"),
    ("q2", predicted_p95, "median", "this is the median"),
    ("q2", predicted_p95, "unsorted", "*sorted* latencies"),
    ("q2", predicted_p95, "descending", "sorted from the slowest down"),
    ("q3", preprocess, "colleague", "still the colleague's bugs"),
    ("q3", preprocess, "normalised", "the normalisation"),
    ("q3", preprocess, "red", "the red channel is not the greyscale"),
    ("q3", preprocess, "bicubic", "default for resize is bicubic"),
    ("q3", preprocess, "nearest", "nearest-neighbour"),
    ("q3", preprocess, "not scaled", "divide the bytes by 255"),
    ("q3", preprocess, "no batch", "the batch axis is missing"),
    ("q4", probabilities, "colleague", "still the colleague's bugs"),
    ("q4", probabilities, "train", "still in training mode"),
    ("q4", probabilities, "twice", "the softmax is applied twice"),
    ("q4", probabilities, "logits", "these are the logits"),
    ("q4", probabilities, "batch axis", "over the batch axis"),
    ("q4", probabilities, "log", "log-softmax"),
]

CHEATS = [
    ("q3", lambda data: companion.serve.preprocess(data)),
]
