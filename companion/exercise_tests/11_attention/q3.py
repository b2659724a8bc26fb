"""Exercise 11, question 3: scaled dot-product attention, ``attention``.

The reference is ``F.scaled_dot_product_attention``: ``softmax(Q K^T / sqrt(d)) V`` over the last
two axes, any leading (batch, head) axes broadcast. Each known mistake is the same formula with
one thing changed (no scale, the softmax over the queries, ...). An otter-grader exception-based
test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import math

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def reference(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


def variant(*, scale="sqrt", axis=-1, softmax=True, transposed=False):
    """The attention formula with one thing changed (the defaults give the right one)."""

    def attention(q, k, v):
        d = q.shape[-1]
        scores = q @ k.transpose(-2, -1)                          # (..., T, S)
        scores = scores / {"sqrt": math.sqrt(d), "none": 1.0, "d": d}[scale]
        if transposed:  # softmax(K Q^T) laid back on V: each key spreads its weight over the queries
            if q.shape[-2] != k.shape[-2]:
                return None
            weights = (k @ q.transpose(-2, -1) / math.sqrt(d)).softmax(dim=-1)  # (..., S, T)
            return weights @ v
        weights = scores.softmax(dim=axis) if softmax else scores
        return weights @ v                                         # (..., T, dv)

    return attention


def cases(draw):
    found = []
    for lead, t, s, d, dv in [((2,), 5, 5, 8, 8), ((3,), 4, 6, 16, 4), ((2, 3), 7, 7, 4, 4), ((1,), 3, 5, 32, 6),
                              ((2, 2), 6, 6, 64, 3), ((4,), 1, 3, 8, 8)]:
        q = draw.normal(*lead, t, d)
        k = draw.normal(*lead, s, d)
        v = draw.normal(*lead, s, dv)
        found.append(Case((q, k, v), f"q {(*lead, t, d)}, k {(*lead, s, d)}, v {(*lead, s, dv)}"))
    return found


ATTENTION = Forbidden(
    ops=("aten.scaled_dot_product_attention", "aten._scaled_dot_product_attention_math",
         "aten._scaled_dot_product_flash_attention", "aten._scaled_dot_product_flash_attention_for_cpu",
         "aten._scaled_dot_product_efficient_attention", "aten._scaled_dot_product_cudnn_attention",
         "aten._native_multi_head_attention", "aten._scaled_dot_product_fused_attention_overrideable"),
    functions=("torch.nn.functional.scaled_dot_product_attention", "torch.nn.functional.multi_head_attention_forward"),
    modules=("companion.models.vit", "companion.models.attention"),
    names=("scaled_dot_product_attention", "MultiheadAttention", "multi_head_attention_forward",
           "MultiHeadSelfAttention", "SelfAttention2d"),
    what="the attention",
)

QUESTION = Question(
    name="q3",
    function="attention",
    points=points,
    reference=reference,
    oracle="torch.nn.functional.scaled_dot_product_attention",
    cases=cases,
    mistakes=(
        Mistake("the scores are not scaled: divide Q K^T by sqrt(d), the square root of the query width, or the "
                "softmax saturates as d grows.", value=variant(scale="none")),
        Mistake("the scores are divided by d: the scale is 1 / sqrt(d) (a dot product of d unit-variance terms "
                "has variance d, so this brings it back to 1).", value=variant(scale="d")),
        Mistake("the queries and keys are swapped: the weights must be softmax(Q K^T), one row per query, "
                "and the output has one row per query.", value=variant(transposed=True)),
        Mistake("the softmax runs over the wrong axis: each query's weights (a row of Q K^T, one entry per "
                "key) must sum to 1, so take the softmax over the last axis.", value=variant(axis=-2)),
        Mistake("the softmax is missing: the weights are softmax(Q K^T / sqrt(d)), positive and summing to 1 "
                "over the keys.", value=variant(softmax=False)),
    ),
    hints=(
        "Write the shapes down: q (..., T, d), k (..., S, d), v (..., S, dv). The scores compare every query "
        "with every key: which shape must they have?",
        "Transpose only the last two axes of k (k.transpose(-2, -1)); k.T would reverse all of them.",
        "After the softmax, every row of the weights sums to 1; multiply by v to get (..., T, dv).",
    ),
    forbidden=ATTENTION,
)


@test_case(points=points)
def test_attention(attention):
    QUESTION.assert_passes(attention)
