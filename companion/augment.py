"""Data augmentation for small greyscale images: torchvision v2, Albumentations, and a fast batch version.

Augmentation shows the network a slightly different copy of each training image every epoch
(here: a horizontal flip with probability 1/2 and a shift of up to ``padding`` pixels, made by
cropping the zero-padded image), so that it learns what does not change the label (Shorten and
Khoshgoftaar, 2019, https://doi.org/10.1186/s40537-019-0197-0). Three ways to do the same thing:

* :func:`torchvision_pipeline`: ``torchvision.transforms.v2``, one image at a time, as a
  ``Dataset`` transform (PIL image, NumPy array or tensor in; tensor out).
* :func:`albumentations_pipeline`: the same with Albumentations (Buslaev et al., 2020,
  https://doi.org/10.3390/info11020125), which works on NumPy ``(H, W, C)`` arrays.
* :func:`random_flip_crop`: the same on a whole batch ``(N, C, H, W)`` already in memory, with a
  few vectorised tensor operations, which is what in-memory training on a CPU wants.

Introduced in chapter 3, *Training a CNN: the loop, normalisation, augmentation*.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from companion._checks import check_positive_int, check_tensor

__all__ = ["AlbumentationsPipeline", "albumentations_pipeline", "random_flip_crop", "torchvision_pipeline"]


def _check_padding(padding: object) -> int:
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0 (pixels added on each side), got {padding!r}")
    return padding


def torchvision_pipeline(train: bool = True, *, size: int = 28, padding: int = 2):
    """Flips and shifts with ``torchvision.transforms.v2``, for one ``size`` x ``size`` image at a time.

    Args:
        train: add the random flip and shift; ``False`` gives only the conversion to a tensor
            (what validation and test images get).
        size: height and width of the images (and of the crop).
        padding: zero pixels added on each side before the random ``size`` x ``size`` crop, so
            the image moves by up to ``padding`` pixels each way.

    Returns:
        A ``v2.Compose`` that maps a PIL image, a NumPy array ``(H, W)`` or ``(H, W, C)``, or a
        tensor ``(C, H, W)`` (uint8 in [0, 255] or float in [0, 1]) to a plain ``float32`` tensor
        ``(C, size, size)`` in [0, 1].
    """
    from torchvision.transforms import v2

    check_positive_int(size, "size")
    _check_padding(padding)
    random_steps = [v2.RandomCrop(size, padding=padding, fill=0), v2.RandomHorizontalFlip(p=0.5)] if train else []
    return v2.Compose([
        v2.ToImage(),  # PIL / NumPy (H, W, C) / tensor -> tv_tensors.Image (C, H, W)
        *random_steps,
        v2.ToDtype(torch.float32, scale=True),  # uint8 [0, 255] -> float [0, 1]
        v2.ToPureTensor(),  # a plain torch.Tensor, as a model expects
    ])


def _to_float_hwc(image: Any) -> np.ndarray:
    """A PIL image, an array ``(H, W[, C])`` or a tensor ``([C,] H, W)`` -> ``float32`` NumPy ``(H, W, C)`` in [0, 1]."""
    if isinstance(image, Tensor):
        if image.dim() not in (2, 3):
            raise ValueError(f"image must be a (C, H, W) or (H, W) tensor, got shape {tuple(image.shape)}")
        array = image.detach().cpu().numpy()
        array = array if array.ndim == 2 else np.moveaxis(array, 0, -1)  # (C, H, W) -> (H, W, C)
    elif isinstance(image, np.ndarray):
        array = image
    elif hasattr(image, "mode") and hasattr(image, "size"):  # a PIL image
        array = np.asarray(image)
    else:
        raise TypeError(f"image must be a PIL image, a NumPy array (H, W[, C]) or a tensor (C, H, W), "
                        f"got {type(image).__name__}")
    if array.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got an array of shape {array.shape}")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(f"a floating-point image must have values in [0, 1], got "
                             f"[{array.min():.3g}, {array.max():.3g}]")
        array = array.astype(np.float32)
    else:
        raise TypeError(f"image must be uint8 in [0, 255] or float in [0, 1], got dtype {array.dtype}")
    array = array[:, :, None] if array.ndim == 2 else array  # (H, W) -> (H, W, 1)
    return np.ascontiguousarray(array)


class AlbumentationsPipeline:
    """An Albumentations ``Compose`` as a one-argument transform: image in, tensor ``(C, H, W)`` out.

    Albumentations is called with keywords (``compose(image=array)["image"]``) and works on NumPy
    ``(H, W, C)`` arrays; this wrapper converts the input to a ``float32`` array in [0, 1] first,
    so that it can be a ``Dataset``'s ``transform`` just like a torchvision pipeline.

    Attributes:
        compose: the ``albumentations.Compose`` it applies.
    """

    def __init__(self, compose: Any) -> None:
        self.compose = compose

    def __call__(self, image: Any) -> Tensor:
        """Augment one image (PIL, array ``(H, W[, C])`` or tensor ``(C, H, W)``); returns ``float32`` ``(C, H, W)`` in [0, 1]."""
        return self.compose(image=_to_float_hwc(image))["image"]

    def __repr__(self) -> str:
        return f"AlbumentationsPipeline({self.compose!r})"


def albumentations_pipeline(train: bool = True, *, size: int = 28, padding: int = 2,
                            seed: int | None = None) -> AlbumentationsPipeline:
    """The flips and shifts of :func:`torchvision_pipeline`, written with Albumentations.

    Args:
        train: add the random flip and shift; ``False`` gives only the conversion to a tensor.
        size: height and width of the images (and of the crop).
        padding: zero pixels added on each side before the random crop.
        seed: seeds Albumentations' own random generator, for a repeatable sequence of draws.

    Returns:
        A callable that maps a PIL image, a NumPy array ``(H, W)`` or ``(H, W, C)`` (uint8, or
        float in [0, 1]) or a tensor ``(C, H, W)`` to a ``float32`` tensor ``(C, size, size)`` in
        [0, 1].

    Needs the optional dependency ``albumentations`` (2.x): ``pip install "dlcv-companion[augment]"``.
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network
    try:
        import albumentations as A
        from albumentations.pytorch import ToTensorV2
    except ImportError as error:
        raise ImportError("albumentations_pipeline needs Albumentations 2.x: "
                          "pip install 'albumentations>=2' (or dlcv-companion[augment])") from error
    import cv2

    check_positive_int(size, "size")
    _check_padding(padding)
    random_steps = [
        A.Pad(padding=padding, fill=0, border_mode=cv2.BORDER_CONSTANT),  # (H, W) -> (H + 2p, W + 2p)
        A.RandomCrop(height=size, width=size),  # a random (size, size) window of the padded image
        A.HorizontalFlip(p=0.5),
    ] if train else []
    return AlbumentationsPipeline(A.Compose([*random_steps, ToTensorV2()], seed=seed))  # (H, W, C) -> (C, H, W)


