"""Answers to exercise 25_medical: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import recall_score
from sklearn.utils.class_weight import compute_class_weight

import companion.losses
import companion.medical

WEIGHTS = {None: (1000 / 1800, 5.0), "inverted": (0.9, 0.1), "no C": (1000 / 900, 10.0),
           "reciprocal": (1 / 900, 1 / 100), "sum to 1": (0.1, 0.9), "order": (5.0, 1000 / 1800)}
ACCUMULATION = {None: (64, 16), "micro": (16, 64), "steps per micro-batch": (64, 64), "steps": (64, 4),
                "float": (64.0, 16.0)}


def predicted_weights(*, mistake=None):
    return WEIGHTS[mistake]


def predicted_accumulation(*, mistake=None):
    return ACCUMULATION[mistake]


def sensitivity_specificity(predicted, target, *, mistake=None):
    tp = int(((predicted == 1) & (target == 1)).sum())
    tn = int(((predicted == 0) & (target == 0)).sum())
    fp = int(((predicted == 1) & (target == 0)).sum())
    fn = int(((predicted == 0) & (target == 1)).sum())
    sensitivity, specificity = tp / (tp + fn), tn / (tn + fp)
    if mistake == "colleague":
        return specificity, sensitivity
    if mistake == "precision":
        return (tp / (tp + fp) if tp + fp else 0.0), specificity
    if mistake == "columns":
        return (tp / (tp + fp) if tp + fp else 0.0), (tn / (tn + fn) if tn + fn else 0.0)
    if mistake == "accuracy":
        return (tp + tn) / len(target), specificity
    return sensitivity, specificity


def class_weights(labels, num_classes, *, mistake=None):
    counts = torch.bincount(labels, minlength=num_classes).float()
    n = len(labels)
    if mistake == "colleague":
        return counts / n
    if mistake == "no C":
        return n / counts
    if mistake == "reciprocal":
        return 1 / counts
    if mistake == "sum to 1":
        return (1 / counts) / (1 / counts).sum()
    return n / (num_classes * counts)


def accumulated_step(model, optimizer, images, labels, k, *, mistake=None):
    if mistake not in ("colleague", "reset each", "no reset"):
        optimizer.zero_grad()
    total = 0.0
    for x, y in zip(images.chunk(k), labels.chunk(k)):
        if mistake in ("colleague", "reset each"):
            optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        if mistake not in ("colleague", "no division"):
            loss = loss / k
        loss.backward()
        if mistake == "step each":
            optimizer.step()
        total = loss.item() if mistake == "last loss" else total + loss.item()
    if mistake != "step each":
        optimizer.step()
    return total


WRONG = [
    ("q1", predicted_weights, "inverted", "the weights are inverted"),
    ("q1", predicted_weights, "no C", "the number of classes C is missing"),
    ("q1", predicted_weights, "reciprocal", "1 / n_c has the right ratio"),
    ("q1", predicted_weights, "sum to 1", "normalised to sum to 1"),
    ("q1", predicted_weights, "order", "in the wrong order"),
    ("q2", predicted_accumulation, "micro", "16 is the micro-batch"),
    ("q2", predicted_accumulation, "steps per micro-batch", "64 counts the micro-batches"),
    ("q2", predicted_accumulation, "steps", "divided by the *effective* batch"),
    ("q2", predicted_accumulation, "float", "return two ints"),
    ("q3", sensitivity_specificity, "colleague", "recall is computed on the wrong class"),
    ("q3", sensitivity_specificity, "precision", "this is the precision"),
    ("q3", sensitivity_specificity, "columns", "divided by the predicted counts"),
    ("q3", sensitivity_specificity, "accuracy", "this is the accuracy"),
    ("q4", class_weights, "colleague", "the weights are inverted"),
    ("q4", class_weights, "no C", "the number of classes C is missing"),
    ("q4", class_weights, "reciprocal", "1 / n_c has the right ratios"),
    ("q4", class_weights, "sum to 1", "normalised to sum to 1"),
    ("q5", accumulated_step, "colleague", "still the colleague's bugs"),
    ("q5", accumulated_step, "reset each", "reset at every micro-batch: only the last"),
    ("q5", accumulated_step, "no division", "the loss is not divided by k"),
    ("q5", accumulated_step, "step each", "steps after every micro-batch"),
    ("q5", accumulated_step, "no reset", "never reset"),
    ("q5", accumulated_step, "last loss", "last micro-batch's only"),
]


def _sklearn_recalls(predicted, target):
    y, p = target.numpy(), predicted.numpy()
    return float(recall_score(y, p)), float(recall_score(y, p, pos_label=0))


def _medical_recalls(predicted, target):
    scores = companion.medical.binary_metrics(predicted, target)
    return scores["sensitivity"], scores["specificity"]


def _sklearn_weights(labels, num_classes):
    return torch.tensor(compute_class_weight("balanced", classes=np.arange(num_classes), y=labels.numpy())).float()


def _medical_accumulation(model, optimizer, images, labels, k):
    optimizer.zero_grad()
    loss = companion.medical.accumulate_gradients(model, F.cross_entropy, images, labels, k)
    optimizer.step()
    return loss


CHEATS = [
    ("q3", _sklearn_recalls),
    ("q3", _medical_recalls),
    ("q4", lambda labels, num_classes: companion.losses.balanced_class_weights(labels, num_classes)),
    ("q4", _sklearn_weights),
    ("q5", _medical_accumulation),
]
