"""Medical imaging: CT-like phantom slices and volumes, MedMNIST, imbalance, accumulation, the 2.5-D model.

**Data.** No labelled medical set installs offline, so the chapter makes a physically motivated one.
:func:`phantom_slices` draws CT-like slices of a head: the Shepp-Logan phantom (Shepp & Logan,
1974; ``skimage.data.shepp_logan_phantom``, real scikit-image data), jittered by a random affine
map (each "patient" sits differently in the scanner and has another head), with a random
contrast, and in a rare positive class a small bright lesion. Each slice is then *scanned*: its
Radon transform (the line integrals of the attenuation along ``angles`` directions, a sinogram),
photon noise (the detector counts ``Poisson(photons * exp(-line integral))``, read back as
``-log(counts / photons)``: Beer-Lambert's law) and filtered back-projection (the ramp-filtered
inverse Radon transform), so that the images carry real CT reconstruction artefacts: noise that
the ramp filter makes grainy, and streaks from the few viewing angles. :func:`phantom_volumes`
stacks such slices into small volumes, each slice the cross-section of an ellipsoidal head at its
height, with a spherical lesion that shows in one to three slices (for the 2.5-D model).

The Radon transform and the filtered back-projection are scikit-image's ``radon`` and ``iradon``
(``circle=True``, the ramp filter). Both are linear maps, so :func:`ct_operators` evaluates them
once on every basis image (and sinogram) and keeps the two matrices: a whole batch is then scanned
by two matrix products, with the same result as calling ``radon`` and ``iradon`` on each image
(tested); the matrices are cached on disk in :func:`companion.data.cache_dir`.

Where a network exists, :func:`read_medmnist` reads the real thing in the same layout: MedMNIST's
``.npz`` files (Yang et al., 2023, https://doi.org/10.1038/s41597-022-01721-8), e.g. PneumoniaMNIST
(28x28 chest X-rays, normal vs pneumonia) and NoduleMNIST3D (28x28x28 CT volumes of lung nodules,
benign vs malignant), downloaded from their official Zenodo record.

**Imbalance.** :func:`confusion_matrix`, :func:`binary_metrics` (sensitivity = recall of the
positive class, specificity, balanced accuracy; equal to scikit-learn's, tested) and
:func:`oversampling_sampler` (a ``WeightedRandomSampler`` that draws each class equally often). The
class weights of a weighted loss are :func:`companion.losses.balanced_class_weights`.

**Gradient accumulation.** :func:`accumulate_gradients` adds the gradients of ``k`` micro-batches,
each loss divided by ``k``: the gradient of the mean loss over the whole batch, in ``1 / k`` of the
memory, as long as nothing in the network depends on the batch (batch norm does).

**The 2.5-D model.** :class:`SliceStackNet` is MRNet's design (Bien et al., 2018,
https://doi.org/10.1371/journal.pmed.1002699): one 2-D CNN shared by all slices of a volume, its
pooled features max- (or mean-) pooled over the slices, and one linear layer.

Introduced in chapter 25, *Medical imaging*.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import WeightedRandomSampler

from companion._checks import check_positive_int, check_tensor

#: MedMNIST's files in its official Zenodo record (MedMNIST v3 of the files, 28-pixel versions):
#: name -> (url, md5, class names).
MEDMNIST = {
    "pneumoniamnist": ("https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",
                       "28209eda62fecd6e6a2d98b1501bb15f", ("normal", "pneumonia")),
    "nodulemnist3d": ("https://zenodo.org/records/10519652/files/nodulemnist3d.npz?download=1",
                      "8755a7e9e05a4d9ce80a24c3e7a256f3", ("benign", "malignant")),
}
SPLITS = ("train", "val", "test")
RADIUS = (1.2, 2.0)
"""The lesions' radii, in pixels of a 28-pixel slice (about 3 to 5 mm in a 20 cm head)."""
BRIGHTER = (0.3, 0.5)
"""How much brighter a lesion is than the phantom's value where it sits (tissue: 0.2-0.4)."""
CLASSES = ("healthy", "lesion")
"""The two classes of the phantom sets: label 0 and label 1 (the rare, positive one)."""

