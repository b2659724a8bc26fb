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

Chapter 5 adds the augmentations of AlexNet and VGG, on batches:

* :func:`scale_jitter_crop`: rescale each image so that its shorter side is a random ``S`` in
  ``[S_min, S_max]``, then cut a random fixed-size crop and flip it (VGG's scale jittering,
  Simonyan & Zisserman, 2015, https://arxiv.org/abs/1409.1556, Section 3.1; with one ``S`` it is
  AlexNet's random crops and flips);
* :func:`rgb_covariance`, :func:`principal_components` and :func:`fancy_pca`: AlexNet's colour
  augmentation along the principal components of the RGB values (Krizhevsky, Sutskever & Hinton,
  2012, Section 4.1).

Introduced in chapter 3, *Training a CNN: the loop, normalisation, augmentation*; the additions
above in chapter 5, *AlexNet and VGG*.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from companion._checks import check_positive_int, check_tensor

__all__ = ["AlbumentationsPipeline", "albumentations_pipeline", "fancy_pca", "principal_components", "random_flip_crop",
           "resize_shorter_side", "rgb_covariance", "scale_jitter_crop", "torchvision_pipeline"]


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


# ---------------------------------------------------------------- AlexNet's and VGG's augmentation
# Introduced in chapter 5, *AlexNet and VGG*.


def _check_scale_range(scale: int | tuple[int, int], crop: int) -> tuple[int, int]:
    s_min, s_max = (scale, scale) if isinstance(scale, int) and not isinstance(scale, bool) else tuple(scale)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in (s_min, s_max)) or not crop <= s_min <= s_max:
        raise ValueError(f"scale must be an int S or a pair (S_min, S_max) of ints with crop <= S_min <= S_max, "
                         f"got scale={scale!r} and crop={crop!r}")
    return s_min, s_max


def resize_shorter_side(images: Tensor, size: int) -> Tensor:
    """Resize a batch isotropically (bilinear, ``align_corners=False``) so that its shorter side is ``size``.

    VGG's "training scale" and "test scale" are this: the image is rescaled, keeping its aspect
    ratio, so that its smallest side is ``S`` (Simonyan & Zisserman, 2015, Section 3.1).

    Args:
        images (Tensor[N, C, H, W]): floating point.
        size: the new length of the shorter side (>= 1).

    Returns:
        Tensor[N, C, H', W']: with ``min(H', W') == size`` and ``H' / W'`` as close to ``H / W`` as whole pixels allow.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_positive_int(size, "size")
    h, w = images.shape[-2:]
    short = min(h, w)
    new = (size, max(1, round(w * size / short))) if h <= w else (max(1, round(h * size / short)), size)
    if new == (h, w):
        return images
    return F.interpolate(images, size=new, mode="bilinear", align_corners=False)  # (N, C, H', W')


def scale_jitter_crop(images: Tensor, scale: int | tuple[int, int], crop: int, flip: bool = True,
                      generator: torch.Generator | None = None) -> Tensor:
    """VGG's scale jittering (and AlexNet's random crops and flips): rescale, crop at random, flip.

    Each image gets its own training scale ``S``, drawn uniformly from the integers
    ``S_min .. S_max``; it is resized so that its shorter side is ``S`` (:func:`resize_shorter_side`),
    a ``crop`` x ``crop`` window is cut at a uniformly random position, and the window is flipped
    horizontally with probability 1/2. With one scale (``scale=256, crop=224``) this is AlexNet's
    augmentation (Krizhevsky et al., 2012, Section 4.1: random 224x224 patches of the 256x256
    image and their mirror images); with a range (``scale=(256, 512)``) it is VGG's multi-scale
    training, "scale jittering" (Simonyan & Zisserman, 2015, Section 3.1), where the same object
    appears at many sizes.

    Args:
        images (Tensor[N, C, H, W]): the batch, floating point.
        scale: ``S`` or ``(S_min, S_max)``, with ``crop <= S_min <= S_max``.
        crop: the side of the square window, the network's input size.
        flip: mirror each window with probability 1/2.
        generator: a ``torch.Generator`` for repeatable draws; ``None`` uses torch's global one.

    Returns:
        Tensor[N, C, crop, crop].
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_positive_int(crop, "crop")
    s_min, s_max = _check_scale_range(scale, crop)
    n, c = images.shape[:2]
    draw_on = generator.device if generator is not None else images.device
    scales = torch.randint(s_min, s_max + 1, (n,), generator=generator, device=draw_on).cpu()  # (N,): one S each
    out = images.new_empty(n, c, crop, crop)
    for s in scales.unique().tolist():  # one resize per distinct scale in the batch
        index = (scales == s).nonzero().flatten().to(images.device)  # (M,)
        resized = resize_shorter_side(images[index], s)  # (M, C, H_s, W_s)
        m, (h, w) = len(index), resized.shape[-2:]
        dy = torch.randint(0, h - crop + 1, (m,), generator=generator, device=draw_on).to(images.device)  # (M,)
        dx = torch.randint(0, w - crop + 1, (m,), generator=generator, device=draw_on).to(images.device)
        rows = dy[:, None] + torch.arange(crop, device=images.device)  # (M, crop): the window's rows
        cols = dx[:, None] + torch.arange(crop, device=images.device)  # (M, crop)
        batch = torch.arange(m, device=images.device)[:, None, None, None]  # (M, 1, 1, 1)
        channel = torch.arange(c, device=images.device)[None, :, None, None]  # (1, C, 1, 1)
        out[index] = resized[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]  # (M, C, crop, crop)
    if flip:
        mirrored = (torch.rand(n, generator=generator, device=draw_on) < 0.5).to(images.device)  # (N,)
        out = torch.where(mirrored[:, None, None, None], out.flip(-1), out)  # (N, 1, 1, 1) broadcast
    return out


