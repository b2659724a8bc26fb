"""Exercise 5, question 2: the convolutional part of a VGG from its configuration, ``vgg_features``.

A module question: the learner's function returns an ``nn.Module``. The grader builds it from a
random configuration, copies the same random weights into its convolutions and batch norms (in
the order they appear, so that a missing ReLU does not shift anything), puts it in evaluation mode
and runs it on random images; only the output tensor comes back. The reference is
``torchvision.models.vgg.make_layers`` (with its first convolution taking ``in_channels``
channels instead of 3), given the same weights. Each known mistake is the same network built with
one thing changed (no ReLU, batch norm after the ReLU, average pooling, no padding, ...).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torchvision
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 4


def torchvision_layers(config, in_channels, batch_norm):
    """torchvision's VGG feature layers for this config, reading in_channels channels."""
    layers = torchvision.models.vgg.make_layers(list(config), batch_norm=batch_norm)  # an nn.Sequential
    first = layers[0]
    layers[0] = nn.Conv2d(in_channels, first.out_channels, 3, padding=1)  # torchvision always reads 3 channels
    return layers


def variant_layers(config, in_channels, batch_norm, *, relu=True, bn_after_relu=False, use_bn=True, padding=1,
                   pool=nn.MaxPool2d, bias=True):
    """The layers built with one thing changed (the known mistakes)."""
    layers, channels = [], in_channels
    for entry in config:
        if entry == "M":
            layers.append(pool(2, 2))
            continue
        conv = nn.Conv2d(channels, entry, 3, padding=padding, bias=bias)
        norm = [nn.BatchNorm2d(entry)] if batch_norm and use_bn else []
        act = [nn.ReLU()] if relu else []
        layers += [conv, *act, *norm] if bn_after_relu else [conv, *norm, *act]
        channels = entry
    return nn.Sequential(*layers)


