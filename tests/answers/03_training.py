"""Answers to exercise 03_training: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F

import companion.backward
import companion.norm

AXES = (0, 2, 3)


def batch_norm_backward(grad_output, x, gamma, eps=1e-5, *, mistake=None):
    mean = x.mean(dim=AXES, keepdim=True)
    var = x.var(dim=AXES, keepdim=True, unbiased=mistake == "unbiased")
    inv_std = (var + eps).rsqrt()
    x_hat = (x - mean) * inv_std
    dx_hat = grad_output * (1.0 if mistake == "no gamma" else gamma.view(1, -1, 1, 1))
    term = dx_hat
    if mistake not in ("no mean term", "no statistics"):
        term = term - dx_hat.mean(dim=AXES, keepdim=True)
    if mistake not in ("no variance term", "no statistics"):
        term = term - x_hat * (dx_hat * x_hat).mean(dim=AXES, keepdim=True)
    dx = inv_std * term
    dgamma, dbeta = (grad_output * x_hat).sum(dim=AXES), grad_output.sum(dim=AXES)
    return (dx, dbeta, dgamma) if mistake == "swapped" else (dx, dgamma, dbeta)


def group_norm(x, num_groups, gamma, beta, eps=1e-5, *, mistake=None):
    n, c, h, w = x.shape
    g = {"instance": c, "layer": 1}.get(mistake, num_groups)
    if mistake == "interleaved":
        groups, axes = x.reshape(n, c // g, g, h, w), (1, 3, 4)
    elif mistake == "batch":
        groups, axes = x.reshape(n, g, c // g, h, w), (0, 2, 3, 4)
    else:
        groups, axes = x.reshape(n, g, c // g, h, w), (2, 3, 4)
    mean = groups.mean(dim=axes, keepdim=True)
    var = groups.var(dim=axes, unbiased=mistake == "unbiased", keepdim=True)
    x_hat = ((groups - mean) / torch.sqrt(var + eps)).reshape(n, c, h, w)
    return gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)


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


def predicted_factor(*, mistake=None):
    return {"no change": 1.0, "grows": 10.0, "squared": 0.01, "grows squared": 100.0}.get(mistake, 0.1)


WRONG = [
    ("q1", batch_norm_backward, "no mean term", "still the colleague's bug"),
    ("q1", batch_norm_backward, "no variance term", "path through the variance is missing"),
    ("q1", batch_norm_backward, "no statistics", "both paths through the statistics"),
    ("q1", batch_norm_backward, "no gamma", "gamma is missing from dx"),
    ("q1", batch_norm_backward, "unbiased", "unbiased one"),
    ("q1", batch_norm_backward, "swapped", "dgamma and dbeta are swapped"),
    ("q4", group_norm, "interleaved", "groups are over the wrong axis"),
    ("q4", group_norm, "batch", "statistics include the batch"),
    ("q4", group_norm, "instance", "instance norm"),
    ("q4", group_norm, "layer", "layer norm"),
    ("q4", group_norm, "unbiased", "unbiased one"),
    ("q2", update_running_stats, "biased", "still the colleague's bug"),
    ("q2", update_running_stats, "reversed", "momentum is reversed"),
    ("q2", update_running_stats, "replaced", "replaced by the batch statistics"),
    ("q2", update_running_stats, "not updated", "not updated"),
    ("q3", train_step, "no zero_grad", "gradients are not reset"),
    ("q3", train_step, "no train", "not put in training mode"),
    ("q3", train_step, "step first", "weights never change"),
    ("q3", train_step, "no step", "weights never change"),
    ("q3", train_step, "softmax", "softmax is applied before the loss"),
    ("q3", train_step, "sum", "summed over the batch"),
    ("q5", predicted_factor, "no change", "1 would mean the gradient does not change"),
    ("q5", predicted_factor, "grows", "10 is the other way round"),
    ("q5", predicted_factor, "squared", "one factor of 10 too many"),
    ("q5", predicted_factor, "grows squared", "100 grows"),
]


def _bn_by_autograd(grad_output, x, gamma, eps=1e-5):
    x, gamma = x.clone().requires_grad_(True), gamma.clone().requires_grad_(True)
    beta = torch.zeros_like(gamma, requires_grad=True)
    y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
    return torch.autograd.grad(y, (x, gamma, beta), grad_output)


def _bn_by_layer(grad_output, x, gamma, eps=1e-5):
    layer = torch.nn.BatchNorm2d(x.shape[1], eps=eps).double()
    layer.weight.data = gamma.clone()
    x = x.clone().requires_grad_(True)
    layer(x).backward(grad_output)
    return x.grad, layer.weight.grad, layer.bias.grad


CHEATS = [
    ("q1", _bn_by_autograd),
    ("q1", _bn_by_layer),
    ("q1", lambda g, x, gamma, eps=1e-5: companion.backward.batch_norm_backward(g, x, gamma, eps)),
    ("q2", lambda m, v, x, momentum=0.1: (F.batch_norm(x, m, v, training=True, momentum=momentum), (m, v))[1]),
    ("q4", lambda x, g, gamma, beta, eps=1e-5: F.group_norm(x, g, gamma, beta, eps)),
    ("q4", lambda x, g, gamma, beta, eps=1e-5: torch.nn.functional.layer_norm(
        x.reshape(x.shape[0], g, -1), x.reshape(x.shape[0], g, -1).shape[-1:], eps=eps).reshape(x.shape)
        * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)),
    ("q4", lambda x, g, gamma, beta, eps=1e-5: companion.norm.GroupNorm(g, x.shape[1], eps=eps).double()(x)
        * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)),
]