def random_flip_crop(images: Tensor, padding: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image horizontally with probability 1/2 and shift it by a random crop, on a whole batch.

    Each image is zero-padded by ``padding`` pixels on every side and an ``H`` x ``W`` window is cut
    from it at a random offset ``(dy, dx)`` in ``{0, ..., 2 * padding}``; the same as
    ``v2.RandomCrop(size, padding)`` followed by ``v2.RandomHorizontalFlip()`` per image, but done
    for all N images at once with tensor indexing (no Python loop over images).

    Args:
        images (Tensor[N, C, H, W]): the batch (any dtype, any device).
        padding: the largest shift in pixels; 0 gives flips only.
        generator: a ``torch.Generator`` for repeatable draws; ``None`` uses torch's global one.

    Returns:
        Tensor[N, C, H, W]: the augmented batch, same dtype and device.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)")
    _check_padding(padding)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    n, c, h, w = images.shape
    draw_on = generator.device if generator is not None else images.device

    flip = (torch.rand(n, generator=generator, device=draw_on) < 0.5).to(images.device)  # (N,)
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)  # (N, 1, 1, 1) broadcast

    if padding == 0:
        return images
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=draw_on).to(images.device)  # (N,)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=draw_on).to(images.device)  # (N,)
    padded = F.pad(images, (padding, padding, padding, padding))  # (N, C, H + 2p, W + 2p)
    rows = dy[:, None] + torch.arange(h, device=images.device)  # (N, H): the window's rows in padded
    cols = dx[:, None] + torch.arange(w, device=images.device)  # (N, W): the window's columns
    batch = torch.arange(n, device=images.device)[:, None, None, None]  # (N, 1, 1, 1)
    channel = torch.arange(c, device=images.device)[None, :, None, None]  # (1, C, 1, 1)
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]  # broadcast to (N, C, H, W)
