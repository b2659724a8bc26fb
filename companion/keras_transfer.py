"""Keras 3 twins of PyTorch backbones: the same layers, and optionally the same weights.

Chapter 12 runs transfer learning in PyTorch and in Keras 3 side by side. Keras cannot load a
PyTorch state dict, so :func:`keras_twin` builds the Keras model layer by layer from a PyTorch
``nn.Sequential`` and copies each layer's weights into it, converting their layouts:

=====================  ================================  ==========================================
PyTorch                Keras                             weights
=====================  ================================  ==========================================
``nn.Conv2d``          ``Conv2D`` (+ ``ZeroPadding2D``)  kernel ``(O, I, kh, kw)`` -> ``(kh, kw, I, O)``
``nn.BatchNorm2d``     ``BatchNormalization(axis=1)``    gamma, beta, moving mean and variance;
                                                         ``momentum`` -> ``1 - momentum``, same eps
``nn.Linear``          ``Dense``                         kernel ``(out, in)`` -> ``(in, out)``
``nn.ReLU``            ``ReLU``
``nn.MaxPool2d``       ``MaxPooling2D``
``nn.AvgPool2d``       ``AveragePooling2D``
``nn.Flatten``         ``Flatten``                       (N, C, H, W) flattened in PyTorch's order
``nn.Dropout``         ``Dropout``
=====================  ================================  ==========================================

The twin keeps PyTorch's ``(N, C, H, W)`` layout (``data_format="channels_first"``), so the two
frameworks read the same tensors and flatten features in the same order; the tests check that
both compute the same function, in inference and in training mode. Keras must run on the torch
backend: set ``os.environ["KERAS_BACKEND"] = "torch"`` before Keras is first imported (this
module imports Keras only when called, and checks the backend).

Introduced in chapter 12, *Transfer learning, PyTorch and Keras 3*.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from torch import nn

__all__ = ["keras_twin", "require_torch_backend"]

CHANNELS_FIRST = "channels_first"


def require_torch_backend() -> Any:
    """Import Keras and check that it runs on torch; returns the ``keras`` module.

    Raises:
        RuntimeError: when Keras runs on another backend (``KERAS_BACKEND`` was not ``torch``
            when Keras was first imported).
    """
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"Keras runs on {keras.backend.backend()!r}, not 'torch': set "
                           "os.environ['KERAS_BACKEND'] = 'torch' before the first `import keras` "
                           "(restart the kernel if Keras was already imported)")
    return keras


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    """The layers of a (possibly nested) ``nn.Sequential``, in order."""
    if isinstance(module, nn.Sequential):
        for child in module:
            yield from _leaves(child)
    else:
        yield module


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _conv(keras, layer: nn.Conv2d, name: str) -> list:
    if layer.groups != 1 or _pair(layer.dilation) != (1, 1) or layer.padding_mode != "zeros" \
            or isinstance(layer.padding, str):
        raise ValueError(f"{name}: only plain convolutions are supported (groups=1, dilation=1, "
                         f"integer zero padding), got {layer}")
    kernel, stride, padding = _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding)
    same = stride == (1, 1) and all(k % 2 == 1 and p == k // 2 for k, p in zip(kernel, padding))
    layers = []
    if padding != (0, 0) and not same:
        layers.append(keras.layers.ZeroPadding2D(padding, data_format=CHANNELS_FIRST, name=f"{name}_pad"))
    conv = keras.layers.Conv2D(layer.out_channels, kernel, strides=stride, padding="same" if same else "valid",
                               use_bias=layer.bias is not None, data_format=CHANNELS_FIRST, name=name)
    weights = [_numpy(layer.weight).transpose(2, 3, 1, 0)]  # (O, I, kh, kw) -> (kh, kw, I, O)
    if layer.bias is not None:
        weights.append(_numpy(layer.bias))
    return layers + [(conv, weights)]


def _batchnorm(keras, layer: nn.BatchNorm2d, name: str) -> list:
    if not (layer.affine and layer.track_running_stats) or layer.momentum is None:
        raise ValueError(f"{name}: only batch norms with affine parameters, running statistics and a "
                         f"momentum are supported, got {layer}")
    # Keras: moving = momentum * moving + (1 - momentum) * batch; torch weighs the batch by its momentum.
    bn = keras.layers.BatchNormalization(axis=1, momentum=1.0 - layer.momentum, epsilon=layer.eps, name=name)
    weights = [_numpy(layer.weight), _numpy(layer.bias), _numpy(layer.running_mean), _numpy(layer.running_var)]
    return [(bn, weights)]


def _pool(keras, layer: nn.Module, name: str) -> list:
    kernel = _pair(layer.kernel_size)
    stride = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
    if _pair(layer.padding) != (0, 0) or layer.ceil_mode or (isinstance(layer, nn.MaxPool2d)
                                                             and _pair(layer.dilation) != (1, 1)):
        raise ValueError(f"{name}: only pooling without padding, dilation or ceil_mode is supported, got {layer}")
    cls = keras.layers.MaxPooling2D if isinstance(layer, nn.MaxPool2d) else keras.layers.AveragePooling2D
    return [cls(kernel, strides=stride, data_format=CHANNELS_FIRST, name=name)]


def keras_twin(model: nn.Sequential, input_shape: tuple[int, ...], *, copy_weights: bool = True,
               name: str = "twin") -> Any:
    """A ``keras.Sequential`` computing what ``model`` computes, on ``(N, C, H, W)`` inputs.

    Args:
        model: an ``nn.Sequential`` (nested ones are flattened) of the layers in the module
            docstring's table.
        input_shape: the shape of one example, without the batch axis, e.g. ``(1, 28, 28)``.
        copy_weights: copy ``model``'s weights and batch-norm statistics; ``False`` keeps Keras's
            own initialisation (the same architecture trained from scratch).
        name: the Keras model's name; its layers are named ``{name}_{i}_{kind}``.

    Returns:
        A built ``keras.Sequential``. Called on a float32 tensor ``(N, C, H, W)`` in inference mode
        (``training=False``), it returns what ``model.eval()`` returns; with ``training=True``,
        what ``model.train()`` returns (batch statistics), and it updates the moving statistics
        the way torch updates the running ones.

    Raises:
        TypeError: when ``model`` is not an ``nn.Sequential``.
        ValueError: for a layer (or a layer option) without a twin here.
        RuntimeError: when Keras does not run on torch.
    """
    keras = require_torch_backend()
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential of layers, got {type(model).__name__}")
    entries: list = []  # keras layers, or (layer, weights to copy once built)
    for i, layer in enumerate(_leaves(model)):
        tag = f"{name}_{i}_{type(layer).__name__.lower()}"
        if isinstance(layer, nn.Conv2d):
            entries += _conv(keras, layer, tag)
        elif isinstance(layer, nn.BatchNorm2d):
            entries += _batchnorm(keras, layer, tag)
        elif isinstance(layer, nn.Linear):
            dense = keras.layers.Dense(layer.out_features, use_bias=layer.bias is not None, name=tag)
            weights = [_numpy(layer.weight).T] + ([_numpy(layer.bias)] if layer.bias is not None else [])
            entries.append((dense, weights))  # kernel (out, in) -> (in, out)
        elif isinstance(layer, nn.ReLU):
            entries.append(keras.layers.ReLU(name=tag))
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            entries += _pool(keras, layer, tag)
        elif isinstance(layer, nn.Flatten):
            if (layer.start_dim, layer.end_dim) != (1, -1):
                raise ValueError(f"{tag}: only nn.Flatten() over all but the batch axis is supported")
            # channels_last: a plain reshape, PyTorch's (C, H, W) order (channels_first would transpose)
            entries.append(keras.layers.Flatten(data_format="channels_last", name=tag))
        elif isinstance(layer, nn.Dropout):
            entries.append(keras.layers.Dropout(layer.p, name=tag))
        elif isinstance(layer, nn.Identity):
            continue
        else:
            raise ValueError(f"{tag}: no Keras twin for {type(layer).__name__} (supported: Conv2d, BatchNorm2d, "
                             "Linear, ReLU, MaxPool2d, AvgPool2d, Flatten, Dropout)")
    layers = [e[0] if isinstance(e, tuple) else e for e in entries]
    twin = keras.Sequential([keras.Input(shape=tuple(input_shape))] + layers, name=name)
    if copy_weights:
        for entry in entries:
            if isinstance(entry, tuple):
                layer, weights = entry
                layer.set_weights(weights)
    return twin
