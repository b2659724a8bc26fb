"""Exercise 11, question 3: find the bug in a colleague's SAGAN self-attention layer, ``sagan_layer``.

The notebook shows a colleague's self-attention layer whose softmax runs over the queries (each
*column* of the attention map sums to 1) instead of over the keys. The learner writes the fixed
layer as an ``nn.Module``. Zhang, Goodfellow, Metaxas & Odena, *Self-Attention Generative
Adversarial Networks*, ICML 2019 (https://arxiv.org/abs/1805.08318), section 3: queries ``f`` and
keys ``g`` of ``C / 8`` channels, values ``h`` of ``C`` (the chapter's simpler form, without the
paper's last 1x1 convolution), ``beta = softmax_j(f(x_i) . g(x_j))`` with no ``1 / sqrt(d)``,
``y = gamma * o + x``, and ``gamma`` initialised to 0.

A module question: the grader builds the learner's layer, runs it once with its own
initialisation (where it must be the identity, since ``gamma`` starts at 0), then loads random
weights (``gamma`` away from 0) and runs it again. The reference is the chapter's
``SelfAttention2d`` with the same weights, itself checked against ``F.scaled_dot_product_attention``.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import math

import torch
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Forbidden, Mistake, Question
from companion.grade.compare import difference
from companion.models.attention import SelfAttention2d

OK_FORMAT = False
name = "q3"
points = 4

KEYS = ("query.weight", "query.bias", "key.weight", "key.bias", "value.weight", "value.bias", "gamma")


def build_and_run(sagan_layer, channels, state, x):
    """How the learner's sagan_layer is called: its own initialisation first, then the grader's weights."""
    module = sagan_layer(channels)
    if not isinstance(module, nn.Module):
        raise TypeError(f"sagan_layer must return an nn.Module, got {type(module).__name__}")
    module = module.to(x.dtype).eval()  # the cases are float64, so that small differences show
    own = module.state_dict()
    if set(own) != set(KEYS):
        raise ValueError(f"the layer's parameters must be exactly {', '.join(KEYS)} (as in the colleague's layer), "
                         f"got {', '.join(own) or 'none'}")
    for key in KEYS:
        if own[key].shape != state[key].shape:
            raise ValueError(f"{key} has shape {tuple(own[key].shape)}; for channels={channels} it should be "
                             f"{tuple(state[key].shape)}")
    with torch.no_grad():
        at_start = module(x.clone())
        module.load_state_dict(state)
        trained = module(x.clone())
    return at_start, trained


def reference(channels, state, x):
    layer = SelfAttention2d(channels).double().eval()
    with torch.no_grad():
        at_start = layer(x)  # gamma = 0: the identity
        layer.load_state_dict(state)
        return at_start, layer(x)


def variant(*, axis=-1, scale=1.0, residual=True, transposed=False):
    """The layer with one thing changed (the defaults give the right one), run like build_and_run."""

    def layer(channels, state, x):
        n, c, h, w = x.shape
        conv = lambda key: torch.nn.functional.conv2d(x, state[f"{key}.weight"], state[f"{key}.bias"])  # noqa: E731
        q = conv("query").flatten(2).transpose(1, 2)                     # (N, M, C/8)
        k = conv("key").flatten(2)                                       # (N, C/8, M)
        v = conv("value").flatten(2)                                     # (N, C, M)
        d = q.shape[-1]
        scores = q @ k / {1.0: 1.0, "sqrt": math.sqrt(d)}[scale]        # (N, M, M)
        beta = scores.softmax(dim=axis)
        o = (v @ beta if transposed else v @ beta.transpose(1, 2)).view(n, c, h, w)
        y = state["gamma"] * o
        return (x if residual else torch.zeros_like(x)), (y + x if residual else y)

    return layer


def gamma_not_zero(value, expected, args):
    """Right with the grader's weights, but not the identity with its own initialisation."""
    if type(value) is not tuple or len(value) != 2:
        return False
    return difference(value[1], expected[1]) is None and difference(value[0], expected[0]) is not None


