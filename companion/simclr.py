"""SimCLR for small greyscale images: augmentation pairs, encoder, projection head, linear evaluation.

Chen, Kornblith, Norouzi & Hinton, *A Simple Framework for Contrastive Learning of Visual
Representations*, ICML 2020 (https://arxiv.org/abs/2002.05709; code at
https://github.com/google-research/simclr). An image is augmented twice; an encoder ``f`` maps each
view to a representation ``h = f(x)``, a small MLP, the projection head ``g``, maps it to
``z = g(h)``, and the NT-Xent loss (:func:`companion.losses.nt_xent`) asks each ``z`` to find its
partner view among all the views of the batch. After pre-training the head is thrown away and
``h`` is evaluated by a linear classifier trained on frozen features (the *linear evaluation
protocol*, :func:`linear_probe`), or the encoder is fine-tuned on a few labels (the
*semi-supervised protocol*, the paper's section 7 with 1% and 10% of ImageNet's labels).

Deviations from the paper, for 28x28 greyscale images and a CPU:

* Augmentations (:class:`Augmentation`). The paper's ablation (its Figure 5) finds that random
  cropping with resizing and colour distortion matter most, and together far more than either
  alone; Gaussian blur helps a little. A grey image has no hue or saturation, so colour distortion
  becomes random brightness and contrast (applied with probability 0.8, as the paper's colour
  jitter; the paper also converts to grey with probability 0.2, a no-op here). Crops keep at least
  25% of the area instead of 8%, because at 28x28 pixels an 8% crop is a 8x8 patch of a garment.
  The blur kernel is 3 pixels (the paper: 10% of the side) with sigma in [0.1, 1.0].
* Encoder (:func:`encoder`): a small conv-BN-ReLU network with global average pooling, given as a
  table like the other networks of the course, instead of ResNet-50.
* Optimiser (:func:`pretrain`): AdamW with a cosine schedule instead of LARS, which the paper needs
  for batches of 4096; here batches are a few hundred images.

Introduced in chapter 13, *Self-supervised learning: SimCLR*.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor
from companion.losses import nt_xent
from companion.nets import Classifier

__all__ = ["Augmentation", "ENCODER_STAGES", "FMNIST_AUGMENTATION", "PretrainLog", "ProjectionHead",
           "SimCLR", "augment_pair", "brightness_contrast", "classifier", "encoder", "extract_features",
           "fit_linear", "gaussian_blur3", "label_subset", "linear_probe", "pretrain",
           "probe_accuracy_1pct_labels", "random_view", "resized_crop", "zoo_pretrain"]


# --- augmentations ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Augmentation:
    """The random transformations of one view (the paper's Appendix A, adapted to grey images).

    Attributes:
        crop_scale: range of the fraction of the image's area a crop keeps.
        crop_ratio: range of the crop's aspect ratio (width / height), drawn on a log scale.
        flip: probability of a horizontal flip.
        jitter: probability of the brightness and contrast change (both, when it happens).
        brightness: the brightness factor is drawn from ``[1 - brightness, 1 + brightness]``.
        contrast: the contrast factor is drawn from ``[1 - contrast, 1 + contrast]``.
        blur: probability of a Gaussian blur.
        blur_sigma: range of the blur's standard deviation, in pixels.
    """

    crop_scale: tuple[float, float] = (0.25, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    jitter: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    blur: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 1.0)

    def __post_init__(self) -> None:
        for name in ("flip", "jitter", "blur"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability and must be in [0, 1], got {getattr(self, name)}")
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be a range (low, high) with 0 < low <= high, got {(low, high)}")
        if self.crop_scale[1] > 1:
            raise ValueError(f"crop_scale is a fraction of the area, at most 1, got {self.crop_scale}")
        for name in ("brightness", "contrast"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


#: The augmentation of chapter 13 and of the zoo's ``simclr_encoder``.
FMNIST_AUGMENTATION = Augmentation()


def _uniform(low: float, high: float, n: int, generator: torch.Generator | None) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)  # (n,)


def resized_crop(images: Tensor, box: Tensor, flip: Tensor | None = None) -> Tensor:
    """Cut a box out of every image, resize it to the full image size (bilinear), optionally flip it.

    One affine resampling (``F.affine_grid`` + ``F.grid_sample``) for the whole batch. Coordinates
    are ``grid_sample``'s: -1 and 1 are the outer edges of the image, so a box ``(0, 0, 1, 1)`` is
    the whole image and ``(0, 0, 0.5, 0.5)`` its central quarter (half the width and height).

    Args:
        images (Tensor[N, C, H, W]): the batch.
        box (Tensor[N, 4]): per image, the box's centre ``(cx, cy)`` and its width and height as
            fractions of the image's, ``(cx, cy, w, h)``.
        flip (Tensor[N], bool): flip these views horizontally (``None``: no flips).

    Returns:
        Tensor[N, C, H, W]; pixels outside the image (none for boxes inside it) repeat the border.
    """
    n = len(images)
    cx, cy, width, height = box.to(torch.float32).unbind(1)  # each (N,)
    sign = torch.ones(n) if flip is None else 1 - 2 * flip.to(torch.float32).cpu()  # (N,): -1 flips x
    theta = torch.zeros(n, 2, 3)  # (N, 2, 3): output grid -> input coordinates
    theta[:, 0, 0], theta[:, 0, 2] = sign * width.cpu(), cx.cpu()
    theta[:, 1, 1], theta[:, 1, 2] = height.cpu(), cy.cpu()
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (N, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def brightness_contrast(images: Tensor, brightness: Tensor, contrast: Tensor) -> Tensor:
    """Scale the brightness, then stretch the contrast about each image's mean, clipping to [0, 1].

    The same as torchvision's ``adjust_brightness`` then ``adjust_contrast`` on grey images:
    ``x' = clip(b x)``, ``x'' = clip(c x' + (1 - c) mean(x'))``.

    Args:
        images (Tensor[N, C, H, W]): in [0, 1].
        brightness (Tensor[N]), contrast (Tensor[N]): the factors (1 leaves the image unchanged).

    Returns:
        Tensor[N, C, H, W] in [0, 1].
    """
    b = brightness.to(images)[:, None, None, None]  # (N,) -> (N, 1, 1, 1)
    c = contrast.to(images)[:, None, None, None]  # (N, 1, 1, 1)
    images = (images * b).clamp(0, 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
    return (c * images + (1 - c) * mean).clamp(0, 1)


def gaussian_blur3(images: Tensor, sigma: Tensor) -> Tensor:
    """A 3x3 Gaussian blur with one standard deviation per image (reflected borders, as torchvision's).

    Args:
        images (Tensor[N, C, H, W]): the batch.
        sigma (Tensor[N]): standard deviations in pixels; 0 leaves an image unchanged.

    Returns:
        Tensor[N, C, H, W].
    """
    n, c, h, w = images.shape
    taps = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)  # (3,): pixel offsets
    s = sigma.to(torch.float64).cpu()[:, None]  # (N, 1)
    kernel = torch.where(s > 0, torch.exp(-taps ** 2 / (2 * s.clamp_min(1e-12) ** 2)),
                         (taps == 0).double())  # (N, 3); identity where sigma is 0
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    kernel = kernel.to(images).repeat_interleave(c, dim=0)  # (N * C, 3): one kernel per channel
    flat = images.reshape(1, n * c, h, w)  # (1, N*C, H, W): each image its own group
    flat = F.pad(flat, (1, 1, 1, 1), mode="reflect")  # (1, N*C, H + 2, W + 2)
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)  # rows: (1, N*C, H + 2, W)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)  # columns: (1, N*C, H, W)
    return flat.reshape(n, c, h, w)


def random_view(images: Tensor, aug: Augmentation = FMNIST_AUGMENTATION,
                generator: torch.Generator | None = None) -> Tensor:
    """One random view of every image of a batch: crop and resize, flip, brightness and contrast, blur.

    Vectorised over the batch (no Python loop over images), like :func:`companion.augment.random_flip_crop`.

    Args:
        images (Tensor[N, C, H, W]): floating point in [0, 1].
        aug: the transformations' parameters.
        generator: a CPU ``torch.Generator`` for repeatable draws; ``None`` uses torch's global one.

    Returns:
        Tensor[N, C, H, W]: the views, same dtype and device, in [0, 1].
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    if not isinstance(aug, Augmentation):
        raise TypeError(f"aug must be a companion.simclr.Augmentation, got {type(aug).__name__}")
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise TypeError("generator must be a CPU torch.Generator or None")
    if len(images) == 0:
        return images.clone()
    n, g = len(images), generator
    # Random resized crop: a fraction of the area and an aspect ratio, a centre inside the image.
    area = _uniform(*aug.crop_scale, n, g)  # (N,)
    ratio = _uniform(math.log(aug.crop_ratio[0]), math.log(aug.crop_ratio[1]), n, g).exp()  # (N,): w / h
    width, height = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)  # (N,)
    cx = (1 - width) * (2 * torch.rand(n, generator=g) - 1)  # (N,): the box stays inside [-1, 1]
    cy = (1 - height) * (2 * torch.rand(n, generator=g) - 1)  # (N,)
    flip = torch.rand(n, generator=g) < aug.flip  # (N,)
    views = resized_crop(images, torch.stack([cx, cy, width, height], dim=1), flip)  # box (N, 4)
    # Brightness and contrast ("colour distortion" for grey images), both or neither.
    jitter = (torch.rand(n, generator=g) < aug.jitter).float()  # (N,)
    b = 1 + jitter * _uniform(-aug.brightness, aug.brightness, n, g)  # (N,)
    c = 1 + jitter * _uniform(-aug.contrast, aug.contrast, n, g)  # (N,)
    views = brightness_contrast(views, b, c)
    # Gaussian blur; sigma 0 where not blurred.
    blur = (torch.rand(n, generator=g) < aug.blur).float()  # (N,)
    return gaussian_blur3(views, blur * _uniform(*aug.blur_sigma, n, g))


def augment_pair(images: Tensor, aug: Augmentation = FMNIST_AUGMENTATION,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two independent random views of every image (SimCLR's ``t ~ T`` and ``t' ~ T``).

    Args:
        images (Tensor[N, C, H, W]): floating point in [0, 1].

    Returns:
        ``(view1, view2)``, each Tensor[N, C, H, W]; row ``i`` of both comes from image ``i``.
    """
    return random_view(images, aug, generator), random_view(images, aug, generator)


# --- encoder, projection head -------------------------------------------------------------------

#: The encoder as data: one row per stage, (output channels, stride of its 3x3 convolution, then
#: a 2x2 max-pool?). The first convolution's stride halves 28x28 images to 14x14, where most of
#: the computation happens, which a CPU can afford.
ENCODER_STAGES: tuple[tuple[int, int, bool], ...] = (
    # c, stride, pool
    (16, 2, False),  # 28x28 -> 14x14
    (32, 1, True),   # 14x14 -> 7x7
    (64, 1, False),  # 7x7, then global average pooling: h has 64 features
)


def encoder(stages: Sequence[tuple[int, int, bool]] = ENCODER_STAGES, in_channels: int = 1) -> nn.Sequential:
    """The encoder ``f``: 3x3 conv-BN-ReLU stages, then global average pooling.

    Args:
        stages: rows ``(channels, stride, pool)``, see :data:`ENCODER_STAGES`.
        in_channels: channels of the input images.

    Returns:
        An ``nn.Sequential`` mapping ``(N, in_channels, H, W)`` to ``(N, stages[-1][0])``.
    """
    check_positive_int(in_channels, "in_channels")
    if not stages:
        raise ValueError("stages must have at least one row (channels, stride, pool)")
    layers: list[nn.Module] = []
    c_in = in_channels
    for c_out, stride, pool in stages:
        layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                   nn.ReLU(inplace=True)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # (N, C, h, w) -> (N, C, 1, 1) -> (N, C)
    return nn.Sequential(*layers)


class ProjectionHead(nn.Module):
    """The projection head ``g``: ``z = W2 ReLU(W1 h)``, a one-hidden-layer MLP (the paper's section 2.1).

    The paper finds the loss is better applied to ``z`` than to ``h`` (its Figure 8): ``g`` can
    discard what the augmentations vary (position, brightness), which ``h`` then keeps.

    Args:
        in_features: size of ``h``.
        hidden: width of the hidden layer.
        out_features: size of ``z`` (the paper: 128).
    """

    def __init__(self, in_features: int, hidden: int = 128, out_features: int = 64) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden", hidden), ("out_features", out_features)):
            check_positive_int(value, name)
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, h: Tensor) -> Tensor:
        """``h (Tensor[N, in_features])`` -> ``z (Tensor[N, out_features])``."""
        return self.fc2(F.relu(self.fc1(h)))


class SimCLR(nn.Module):
    """Encoder and projection head: ``features(x) = f(x) = h``, ``forward(x) = g(f(x)) = z``.

    Args:
        backbone: the encoder ``f``, mapping images to ``(N, D)`` (default :func:`encoder`).
        head: the projection head ``g`` (default :class:`ProjectionHead` on ``D`` features).
    """

    def __init__(self, backbone: nn.Module | None = None, head: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = backbone if backbone is not None else encoder()
        if head is None:
            dims = [m.out_channels for m in self.encoder.modules() if isinstance(m, nn.Conv2d)]
            if not dims:
                raise ValueError("give the head explicitly: the encoder has no Conv2d to read its width from")
            head = ProjectionHead(dims[-1])
        self.head = head

    def features(self, x: Tensor) -> Tensor:
        """``x (Tensor[N, C, H, W])`` -> ``h (Tensor[N, D])``: what downstream tasks use."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        """``x (Tensor[N, C, H, W])`` -> ``z (Tensor[N, out_features])``: what the loss sees."""
        return self.head(self.encoder(x))


# --- pre-training ---------------------------------------------------------------------------------

@dataclass
class PretrainLog:
    """What :func:`pretrain` measured: the loss of every step, and the wall time."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def pretrain(model: SimCLR, images: Tensor, *, epochs: int = 1, batch_size: int = 256, lr: float = 2e-3,
             weight_decay: float = 1e-4, temperature: float = 0.5, aug: Augmentation = FMNIST_AUGMENTATION,
             time_budget: float | None = None, seed: int = 0) -> PretrainLog:
    """Train ``model`` with NT-Xent on pairs of views of unlabelled ``images`` (the paper's Algorithm 1).

    Each step draws a batch of N images, makes two views of each, and minimises
    ``nt_xent(model(view1), model(view2), temperature)``: 2N - 2 negatives per anchor. AdamW with
    a linear warm-up over the first 5% of the steps and a cosine decay (the paper: LARS, 10 warm-up
    epochs, cosine decay).

    Args:
        model: trained in place, on the images' device.
        images (Tensor[N, C, H, W]): unlabelled images in [0, 1].
        epochs: passes over ``images`` (an upper bound with ``time_budget``).
        batch_size: images per step (2 * batch_size views); the last incomplete batch is dropped.
        lr, weight_decay: of AdamW.
        temperature: NT-Xent's ``T``.
        aug: the augmentation of each view.
        time_budget: stop after this many seconds; the schedule then follows the time spent.
        seed: seeds the batches and the augmentations.

    Returns:
        A :class:`PretrainLog` with one loss per step.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module (a SimCLR), got {type(model).__name__}")
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not 2 <= batch_size <= len(images):
        raise ValueError(f"batch_size must be in [2, len(images) = {len(images)}], got {batch_size}")
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds or None, got {time_budget}")
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(images) // batch_size
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    log, start, step = PretrainLog(), time.perf_counter(), 0
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)  # (N,)
        for i in range(steps_per_epoch):
            spent = time.perf_counter() - start
            progress = spent / time_budget if time_budget else step / total
            if progress >= 1:
                break
            warm = min(1.0, progress / 0.05)
            for group in opt.param_groups:
                group["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * progress))
            batch = images[order[i * batch_size:(i + 1) * batch_size].to(images.device)]  # (B, C, H, W)
            view1, view2 = augment_pair(batch, aug, generator)
            loss = nt_xent(model(view1), model(view2), temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            log.loss.append(loss.item())
            step += 1
    log.seconds = time.perf_counter() - start
    model.eval()
    return log


# --- evaluation -------------------------------------------------------------------------------------

@torch.no_grad()
def extract_features(model: nn.Module, images: Tensor, batch_size: int = 1024) -> Tensor:
    """Frozen features of ``images``: ``model.features(x)`` (or ``model(x)``) in eval mode, batch by batch.

    Args:
        model: an encoder, or a module with a ``features`` method (a :class:`SimCLR`, a classifier).
        images (Tensor[N, C, H, W]): the images.

    Returns:
        Tensor[N, D] (float32, on the CPU), whatever the device of the model.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    forward = getattr(model, "features", model)
    device = next(model.parameters(), images).device  # the model's device (images move there)
    out = [forward(images[i:i + batch_size].to(device)).flatten(1).float().cpu()
           for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out)  # (N, D)


def label_subset(labels: Tensor, per_class: int, seed: int = 0) -> Tensor:
    """Indices of ``per_class`` random examples of every class (a class-balanced labelled subset).

    Args:
        labels (Tensor[N], int64): class indices.
        per_class: examples kept per class (1% of Fashion-MNIST's training set is 60 per class).
        seed: which examples.

    Returns:
        Tensor[K * per_class] (int64), sorted.
    """
    check_tensor(labels, "labels", ndim=1, shape_hint="(N,)")
    check_positive_int(per_class, "per_class")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for k in labels.unique():
        members = (labels == k).nonzero()[:, 0]  # (n_k,)
        if len(members) < per_class:
            raise ValueError(f"class {int(k)} has only {len(members)} examples, fewer than per_class = {per_class}")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values


def fit_linear(features: Tensor, labels: Tensor, num_classes: int | None = None, *,
               weight_decay: float = 1e-3, max_iter: int = 200) -> nn.Linear:
    """Multinomial logistic regression on frozen features, fitted by L-BFGS: the linear probe's classifier.

    The features are standardised with their mean and standard deviation, then ``softmax(W h + b)``
    is fitted on the full set, minimising the mean cross-entropy plus ``weight_decay / 2 * ||W||^2``
    (like scikit-learn's ``LogisticRegression`` with ``C = 1 / (weight_decay * N)``), from W = 0, so
    the result is deterministic. The standardisation is folded into the returned layer, which
    therefore applies to raw features (and can start the head of a fine-tuned network).

    Args:
        features (Tensor[N, D]), labels (Tensor[N], int64): the labelled examples.
        num_classes: ``K`` (default: the largest label + 1).
        weight_decay: the L2 penalty on W (not on b).
        max_iter: L-BFGS iterations.

    Returns:
        ``nn.Linear(D, K)`` in float64 (``.float()`` converts it) with ``logits = layer(features)``.
    """
    check_tensor(features, "features", ndim=2, shape_hint="(N, D)", floating=True)
    check_tensor(labels, "labels", ndim=1, shape_hint="(N,)")
    if len(features) != len(labels) or len(features) == 0:
        raise ValueError(f"features and labels must have the same, non-zero length, got {len(features)} and "
                         f"{len(labels)}")
    if labels.dtype != torch.int64:
        raise TypeError(f"labels must be int64 class indices, got {labels.dtype}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    check_positive_int(max_iter, "max_iter")
    classes = int(labels.max()) + 1 if num_classes is None else check_positive_int(num_classes, "num_classes")
    x, y = features.detach().double().cpu(), labels.cpu()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)  # (D,), (D,)
    x = (x - mean) / std  # (N, D)
    weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)  # (D, K)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)  # (K,)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + weight_decay / 2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    layer = nn.Linear(x.shape[1], classes, dtype=torch.float64)
    with torch.no_grad():  # ((h - mean) / std) @ W + b = h @ (W / std) + (b - (mean / std) @ W)
        layer.weight.copy_((weight / std[:, None]).T)  # (K, D)
        layer.bias.copy_(bias - (mean / std) @ weight)  # (K,)
    return layer


def linear_probe(features_train: Tensor, y_train: Tensor, features_test: Tensor, y_test: Tensor, *,
                 weight_decay: float = 1e-3, max_iter: int = 200) -> float:
    """The linear evaluation protocol: logistic regression on frozen features (:func:`fit_linear`); test accuracy.

    Args:
        features_train (Tensor[N, D]), y_train (Tensor[N], int64): the labelled examples.
        features_test (Tensor[M, D]), y_test (Tensor[M], int64): the evaluation set.
        weight_decay: the L2 penalty on W (not on b).
        max_iter: L-BFGS iterations.

    Returns:
        The accuracy on the test features, in [0, 1].
    """
    check_tensor(features_train, "features_train", ndim=2, shape_hint="(N, D)", floating=True)
    check_tensor(features_test, "features_test", ndim=2, shape_hint="(M, D)", floating=True)
    check_tensor(y_train, "y_train", ndim=1, shape_hint="(N,)")
    check_tensor(y_test, "y_test", ndim=1, shape_hint="(M,)")
    if len(features_train) != len(y_train) or len(features_test) != len(y_test):
        raise ValueError(f"features and labels must have the same length, got {len(features_train)} and "
                         f"{len(y_train)} (train), {len(features_test)} and {len(y_test)} (test)")
    if features_train.shape[1] != features_test.shape[1]:
        raise ValueError(f"train and test features must have the same width D, got "
                         f"{features_train.shape[1]} and {features_test.shape[1]}")
    if len(features_train) == 0 or len(features_test) == 0:
        raise ValueError("features_train and features_test must not be empty")
    if y_train.dtype != torch.int64 or y_test.dtype != torch.int64:
        raise TypeError(f"labels must be int64 class indices, got {y_train.dtype} and {y_test.dtype}")
    classes = int(max(y_train.max(), y_test.max())) + 1
    layer = fit_linear(features_train, y_train, classes, weight_decay=weight_decay, max_iter=max_iter)
    with torch.no_grad():
        predictions = layer(features_test.detach().double().cpu()).argmax(1)  # (M,)
    return float((predictions == y_test.cpu()).double().mean())


def classifier(backbone: nn.Module, num_classes: int, features: int | None = None) -> Classifier:
    """An encoder with a new linear head, for the semi-supervised protocol (fine-tune both on few labels).

    Args:
        backbone: the encoder, mapping images to ``(N, D)``; fine-tuned in place (copy it first to keep it).
        num_classes: outputs of the head.
        features: ``D``; read from the encoder's last ``Conv2d`` when not given.

    Returns:
        A :class:`companion.nets.Classifier` with ``features(x) = backbone(x)``, ``head = Linear(D, K)``.
    """
    check_positive_int(num_classes, "num_classes")
    if features is None:
        dims = [m.out_channels for m in backbone.modules() if isinstance(m, nn.Conv2d)]
        if not dims:
            raise ValueError("give features (D) explicitly: the backbone has no Conv2d to read its width from")
        features = dims[-1]
    return Classifier(backbone, nn.Linear(features, num_classes))


# --- the zoo's simclr_encoder ---------------------------------------------------------------------

def zoo_pretrain(recipe) -> SimCLR:
    """The zoo trainer of ``simclr_encoder``: :func:`pretrain` on all 60,000 training images, no labels.

    Called by ``python -m companion.zoo train simclr_encoder`` with the recipe (a
    ``companion.zoo.recipes.ZooRecipe``): its ``epochs``, ``batch_size``, ``lr``, ``weight_decay`` and
    ``seed``, and ``extra["temperature"]``.
    """
    from companion import data

    images, _ = data.tensors(data.fashion_mnist(train=True))  # the labels are not used
    torch.manual_seed(recipe.seed)
    model = recipe.build()
    pretrain(model, images, epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr,
             weight_decay=recipe.weight_decay, temperature=recipe.extra.get("temperature", 0.5), seed=recipe.seed)
    return model


def probe_accuracy_1pct_labels(model: nn.Module, recipe=None) -> tuple[float, int]:
    """The recorded metric of the zoo's ``simclr_encoder``: linear-probe accuracy (:func:`linear_probe`)
    on the 10,000 test images, trained on 1% of the training labels (60 images per class, seed 0);
    features in float32. Returns ``(accuracy, test images)``."""
    from companion import data

    images, labels = data.tensors(data.fashion_mnist(train=True))
    test_images, test_labels = data.tensors(data.fashion_mnist(train=False))
    index = label_subset(labels, 60, seed=0)
    model = model.float()
    accuracy = linear_probe(extract_features(model, images[index]), labels[index],
                            extract_features(model, test_images), test_labels)
    return accuracy, len(test_labels)
