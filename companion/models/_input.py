"""Input checks shared by the models: an image batch of the right layout, channels and size.

A network fed the wrong input fails deep inside torch ("Given groups=1, weight of size ...",
"Output size is too small"). Every model of :mod:`companion.models` checks its input first, at the
public boundary, and says what it expected instead.

Used by the architectures of part II (chapters 5–11).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from companion._checks import check_tensor


def check_images(x: object, *, channels: int, min_size: int = 1, model: str = "the model") -> Tensor:
    """Check that ``x`` is a float image batch ``(N, channels, H, W)`` with ``H, W >= min_size``.

    Args:
        x: the value to check.
        channels: the number of input channels the first convolution takes.
        min_size: the smallest height and width for which every layer still has an output of at
            least one pixel.
        model: the model's name, quoted in the messages.

    Returns:
        ``x`` itself.
    """
    layout = f"(N, {channels}, H, W)"
    check_tensor(x, "x", ndim=4, shape_hint=layout, floating=True)
    assert isinstance(x, Tensor)
    if x.shape[1] != channels:
        raise ValueError(f"{model} expects {channels} input channel{'s' if channels != 1 else ''}: x must be "
                         f"{layout}, got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height < min_size or width < min_size:
        raise ValueError(f"{model} needs inputs of at least {min_size}x{min_size} pixels, got {height}x{width}")
    return x


class CheckedSequential(nn.Sequential):
    """An ``nn.Sequential`` that checks its image batch (:func:`check_images`) before running its layers.

    It keeps ``nn.Sequential``'s parameter names (``features.0.weight`` or ``features.conv0.weight``),
    so a model whose trunk is one stays weight-compatible with torchvision's. A slice
    (``trunk[:5]``) is a plain sequence of layers again and checks nothing.

    Args:
        layers: the layers, as a list or as an ``OrderedDict`` of named layers.
        channels: input channels the first layer takes (``None``: no check, as for a slice).
        min_size: smallest input height and width (see :func:`check_images`).
        model: the model's name, quoted in the messages.
    """

    def __init__(self, layers: OrderedDict[str, nn.Module] | Sequence[nn.Module], *, channels: int | None = None,
                 min_size: int = 1, model: str = "the model") -> None:
        if isinstance(layers, OrderedDict):
            super().__init__(layers)
        else:
            super().__init__(*layers)
        self.channels = channels
        self.min_size = min_size
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        if self.channels is not None:
            check_images(x, channels=self.channels, min_size=self.min_size, model=self.model)
        return super().forward(x)

    def extra_repr(self) -> str:
        return "" if self.channels is None else f"input: (N, {self.channels}, H, W), H, W >= {self.min_size}"


__all__ = ["CheckedSequential", "check_images"]