MU = 0.4
"""Attenuation per pixel of a phantom value of 1 (water-like tissue, ~0.2-0.4, then absorbs
0.08-0.16 of the beam per pixel of a 28-pixel head, as water does over ~7 mm at CT energies)."""


# --- the scanner: Radon transform and filtered back-projection as matrices --------------------------

def _circle(size: int) -> np.ndarray:
    """The pixels strictly inside the reconstruction circle (scikit-image's ``circle=True``)."""
    centre = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    return np.hypot(yy - centre, xx - centre) < size / 2 - 1  # (size, size) bool


def _build_operators(size: int, angles: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage.transform import iradon, radon

    theta = np.linspace(0.0, 180.0, angles, endpoint=False)
    inside = _circle(size).ravel()
    forward = np.zeros((size * angles, size * size), dtype=np.float64)
    basis = np.zeros(size * size)
    for j in np.flatnonzero(inside):  # radon ignores nothing, but images are zero outside the circle
        basis[j] = 1.0
        forward[:, j] = radon(basis.reshape(size, size), theta=theta, circle=True).ravel()
        basis[j] = 0.0
    backward = np.zeros((size * size, size * angles), dtype=np.float64)
    unit = np.zeros(size * angles)
    for j in range(size * angles):
        unit[j] = 1.0
        backward[:, j] = iradon(unit.reshape(size, angles), theta=theta, circle=True,
                                filter_name="ramp").ravel()
        unit[j] = 0.0
    return forward.astype(np.float32), backward.astype(np.float32)


@functools.lru_cache(maxsize=4)
def ct_operators(size: int = 28, angles: int | None = None) -> tuple[Tensor, Tensor]:
    """scikit-image's ``radon`` and ``iradon`` (``circle=True``, ramp filter) as two matrices.

    Both transforms are linear, so ``radon(x).ravel() == R @ x.ravel()`` and
    ``iradon(s).ravel() == B @ s.ravel()`` with ``R``'s columns the sinograms of the basis images
    and ``B``'s the reconstructions of the basis sinograms. Built once (``size**2 + size * angles``
    calls, a few seconds at 28 pixels), then cached in memory and on disk.

    Args:
        size: the side of the square images.
        angles: viewing angles, evenly spaced over [0, 180) degrees (default ``size``).

    Returns:
        ``R`` (Tensor[size * angles, size * size]) and ``B`` (Tensor[size * size, size * angles]),
        float32; a sinogram is ``(size, angles)`` (detector bins by angles), as ``radon`` returns it.
    """
    check_positive_int(size, "size")
    if angles is None:
        angles = size
    check_positive_int(angles, "angles")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    import skimage

    from companion import data

    path = data.cache_dir() / "medical" / f"ct_{size}px_{angles}angles_skimage{skimage.__version__}.npz"
    try:
        with np.load(path) as saved:
            forward, backward = saved["forward"], saved["backward"]
    except (OSError, KeyError, ValueError):
        forward, backward = _build_operators(size, angles)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + f".{os.getpid()}.partial.npz")
            np.savez(partial, forward=forward, backward=backward)
            partial.replace(path)
        except OSError:  # a read-only cache: keep the matrices in memory only
            pass
    return torch.from_numpy(forward), torch.from_numpy(backward)