def rgb_covariance(pixels: Tensor) -> Tensor:
    """The 3x3 covariance of the colour channels over a set of RGB pixels (divided by ``N - 1``, as ``torch.cov``).

    Args:
        pixels (Tensor[N, 3]): one row per pixel (e.g. ``images.permute(0, 2, 3, 1).reshape(-1, 3)``), N >= 2.

    Returns:
        Tensor[3, 3]: ``cov[i, j]`` = mean over pixels of ``(r_i - mean_i) (r_j - mean_j)``, times ``N / (N - 1)``.
    """
    check_tensor(pixels, "pixels", ndim=2, shape_hint="(N, 3)", floating=True)
    if pixels.shape[1] != 3 or pixels.shape[0] < 2:
        raise ValueError(f"pixels must have shape (N, 3) with N >= 2, one RGB row per pixel, got {tuple(pixels.shape)}")
    centred = pixels - pixels.mean(dim=0, keepdim=True)  # (N, 3): the mean of each channel over the pixels
    return centred.T @ centred / (pixels.shape[0] - 1)  # (3, N) @ (N, 3) -> (3, 3)


def principal_components(covariance: Tensor, sweeps: int = 30) -> tuple[Tensor, Tensor]:
    """Eigenvalues and eigenvectors of a symmetric matrix by Jacobi rotations, largest eigenvalue first.

    Each rotation ``J`` (in the plane of two coordinates ``p, q``) is chosen so that ``J^T A J`` has a
    zero at ``(p, q)``; sweeping over all pairs drives the off-diagonal entries to zero, and the
    product of the rotations collects the eigenvectors (Jacobi, 1846; Press et al., *Numerical
    Recipes*, Section 11.1). For the 3x3 colour covariance of fancy PCA a few sweeps suffice.

    Args:
        covariance (Tensor[d, d]): symmetric. Computed in float64.
        sweeps: the most passes over all pairs (it stops earlier once the matrix is diagonal).

    Returns:
        ``(eigenvalues, eigenvectors)``: Tensor[d], descending, and Tensor[d, d] with the unit
        eigenvector of ``eigenvalues[i]`` in column ``i``, its largest-magnitude entry positive (a
        fixed sign), both in the dtype of ``covariance``.
    """
    check_tensor(covariance, "covariance", ndim=2, shape_hint="(d, d)", floating=True)
    d = covariance.shape[0]
    if covariance.shape[1] != d or not torch.allclose(covariance, covariance.T, rtol=1e-5, atol=1e-8):
        raise ValueError(f"covariance must be a symmetric square matrix, got shape {tuple(covariance.shape)}")
    a = covariance.detach().to(torch.float64).clone()  # (d, d), made diagonal step by step
    vectors = torch.eye(d, dtype=torch.float64, device=a.device)
    scale = float(a.abs().max()) or 1.0
    for _ in range(sweeps):
        if float((a - torch.diag(a.diagonal())).abs().max()) <= 1e-15 * scale:
            break
        for p in range(d - 1):
            for q in range(p + 1, d):
                if a[p, q] == 0:
                    continue
                theta = float((a[q, q] - a[p, p]) / (2 * a[p, q]))
                t = (1.0 if theta >= 0 else -1.0) / (abs(theta) + (theta * theta + 1) ** 0.5)  # tan of the angle
                cos = 1 / (t * t + 1) ** 0.5
                rotation = torch.eye(d, dtype=torch.float64, device=a.device)
                rotation[p, p] = rotation[q, q] = cos
                rotation[p, q], rotation[q, p] = t * cos, -t * cos
                a = rotation.T @ a @ rotation  # entry (p, q) is now 0
                vectors = vectors @ rotation
    values, order = a.diagonal().sort(descending=True)
    vectors = vectors[:, order]  # (d, d): columns in the order of the values
    signs = vectors.gather(0, vectors.abs().argmax(0, keepdim=True)).sign()  # (1, d): largest entry positive
    return values.to(covariance.dtype), (vectors * signs).to(covariance.dtype)


