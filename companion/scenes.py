"""Synthetic detection and segmentation scenes: real Fashion-MNIST objects on real photographs.

No data set with boxes or masks installs offline, so the detection and segmentation chapters make
their own, from two real sources that do:

* **objects**: Fashion-MNIST images (Xiao et al., 2017), bright clothing on a black background.
  An object's *silhouette*, its pixels brighter than ``threshold`` after resizing, is its mask;
  its box is the tightest box around that mask;
* **backgrounds**: random crops of greyscale photographs and textures bundled with scikit-image
  (``brick``, ``camera``, ``coffee``, ``grass``, ``gravel``), resized to the scene and dimmed by a
  random factor.

Each scene places 1 to 3 objects (by default) at random positions and sizes; an object covers the
background where its mask is on. Objects may overlap only as much as ``max_iou`` allows; where a
later object hides part of an earlier one, the earlier one's mask loses those pixels and its box
is recomputed around what stays visible (at least ``min_visible`` of it, or the placement is drawn
again). Training scenes take their objects from Fashion-MNIST's training split, test scenes from
its test split, so a detector is evaluated on objects it has never seen.

Boxes are ``xyxy`` in pixel *edges*: a mask covering columns ``c0..c1`` and rows ``r0..r1``
(inclusive) has the box ``(c0, r0, c1 + 1, r1 + 1)``, whose area is the number of pixels it covers.
(``torchvision.ops.masks_to_boxes`` returns pixel *indices*, ``(c0, r0, c1, r1)``.)

Everything is drawn from one ``numpy`` generator seeded by ``seed`` (and the split), so a call
returns the same scenes every time. Introduced in chapter 15, *Object detection I*; used again in
chapters 16 and 17.

Where a network exists, :func:`penn_fudan_scenes` reads a real set, Penn-Fudan's pedestrians with
their instance masks, into the same format, so that the chapters' code runs on it unchanged.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from companion import data

BACKGROUNDS = ("brick", "camera", "coffee", "grass", "gravel")
"""The scikit-image photographs that backgrounds are cropped from (greyscale)."""

Scene = tuple[Tensor, dict[str, Tensor]]


@functools.lru_cache(maxsize=None)
def _background(name: str) -> Tensor:
    return data.sample_image(name, gray=True)[0]  # (H, W) in [0, 1]


@functools.lru_cache(maxsize=2)
def _objects(train: bool) -> tuple[Tensor, Tensor]:
    ds = data.fashion_mnist(train=train)
    return ds.data, torch.as_tensor(ds.targets)  # (N, 28, 28) uint8, (N,)


def _check_range(value: object, name: str, low: float, integer: bool = False) -> tuple:
    if (not isinstance(value, Sequence) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
            or (integer and any(not isinstance(v, int) for v in value))
            or not low <= value[0] <= value[1]):
        raise ValueError(f"{name} must be a pair (low, high) with {low} <= low <= high"
                         f"{' of ints' if integer else ''}, got {value!r}")
    return tuple(value)


def mask_to_box(mask: Tensor) -> Tensor:
    """The tightest ``xyxy`` box, in pixel edges, around a non-empty boolean mask ``(H, W)``."""
    rows = torch.nonzero(mask.any(dim=1))[:, 0]
    cols = torch.nonzero(mask.any(dim=0))[:, 0]
    if len(rows) == 0:
        raise ValueError("the mask is empty: it has no box")
    return torch.stack([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]).float()


def _box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes, in plain floats (the placement loop calls it often)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def detection_scenes(n: int, image_size: int = 64, objects: tuple[int, int] = (1, 3),
                     classes: Sequence[int] = tuple(range(10)), scale: tuple[float, float] = (0.6, 1.2),
                     seed: int = 0, train: bool = True, max_iou: float = 0.0, threshold: float = 0.1,
                     min_visible: float = 0.7, contrast: tuple[float, float] = (0.3, 0.8),
                     backgrounds: Sequence[str] = BACKGROUNDS) -> list[Scene]:
    """Scenes of Fashion-MNIST objects on photographs, with their boxes, labels and masks.

    Args:
        n: how many scenes.
        image_size: the side of the square scenes, in pixels.
        objects: ``(fewest, most)`` objects per scene, both included. An object that finds no free
            place in 50 tries is left out, but every scene has at least one.
        classes: the Fashion-MNIST classes objects are drawn from (0 T-shirt/top ... 9 Ankle boot,
            :data:`companion.data.FASHION_MNIST_CLASSES`), uniformly.
        scale: the side of an object's 28x28 image in the scene is ``round(28 * s)`` pixels, ``s``
            uniform in ``[low, high]``; it must fit in the scene.
        seed: the seed of everything drawn (the split is mixed in, so train and test scenes differ).
        train: objects from Fashion-MNIST's training split (else its test split).
        max_iou: the largest IoU two objects' boxes may have (0: they do not overlap).
        threshold: a pixel of a resized object whose value is above this belongs to its silhouette.
        min_visible: the share of an object's silhouette that must stay visible when a later
            object covers part of it.
        contrast: the background crop is multiplied by a factor uniform in this range, so that
            objects stand out (Fashion-MNIST objects are bright).
        backgrounds: names of scikit-image photographs (:data:`companion.data.SAMPLE_IMAGES`).

    Returns:
        ``n`` pairs ``(image, target)``: ``image`` ``float32`` ``(1, H, W)`` in [0, 1]; ``target`` a
        dict with ``boxes`` ``float32`` ``(K, 4)`` (``xyxy`` in pixel edges, tight around each
        mask), ``labels`` ``int64`` ``(K,)`` (Fashion-MNIST classes) and ``masks`` ``bool``
        ``(K, H, W)`` (the visible pixels of each object), ``1 <= K <= objects[1]``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    lo, hi = _check_range(objects, "objects", 1, integer=True)
    s_lo, s_hi = _check_range(scale, "scale", 0.1)
    c_lo, c_hi = _check_range(contrast, "contrast", 0.0)
    if round(28 * s_hi) > image_size:
        raise ValueError(f"scale {scale!r}: objects of round(28 * {s_hi}) pixels do not fit in "
                         f"{image_size}x{image_size} scenes")
    classes = [int(c) for c in classes]
    if not classes or any(not 0 <= c <= 9 for c in classes) or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct Fashion-MNIST classes 0-9, got {classes!r}")
    unknown = [b for b in backgrounds if b not in data.SAMPLE_IMAGES]
    if not backgrounds or unknown:
        raise ValueError(f"unknown backgrounds {unknown!r}; choose from {', '.join(data.SAMPLE_IMAGES)}")
    if not 0.0 <= max_iou < 1.0 or not 0.0 <= threshold < 1.0 or not 0.0 < min_visible <= 1.0:
        raise ValueError("max_iou and threshold must be in [0, 1) and min_visible in (0, 1], got "
                         f"{max_iou!r}, {threshold!r}, {min_visible!r}")

    rng = np.random.default_rng([seed, 1 if train else 2])
    pictures, targets = _objects(train)
    pool = {c: torch.nonzero(targets == c)[:, 0] for c in classes}  # indices per class
    scenes = []
    for _ in range(n):
        # background: a random square crop of a random photograph, resized and dimmed
        photo = _background(str(rng.choice(list(backgrounds))))
        side = int(rng.integers(image_size, min(2 * image_size, *photo.shape) + 1))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = photo[top:top + side, left:left + side][None, None]  # (1, 1, side, side)
        image = F.interpolate(crop, size=(image_size, image_size), mode="bilinear",
                              antialias=True, align_corners=False)[0, 0]
        image = image.clamp(0, 1) * float(rng.uniform(c_lo, c_hi))  # (H, W)

        placed_boxes: list[list[float]] = []  # the boxes of whole silhouettes, for the overlap rule
        masks: list[Tensor] = []
        labels: list[int] = []
        full_sizes: list[int] = []
        for _ in range(int(rng.integers(lo, hi + 1))):
            label = classes[int(rng.integers(len(classes)))]
            index = pool[label][int(rng.integers(len(pool[label])))]
            size = round(28 * float(rng.uniform(s_lo, s_hi)))
            patch = pictures[index].float().div(255)[None, None]  # (1, 1, 28, 28)
            patch = F.interpolate(patch, size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)[0, 0].clamp(0, 1)  # (size, size)
            silhouette = patch > threshold
            if not silhouette.any():
                continue
            local = mask_to_box(silhouette).tolist()  # where the silhouette sits in its patch
            for _try in range(50):
                y = int(rng.integers(0, image_size - size + 1))
                x = int(rng.integers(0, image_size - size + 1))
                box = [local[0] + x, local[1] + y, local[2] + x, local[3] + y]
                if any(_box_iou(box, other) > max_iou for other in placed_boxes):
                    continue
                full = torch.zeros(image_size, image_size, dtype=torch.bool)
                full[y:y + size, x:x + size] = silhouette
                # the earlier objects must stay visible enough once this one covers them
                if all((m & ~full).sum() >= min_visible * s for m, s in zip(masks, full_sizes)):
                    break
            else:
                continue  # no free place: leave this object out
            masks = [m & ~full for m in masks]
            region = image[y:y + size, x:x + size]
            image[y:y + size, x:x + size] = torch.where(silhouette, patch, region)
            placed_boxes.append(box)
            masks.append(full)
            labels.append(label)
            full_sizes.append(int(full.sum()))
        if not masks:  # only a blank object was drawn: draw the scene again
            scenes.extend(detection_scenes(1, image_size, objects, classes, scale,
                                           int(rng.integers(2**31)), train, max_iou, threshold,
                                           min_visible, contrast, backgrounds))
            continue
        stacked = torch.stack(masks)  # (K, H, W)
        scenes.append((image[None].contiguous(),  # (1, H, W)
                       {"boxes": torch.stack([mask_to_box(m) for m in stacked]),
                        "labels": torch.tensor(labels, dtype=torch.int64),
                        "masks": stacked}))
    return scenes