def scan(images: Tensor, angles: int | None = None, photons: float | None = 2e3,
         generator: torch.Generator | None = None) -> Tensor:
    """Scan images as a CT scanner does and reconstruct them by filtered back-projection.

    The image is read as attenuation (``MU`` per pixel and unit of value); the detector counts
    along each ray are ``Poisson(photons * exp(-line integral))`` and are read back as
    ``-log(counts / photons)`` (Beer-Lambert's law), then reconstructed with the ramp filter.

    Args:
        images (Tensor[N, H, W]): values in about [0, 1], zero outside the inscribed circle.
        angles: viewing angles over [0, 180) degrees (default ``H``); fewer give streaks.
        photons: photons per detector bin and angle (the dose); ``None``: no noise.
        generator: for the photon noise.

    Returns:
        Tensor[N, H, W] (float32): the reconstructions, not clipped.
    """
    check_tensor(images, "images", ndim=3, shape_hint="(N, H, W)", floating=True)
    n, h, w = images.shape
    if h != w:
        raise ValueError(f"images must be square, got {h}x{w}")
    if photons is not None and not photons > 0:
        raise ValueError(f"photons must be > 0 or None, got {photons!r}")
    forward, backward = ct_operators(h, angles)
    sinograms = images.reshape(n, h * w).float() @ forward.T  # (N, size * angles)
    if photons is not None:
        rate = photons * torch.exp(-MU * sinograms)
        counts = torch.poisson(rate, generator=generator).clamp_min(1.0)  # a ray with no photon reads 1
        sinograms = -torch.log(counts / photons) / MU
    return (sinograms @ backward.T).reshape(n, h, w)  # (N, H, W)


# --- the phantom sets -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _phantom(size: int) -> tuple[Tensor, Tensor]:
    """The Shepp-Logan phantom at twice ``size`` (drawn there, averaged down later), and where
    lesions may go: brain tissue at least 3 pixels (of the doubled size) from anything else."""
    from scipy.ndimage import binary_erosion
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    big = resize(shepp_logan_phantom(), (2 * size, 2 * size), anti_aliasing=True)  # (2s, 2s) in [0, 1]
    tissue = binary_erosion((big > 0.15) & (big < 0.35), iterations=3)
    places = np.argwhere(tissue)  # (K, 2) rows, columns
    return torch.from_numpy(big).float(), torch.from_numpy(places).float()


def _check_common(n: object, size: object, prevalence: object) -> None:
    check_positive_int(n, "n")
    check_positive_int(size, "size")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if isinstance(prevalence, bool) or not isinstance(prevalence, (int, float)) or not 0 < prevalence < 1:
        raise ValueError(f"prevalence must be a fraction in (0, 1), got {prevalence!r}")


def _labels(n: int, prevalence: float, generator: torch.Generator) -> Tensor:
    """Exactly ``round(n * prevalence)`` positives (at least one), in random order."""
    positives = min(n, max(1, round(n * prevalence)))
    labels = torch.zeros(n, dtype=torch.int64)
    labels[:positives] = 1
    return labels[torch.randperm(n, generator=generator)]


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _patients(n: int, size: int, generator: torch.Generator) -> dict[str, Tensor]:
    """One draw per patient: the affine jitter, the contrast and a lesion (used where the label is 1).

    The jitter: a rotation within 15 degrees, a scale of 0.8-0.95 per axis, a shift within 3% of
    the field of view; the contrast 0.85-1.15; the lesion a disk of radius 0.9-1.4 pixels brighter
    by 0.2-0.35 at a random place in the brain tissue.
    """
    _, places = _phantom(size)
    return {"angle": _uniform(n, -15, 15, generator) * torch.pi / 180,
            "scale": _uniform(2 * n, 0.8, 0.95, generator).reshape(n, 2),
            "shift": _uniform(2 * n, -0.06, 0.06, generator).reshape(n, 2),
            "contrast": _uniform(n, 0.85, 1.15, generator),
            "at": places[torch.randint(len(places), (n,), generator=generator)],  # (n, 2) at 2 * size
            "radius": _uniform(n, RADIUS[0], RADIUS[1], generator),
            "brighter": _uniform(n, BRIGHTER[0], BRIGHTER[1], generator)}


