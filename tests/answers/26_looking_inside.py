"""Answers to exercise 26_looking_inside: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
from captum.attr import LayerGradCam

import companion.interpret

SIZES = {None: (18, 12), "five pools": (9, 6), "ceil": (19, 13), "7x7": (7, 7), "224": (14, 14),
         "channels": (512, 18, 12), "swapped": (12, 18)}
WEIGHTS = {None: (0.5, -0.75), "sum": (2.0, -3.0), "max": (2.0, -0.75), "mean": (0.5, -3.0),
           "twice": (0.5, -0.1875), "sign": (0.5, 0.75)}


def predicted_map_size(*, mistake=None):
    return SIZES[mistake]


def predicted_weights(*, mistake=None):
    return WEIGHTS[mistake]


def grad_cam(model, layer, x, target, *, mistake=None):
    kept = []
    handle = layer.register_forward_hook(lambda module, inputs, output: kept.append(output))
    try:
        scores = model(x)
    finally:
        handle.remove()
    if mistake in ("colleague", "softmax"):
        scores = scores.softmax(dim=1)
    elif mistake == "log softmax":
        scores = scores.log_softmax(dim=1)
    (grads,) = torch.autograd.grad(scores.gather(1, target[:, None]).sum(), kept[0])  # (N, K, h, w)
    axes = {"channels": (1,), "batch": (0, 2, 3)}.get(mistake, (2, 3))
    alpha = grads.sum(dim=axes, keepdim=True) if mistake == "sum" else grads.mean(dim=axes, keepdim=True)
    heat = (alpha * kept[0]).sum(dim=1)  # (N, h, w)
    return (heat if mistake in ("colleague", "no relu") else heat.relu()).detach()


def layer_output(model, layer, x, *, mistake=None):
    kept = []

    def hook(module, inputs, output):
        value = inputs[0] if mistake == "input" else output
        kept.append(value if mistake in ("colleague", "reference") else value.clone())

    handle = layer.register_forward_hook(hook)
    scores = model(x)
    if mistake not in ("colleague", "hook left"):
        handle.remove()
    return scores if mistake == "model" else kept[0]


WRONG = [
    ("q1", predicted_map_size, "five pools", "one max-pool too many"),
    ("q1", predicted_map_size, "ceil", "rounds down"),
    ("q1", predicted_map_size, "7x7", "adaptive average pool"),
    ("q1", predicted_map_size, "224", "224 x 224"),
    ("q1", predicted_map_size, "channels", "without the 512 channels"),
    ("q1", predicted_map_size, "swapped", "swapped"),
    ("q2", predicted_weights, "sum", "summed over the positions"),
    ("q2", predicted_weights, "max", "gradient of max(A1)"),
    ("q2", predicted_weights, "mean", "already 1/4"),
    ("q2", predicted_weights, "twice", "twice"),
    ("q2", predicted_weights, "sign", "the sign of alpha_2"),
    ("q3", grad_cam, "colleague", "still the colleague's bugs"),
    ("q3", grad_cam, "no relu", "the ReLU is missing"),
    ("q3", grad_cam, "softmax", "softmax probability"),
    ("q3", grad_cam, "log softmax", "log-probability"),
    ("q3", grad_cam, "channels", "averaged over the channels"),
    ("q3", grad_cam, "batch", "over the batch as well"),
    ("q3", grad_cam, "sum", "summed over the positions"),
    ("q4", layer_output, "colleague", "still the colleague's bugs"),
    ("q4", layer_output, "reference", "keeps a reference"),
    ("q4", layer_output, "hook left", "still registered"),
    ("q4", layer_output, "input", "the layer's input"),
    ("q4", layer_output, "model", "the model's output"),
]


def _captum_grad_cam(model, layer, x, target):
    return LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)[:, 0].detach()


CHEATS = [
    ("q3", lambda model, layer, x, target: companion.interpret.grad_cam(model, layer, x, target)),
    ("q3", _captum_grad_cam),
    ("q4", lambda model, layer, x: companion.interpret.feature_maps(model, {"l": layer}, x)["l"]),
    ("q4", lambda model, layer, x: _recorded(model, layer, x)),
]


def _recorded(model, layer, x):
    with companion.interpret.record_outputs({"l": layer}) as maps:
        model(x)
    return maps["l"]
