"""Answers to exercise 13_simclr: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import math

import torch

import companion.losses
import companion.simclr


def candidate_probabilities(z1, z2, temperature, *, mistake=None):
    first, second = (z2, z1) if mistake == "order" else (z1, z2)
    z = torch.cat([first, second])  # (2N, D)
    if mistake != "raw":
        z = z / z.norm(dim=1, keepdim=True)
    logits = z @ z.T
    logits = logits * temperature if mistake == "multiply" else logits / temperature
    eye = torch.eye(len(z), dtype=torch.bool)
    if mistake == "zero":
        logits = logits * (~eye)  # zeroed, not removed
    elif mistake not in ("unmasked", "after"):
        logits = logits.masked_fill(eye, float("-inf"))
    probs = torch.softmax(logits, dim=1)  # (2N, 2N)
    if mistake == "after":
        probs = probs * (~eye)
    return probs


def fixed_nt_xent(z1, z2, temperature=0.5, *, mistake=None):
    n = len(z1)
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    sim = z @ z.T / temperature  # (2N, 2N)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    positive = sim[torch.arange(2 * n), partner]
    keep = ~torch.eye(2 * n, dtype=torch.bool)
    if mistake == "given code":
        keep = torch.ones(2 * n, 2 * n, dtype=torch.bool)
    if mistake == "no positive":
        keep[torch.arange(2 * n), partner] = False
    terms = sim.exp() * keep
    if mistake == "zeroed":
        terms = (sim * keep).exp()
    per_anchor = torch.log(terms.sum(dim=1)) - positive  # (2N,)
    if mistake == "first view":
        return per_anchor[:n].mean()
    if mistake == "over N":
        return per_anchor.sum() / n
    return per_anchor.mean()


def ideal_nt_xent(n, temperature, *, mistake=None):
    negatives = {"n - 1": n - 1, "2n - 1": 2 * n - 1}.get(mistake, 2 * n - 2)
    inv_t = 1.0 if mistake == "no temperature" else 1 / temperature
    denominator = negatives + (0.0 if mistake == "no positive" else math.exp(inv_t))
    if mistake == "anchor":
        denominator += math.exp(inv_t)
    return -inv_t + math.log(denominator)


def crop_theta(top, left, height, width, image_height, image_width, flip=False, *, mistake=None):
    if mistake == "swap":
        top, left, height, width = left, top, width, height
        image_height, image_width = image_width, image_height
    cx = (left + width / 2) / image_width * 2 - 1
    cy = (top + height / 2) / image_height * 2 - 1
    if mistake == "corner":
        cx, cy = left / image_width * 2 - 1, top / image_height * 2 - 1
    if mistake == "align corners":
        cx = (left + (width - 1) / 2) / (image_width - 1) * 2 - 1
        cy = (top + (height - 1) / 2) / (image_height - 1) * 2 - 1
    sx, sy = width / image_width, height / image_height
    if mistake == "inverse":
        sx, sy = 1 / sx, 1 / sy
    if flip and mistake != "no flip":
        sx = -sx
    return torch.tensor([[sx, 0.0, cx], [0.0, sy, cy]])


WRONG = [
    ("q1", candidate_probabilities, "unmasked", "the anchor is one of its own candidates"),
    ("q1", candidate_probabilities, "zero", "the diagonal is set to 0 before the softmax"),
    ("q1", candidate_probabilities, "after", "the diagonal is zeroed after the softmax"),
    ("q1", candidate_probabilities, "raw", "the projections are not normalised"),
    ("q1", candidate_probabilities, "multiply", "the temperature multiplies"),
    ("q1", candidate_probabilities, "order", "stacked in the other order"),
    ("q2", fixed_nt_xent, "given code", "the anchor itself is still in the denominator"),
    ("q2", fixed_nt_xent, "no positive", "the positive pair was taken out of the denominator"),
    ("q2", fixed_nt_xent, "zeroed", "set to 0 instead of being removed"),
    ("q2", fixed_nt_xent, "first view", "the N anchors of the first view only"),
    ("q2", fixed_nt_xent, "over N", "divided by N"),
    ("q3", ideal_nt_xent, "anchor", "the anchor is counted in its own denominator"),
    ("q3", ideal_nt_xent, "no positive", "the positive is missing from the denominator"),
    ("q3", ideal_nt_xent, "n - 1", "only N - 1 negatives"),
    ("q3", ideal_nt_xent, "2n - 1", "2N - 1 negatives are counted"),
    ("q3", ideal_nt_xent, "no temperature", "the temperature is forgotten"),
    ("q4", crop_theta, "corner", "top-left corner"),
    ("q4", crop_theta, "inverse", "the scale is inverted"),
    ("q4", crop_theta, "swap", "x and y are swapped"),
    ("q4", crop_theta, "no flip", "the flip is ignored"),
    ("q4", crop_theta, "align corners", "align_corners=True"),
]


def _ideal_by_the_loss(n, temperature):
    eye = torch.eye(n, dtype=torch.float64)
    return float(companion.losses.nt_xent(eye, eye, temperature))


def _probabilities_by_autograd(z1, z2, temperature):
    # The gradient of NT-Xent with respect to the logits is (softmax - one-hot) / 2N: a way round.
    return companion.simclr.nt_xent(z1, z2, temperature).detach() * 0 + candidate_probabilities(z1, z2, temperature)


CHEATS = [
    ("q1", _probabilities_by_autograd),
    ("q2", lambda z1, z2, temperature=0.5: companion.losses.nt_xent(z1, z2, temperature)),
    ("q3", _ideal_by_the_loss),
    ("q4", lambda top, left, height, width, image_height, image_width, flip=False:
        companion.simclr.resized_crop(torch.zeros(1, 1, 2, 2), torch.zeros(1, 4)).sum() * 0 + crop_theta(
            top, left, height, width, image_height, image_width, flip)),
]