def _draw(size: int, jitter: dict[str, Tensor], radius: Tensor, shrink: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The phantom drawn at twice ``size`` with a lesion of ``radius`` pixels (0: none), warped by each
    row's jitter, averaged down to ``size`` (a detector pixel sums the finer drawing) and masked to
    the inscribed circle. ``shrink`` scales a row further (a slice near the top of the head).

    Returns:
        the images (Tensor[N, size, size]) and the lesion masks (Tensor[N, size, size], bool).
    """
    big, _ = _phantom(size)
    n, side = len(radius), 2 * size
    at = jitter["at"]
    yy, xx = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    disk = torch.zeros(n, side, side)
    sick = radius > 0  # only these rows get a lesion
    distance = torch.hypot(yy - at[sick, :1, None], xx - at[sick, 1:, None])  # (P, 2s, 2s)
    # a disk with a one-pixel soft edge, its radius in pixels of the doubled size
    disk[sick] = (2 * radius[sick, None, None] + 0.5 - distance).clamp(0, 1)
    scale = jitter["scale"] * (shrink[:, None] if shrink is not None else 1.0)  # (N, 2)
    cos, sin = torch.cos(jitter["angle"]), torch.sin(jitter["angle"])
    # grid_sample maps each output point to the input point it reads: the inverse of the jitter
    inverse = torch.stack([torch.stack([cos / scale[:, 0], sin / scale[:, 0]], 1),
                           torch.stack([-sin / scale[:, 1], cos / scale[:, 1]], 1)], 1)  # (N, 2, 2)
    theta = torch.cat([inverse, -(inverse @ jitter["shift"][:, :, None])], 2)  # (N, 2, 3)
    grid = F.affine_grid(theta, [n, 2, side, side], align_corners=False)
    stacked = torch.stack([big.expand(n, side, side), disk], 1)  # (N, 2, 2s, 2s)
    warped = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped = F.avg_pool2d(warped, 2)  # (N, 2, s, s)
    lesion = warped[:, 1]  # (N, s, s), the share of each pixel the lesion covers
    images = warped[:, 0] * jitter["contrast"][:, None, None] + lesion * jitter["brighter"][:, None, None]
    images = images * torch.from_numpy(_circle(size))  # zero outside the circle the scanner sees
    peak = lesion.flatten(1).amax(1)[:, None, None]  # (N, 1, 1)
    masks = (lesion >= 0.5 * peak) & (peak > 0)
    return images, masks


def draw_phantoms(n: int, size: int = 28, prevalence: float = 0.1, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """The slices of :func:`phantom_slices` as drawn, before the scan (the same patients, same seed).

    Returns:
        ``images`` (Tensor[n, size, size], float32, zero outside the inscribed circle), ``labels``
        (Tensor[n], int64) and ``masks`` (Tensor[n, size, size], bool).
    """
    _check_common(n, size, prevalence)
    return _drawn(n, size, prevalence, torch.Generator().manual_seed(seed))


def _drawn(n: int, size: int, prevalence: float, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    labels = _labels(n, prevalence, generator)
    jitter = _patients(n, size, generator)
    clean, masks = _draw(size, jitter, jitter["radius"] * labels)
    return clean, labels, masks


def phantom_slices(n: int, size: int = 28, prevalence: float = 0.1, seed: int = 0, *,
                   angles: int | None = None, photons: float | None = 2e3,
                   return_masks: bool = False) -> tuple[Tensor, ...]:
    """CT-like slices of a jittered Shepp-Logan phantom, a rare few with a small lesion.

    Each slice (:func:`draw_phantoms`): the phantom under a random affine map (rotation within 15
    degrees, scale 0.8-0.95 per axis, shift within 3% of the field of view) and contrast
    (0.85-1.15); where the label is 1, a disk of radius :data:`RADIUS` pixels brighter by
    :data:`BRIGHTER` in the brain tissue; then :func:`scan` (Radon transform, photon noise,
    filtered back-projection), clipped to [0, 1].

    Args:
        n: how many slices.
        size: their side in pixels (28, as MedMNIST's).
        prevalence: the share of positives; exactly ``round(n * prevalence)`` (at least 1), in a
            random order.
        seed: the seed of everything drawn (the same seed gives the same slices).
        angles: viewing angles of the scan (default ``size``).
        photons: the dose per detector bin; ``None`` for a noiseless scan.
        return_masks: also return the lesion masks.

    Returns:
        ``images`` (Tensor[n, 1, size, size], float32 in [0, 1]), ``labels`` (Tensor[n], int64, 1
        for a lesion) and, with ``return_masks``, ``masks`` (Tensor[n, size, size], bool, where the
        lesion is; empty for the negatives).
    """
    _check_common(n, size, prevalence)
    generator = torch.Generator().manual_seed(seed)
    clean, labels, masks = _drawn(n, size, prevalence, generator)
    images = scan(clean, angles, photons, generator).clamp(0, 1)[:, None]  # (n, 1, size, size)
    return (images, labels, masks) if return_masks else (images, labels)


def phantom_volumes(n: int, slices: int = 8, size: int = 28, prevalence: float = 0.1, seed: int = 0, *,
                    angles: int | None = None, photons: float | None = 2e3,
                    return_masks: bool = False) -> tuple[Tensor, ...]:
    """Small CT volumes: stacks of ``slices`` phantom slices through an ellipsoidal head.

    Slice ``i`` is the cross-section at height ``z_i``, evenly spaced in [-0.6, 0.6] of the
    head's half-height, so the phantom shrinks by ``sqrt(1 - z_i**2)``; one patient's slices share
    one jitter and contrast (as in :func:`phantom_slices`). A positive volume holds one lesion, a
    ball of radius 0.9-1.4 pixels in the plane and 0.6-1.6 slice spacings across, drawn in each
    slice it cuts as a disk of the cut's radius: it shows in one to three neighbouring slices.
    Every slice is scanned on its own (:func:`scan`), as a CT scanner reconstructs slice by slice.

    Returns:
        ``volumes`` (Tensor[n, slices, 1, size, size], float32 in [0, 1]), ``labels``
        (Tensor[n], int64) and, with ``return_masks``, ``masks`` (Tensor[n, slices, size, size]).
    """
    _check_common(n, size, prevalence)
    check_positive_int(slices, "slices")
    generator = torch.Generator().manual_seed(seed)
    labels = _labels(n, prevalence, generator)
    jitter = _patients(n, size, generator)
    centre = torch.randint(slices, (n,), generator=generator)  # the slice the ball is centred on
    reach = _uniform(n, 0.6, 1.6, generator)  # the ball's radius across the slices, in spacings
    offset = (torch.arange(slices)[None] - centre[:, None]).abs() / reach[:, None]  # (n, S), in radii
    cut = jitter["radius"][:, None] * torch.sqrt((1 - offset**2).clamp_min(0))  # (n, S), 0: missed
    cut = torch.where(cut > 0.35, cut, 0.0) * labels[:, None]  # too thin a cap does not show
    heights = torch.linspace(-0.6, 0.6, slices)  # (S,)
    every = {key: value.repeat_interleave(slices, 0) for key, value in jitter.items()}  # n * S rows
    clean, masks = _draw(size, every, cut.flatten(), shrink=torch.sqrt(1 - heights**2).repeat(n))
    volumes = scan(clean, angles, photons, generator).clamp(0, 1).reshape(n, slices, 1, size, size)
    masks = masks.reshape(n, slices, size, size)
    return (volumes, labels, masks) if return_masks else (volumes, labels)


# --- MedMNIST ----------------------------------------------------------------------------------------

def read_medmnist(name: str, split: str = "train", root: str | os.PathLike | None = None,
                  download: bool = False) -> tuple[Tensor, Tensor]:
    """One split of a MedMNIST ``.npz`` file, as float tensors in the phantom sets' layout.

    MedMNIST (Yang et al., 2023) ships each set as one ``NAME.npz`` with the arrays
    ``train_images``, ``train_labels``, ``val_images``, ``val_labels``, ``test_images`` and
    ``test_labels``: ``uint8`` images ``(N, 28, 28)`` (2-D sets), ``(N, 28, 28, 3)`` (colour) or
    ``(N, 28, 28, 28)`` (3-D sets) and labels ``(N, 1)``.

    Args:
        name: a set's name (``"pneumoniamnist"``, ``"nodulemnist3d"``, keys of :data:`MEDMNIST`, or
            any other MedMNIST name whose file is already in ``root``), or a path to a ``.npz`` file.
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: the folder of the ``.npz`` files (default ``companion.data.cache_dir() / "medmnist"``).
        download: fetch the file from MedMNIST's Zenodo record when it is missing (and check its MD5).

    Returns:
        ``images`` float32 in [0, 1]: (Tensor[N, 1, H, W]) for a greyscale 2-D set,
        (Tensor[N, 3, H, W]) for a colour one, (Tensor[N, D, 1, H, W]) for a 3-D set (a stack of D
        slices, as :func:`phantom_volumes`); ``labels`` (Tensor[N], int64).

    Raises:
        ValueError: an unknown split, or a file without the split's arrays.
        FileNotFoundError: the file is missing and ``download`` is false (the message says how to get it).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(name)
    if path.suffix != ".npz":
        from companion import data

        folder = Path(root) if root is not None else data.cache_dir() / "medmnist"
        path = folder / f"{name}.npz"
        if not path.is_file():
            if name not in MEDMNIST:
                raise FileNotFoundError(f"no {path}; the course knows the download of {sorted(MEDMNIST)}")
            url, md5, _ = MEDMNIST[name]
            if not download:
                raise FileNotFoundError(f"no {path}: call read_medmnist({name!r}, download=True) where a "
                                        f"network exists, or download {url} to {path}")
            from torchvision.datasets.utils import download_url

            download_url(url, str(folder), filename=path.name, md5=md5)
    elif not path.is_file():
        raise FileNotFoundError(f"no MedMNIST file at {path}")
    with np.load(path) as arrays:
        keys = (f"{split}_images", f"{split}_labels")
        missing = [k for k in keys if k not in arrays.files]
        if missing:
            raise ValueError(f"{path.name} is not in MedMNIST's layout: no {', '.join(missing)} "
                             f"(it has {', '.join(arrays.files)})")
        images, labels = arrays[keys[0]], arrays[keys[1]]
    if images.ndim not in (3, 4) or len(images) != len(labels) or labels.reshape(len(labels), -1).shape[1] != 1:
        raise ValueError(f"{path.name}: expected images (N, H, W), (N, H, W, 3) or (N, D, H, W) and labels "
                         f"(N, 1), got {images.shape} and {labels.shape}")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    x = torch.from_numpy(images.astype(np.float32) / scale)
    if images.ndim == 3:
        x = x[:, None]  # (N, 1, H, W)
    elif images.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)  # (N, 3, H, W)
    else:
        x = x[:, :, None]  # (N, D, 1, H, W): a volume as a stack of slices
    return x.contiguous(), torch.from_numpy(labels.reshape(-1).astype(np.int64))


