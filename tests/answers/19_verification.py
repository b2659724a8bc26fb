"""Answers to exercise 19_verification: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
from sklearn.metrics import roc_auc_score

import companion.losses
import companion.verification


def fixed_contrastive_loss(x1, x2, same, margin=1.0, *, mistake=None):
    d2 = ((x1 - x2) ** 2).sum(dim=1)  # (N,) squared distances
    d = d2.sqrt()
    pull = d if mistake == "plain pull" else d2
    gap = margin - (d2 if mistake == "given code" else d)
    push = torch.relu(gap) if mistake == "unsquared hinge" else torch.relu(gap) ** 2
    terms = same * pull + (1 - same) * push
    total = terms.sum() if mistake == "sum" else terms.mean()
    return total if mistake == "no half" else total / 2


def fixed_batch_hard(embeddings, labels, margin=0.2, *, mistake=None):
    d = ((embeddings[:, None, :] - embeddings[None, :, :]) ** 2).sum(dim=-1)  # (N, N) squared
    if mistake != "squared":
        d = d.sqrt()
    same = labels[:, None] == labels[None, :]
    positive = same if mistake == "given code" else same & ~torch.eye(len(labels), dtype=torch.bool)
    negative = ~same
    if mistake == "closest positive":
        hardest_pos = torch.where(positive, d, torch.full_like(d, float("inf"))).min(dim=1).values
    else:
        hardest_pos = torch.where(positive, d, torch.zeros_like(d)).max(dim=1).values
    if mistake == "farthest negative":
        hardest_neg = torch.where(negative, d, torch.zeros_like(d)).max(dim=1).values
    else:
        hardest_neg = torch.where(negative, d, torch.full_like(d, float("inf"))).min(dim=1).values
    valid = positive.any(dim=1) & negative.any(dim=1)
    terms = torch.relu(hardest_pos - hardest_neg + margin)
    if mistake == "all anchors":
        return (terms * valid).sum() / len(labels)
    return terms[valid].mean()


def test_accuracy(val_distances, val_same, test_distances, test_same, *, mistake=None):
    def accuracy(d, same, t):
        said_same = d >= t if mistake == "reversed" else d <= t
        return (said_same == same.bool()).double().mean().item()

    d, same = val_distances, val_same
    if mistake == "given code":
        d, same = test_distances, test_same
    elif mistake == "pooled":
        d, same = torch.cat([val_distances, test_distances]), torch.cat([val_same, test_same])
    candidates = d.sort().values
    best = max(range(len(candidates)), key=lambda i: (accuracy(d, same, candidates[i]), -i))
    t = candidates[best]
    if mistake == "validation accuracy":
        return accuracy(val_distances, val_same, t)
    return accuracy(test_distances, test_same, t)


def auc_by_counting(scores, same, *, mistake=None):
    if mistake == "reversed":
        scores = -scores
    pos, neg = scores[same == 1], scores[same == 0]
    tie = {"tie wins": 1.0, "tie loses": 0.0}.get(mistake, 0.5)
    total = 0.0
    for p in pos.tolist():
        for n in neg.tolist():
            total += 1.0 if p > n else tie if p == n else 0.0
    if mistake == "all pairs":
        return total / len(scores) ** 2
    return total / (len(pos) * len(neg))


WRONG = [
    ("q1", fixed_contrastive_loss, "given code", "still applied to the squared distance"),
    ("q1", fixed_contrastive_loss, "plain pull", "the same-identity term uses the plain distance"),
    ("q1", fixed_contrastive_loss, "unsquared hinge", "the hinge is not squared"),
    ("q1", fixed_contrastive_loss, "no half", "the factor 1/2 is missing"),
    ("q1", fixed_contrastive_loss, "sum", "summed"),
    ("q2", fixed_batch_hard, "given code", "every anchor is still its own positive"),
    ("q2", fixed_batch_hard, "closest positive", "the hardest positive is the closest one"),
    ("q2", fixed_batch_hard, "farthest negative", "the hardest negative is the farthest one"),
    ("q2", fixed_batch_hard, "squared", "the distances are squared"),
    ("q2", fixed_batch_hard, "all anchors", "the mean runs over every anchor"),
    ("q3", test_accuracy, "given code", "still chosen on the test pairs"),
    ("q3", test_accuracy, "pooled", "validation and test pairs together"),
    ("q3", test_accuracy, "validation accuracy", "this is the accuracy on the validation pairs"),
    ("q3", test_accuracy, "reversed", "the rule is reversed"),
    ("q4", auc_by_counting, "tie wins", "a tie counts as a win"),
    ("q4", auc_by_counting, "tie loses", "a tie counts as a loss"),
    ("q4", auc_by_counting, "all pairs", "divided by the number of all pairs"),
    ("q4", auc_by_counting, "reversed", "the order is reversed"),
]


def _threshold_by_the_companion(val_distances, val_same, test_distances, test_same):
    t = companion.verification.best_threshold(val_distances, val_same)
    return companion.verification.verification_accuracy(test_distances, test_same, t) * 0 + test_accuracy(
        val_distances, val_same, test_distances, test_same)


CHEATS = [
    ("q1", lambda x1, x2, same, margin=1.0: companion.losses.contrastive_loss(x1, x2, same, margin)),
    ("q2", lambda embeddings, labels, margin=0.2: companion.losses.batch_hard_triplet_loss(embeddings, labels, margin)),
    ("q3", _threshold_by_the_companion),
    ("q4", lambda scores, same: float(roc_auc_score(same.numpy(), scores.numpy()))),
]
