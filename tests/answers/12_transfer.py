"""Answers to exercise 12_transfer: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
from torch import nn

import companion.transfer
from companion import nets


def trainable_after_freezing(widths, image_size, num_classes, unfrozen, *, mistake=None):
    side = image_size if mistake == "no pool" else image_size // 2 ** len(widths)
    total = widths[-1] * side * side * num_classes + (0 if mistake == "no head bias" else num_classes)
    channels_in = (1,) + tuple(widths[:-1])
    stages = list(zip(channels_in, widths))
    if mistake == "all":
        trained = stages
    elif mistake == "bottom":
        trained = stages[:unfrozen]
    else:
        trained = stages[len(stages) - unfrozen:] if unfrozen else []
    for c_in, c_out in trained:
        total += 9 * c_in * c_out
        total += c_out if mistake == "conv bias" else 0
        total += {"running stats": 4, "no bn": 0}.get(mistake, 2) * c_out
    return total


def fine_tune_step(model, optimizer, x, y, *, mistake=None):
    if mistake == "eval":
        model.eval()
    else:
        model.train()
    if mistake not in ("bn train", "eval"):
        for m in model.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
    if mistake != "no zero_grad":
        optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def adapt_batchnorm(model, images, *, mistake=None):
    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in layers]
    if mistake == "biased":  # statistics by hand, with the biased variance
        x = images
        with torch.no_grad():
            for layer in model:
                if isinstance(layer, nn.BatchNorm2d):
                    layer.running_mean.copy_(x.mean(dim=(0, 2, 3)))
                    layer.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False))
                    x = F.batch_norm(x, None, None, layer.weight, layer.bias, training=True)
                else:
                    x = layer(x)
        return model.eval()
    if mistake == "eval inputs":  # statistics by hand, each layer's input normalised with the old ones
        x = images
        with torch.no_grad():
            for layer in model:
                if isinstance(layer, nn.BatchNorm2d):
                    mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3))
                    x = layer.eval()(x)
                    layer.running_mean.copy_(mean)
                    layer.running_var.copy_(var)
                else:
                    x = layer(x)
        return model.eval()
    for m in layers:
        if mistake != "no reset":
            m.reset_running_stats()
            m.momentum = None
        m.train()
    with torch.no_grad():
        model(images)
    if mistake != "momentum":
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
    if mistake != "training":
        model.eval()
    return model


WRONG = [
    ("q1", trainable_after_freezing, "all", "frozen backbone is counted"),
    ("q1", trainable_after_freezing, "running stats", "running mean and variance are counted"),
    ("q1", trainable_after_freezing, "conv bias", "convolutions are given a bias"),
    ("q1", trainable_after_freezing, "no head bias", "head's bias is forgotten"),
    ("q1", trainable_after_freezing, "no pool", "max-pools are forgotten"),
    ("q1", trainable_after_freezing, "bottom", "counted from the bottom"),
    ("q1", trainable_after_freezing, "no bn", "batch norms are forgotten"),
    ("q2", fine_tune_step, "bn train", "batch norms are in training mode"),
    ("q2", fine_tune_step, "eval", "dropout is off"),
    ("q2", fine_tune_step, "no zero_grad", "gradients are not reset"),
    ("q3", adapt_batchnorm, "no reset", "keep most of the pretraining's"),
    ("q3", adapt_batchnorm, "biased", "biased variance"),
    ("q3", adapt_batchnorm, "eval inputs", "normalised with the old statistics"),
    ("q3", adapt_batchnorm, "training", "left in training mode"),
    ("q3", adapt_batchnorm, "momentum", "momentum is not restored"),
]


def _count_by_building(widths, image_size, num_classes, unfrozen):
    backbone = nets.fashion_cnn(num_classes, stages=[(w, True) for w in widths], image_size=image_size).backbone
    side = image_size // 2 ** len(widths)
    head = nn.Linear(widths[-1] * side * side, num_classes)
    companion.transfer.freeze(backbone)
    if unfrozen:
        companion.transfer.unfreeze_top(backbone, 2 * unfrozen)
    return companion.transfer.trainable_parameters(backbone) + sum(p.numel() for p in head.parameters())


def _step_with_companion(model, optimizer, x, y):
    model.train()
    companion.transfer.batchnorm_eval(model.backbone)
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


CHEATS = [
    ("q1", _count_by_building),
    ("q2", _step_with_companion),
    ("q3", lambda model, images: companion.transfer.recompute_batchnorm_stats(model, images, batch_size=len(images))),
]
