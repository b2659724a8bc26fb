"""Answers to exercise 14_distillation: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F

import companion.losses

PREDICTIONS = {None: 4.0, "1/T": 2.0, "unchanged": 1.0, "inverted": 0.25, "too steep": 8.0}


def predicted_factor(*, mistake=None):
    return PREDICTIONS[mistake]


def soft_targets(logits, temperature, *, mistake=None):
    if mistake == "no temperature":
        z = logits
    elif mistake == "multiplied":
        z = logits * temperature
    else:
        z = logits / temperature
    dim = 0 if mistake == "columns" else -1
    if mistake != "unstable":
        z = z - z.amax(dim=dim, keepdim=True)
    e = z.exp()
    probs = e / e.sum(dim=dim, keepdim=True)
    return probs.log() if mistake == "log" else probs


def distillation_loss(student_logits, teacher_logits, labels, temperature=4.0, alpha=0.9, *, mistake=None):
    t = temperature
    teacher = teacher_logits if mistake == "not detached" else teacher_logits.detach()
    log_q = F.log_softmax(student_logits / t, dim=1)
    log_p = F.log_softmax(teacher / (1.0 if mistake == "teacher at 1" else t), dim=1)
    if mistake == "reversed":
        soft = (log_q.exp() * (log_q - log_p)).sum(1).mean()  # KL(q || p)
    elif mistake == "mean":
        soft = (log_p.exp() * (log_p - log_q)).mean()  # F.kl_div's reduction="mean": / (N K)
    else:
        soft = (log_p.exp() * (log_p - log_q)).sum(1).mean()
    hard = F.cross_entropy(student_logits / t if mistake == "hard at T" else student_logits, labels)
    power = {"no T^2": 0, "T": 1}.get(mistake, 2)
    a = 1 - alpha if mistake == "swapped alpha" else alpha
    return a * t**power * soft + (1 - a) * hard


def soft_gradient(student_logits, teacher_logits, temperature, *, mistake=None):
    t = 1.0 if mistake == "T=1" else temperature
    e_s = (student_logits / t - (student_logits / t).amax(1, keepdim=True)).exp()
    e_v = (teacher_logits / t - (teacher_logits / t).amax(1, keepdim=True)).exp()
    q, p = e_s / e_s.sum(1, keepdim=True), e_v / e_v.sum(1, keepdim=True)
    factor = {"KL alone": 1 / temperature, "no chain rule": temperature**2}.get(mistake, temperature)
    difference = p - q if mistake == "sign" else q - p
    return factor * difference / (1 if mistake == "no mean" else len(student_logits))


WRONG = [
    ("q1", predicted_factor, "1/T", "one 1/T from the chain rule"),
    ("q1", predicted_factor, "unchanged", "1 means no change"),
    ("q1", predicted_factor, "inverted", "a factor below 1"),
    ("q1", predicted_factor, "too steep", "8 or more is too steep"),
    ("q2", soft_targets, "no temperature", "temperature is ignored"),
    ("q2", soft_targets, "multiplied", "multiplied by the temperature"),
    ("q2", soft_targets, "log", "log-probabilities"),
    ("q2", soft_targets, "columns", "wrong dimension"),
    ("q2", soft_targets, "unstable", "exp overflows"),
    ("q3", distillation_loss, "no T^2", "still the colleague's bug"),
    ("q3", distillation_loss, "T", "multiplied by T, not T^2"),
    ("q3", distillation_loss, "mean", "reduction='mean'"),
    ("q3", distillation_loss, "reversed", "wrong way round"),
    ("q3", distillation_loss, "teacher at 1", "teacher's logits are not divided"),
    ("q3", distillation_loss, "hard at T", "softened student logits"),
    ("q3", distillation_loss, "swapped alpha", "alpha weighs the wrong term"),
    ("q3", distillation_loss, "not detached", "reaches the teacher's logits"),
    ("q4", soft_gradient, "KL alone", "gradient of the KL alone"),
    ("q4", soft_gradient, "no chain rule", "1/T of the chain rule"),
    ("q4", soft_gradient, "no mean", "mean over the batch is missing"),
    ("q4", soft_gradient, "sign", "sign is flipped"),
    ("q4", soft_gradient, "T=1", "temperature 1"),
]


def _by_autograd(student_logits, teacher_logits, temperature):
    s = student_logits.clone().requires_grad_(True)
    loss = companion.losses.distillation_loss(s, teacher_logits, torch.zeros(len(s), dtype=torch.long),
                                              temperature, alpha=1.0)
    return torch.autograd.grad(loss, s)[0]


def _by_backward(student_logits, teacher_logits, temperature):
    s = student_logits.clone().requires_grad_(True)
    kl = F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(teacher_logits / temperature, 1),
                  reduction="batchmean")
    (temperature**2 * kl).backward()
    return s.grad


CHEATS = [
    ("q2", lambda z, t: F.softmax(z / t, dim=-1)),
    ("q2", lambda z, t: torch.softmax(z / t, -1)),
    ("q2", lambda z, t: (z / t).softmax(-1)),
    ("q2", lambda z, t: F.log_softmax(z / t, dim=-1).exp()),
    ("q3", lambda s, v, y, t=4.0, a=0.9: companion.losses.distillation_loss(s, v, y, t, a)),
    ("q4", _by_autograd),
    ("q4", _by_backward),
]