# --- measuring a classifier on imbalanced classes -------------------------------------------------

def _check_predictions(predicted: object, target: object) -> None:
    check_tensor(predicted, "predicted", ndim=1, shape_hint="(N,)")
    check_tensor(target, "target", ndim=1, shape_hint="(N,)")
    if predicted.is_floating_point() or target.is_floating_point():
        raise TypeError("predicted and target must be integer class labels (take logits.argmax(1) first), got "
                        f"{predicted.dtype} and {target.dtype}")
    if predicted.shape != target.shape or len(target) == 0:
        raise ValueError(f"predicted and target must be non-empty and of the same length, got "
                         f"{tuple(predicted.shape)} and {tuple(target.shape)}")


def confusion_matrix(predicted: Tensor, target: Tensor, num_classes: int = 2) -> Tensor:
    """Counts ``M[i, j]`` of examples of true class ``i`` predicted as ``j`` (scikit-learn's layout).

    For two classes: ``[[TN, FP], [FN, TP]]``, the positive class being 1.

    Returns:
        Tensor[num_classes, num_classes] (int64).
    """
    _check_predictions(predicted, target)
    check_positive_int(num_classes, "num_classes")
    for t, name in ((predicted, "predicted"), (target, "target")):
        if int(t.min()) < 0 or int(t.max()) >= num_classes:
            raise ValueError(f"{name} must hold classes in [0, {num_classes}), got {int(t.min())} to {int(t.max())}")
    flat = target.long().cpu() * num_classes + predicted.long().cpu()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def binary_metrics(predicted: Tensor, target: Tensor) -> dict[str, float]:
    """What a screening test is judged by, for labels 0 (healthy) and 1 (the disease).

    * sensitivity (recall of class 1) ``TP / (TP + FN)``: the share of the sick that are found;
    * specificity (recall of class 0) ``TN / (TN + FP)``: the share of the healthy left alone;
    * balanced accuracy, their mean (scikit-learn's ``balanced_accuracy_score``);
    * precision ``TP / (TP + FP)`` (0 when nothing is called positive) and plain accuracy.

    Raises:
        ValueError: a class of ``target`` has no example (its recall is undefined).
    """
    (tn, fp), (fn, tp) = confusion_matrix(predicted, target, 2).tolist()
    if tp + fn == 0 or tn + fp == 0:
        raise ValueError(f"target must hold both classes to measure both recalls, got {tp + fn} positives "
                         f"and {tn + fp} negatives")
    sensitivity, specificity = tp / (tp + fn), tn / (tn + fp)
    return {"sensitivity": sensitivity, "specificity": specificity,
            "balanced accuracy": (sensitivity + specificity) / 2,
            "precision": tp / (tp + fp) if tp + fp else 0.0, "accuracy": (tp + tn) / (tp + tn + fp + fn)}


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    """The classes a classifier predicts (argmax of its logits), in eval mode, on its device.

    Returns:
        Tensor[N] (int64, on the CPU).
    """
    check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    found = [model(images[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(found)


def oversampling_sampler(labels: Tensor, num_samples: int | None = None,
                         generator: torch.Generator | None = None) -> WeightedRandomSampler:
    """A sampler that draws every class equally often: example ``i`` with weight ``1 / n_{y_i}``.

    Args:
        labels (Tensor[N]): integer classes.
        num_samples: draws per pass (default ``N``), with replacement: the rare examples repeat.
        generator: for the draws.

    Returns:
        ``torch.utils.data.WeightedRandomSampler`` for a ``DataLoader(..., sampler=...)``.
    """
    check_tensor(labels, "labels", ndim=1, shape_hint="(N,)")
    if labels.is_floating_point() or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty vector of integer classes, got {labels.dtype} {tuple(labels.shape)}")
    counts = torch.bincount(labels)  # (C,)
    weights = 1.0 / counts[labels].double()  # (N,)
    return WeightedRandomSampler(weights, num_samples or len(labels), replacement=True, generator=generator)


# --- gradient accumulation ----------------------------------------------------------------------------

def accumulate_gradients(model: nn.Module, loss_fn, images: Tensor, labels: Tensor, micro_batches: int) -> float:
    """Add to every parameter's ``.grad`` the gradient of the batch's mean loss, in micro-batches.

    The batch is split into ``micro_batches`` equal parts; each part's mean loss, divided by
    ``micro_batches``, is back-propagated, and ``backward`` adds the gradients up. The sum is the
    gradient of the mean loss over the whole batch (the mean of the parts' means), with only one
    part's activations in memory at a time. It equals the one-batch gradient exactly when the
    network treats each example on its own: batch norm normalises each micro-batch with its own
    statistics, so there it differs. Call ``optimizer.zero_grad()`` before and ``optimizer.step()``
    after, once per whole batch.

    Args:
        model: the network (in the mode it should run in).
        loss_fn: ``loss_fn(logits, labels)``, a *mean* over its examples (e.g. ``F.cross_entropy``).
        images (Tensor[B, ...]), labels (Tensor[B]): the whole batch.
        micro_batches: ``k``; ``B`` must be a multiple of it (unequal parts would weigh their
            examples unequally).

    Returns:
        the batch's mean loss, a float.
    """
    check_positive_int(micro_batches, "micro_batches")
    check_tensor(images, "images", floating=True)
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length, got {len(images)} and {len(labels)}")
    if len(images) % micro_batches:
        raise ValueError(f"the batch of {len(images)} must split into {micro_batches} equal micro-batches")
    total = 0.0
    for x, y in zip(images.chunk(micro_batches), labels.chunk(micro_batches)):
        loss = loss_fn(model(x), y) / micro_batches
        loss.backward()
        total += loss.item()
    return total


# --- models ----------------------------------------------------------------------------------------------

def small_vgg(widths: tuple[int, ...] = (8, 16, 32), num_classes: int = 2, in_channels: int = 1,
              batch_norm: bool = False) -> nn.Module:
    """A VGG-style network for 28x28 slices: ``conv3x3-ReLU`` stages of ``widths``, a max-pool between
    two stages, then global average pooling and one linear layer (``companion.models.VGG`` with
    ``small_input=True``; a class activation map reads straight off its last stage).
    """
    from companion.models import VGG

    config: list[int | str] = []
    for i, width in enumerate(widths):
        config += [width, "M"] if i < len(widths) - 1 else [width]
    return VGG(config, num_classes, in_channels=in_channels, batch_norm=batch_norm, small_input=True)


class SliceStackNet(nn.Module):
    """MRNet's 2.5-D design: one 2-D CNN shared by every slice, pooled over the slices.

    Bien et al. (2018) ran an ImageNet AlexNet over each slice of a knee MRI series, averaged each
    slice's feature map to a vector, took the maximum over the slices and classified it with one
    linear layer. Max pooling answers "is it in *any* slice"; both max and mean ignore the slices'
    order (and their number), so volumes of different depths go through the same network.

    Args:
        features: the 2-D CNN, ``(M, C, H, W) -> (M, K, h, w)`` (e.g. a VGG's ``features``).
        channels: ``K``.
        num_classes: outputs.
        pool: ``"max"`` (MRNet) or ``"mean"`` over the slices.

    ``forward(x)``: ``(N, S, C, H, W) -> (N, num_classes)``.
    """

    def __init__(self, features: nn.Module, channels: int, num_classes: int = 2, pool: str = "max") -> None:
        super().__init__()
        if pool not in ("max", "mean"):
            raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
        check_positive_int(channels, "channels")
        self.features, self.pool = features, pool
        self.classifier = nn.Linear(channels, num_classes)

    def slice_features(self, x: Tensor) -> Tensor:
        """``(N, S, C, H, W) -> (N, S, K)``: each slice's feature map averaged over its pixels."""
        check_tensor(x, "x", ndim=5, shape_hint="(N, S, C, H, W): volumes as stacks of slices", floating=True)
        n, s = x.shape[:2]
        maps = self.features(x.flatten(0, 1))  # (N * S, K, h, w): every slice through the same CNN
        return maps.mean(dim=(2, 3)).reshape(n, s, -1)  # (N, S, K)

    def forward(self, x: Tensor) -> Tensor:
        per_slice = self.slice_features(x)  # (N, S, K)
        pooled = per_slice.amax(1) if self.pool == "max" else per_slice.mean(1)  # (N, K)
        return self.classifier(pooled)  # (N, num_classes)