def stack_images(scenes: Sequence[Scene]) -> Tensor:
    """The scenes' images as one batch ``(N, 1, H, W)``."""
    return torch.stack([image for image, _ in scenes])


PENN_FUDAN_URL = "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip"
"""The Penn-Fudan pedestrian set (Wang et al., 2007): 170 photographs, 345 pedestrians, masks."""


def penn_fudan_scenes(root: str | os.PathLike | None = None, image_size: int | None = 64,
                      download: bool = False, limit: int | None = None) -> list[Scene]:
    """The real Penn-Fudan pedestrian photographs as scenes of the same format as :func:`detection_scenes`.

    Where a network exists (the ``full`` profile, Colab, Kaggle), the detection and segmentation
    chapters' code runs on real boxes and masks through this reader; offline it needs the unpacked
    folder. Penn-Fudan (Wang, Shi, Song and Shen, 2007; the set of torchvision's detection
    tutorial) has ``PNGImages/NAME.png`` photographs and ``PedMasks/NAME_mask.png`` instance masks
    (0 background, ``i`` the ``i``-th pedestrian).

    Args:
        root: the folder holding ``PennFudanPed/`` (default :func:`companion.data.cache_dir`).
        image_size: each photograph is made grey and resized (its masks with nearest neighbours) to
            ``image_size`` x ``image_size``, as the synthetic scenes are; ``None`` keeps its size.
        download: fetch and unpack :data:`PENN_FUDAN_URL` (51 MB) when the folder is missing.
        limit: read only the first ``limit`` photographs (in name order).

    Returns:
        pairs ``(image, target)``: ``image`` ``float32`` ``(1, H, W)`` in [0, 1]; ``target`` with
        ``boxes`` ``float32`` ``(K, 4)`` (``xyxy`` in pixel edges, tight around each mask, as in
        :func:`detection_scenes`), ``labels`` ``int64`` ``(K,)`` (all 1, "pedestrian") and
        ``masks`` ``bool`` ``(K, H, W)``. A pedestrian whose mask vanishes in the resize is dropped.

    Raises:
        FileNotFoundError: when the folder is missing and ``download`` is false (the message says
            how to get it).
        ValueError: for an ``image_size`` below 8 or a ``limit`` below 1.
    """
    from PIL import Image

    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 8):
        raise ValueError(f"image_size must be an int >= 8 or None, got {image_size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    folder = Path(root if root is not None else data.cache_dir()) / "PennFudanPed"
    if not (folder / "PNGImages").is_dir():
        if not download:
            raise FileNotFoundError(
                f"no Penn-Fudan folder at {folder}: call penn_fudan_scenes(download=True) where a "
                f"network exists, or unpack {PENN_FUDAN_URL} into {folder.parent}")
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(PENN_FUDAN_URL, str(folder.parent))
    names = sorted(p.stem for p in (folder / "PNGImages").glob("*.png"))[:limit]
    scenes: list[Scene] = []
    for name in names:
        grey = Image.open(folder / "PNGImages" / f"{name}.png").convert("L")
        instances = Image.open(folder / "PedMasks" / f"{name}_mask.png")
        if image_size is not None:
            grey = grey.resize((image_size, image_size), Image.BILINEAR)
            instances = instances.resize((image_size, image_size), Image.NEAREST)
        image = torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)[None]  # (1, H, W)
        ids = torch.from_numpy(np.asarray(instances, dtype=np.int64))  # (H, W), 0 = background
        present = [int(i) for i in torch.unique(ids) if i > 0]
        masks = torch.stack([ids == i for i in present]) if present else \
            torch.zeros(0, *ids.shape, dtype=torch.bool)  # (K, H, W)
        boxes = torch.stack([mask_to_box(m) for m in masks]) if present else torch.zeros(0, 4)
        scenes.append((image, {"boxes": boxes.float(), "labels": torch.ones(len(present), dtype=torch.int64),
                               "masks": masks}))
    return scenes