SETTINGS = [(8, (2, 3, 4)), (16, (2, 5, 5)), (32, (1, 4, 6)), (8, (3, 1, 7)), (24, (2, 6, 3)), (16, (1, 2, 9))]


def cases(draw):
    found = []
    for channels, (n, h, w) in SETTINGS:
        squeezed = channels // 8
        state = {"query.weight": draw.normal(squeezed, channels, 1, 1, scale=0.7),
                 "query.bias": draw.normal(squeezed, scale=0.5),
                 "key.weight": draw.normal(squeezed, channels, 1, 1, scale=0.7),
                 "key.bias": draw.normal(squeezed, scale=0.5),
                 "value.weight": draw.normal(channels, channels, 1, 1, scale=0.5),
                 "value.bias": draw.normal(channels, scale=0.5),
                 "gamma": 0.5 + draw.normal(1).abs()}
        found.append(Case((channels, state, draw.normal(n, channels, h, w)),
                          f"channels={channels}, x of shape {(n, channels, h, w)}"))
    return found


SAGAN = Forbidden(
    ops=("aten.scaled_dot_product_attention", "aten._scaled_dot_product_attention_math",
         "aten._scaled_dot_product_flash_attention", "aten._scaled_dot_product_flash_attention_for_cpu",
         "aten._scaled_dot_product_efficient_attention", "aten._native_multi_head_attention"),
    functions=("torch.nn.functional.scaled_dot_product_attention", "torch.nn.functional.multi_head_attention_forward"),
    modules=("companion.models.attention", "companion.models.vit", "companion.models.gan"),
    names=("scaled_dot_product_attention", "MultiheadAttention", "SelfAttention2d", "MultiHeadSelfAttention"),
    what="the self-attention layer",
)

QUESTION = Question(
    name="q3",
    function="sagan_layer",
    points=points,
    reference=reference,
    oracle="the chapter's SelfAttention2d with the same weights (gamma = 0 at the start)",
    cases=cases,
    call=build_and_run,
    mistakes=(
        Mistake("this is still the colleague's bug: the softmax runs over the queries (dim=1 of the (N, HW, HW) "
                "scores), so each *column* of the map sums to 1. Row i holds the weights query i gives every key: "
                "take the softmax over the keys, the last axis.", value=variant(axis=1)),
        Mistake("gamma does not start at 0: SAGAN initialises gamma = 0 so that the new layer is the identity "
                "(y = x) and the network first relies on its convolutions; nn.Parameter(torch.zeros(1)).",
                matches=gamma_not_zero),
        Mistake("the scores are divided by sqrt(d): that is the transformer's scaled attention; SAGAN's layer "
                "takes the softmax of the plain products f(x_i) . g(x_j).", value=variant(scale="sqrt")),
        Mistake("the attention map is applied transposed: o_i = sum_j beta[i, j] h(x_j), so with values (N, C, HW) "
                "and beta (N, HW, HW) the product is v @ beta.transpose(1, 2).", value=variant(transposed=True)),
        Mistake("the shortcut is missing: the layer returns gamma * o + x, not gamma * o.",
                value=variant(residual=False)),
    ),
    hints=(
        "Print the colleague's attention map's sums along each axis: which axis sums to 1, and which should?",
        "Row i of beta holds the weights that position i (a query) gives every position j (the keys); a softmax "
        "normalises the axis you take it over.",
        "Keep what the colleague got right: 1x1 convolutions query and key (C -> C / 8), value (C -> C), no "
        "scaling of the scores, and gamma starting at 0.",
    ),
    forbidden=SAGAN,
    rtol=1e-6,
    atol=1e-8,
)


@test_case(points=points)
def test_sagan_layer(sagan_layer):
    QUESTION.assert_passes(sagan_layer)
