"""Answers to exercise 03_training: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F

import companion.norm


def batch_norm_train(x, gamma, beta, eps=1e-5, *, mistake=None):
    dims = {"layer": (1, 2, 3), "instance": (2, 3), "batch only": (0,), "all": (0, 1, 2, 3)}.get(mistake, (0, 2, 3))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=mistake == "unbiased")
    eps = 0.0 if mistake == "no eps" else eps
    if mistake == "eps outside":
        x_hat = (x - mean) / (var.sqrt() + eps)
    elif mistake == "no root":
        x_hat = (x - mean) / (var + eps)
    else:
        x_hat = (x - mean) / torch.sqrt(var + eps)
    g, b = gamma.view(1, -1, 1, 1), beta.view(1, -1, 1, 1)  # (C,) -> (1, C, 1, 1)
    if mistake == "last axis":
        g, b = gamma, beta  # (C,) broadcast against W
    return {"swapped": lambda: b * x_hat + g, "no affine": lambda: x_hat, "no beta": lambda: g * x_hat,
            "no gamma": lambda: x_hat + b}.get(mistake, lambda: g * x_hat + b)()


def update_running_stats(running_mean, running_var, x, momentum=0.1, *, mistake=None):
    mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=mistake != "biased")
    m = {"reversed": 1 - momentum, "replaced": 1.0, "not updated": 0.0}.get(mistake, momentum)
    return (1 - m) * running_mean + m * mean, (1 - m) * running_var + m * var


def train_step(model, optimizer, x, y, *, mistake=None):
    if mistake != "no train":
        model.train()
    if mistake != "no zero_grad":
        optimizer.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits.softmax(1) if mistake == "softmax" else logits, y,
                           reduction="sum" if mistake == "sum" else "mean")
    if mistake == "step first":
        optimizer.step()
    loss.backward()
    if mistake not in ("step first", "no step"):
        optimizer.step()
    return loss if mistake == "tensor" else loss.item()


WRONG = [
    ("q1", batch_norm_train, "unbiased", "unbiased one"),
    ("q1", batch_norm_train, "eps outside", "added to the standard deviation"),
    ("q1", batch_norm_train, "no eps", "eps is forgotten"),
    ("q1", batch_norm_train, "no root", "square root is missing"),
    ("q1", batch_norm_train, "layer", "like layer norm"),
    ("q1", batch_norm_train, "instance", "like instance norm"),
    ("q1", batch_norm_train, "batch only", "batch axis only"),
    ("q1", batch_norm_train, "all", "all axes at once"),
    ("q1", batch_norm_train, "swapped", "gamma and beta are swapped"),
    ("q1", batch_norm_train, "no affine", "gamma and beta are forgotten"),
    ("q1", batch_norm_train, "no beta", "beta is forgotten"),
    ("q1", batch_norm_train, "no gamma", "gamma is forgotten"),
    ("q1", batch_norm_train, "last axis", "along the last axis"),
    ("q2", update_running_stats, "biased", "biased batch variance"),
    ("q2", update_running_stats, "reversed", "momentum is reversed"),
    ("q2", update_running_stats, "replaced", "replaced by the batch statistics"),
    ("q2", update_running_stats, "not updated", "not updated"),
    ("q3", train_step, "no zero_grad", "gradients are not reset"),
    ("q3", train_step, "no train", "not put in training mode"),
    ("q3", train_step, "step first", "weights never change"),
    ("q3", train_step, "no step", "weights never change"),
    ("q3", train_step, "softmax", "softmax is applied before the loss"),
    ("q3", train_step, "sum", "summed over the batch"),
]

CHEATS = [
    ("q1", lambda x, g, b, eps=1e-5: F.batch_norm(x, None, None, g, b, training=True, eps=eps)),
    ("q1", lambda x, g, b, eps=1e-5: companion.norm.BatchNorm2d(x.shape[1], eps=eps).double()(x) * g[:, None, None] + b[:, None, None]),
    ("q2", lambda m, v, x, momentum=0.1: (F.batch_norm(x, m, v, training=True, momentum=momentum), (m, v))[1]),
]