def fancy_pca(images: Tensor, eigenvalues: Tensor, eigenvectors: Tensor, std: float = 0.1,
              generator: torch.Generator | None = None) -> Tensor:
    """AlexNet's colour augmentation ("fancy PCA"): shift each image's colours along the principal components.

    To every pixel ``[R, G, B]`` of one image the same vector ``[p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T``
    is added, where ``p_i`` and ``l_i`` are the eigenvectors and eigenvalues of the 3x3 covariance
    of the RGB values over the training set and ``a_i ~ N(0, std^2)`` is drawn once per image
    (Krizhevsky et al., 2012, Section 4.1): the intensity and colour of the lighting change, the
    object does not. The shift is in the units of the eigenvalues (the covariance of pixels in
    [0, 1] has eigenvalues in [0, 1]^2 units): implementations differ in that scale, and in
    whether they multiply by ``l_i`` (the paper) or its square root.

    Args:
        images (Tensor[N, 3, H, W]): floating point.
        eigenvalues (Tensor[3]): ``l_i``, e.g. from :func:`principal_components`.
        eigenvectors (Tensor[3, 3]): ``p_i`` in column ``i``.
        std: the standard deviation of the ``a_i`` (0.1 in the paper).
        generator: a ``torch.Generator`` for repeatable draws; ``None`` uses torch's global one.

    Returns:
        Tensor[N, 3, H, W]: the shifted images (not clamped).
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, 3, H, W)", floating=True)
    if images.shape[1] != 3 or tuple(eigenvalues.shape) != (3,) or tuple(eigenvectors.shape) != (3, 3):
        raise ValueError(f"fancy_pca needs RGB images (N, 3, H, W), eigenvalues (3,) and eigenvectors (3, 3), got "
                         f"{tuple(images.shape)}, {tuple(eigenvalues.shape)} and {tuple(eigenvectors.shape)}")
    if not std >= 0:
        raise ValueError(f"std must be >= 0, got {std!r}")
    draw_on = generator.device if generator is not None else images.device
    alpha = std * torch.randn(len(images), 3, generator=generator, device=draw_on).to(images.device)  # (N, 3)
    weights = alpha * eigenvalues.to(images)  # (N, 3): a_i l_i
    shift = weights @ eigenvectors.to(images).T  # (N, 3) @ (3, 3) -> (N, 3): sum_i a_i l_i p_i
    return images + shift[:, :, None, None]  # (N, 3, 1, 1): the same shift at every pixel
