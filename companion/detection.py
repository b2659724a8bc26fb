"""A sliding-window detector: windows, their crops, a classifier over all of them, boxes, NMS.

The oldest way to turn a classifier into a detector (Viola and Jones, 2001; Dalal and Triggs,
2005; OverFeat, Sermanet et al., 2014, https://arxiv.org/abs/1312.6229, did it with a CNN):

1. slide square windows of a few sizes over the image with a fixed stride
   (:func:`sliding_windows`);
2. crop every window and resize it to the classifier's input (:func:`crop_windows`);
3. classify each crop into the object classes or *background*, and (optionally) regress the
   object's box from the window (R-CNN's box offsets, :func:`companion.boxes.encode_boxes`);
4. keep the confident windows and remove duplicates with per-class non-maximum suppression
   (:func:`detect`).

Its cost is the number of windows times the classifier's multiply-adds, which is what the
single-shot detectors of chapter 16 avoid. :func:`window_examples` makes the classifier's training
set from scenes with boxes (:mod:`companion.scenes`).

Introduced in chapter 15, *Object detection I*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion import boxes as B


def _check_sizes(image_size: int, sizes: Sequence[int], stride: int) -> None:
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= image_size for s in sizes):
        raise ValueError(f"sizes must be ints between 1 and the image size {image_size}, got {sizes!r}")


def sliding_windows(image_size: int, sizes: Sequence[int], stride: int) -> Tensor:
    """Square windows of each size at every ``stride`` pixels of a square image.

    Returns:
        Tensor[W, 4]: ``xyxy`` windows, size by size, each size row by row (left to right within a
        row): the order of ``F.unfold``'s positions, which :func:`crop_windows` uses.
    """
    _check_sizes(image_size, sizes, stride)
    found = []
    for s in sizes:
        starts = torch.arange(0, image_size - s + 1, stride, dtype=torch.float32)
        y, x = torch.meshgrid(starts, starts, indexing="ij")  # (n, n) each
        x, y = x.reshape(-1), y.reshape(-1)
        found.append(torch.stack([x, y, x + s, y + s], dim=1))
    return torch.cat(found)  # (W, 4)


def crop_windows(images: Tensor, sizes: Sequence[int], stride: int, out_size: int = 28) -> Tensor:
    """Every window of :func:`sliding_windows` cut out of every image, resized to ``out_size``.

    Args:
        images: ``(N, C, H, H)`` square images.

    Returns:
        ``(N, W, C, out_size, out_size)``, windows in the order of :func:`sliding_windows`.
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must have shape (N, C, H, H), got {tuple(images.shape)}")
    n, c, h, _ = images.shape
    _check_sizes(h, sizes, stride)
    crops = []
    for s in sizes:
        cols = F.unfold(images, kernel_size=s, stride=stride)  # (N, C*s*s, L)
        patches = cols.transpose(1, 2).reshape(-1, c, s, s)  # (N*L, C, s, s)
        if s != out_size:
            patches = F.interpolate(patches, size=(out_size, out_size), mode="bilinear",
                                    align_corners=False)
        crops.append(patches.reshape(n, -1, c, out_size, out_size))
    return torch.cat(crops, dim=1)  # (N, W, C, out, out)