def load_in_order(model, weights, batch_norm):
    """Copy the case's weights into the model's convolutions and batch norms, in the order they appear."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != len(weights["conv"]):
        raise ValueError(f"the network has {len(convs)} nn.Conv2d layers; the config asks for {len(weights['conv'])}, "
                         f"one per number")
    if norms and not batch_norm:
        raise ValueError("batch_norm=False, but the network has nn.BatchNorm2d layers")
    if norms and len(norms) != len(weights["bn"]):
        raise ValueError(f"the network has {len(norms)} nn.BatchNorm2d layers; with batch_norm=True it needs "
                         f"{len(weights['bn'])}, one after each convolution")
    with torch.no_grad():
        for k, (conv, (w, b)) in enumerate(zip(convs, weights["conv"])):
            if tuple(conv.weight.shape) != tuple(w.shape):
                raise ValueError(f"convolution {k} has a weight of shape {tuple(conv.weight.shape)}, expected "
                                 f"{tuple(w.shape)} (C_out, C_in, 3, 3): each convolution reads the channels of the "
                                 f"one before, the first one in_channels")
            conv.weight.copy_(w)
            if conv.bias is not None:
                conv.bias.copy_(b)
        for norm, (gamma, beta, mean, var) in zip(norms, weights["bn"]):
            if tuple(norm.weight.shape) != tuple(gamma.shape):
                raise ValueError(f"a batch norm has {norm.num_features} channels, expected {gamma.numel()}")
            norm.weight.copy_(gamma)
            norm.bias.copy_(beta)
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var)


def run_features(vgg_features, config, in_channels, batch_norm, weights, x):
    """How the learner's vgg_features is called: build, load the case's weights, run in eval mode."""
    model = vgg_features(list(config), in_channels, batch_norm)
    if not isinstance(model, nn.Module):
        raise TypeError(f"vgg_features must return an nn.Module (e.g. an nn.Sequential), got {type(model).__name__}")
    model = model.double()
    load_in_order(model, weights, batch_norm)
    model.eval()
    with torch.no_grad():
        return model(x)


def reference(config, in_channels, batch_norm, weights, x):
    return run_features(lambda c, i, b: torchvision_layers(c, i, b), config, in_channels, batch_norm, weights, x)


def variant(**changes):
    def run(config, in_channels, batch_norm, weights, x):
        return run_features(lambda c, i, b: variant_layers(c, i, b, **changes), config, in_channels, batch_norm,
                            weights, x)
    return run


def random_weights(draw, config, in_channels, batch_norm):
    weights, channels = {"conv": [], "bn": []}, in_channels
    for entry in config:
        if entry == "M":
            continue
        weights["conv"].append((draw.normal(entry, channels, 3, 3, scale=(2 / (9 * channels)) ** 0.5),
                                draw.normal(entry, scale=0.2)))
        if batch_norm:
            weights["bn"].append((1 + draw.normal(entry, scale=0.2), draw.normal(entry, scale=0.2),
                                  draw.normal(entry, scale=0.5), 0.5 + 1.5 * torch.rand(entry, generator=draw.generator,
                                                                                       dtype=torch.float64)))
        channels = entry
    return weights


def cases(draw):
    found = []
    for k in range(6):
        config = []
        for _ in range(draw.int(1, 3)):  # stages of 1 or 2 convolutions, then a max-pool
            config += [draw.choice([3, 4, 6, 8])] * draw.int(1, 2) + ["M"]
        if k % 3 == 2:
            config = config[:-1]  # a config may also end with a convolution
        in_channels, batch_norm = draw.int(1, 3), k % 2 == 0
        size = draw.choice([16, 20, 24])
        x = draw.normal(2, in_channels, size, size)
        weights = random_weights(draw, config, in_channels, batch_norm)
        found.append(Case((tuple(config), in_channels, batch_norm, weights, x),
                          f"config={config}, in_channels={in_channels}, batch_norm={batch_norm}, "
                          f"x of shape (2, {in_channels}, {size}, {size})"))
    return found


BUILDERS = Forbidden(
    modules=("companion.models", "torchvision.models"),
    names=("make_layers", "VGG", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"),
    what="the VGG builder",
)

QUESTION = Question(
    name="q2",
    function="vgg_features",
    points=points,
    reference=reference,
    oracle="torchvision.models.vgg.make_layers with the same weights",
    cases=cases,
    call=run_features,
    mistakes=(
        Mistake("the ReLUs are missing: every convolution (after its batch norm, if any) is followed by an nn.ReLU; "
                "without them the stack is one linear map.", value=variant(relu=False)),
        Mistake("batch norm comes after the ReLU: VGG's order is convolution, batch norm, ReLU.",
                value=variant(bn_after_relu=True)),
        Mistake("batch_norm=True is ignored: it asks for an nn.BatchNorm2d after every convolution, before its ReLU.",
                value=variant(use_bn=False)),
        Mistake("the convolutions are not padded: VGG pads its 3x3 convolutions by 1 pixel (padding=1), so that "
                "only the max-pools change the size.", value=variant(padding=0)),
        Mistake("\"M\" is an average pool: VGG's pooling is nn.MaxPool2d with a 2x2 window and stride 2.",
                value=variant(pool=nn.AvgPool2d)),
        Mistake("the convolutions have no bias: nn.Conv2d's default bias=True is what VGG uses (torchvision keeps "
                "it even before batch norm).", value=variant(bias=False)),
    ),
    hints=(
        "Keep a list of layers and the current number of channels (starting at in_channels), walk through the "
        "config, and wrap the list in an nn.Sequential at the end.",
        "A number means three layers (four with batch norm); \"M\" means one layer. Which of them change the size "
        "of the image?",
        "Check against the chapter: the feature map of a 32x32 image after VGG11's five max-pools is 1x1.",
    ),
    forbidden=BUILDERS,
    rtol=1e-6,
    atol=1e-8,
)


@test_case(points=points)
def test_vgg_features(vgg_features):
    QUESTION.assert_passes(vgg_features)
