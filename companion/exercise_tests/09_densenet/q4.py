"""Exercise 9, question 4: find the bug in a colleague's dense block and fix it, ``dense_block``.

The notebook shows a colleague's block that concatenates each layer's new features *before* the
features so far, ``torch.cat([new, x])``: every shape is right, but the channels reach the layers
(and leave the block) in the wrong order, so trained weights compute something else.

The learner's ``dense_block(num_layers, in_channels, growth_rate, bn_size)`` returns an
``nn.Module`` whose ``layers`` (an ``nn.ModuleList``) hold the dense layers, each with ``norm1``,
``conv1``, ``norm2``, ``conv2``. The grader builds it, loads into it the state dict of torchvision's
``_DenseBlock`` (random weights and statistics; ``denselayer{i}.`` renamed ``layers.{i - 1}.``) and
runs it in evaluation mode; only the output comes back. The reference is
``torchvision.models.densenet._DenseBlock`` (Huang et al., *Densely Connected Convolutional
Networks*, CVPR 2017, https://arxiv.org/abs/1608.06993: layer ``l`` reads ``[x_0, ..., x_{l-1}]``
and the block outputs ``[x_0, ..., x_L]``); each known mistake is the block, built from
torchvision's layers with the same weights, wired differently. An otter-grader exception-based
test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torchvision.models.densenet import _DenseBlock

from companion.grade import Case, Forbidden, Mistake, Question, modules

OK_FORMAT = False
name = "q4"
points = 3


def torchvision_block(num_layers, in_channels, growth_rate, bn_size):
    return _DenseBlock(num_layers, in_channels, bn_size, growth_rate, drop_rate=0.0)


def learner_names(state):
    """torchvision's names, denselayer{i}.norm1.weight, as the question asks for them: layers.{i - 1}.norm1.weight."""
    renamed = {}
    for key, value in state.items():
        first, rest = key.split(".", 1)  # "denselayer3", "norm1.weight"
        renamed[f"layers.{int(first.removeprefix('denselayer')) - 1}.{rest}"] = value
    return renamed


def build_and_run(dense_block, state, x, num_layers, in_channels, growth_rate, bn_size):
    """How the learner's function is called: build the block, load the weights by name, run it in eval mode."""
    block = modules.load_named_state(dense_block(num_layers, in_channels, growth_rate, bn_size), learner_names(state),
                             function="dense_block",
                             layout="layers = nn.ModuleList of dense layers, layer l reading in_channels + "
                                    "(l - 1) * growth_rate channels, each with norm1, conv1, norm2, conv2")
    with torch.no_grad():
        return block(x.clone())


def reference(state, x, num_layers, in_channels, growth_rate, bn_size):
    """torchvision's _DenseBlock with the case's weights, in evaluation mode."""
    block = torchvision_block(num_layers, in_channels, growth_rate, bn_size)
    block.load_state_dict(state)
    block.eval()
    with torch.no_grad():
        return block(x.clone())


def wired(state, x, num_layers, in_channels, growth_rate, bn_size, *, keep_input=True, last_only=False,
          reversed_order=False):
    """The block from torchvision's layers and the given weights, right with the defaults, or wired differently."""
    block = torchvision_block(num_layers, in_channels, growth_rate, bn_size)
    block.load_state_dict(state)
    block.eval()
    features = x
    new = []
    with torch.no_grad():
        for layer in block.values():
            out = layer(features)  # (N, k, H, W)
            new.append(out)
            features = torch.cat([out, features] if reversed_order else [features, out], dim=1)
    if last_only:
        return new[-1]
    if not keep_input:
        return torch.cat(new, dim=1)
    return features


def variant(**changes):
    def value(state, x, num_layers, in_channels, growth_rate, bn_size):
        if changes.get("last_only") and num_layers == 1:
            return None
        return wired(state, x, num_layers, in_channels, growth_rate, bn_size, **changes)
    return value


def random_state(draw, num_layers, in_channels, growth_rate, bn_size):
    """torchvision's state dict for the block, filled with random weights and batch-norm statistics."""
    with torch.device("meta"):
        template = torchvision_block(num_layers, in_channels, growth_rate, bn_size)  # names and shapes only
    return modules.random_state(draw, template)


# (num_layers, in_channels, growth_rate, bn_size)
SETTINGS = [(3, 4, 2, 2), (2, 3, 3, 4), (4, 5, 2, 1), (3, 6, 4, 2), (1, 4, 3, 2), (5, 2, 2, 2)]


def cases(draw):
    found = []
    for num_layers, in_channels, growth_rate, bn_size in SETTINGS:
        h, w = draw.int(3, 7), draw.int(3, 7)
        x = draw.normal(2, in_channels, h, w, dtype=torch.float32)
        found.append(Case((random_state(draw, num_layers, in_channels, growth_rate, bn_size), x, num_layers,
                           in_channels, growth_rate, bn_size),
                          f"dense_block({num_layers}, {in_channels}, {growth_rate}, bn_size={bn_size}) on x of shape "
                          f"(2, {in_channels}, {h}, {w})"))
    return found


QUESTION = Question(
    name="q4",
    function="dense_block",
    points=points,
    reference=reference,
    oracle="torchvision.models.densenet._DenseBlock",
    cases=cases,
    call=build_and_run,
    mistakes=(
        Mistake("the block's input is missing from its output: the block returns [x_0, x_1, ..., x_L], its input "
                "followed by every layer's new features.", value=variant(keep_input=False)),
        Mistake("the block returns only the last layer's output: it returns the whole concatenation "
                "[x_0, x_1, ..., x_L], C + L * k channels.", value=variant(last_only=True)),
        Mistake("the concatenation is in the wrong order, the colleague's bug: append each layer's new features "
                "after the features so far, torch.cat([features, new], dim=1), so the block input stays first "
                "and layer l reads [x_0, x_1, ..., x_{l-1}] in the order its weights expect.",
                value=variant(reversed_order=True)),
    ),
    hints=(
        "Keep a running tensor of all features so far. Each layer reads all of it; what do you do with what the "
        "layer returns?",
        "Layer l (counting from 1) reads in_channels + (l - 1) * growth_rate channels: build each layer with that.",
        "The output has in_channels + num_layers * growth_rate channels, the block's input first.",
    ),
    forbidden=Forbidden(modules=("companion.models", "torchvision.models"),
                        names=("_DenseLayer", "_DenseBlock", "DenseLayer", "DenseBlock", "DenseNet", "densenet121"),
                        what="the dense block"),
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_dense_block(dense_block):
    QUESTION.assert_passes(dense_block)