def window_examples(scenes: Sequence[tuple[Tensor, Mapping[str, Tensor]]], classes: Sequence[int],
                    sizes: Sequence[int], *, positives: int = 4, negatives: int = 8, out_size: int = 28,
                    negative_iou: float = 0.3, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """A window classifier's training set, cut out of scenes with boxes.

    Per object, ``positives`` square windows around its box (side 0.9 to 1.3 times the box's longer
    side, centre moved by up to 15% of the side), labelled with the object's class; per scene,
    ``negatives`` windows of the detector's ``sizes`` at random places whose IoU with every box is
    below ``negative_iou``, labelled background (``len(classes)``).

    Returns:
        ``crops`` ``(M, C, out_size, out_size)``; ``labels`` ``(M,)``, the index of the class in
        ``classes`` or ``len(classes)`` for background; ``deltas`` ``(M, 4)``, the box of the object
        encoded against the window (:func:`companion.boxes.encode_boxes`; zeros for background).
    """
    rng = np.random.default_rng(seed)
    index = {int(c): i for i, c in enumerate(classes)}
    crops, labels, deltas = [], [], []
    for image, target in scenes:
        size = image.shape[-1]
        windows = []
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            x0, y0, x1, y1 = box
            longest = max(x1 - x0, y1 - y0)
            for _ in range(positives):
                side = min(size, longest * rng.uniform(0.9, 1.3))
                cx = (x0 + x1) / 2 + rng.uniform(-0.15, 0.15) * side
                cy = (y0 + y1) / 2 + rng.uniform(-0.15, 0.15) * side
                left = float(np.clip(cx - side / 2, 0, size - side))
                top = float(np.clip(cy - side / 2, 0, size - side))
                windows.append([left, top, left + side, top + side])
                labels.append(index[label])
                deltas.append(box)
        found, tries = 0, 0
        while found < negatives and tries < 50 * negatives:
            tries += 1
            side = int(rng.choice(list(sizes)))
            left, top = rng.integers(0, size - side + 1, size=2).tolist()
            window = torch.tensor([[left, top, left + side, top + side]], dtype=torch.float32)
            if len(target["boxes"]) and B.box_iou(window, target["boxes"]).max() >= negative_iou:
                continue
            windows.append(window[0].tolist())
            labels.append(len(classes))
            deltas.append(None)
            found += 1
        crops.append(_crop(image, torch.tensor(windows, dtype=torch.float32), out_size))
    all_labels = torch.tensor(labels, dtype=torch.int64)
    all_windows = torch.cat([w for _, w in crops])
    boxes = torch.stack([torch.tensor(b, dtype=torch.float32) if b is not None else w
                         for b, w in zip(deltas, all_windows)])
    encoded = B.encode_boxes(boxes, all_windows)  # (M, 4); zero where box == window
    return torch.cat([c for c, _ in crops]), all_labels, encoded


def _crop(image: Tensor, windows: Tensor, out_size: int) -> tuple[Tensor, Tensor]:
    """Crops of (possibly fractional) windows of one image ``(C, H, W)``, by bilinear sampling."""
    c = image.shape[0]
    t = torch.linspace(0, 1, out_size)
    # pixel centres of the output inside each window, in the [-1, 1] coordinates of grid_sample
    size = torch.tensor(image.shape[-1:] + image.shape[-2:-1], dtype=torch.float32)  # (W, H)
    start, end = windows[:, :2], windows[:, 2:]  # (K, 2) as (x, y)
    step = (end - start) / out_size
    first, last = start + step / 2, end - step / 2
    xs = first[:, 0, None] + t[None] * (last[:, 0] - first[:, 0])[:, None]  # (K, out)
    ys = first[:, 1, None] + t[None] * (last[:, 1] - first[:, 1])[:, None]
    xs, ys = xs / size[0] * 2 - 1, ys / size[1] * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), dim=-1)  # (K, out, out, 2)
    patches = F.grid_sample(image[None].expand(len(windows), c, *image.shape[-2:]), grid,
                            mode="bilinear", padding_mode="border", align_corners=False)
    return patches, windows  # (K, C, out, out), (K, 4)


def _device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the CPU for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


