"""Questions whose answer is a module: random reference weights, and loading them into the learner's module.

A question like "write a residual block" cannot compare functions on tensors directly: the
learner's block has its own, freshly initialised weights. Its check instead draws one set of weights
(:func:`random_state`, shaped like the reference module's state dict), loads them into the reference
and, by parameter name, into the learner's module (:func:`load_named_state`), and compares the two
outputs. A module whose parameters are named or shaped differently gets a message that lists what
is missing, unexpected or of the wrong shape, rather than torch's ``load_state_dict`` error.

Used by the module questions of exercises 6, 7, 9 and 10 (``companion/exercise_tests/``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from companion.grade.question import Draw

#: Buffers that a hand-written batch norm may lack; they do not change the output in evaluation mode.
OPTIONAL = ("num_batches_tracked",)


def _is_optional(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in OPTIONAL


def random_state(draw: Draw, template: nn.Module, *, scale: float = 0.5,
                 dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Random values for every entry of ``template``'s state dict.

    Build ``template`` on the ``meta`` device (no memory, no arithmetic), but call this function
    outside that context, so that the values it draws are real tensors.

    Weights, biases and running means are ``N(0, scale^2)``; batch-norm scales (1-D weights) and running
    variances are ``0.5 + |N(0, 1)|``, positive and away from 1, so that a missing or misplaced batch
    norm changes the output; ``num_batches_tracked`` is 0.

    Args:
        draw: the check's random numbers.
        template: the reference module; only the names and shapes of its state dict are read.
        scale: the standard deviation of the normal entries.
        dtype: of the floating-point entries.

    Returns:
        ``{name: Tensor}`` with ``template.state_dict()``'s names and shapes.
    """
    state = {}
    for key, value in template.state_dict().items():
        kind = key.rsplit(".", 1)[-1]
        if _is_optional(key):
            state[key] = torch.zeros((), dtype=torch.long)
        elif kind == "running_var" or (kind == "weight" and value.dim() == 1):  # variances, and gammas away from 0
            state[key] = 0.5 + draw.normal(*value.shape, dtype=dtype).abs()
        else:
            state[key] = draw.normal(*value.shape, scale=scale, dtype=dtype)
    return state


def load_named_state(module: object, state: dict[str, Tensor], *, function: str, layout: str) -> nn.Module:
    """Load ``state`` into the learner's ``module`` by name, after checking names and shapes, and set eval mode.

    Args:
        module: what the learner's function returned (or its class built).
        state: the reference weights, e.g. from :func:`random_state`.
        function: the learner's function or class, for the messages (``"dense_layer"``).
        layout: how the parameters must be named, for the messages (``"norm1, conv1, norm2, conv2,
            convolutions without bias"``).

    Returns:
        ``module``, loaded and in evaluation mode.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``.
        ValueError: its parameter and buffer names, or their shapes, are not those of ``state``
            (``num_batches_tracked`` may be missing).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"{function} must return an nn.Module, got {type(module).__name__}")
    have = {k: tuple(v.shape) for k, v in module.state_dict().items() if not _is_optional(k)}
    want = {k: tuple(v.shape) for k, v in state.items() if not _is_optional(k)}
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if missing or unexpected:
        raise ValueError(f"the grader loads the reference weights by name, so {function} needs {layout}; "
                         f"missing {missing[:4] or 'nothing'}, unexpected {unexpected[:4] or 'nothing'}")
    wrong = [f"{k} is {have[k]}, expected {want[k]}" for k in sorted(want) if have[k] != want[k]]
    if wrong:
        raise ValueError(f"{function} has parameters of the wrong shape: " + "; ".join(wrong[:4]))
    module.load_state_dict({k: v for k, v in state.items() if k in module.state_dict()}, strict=False)
    return module.eval()


__all__ = ["load_named_state", "random_state"]
