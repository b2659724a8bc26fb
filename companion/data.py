"""Real data that works offline: Fashion-MNIST, scikit-learn's digits, scikit-image's photographs.

Where each comes from, in order of preference:

* **Fashion-MNIST** (Xiao et al., 2017, MIT licence; 70,000 28x28 greyscale images of 10 kinds of
  clothing). First the copy already unpacked in the cache directory; then the Debian package
  ``dataset-fashion-mnist`` (files in ``/usr/share/datasets/fashion-mnist/``), unpacked into the
  cache once; then torchvision's download, where a network exists (Colab, Kaggle).
* **digits**: scikit-learn's bundled ``load_digits`` (1,797 8x8 images of handwritten digits).
* **sample photographs**: the real photographs bundled in the scikit-image wheel.

The cache directory is ``$COMPANION_DATA`` when set, else ``~/.cache/companion``.

Introduced in the book's introduction; used from chapter 1 on.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

#: scikit-image photographs bundled in its wheel (no download needed), by name.
SAMPLE_IMAGES = ("astronaut", "brick", "camera", "cat", "chelsea", "coffee", "coins", "grass",
                 "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "moon", "page",
                 "rocket", "text")


def cache_dir() -> Path:
    """The directory where data sets are unpacked or downloaded: ``$COMPANION_DATA`` or ``~/.cache/companion``."""
    return Path(os.environ.get("COMPANION_DATA") or Path.home() / ".cache" / "companion")


def _unpack_debian_fashion_mnist(raw: Path) -> bool:
    """Unpack the Debian package's gzip files into ``raw``; return whether it worked."""
    sources = [DEBIAN_FASHION_MNIST / f"{name}.gz" for name in FASHION_MNIST_FILES]
    if not all(s.is_file() for s in sources):
        return False
    raw.mkdir(parents=True, exist_ok=True)
    for source, name in zip(sources, FASHION_MNIST_FILES):
        target = raw / name
        if target.is_file():
            continue
        partial = target.with_suffix(".partial")
        with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.replace(target)  # atomic: a half-written file is never taken for the real one
    return True


def fashion_mnist(train: bool = True, root: str | Path | None = None, transform=None,
                  download: bool = True):
    """Fashion-MNIST as a ``torchvision.datasets.FashionMNIST``.

    Args:
        train: the 60,000 training images, or the 10,000 test images.
        root: where the data lives (default :func:`cache_dir`).
        transform: applied to each PIL image, as in torchvision.
        download: allow torchvision to download the files when no local copy exists.

    Returns:
        The dataset; ``ds.data`` is a ``uint8`` tensor ``(N, 28, 28)`` and ``ds.targets`` an
        ``int64`` tensor ``(N,)``.

    Raises:
        RuntimeError: when no local copy exists and the download is off or fails; the message
            says how to get the data.
    """
    from torchvision.datasets import FashionMNIST

    root = Path(root) if root is not None else cache_dir()
    raw = root / "FashionMNIST" / "raw"
    if not all((raw / name).is_file() for name in FASHION_MNIST_FILES):
        _unpack_debian_fashion_mnist(raw)
    if all((raw / name).is_file() for name in FASHION_MNIST_FILES):
        return FashionMNIST(str(root), train=train, transform=transform, download=False)
    if download:
        try:
            return FashionMNIST(str(root), train=train, transform=transform, download=True)
        except Exception as error:  # no network, a proxy, a full disk: say what to do instead
            raise RuntimeError(_no_fashion_mnist_message(root, f"the download failed ({error})")) from error
    raise RuntimeError(_no_fashion_mnist_message(root, "download=False"))


def _no_fashion_mnist_message(root: Path, why: str) -> str:
    return (f"Fashion-MNIST is not available: no copy in {root / 'FashionMNIST' / 'raw'}, none in "
            f"{DEBIAN_FASHION_MNIST}, and {why}. Get it offline with "
            "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or run where a network "
            "exists so that torchvision can download it, or set COMPANION_DATA to a directory that "
            "holds FashionMNIST/raw/ with the four unpacked IDX files.")


def tensors(dataset: Dataset, limit: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A whole image data set as two tensors, for fast in-memory training.

    Args:
        dataset: a torchvision MNIST-style dataset (with ``.data`` and ``.targets``), a
            ``TensorDataset``, or any dataset of ``(image tensor, label)`` pairs.
        limit: keep a random subset of this many examples (stratification is not attempted).
        seed: the seed of that subset.

    Returns:
        ``images``: ``float32`` ``(N, C, H, W)`` scaled to [0, 1] (MNIST-style data) or as
        stored; ``labels``: ``int64`` ``(N,)``.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    n = len(dataset)  # type: ignore[arg-type]
    index = torch.arange(n)
    if limit is not None and limit < n:
        index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit]
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", None)
    if isinstance(data, Tensor) and data.dtype == torch.uint8:
        images = data[index].float().div_(255)
        images = images.unsqueeze(1) if images.dim() == 3 else images  # (N, H, W) -> (N, 1, H, W)
        return images, torch.as_tensor(targets)[index].long()
    if isinstance(dataset, TensorDataset):
        images, labels = dataset.tensors[0][index], dataset.tensors[1][index]
        return images.float(), labels.long()
    pairs = [dataset[int(i)] for i in index]
    images = torch.stack([torch.as_tensor(x) for x, _ in pairs]).float()
    return images, torch.as_tensor([int(y) for _, y in pairs])


def digits() -> TensorDataset:
    """scikit-learn's handwritten digits: 1,797 real 8x8 images in 10 classes.

    Returns:
        A ``TensorDataset`` of images ``float32`` ``(1797, 1, 8, 8)`` in [0, 1] and labels
        ``int64`` ``(1797,)``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().div_(16).unsqueeze(1)  # (N, 8, 8) -> (N, 1, 8, 8)
    return TensorDataset(images, torch.from_numpy(bunch.target).long())


def sample_image(name: str, gray: bool = False) -> Tensor:
    """A real photograph bundled with scikit-image, as a tensor.

    Args:
        name: one of :data:`SAMPLE_IMAGES` (e.g. ``"astronaut"``, ``"coffee"``, ``"camera"``).
        gray: convert colour photographs to one luminance channel.

    Returns:
        ``float32`` ``(C, H, W)`` in [0, 1], with ``C`` = 3 for colour and 1 for greyscale.
    """
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}")
    import skimage.color
    import skimage.data
    import skimage.util

    image = skimage.util.img_as_float32(getattr(skimage.data, name)())
    if image.ndim == 3 and image.shape[2] == 4:  # RGBA -> RGB
        image = skimage.color.rgba2rgb(image)
    if image.ndim == 3 and gray:
        image = skimage.color.rgb2gray(image)
    array = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)  # (H, W, C) -> (C, H, W)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