@torch.no_grad()
def detect(model: nn.Module, images: Tensor, sizes: Sequence[int], stride: int, num_classes: int, *,
           regress: bool = True, score_threshold: float = 0.05, iou_threshold: float = 0.5,
           max_detections: int = 100, out_size: int = 28, batch_size: int = 4096) -> list[dict[str, Tensor]]:
    """Run a window classifier over sliding windows and turn its answers into detections.

    Args:
        model: maps crops ``(B, C, out_size, out_size)`` to ``(B, num_classes + 1 + 4)``: class
            logits, background last, then the box offsets from the window (used when ``regress``).
        images: ``(N, C, H, H)``.
        sizes, stride: the windows (:func:`sliding_windows`).
        num_classes: object classes (labels ``0 .. num_classes - 1``).
        regress: the box of a detection is the decoded offset (else the window itself).
        score_threshold: windows whose best object probability is below this are dropped.
        iou_threshold: per-class NMS threshold.
        max_detections: the most detections kept per image, best first.

    The crops run through the model on its device; the detections come back on the CPU.

    Returns:
        One dict per image: ``boxes`` (Tensor[D, 4], xyxy, clipped to the image), ``scores``
        (Tensor[D]), ``labels`` (Tensor[D], int64).
    """
    model.eval()
    device = _device(model)
    n, _, h, _ = images.shape
    windows = sliding_windows(h, sizes, stride)  # (W, 4)
    crops = crop_windows(images.cpu(), sizes, stride, out_size).flatten(0, 1)  # (N*W, C, out, out)
    outputs = torch.cat([model(crops[i:i + batch_size].to(device)).float().cpu()
                         for i in range(0, len(crops), batch_size)])
    outputs = outputs.reshape(n, len(windows), -1)  # (N, W, K + 1 + 4), on the CPU
    probabilities = outputs[..., :num_classes + 1].softmax(dim=-1)[..., :num_classes]  # no background
    scores, labels = probabilities.max(dim=-1)  # (N, W) each
    results = []
    for i in range(n):
        keep = scores[i] >= score_threshold
        boxes = windows[keep]
        if regress:
            boxes = B.decode_boxes(outputs[i, keep, num_classes + 1:num_classes + 5], boxes)
        boxes = boxes.clamp(0, h)
        kept = B.batched_nms(boxes, scores[i, keep], labels[i, keep], iou_threshold)[:max_detections]
        results.append({"boxes": boxes[kept], "scores": scores[i, keep][kept], "labels": labels[i, keep][kept]})
    return results


class WindowNet(nn.Module):
    """A small CNN for 28x28 windows: three conv-ReLU-pool stages, then one hidden layer, out
    ``num_classes + 1`` logits (background last) and 4 box offsets."""

    def __init__(self, num_classes: int, widths: Sequence[int] = (8, 16, 32), hidden: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in widths:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)  # (N, C, 3, 3) from 28x28
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * 9, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, num_classes + 1 + 4))
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (N, num_classes + 5)


def window_loss(outputs: Tensor, labels: Tensor, deltas: Tensor, num_classes: int,
                box_weight: float = 1.0) -> Tensor:
    """Cross-entropy over classes and background, plus smooth L1 on the offsets of object windows
    (Fast R-CNN's multi-task loss, Girshick 2015)."""
    loss = F.cross_entropy(outputs[:, :num_classes + 1], labels)
    objects = labels < num_classes
    if objects.any():
        loss = loss + box_weight * F.smooth_l1_loss(outputs[objects, num_classes + 1:], deltas[objects],
                                                    beta=1 / 9)
    return loss


def fit_windows(model: nn.Module, crops: Tensor, labels: Tensor, deltas: Tensor, num_classes: int, *,
                epochs: int = 4, batch_size: int = 128, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Train a window classifier with :func:`window_loss` (AdamW, one-cycle learning rate), on the
    model's device (the batches are moved there).

    Returns:
        The mean loss of every epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    device = _device(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * max(1, len(crops) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(crops), generator=generator)
        total = 0.0
        for i in range(max(1, len(crops) // batch_size)):
            idx = order[i * batch_size:(i + 1) * batch_size]
            loss = window_loss(model(crops[idx].to(device)), labels[idx].to(device), deltas[idx].to(device),
                               num_classes)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        losses.append(total / max(1, len(crops) // batch_size))
    model.eval()
    return losses
