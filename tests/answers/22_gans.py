"""Answers to exercise 22_gans: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

import companion.gan


def non_saturating_loss(fake_logits, *, mistake=None):
    a = fake_logits
    if mistake == "saturating":
        return -F.softplus(a).mean()
    if mistake == "label 0":
        return F.softplus(a).mean()
    if mistake == "sign":
        return F.logsigmoid(a).mean()
    if mistake == "naive":
        return -torch.log(torch.sigmoid(a)).mean()
    per_sample = a.clamp(max=0).neg() + torch.log1p(torch.exp(-a.abs()))  # softplus(-a), stably
    return per_sample.sum() if mistake == "sum" else per_sample.mean()


def discriminator_step(generator, discriminator, optimizer, real, z, *, mistake=None):
    fake = generator(z) if mistake == "no detach" else generator(z).detach()
    r, f = discriminator(real), discriminator(fake)
    real_target = torch.zeros_like(r) if mistake in ("real 0", "both swapped") else torch.ones_like(r)
    fake_target = torch.ones_like(f) if mistake in ("fake 1", "both swapped") else torch.zeros_like(f)
    # -[t log sigmoid(a) + (1 - t) log(1 - sigmoid(a))], written out
    real_terms = -(real_target * F.logsigmoid(r) + (1 - real_target) * F.logsigmoid(-r))
    fake_terms = -(fake_target * F.logsigmoid(f) + (1 - fake_target) * F.logsigmoid(-f))
    reduce = torch.sum if mistake == "sum" else torch.mean
    loss = reduce(real_terms) + reduce(fake_terms)
    if mistake != "no zero_grad":
        for p in discriminator.parameters():
            p.grad = None
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def generator_step(generator, discriminator, z, lr, *, mistake=None):
    params = list(generator.parameters())
    if mistake in ("steps D", "both bugs"):
        params += list(discriminator.parameters())
    a = discriminator(generator(z))
    if mistake in ("saturating", "both bugs"):
        per_sample = F.logsigmoid(-a)  # log(1 - D(G(z)))
    elif mistake == "label 0":
        per_sample = -F.logsigmoid(-a)
    else:
        per_sample = -F.logsigmoid(a)
    loss = per_sample.sum() if mistake == "sum" else per_sample.mean()
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= lr * g
    return float(loss.detach())


def anomaly_auc(normal_scores, anomalous_scores, *, mistake=None):
    wins = 0.0
    for y in anomalous_scores.tolist():
        for x in normal_scores.tolist():
            if y > x:
                wins += 1
            elif y == x:
                wins += {"ties 0": 0.0, "ties 1": 1.0}.get(mistake, 0.5)
    auc = wins / (len(normal_scores) * len(anomalous_scores))
    return 1 - auc if mistake == "swapped" else auc


WRONG = [
    ("q1", non_saturating_loss, "saturating", "this is the saturating loss"),
    ("q1", non_saturating_loss, "label 0", "the discriminator's loss on generated samples"),
    ("q1", non_saturating_loss, "sign", "the sign is flipped"),
    ("q1", non_saturating_loss, "sum", "summed over the batch"),
    ("q1", non_saturating_loss, "naive", "overflows for large logits"),
    ("q2", discriminator_step, "no detach", "G(z) is not detached"),
    ("q2", discriminator_step, "real 0", "the real samples are labelled 0"),
    ("q2", discriminator_step, "fake 1", "the generated samples are labelled 1"),
    ("q2", discriminator_step, "both swapped", "swapped in both terms"),
    ("q2", discriminator_step, "no zero_grad", "not zeroed before backward"),
    ("q2", discriminator_step, "sum", "summed over the batch"),
    ("q3", generator_step, "both bugs", "with both bugs"),
    ("q3", generator_step, "steps D", "holds the discriminator's parameters too"),
    ("q3", generator_step, "saturating", "the loss is the saturating"),
    ("q3", generator_step, "label 0", "labelled 0"),
    ("q3", generator_step, "sum", "summed over the batch"),
    ("q4", anomaly_auc, "ties 0", "ties are not counted"),
    ("q4", anomaly_auc, "ties 1", "ties count as a whole pair"),
    ("q4", anomaly_auc, "swapped", "the wrong way round"),
]


def _auc_by_sklearn(normal_scores, anomalous_scores):
    labels = [0] * len(normal_scores) + [1] * len(anomalous_scores)
    return float(roc_auc_score(labels, torch.cat([normal_scores, anomalous_scores]).numpy()))


def _discriminator_step_by_the_companion(generator, discriminator, optimizer, real, z):
    fake = generator(z).detach()
    loss = companion.gan.discriminator_loss(discriminator(real), discriminator(fake))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _generator_step_by_the_companion(generator, discriminator, z, lr):
    optimizer = torch.optim.SGD(generator.parameters(), lr=lr)
    return companion.gan.generator_step(generator, discriminator, optimizer, z)


CHEATS = [
    ("q1", lambda fake_logits: F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))),
    ("q1", lambda fake_logits: nn.BCEWithLogitsLoss()(fake_logits, torch.ones_like(fake_logits))),
    ("q1", lambda fake_logits: companion.gan.generator_loss(fake_logits)),
    ("q2", _discriminator_step_by_the_companion),
    ("q3", _generator_step_by_the_companion),
    ("q4", _auc_by_sklearn),
    ("q4", lambda normal_scores, anomalous_scores: companion.gan.anomaly_auc(normal_scores, anomalous_scores)),
]
