"""Input shapes of the classic classifiers: the smallest image they accept, the feature map their head takes.

Convolutions without enough padding and pooling layers shrink the image; below some size one of
them has no output pixel left and torch stops with "Output size is too small". Each layer's output
length is (Dumoulin & Visin, *A guide to convolution arithmetic for deep learning*, 2016,
https://arxiv.org/abs/1603.07285)::

    floor((n + 2p - k) / s) + 1                            (ceil_mode=False)
    ceil((n + 2p - k) / s) + 1, minus 1 if the last        (ceil_mode=True, as torch computes it)
        window would start in the right padding

Going through the layers from the last one back to the first, and asking each time "what is the
shortest input that still gives this many outputs?", gives the smallest image that reaches the
end with at least one pixel. Layers that keep the size (a 3x3 convolution with padding 1, batch
norm, ReLU) do not matter and are left out of the list.

:func:`check_feature_map` checks what a ``head(z)`` is given: the 4-D map that ``features(x)`` returns.

Used by the classifiers of chapters 5, 6 and 10 to check their input (with
:func:`companion.models._input.check_images`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from companion._checks import check_tensor


@dataclass(frozen=True)
class Window:
    """A sliding-window layer along one axis: a convolution or a pooling with a square kernel."""

    kernel: int
    stride: int = 1
    padding: int = 0
    ceil_mode: bool = False

    def output_size(self, n: int) -> int:
        """Output length for an input of length ``n``, as torch computes it (may be <= 0: no output)."""
        span = n + 2 * self.padding - self.kernel
        if not self.ceil_mode:
            return span // self.stride + 1
        out = -(-span // self.stride) + 1  # ceil division
        if (out - 1) * self.stride >= n + self.padding:  # the last window must start inside the input
            out -= 1
        return out

    def smallest_input(self, out: int) -> int:
        """The shortest input with at least ``out`` outputs."""
        # Without ceil mode the inequality floor((n + 2p - k) / s) + 1 >= out solves exactly; with it,
        # start from the same bound lowered by s - 1 and step up to the first length that works.
        n = max(1, (out - 1) * self.stride + self.kernel - 2 * self.padding
                - (self.stride - 1 if self.ceil_mode else 0))
        while self.output_size(n) < out:
            n += 1
        return n


def min_input_size(windows: Sequence[Window]) -> int:
    """The smallest height (and width) for which every window, applied in order, has an output pixel."""
    n = 1
    for window in reversed(windows):
        n = window.smallest_input(n)
    return n


def check_feature_map(z: object, *, channels: int, model: str) -> Tensor:
    """Check that ``z`` is a float feature map ``(N, channels, h, w)``, what ``model.head`` takes."""
    layout = f"(N, {channels}, h, w)"
    check_tensor(z, "z", ndim=4, shape_hint=layout, floating=True)
    assert isinstance(z, Tensor)
    if z.shape[1] != channels:
        raise ValueError(f"{model}.head expects the feature map of {model}.features, {layout}, "
                         f"got shape {tuple(z.shape)}")
    return z


__all__ = ["Window", "check_feature_map", "min_input_size"]
