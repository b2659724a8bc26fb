"""YOLO v1: one pass of one network, a grid of cells, ``B`` boxes and ``C`` class scores per cell.

Redmon, Divvala, Girshick and Farhadi, 2016, *You Only Look Once: Unified, Real-Time Object
Detection*, https://arxiv.org/abs/1506.02640. The image is divided into an ``S x S`` grid; each
cell predicts ``B`` boxes, each ``(x, y, sqrt(w), sqrt(h), confidence)``, and ``C`` class
probabilities, so the network's output is ``(N, S, S, 5 B + C)``:

* ``x, y``: the box's centre inside its cell, as a fraction of the cell (0 to 1);
* ``sqrt(w), sqrt(h)``: the square roots of the box's width and height as fractions of the image
  (the paper predicts the square roots, so that an error of a few pixels costs more on a small
  box than on a large one);
* ``confidence``: trained towards the IoU of the box with the object it is responsible for (0
  where there is none);
* ``C`` probabilities of the classes, given that the cell holds an object (one set per cell).

Target assignment (:func:`assign_targets`): an object belongs to the cell that holds its box's
centre; of that cell's ``B`` predictors, the one whose predicted box overlaps the object most is
*responsible* for it (done in :func:`yolo_loss`, since it depends on the prediction). The loss is
the paper's sum of squared errors (its equation 3), with ``lambda_coord = 5`` on the box terms of
the responsible predictors and ``lambda_noobj = 0.5`` on the confidences of all other predictors.
:func:`decode` turns an output into boxes (score = confidence x class probability) and removes
duplicates with per-class NMS (:func:`companion.boxes.batched_nms`).

Differences from the paper, for a small network trained in seconds: :class:`YOLONet` is fully
convolutional with batch norm (as YOLO v2, Redmon and Farhadi, 2017), not 24 convolutions and
two fully connected layers, and it squashes its outputs (a sigmoid on the box entries and the
confidences, a softmax on the class scores) so that they start in range; the paper's last layer
is linear.

Introduced in chapter 16, *Object detection II*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from companion import boxes as B
from companion._checks import check_tensor

BOX_ENTRIES = 5
"""What one predictor outputs: ``x, y, sqrt(w), sqrt(h), confidence``."""


def _image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` from an int (a square image) or a pair."""
    if isinstance(image_size, bool):
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return size  # type: ignore[return-value]


def _check_positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _split(pred: Tensor, num_boxes: int) -> tuple[Tensor, Tensor]:
    """``(N, S, S, 5B + C)`` -> boxes ``(N, S, S, B, 5)`` and class scores ``(N, S, S, C)``."""
    check_tensor(pred, "pred", ndim=4, shape_hint="(N, S, S, 5 * num_boxes + num_classes)", floating=True)
    _check_positive(num_boxes, "num_boxes")
    n, s, s2, d = pred.shape
    if s != s2 or d <= BOX_ENTRIES * num_boxes:
        raise ValueError(f"pred must have shape (N, S, S, 5 * num_boxes + num_classes) with "
                         f"num_boxes={num_boxes} and at least one class, got {tuple(pred.shape)}")
    k = BOX_ENTRIES * num_boxes
    return pred[..., :k].reshape(n, s, s, num_boxes, BOX_ENTRIES), pred[..., k:]


def assign_targets(targets: Sequence[Mapping[str, Tensor]], grid: int, num_classes: int,
                   image_size: int | Sequence[int]) -> Tensor:
    """The YOLO v1 target of each image: every object written into the cell that holds its centre.

    Args:
        targets: one dict per image with ``boxes`` (Tensor[K, 4], ``xyxy`` in pixels) and
            ``labels`` (Tensor[K], ints in ``0 .. num_classes - 1``).
        grid: ``S``, the cells per side.
        num_classes: ``C``.
        image_size: the images' ``(height, width)`` in pixels (or one int for square images).

    Returns:
        Tensor[N, S, S, 5 + C]: per cell ``(x, y, sqrt(w), sqrt(h), has_object, one-hot class)``,
        with ``x, y`` the centre's place in the cell (0 to 1) and ``w, h`` fractions of the image;
        zeros in cells without an object. Cell ``[n, i, j]`` is row ``i`` (from the centre's ``y``)
        and column ``j`` (from its ``x``). A cell holds one object (YOLO v1's limit): when two
        centres fall in the same cell, the first object listed keeps it.

    Raises:
        ValueError: a bad grid, class count, image size, box shape or label.
    """
    s = _check_positive(grid, "grid")
    c = _check_positive(num_classes, "num_classes")
    height, width = _image_size(image_size)
    if isinstance(targets, Mapping) or not isinstance(targets, Sequence):
        raise ValueError("targets must be a list of dicts (one per image) with 'boxes' and 'labels'")
    out = torch.zeros(len(targets), s, s, BOX_ENTRIES + c)  # (N, S, S, 5 + C)
    for n, target in enumerate(targets):
        if not isinstance(target, Mapping) or "boxes" not in target or "labels" not in target:
            raise ValueError(f"targets[{n}] must be a dict with 'boxes' and 'labels'")
        boxes = B._check_boxes(target["boxes"], f"targets[{n}]['boxes']").float()
        labels = target["labels"].reshape(-1)
        if len(labels) != len(boxes):
            raise ValueError(f"targets[{n}] has {len(boxes)} boxes and {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= c):
            raise ValueError(f"targets[{n}]['labels'] must be in 0..{c - 1}, got {labels.tolist()}")
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 / width * s  # (K,) in cell units
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 / height * s
        col = cx.floor().long().clamp(0, s - 1)  # x -> column j
        row = cy.floor().long().clamp(0, s - 1)  # y -> row i
        w = ((boxes[:, 2] - boxes[:, 0]) / width).clamp(min=0)
        h = ((boxes[:, 3] - boxes[:, 1]) / height).clamp(min=0)
        for k in range(len(boxes)):
            i, j = int(row[k]), int(col[k])
            if out[n, i, j, 4] > 0:
                continue  # the cell is taken
            out[n, i, j, :5] = torch.stack([cx[k] - j, cy[k] - i, w[k].sqrt(), h[k].sqrt(),
                                            torch.tensor(1.0)])
            out[n, i, j, 5 + int(labels[k])] = 1.0
    return out


def cells_to_boxes(cells: Tensor, image_size: int | Sequence[int]) -> Tensor:
    """Boxes written per cell, ``(x, y, sqrt(w), sqrt(h))``, as ``xyxy`` boxes in pixels.

    Args:
        cells: Tensor[..., S, S, 4]: the last three dimensions are row ``i``, column ``j`` and the
            four numbers of a box as in :func:`assign_targets`.
        image_size: ``(height, width)`` in pixels, or one int.

    Returns:
        Tensor[..., S, S, 4]: ``(x0, y0, x1, y1)`` in pixels.
    """
    check_tensor(cells, "cells", floating=True)
    if cells.dim() < 3 or cells.shape[-1] != 4 or cells.shape[-2] != cells.shape[-3]:
        raise ValueError(f"cells must have shape (..., S, S, 4), got {tuple(cells.shape)}")
    height, width = _image_size(image_size)
    s = cells.shape[-2]
    j = torch.arange(s, dtype=cells.dtype, device=cells.device)  # (S,) columns, also rows below
    cx = (cells[..., 0] + j) / s * width  # (..., S, S): j varies along the last axis (columns)
    cy = (cells[..., 1] + j[:, None]) / s * height  # rows along the second to last axis
    w, h = cells[..., 2] ** 2 * width, cells[..., 3] ** 2 * height
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def paired_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of boxes paired element by element (not every pair as :func:`companion.boxes.box_iou`).

    Args:
        boxes1, boxes2: Tensor[..., 4], ``xyxy``, broadcastable to each other.

    Returns:
        Tensor[...]: the IoU of each pair; 0 where both boxes are empty.
    """
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(dim=-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(dim=-1)
    union = area1 + area2 - inter
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny)


def responsible(pred: Tensor, target: Tensor, num_boxes: int) -> Tensor:
    """Which predictor is responsible for each cell's object: the one whose box overlaps it most.

    Args:
        pred: Tensor[N, S, S, 5B + C], the network's (squashed) output.
        target: Tensor[N, S, S, 5 + C] from :func:`assign_targets`.

    Returns:
        Tensor[N, S, S, B], 1.0 for the responsible predictor of each cell with an object (the
        first one on a tie), 0.0 elsewhere.
    """
    boxes, _ = _split(pred, num_boxes)  # (N, S, S, B, 5)
    _check_target(target, pred, num_boxes)
    iou = _predictor_iou(boxes, target)  # (N, S, S, B)
    best = torch.nn.functional.one_hot(iou.argmax(dim=-1), num_boxes).to(pred.dtype)
    return best * target[..., 4:5]  # (N, S, S, B)


def _predictor_iou(boxes: Tensor, target: Tensor) -> Tensor:
    """IoU of each predictor's box ``(N, S, S, B, 5)`` with its cell's true box -> ``(N, S, S, B)``.
    The image size cancels out of an IoU, so boxes are measured in a unit image."""
    predicted = cells_to_boxes(boxes[..., :4].movedim(3, 1), 1)  # (N, B, S, S, 4)
    true = cells_to_boxes(target[..., None, :4].movedim(3, 1), 1)  # (N, 1, S, S, 4)
    return paired_iou(predicted, true).movedim(1, 3)  # (N, S, S, B)


def _check_target(target: Tensor, pred: Tensor, num_boxes: int) -> None:
    check_tensor(target, "target", ndim=4, shape_hint="(N, S, S, 5 + num_classes)", floating=True)
    want = pred.shape[:3] + (BOX_ENTRIES + pred.shape[-1] - BOX_ENTRIES * num_boxes,)
    if tuple(target.shape) != tuple(want):
        raise ValueError(f"target must have shape {tuple(want)} (N, S, S, 5 + num_classes) to match pred "
                         f"{tuple(pred.shape)} with num_boxes={num_boxes}, got {tuple(target.shape)}")


def yolo_loss(pred: Tensor, target: Tensor, num_boxes: int, *, lambda_coord: float = 5.0,
              lambda_noobj: float = 0.5, rescore: bool = True) -> dict[str, Tensor]:
    """The YOLO v1 loss (Redmon et al., 2016, equation 3), averaged over the images.

    With ``1_ij`` = 1 when predictor ``j`` of cell ``i`` is responsible for an object
    (:func:`responsible`), ``1_i`` = 1 when cell ``i`` holds an object, and ``noobj_ij = 1 - 1_ij``:

    * ``xy``: ``sum 1_ij [(x - x^)^2 + (y - y^)^2]``;
    * ``wh``: ``sum 1_ij [(sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]``;
    * ``obj``: ``sum 1_ij (C - C^)^2``, the target ``C^`` the IoU of the predicted box with the
      object (detached; 1 when ``rescore`` is False);
    * ``noobj``: ``sum noobj_ij C^2`` over every other predictor, in cells with or without objects;
    * ``class``: ``sum 1_i sum_c (p(c) - p^(c))^2``;

    ``loss = lambda_coord (xy + wh) + obj + lambda_noobj noobj + class``, each divided by ``N``.

    Args:
        pred: Tensor[N, S, S, 5B + C]: per cell, ``B`` blocks ``(x, y, sqrt(w), sqrt(h),
            confidence)``, then ``C`` class probabilities.
        target: Tensor[N, S, S, 5 + C] from :func:`assign_targets`.
        num_boxes: ``B``.

    Returns:
        ``{"xy", "wh", "obj", "noobj", "class", "loss"}``: the five sums (unweighted) and the
        weighted total, each a 0-D tensor, divided by ``N``.
    """
    boxes, classes = _split(pred, num_boxes)  # (N, S, S, B, 5), (N, S, S, C)
    _check_target(target, pred, num_boxes)
    n = pred.shape[0]
    has_object = target[..., 4]  # (N, S, S)
    iou = _predictor_iou(boxes, target)  # (N, S, S, B)
    best = torch.nn.functional.one_hot(iou.argmax(dim=-1), num_boxes).to(pred.dtype)
    mask = best * has_object[..., None]  # (N, S, S, B): 1_ij
    truth = target[..., None, :4]  # (N, S, S, 1, 4), broadcast over the B predictors
    xy = (mask * ((boxes[..., :2] - truth[..., :2]) ** 2).sum(-1)).sum() / n
    wh = (mask * ((boxes[..., 2:4] - truth[..., 2:4]) ** 2).sum(-1)).sum() / n
    goal = iou.detach() if rescore else torch.ones_like(iou)
    obj = (mask * (boxes[..., 4] - goal) ** 2).sum() / n
    noobj = ((1 - mask) * boxes[..., 4] ** 2).sum() / n
    cls = (has_object * ((classes - target[..., 5:]) ** 2).sum(-1)).sum() / n
    loss = lambda_coord * (xy + wh) + obj + lambda_noobj * noobj + cls
    return {"xy": xy, "wh": wh, "obj": obj, "noobj": noobj, "class": cls, "loss": loss}


def decode(pred: Tensor, num_boxes: int, image_size: int | Sequence[int], *, score_threshold: float = 0.05,
           iou_threshold: float = 0.5, max_detections: int = 100) -> list[dict[str, Tensor]]:
    """Turn YOLO outputs into detections: boxes in pixels, class-specific scores, per-class NMS.

    A predictor's score for class ``c`` is its confidence times the cell's ``p(c)`` (the paper's
    "class-specific confidence"); each box keeps its best class. Boxes below ``score_threshold``
    are dropped, the others clipped to the image and thinned by per-class NMS.

    Args:
        pred: Tensor[N, S, S, 5B + C].
        num_boxes: ``B``.
        image_size: ``(height, width)`` in pixels, or one int.

    Returns:
        One dict per image: ``boxes`` (Tensor[D, 4], xyxy), ``scores`` (Tensor[D]), ``labels``
        (Tensor[D], int64), best score first, at most ``max_detections``.
    """
    boxes, classes = _split(pred, num_boxes)  # (N, S, S, B, 5), (N, S, S, C)
    height, width = _image_size(image_size)
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}")
    _check_positive(max_detections, "max_detections")
    pred = pred.detach()
    xyxy = cells_to_boxes(boxes[..., :4].detach().movedim(3, 1), (height, width))  # (N, B, S, S, 4)
    xyxy = xyxy.movedim(1, 3)  # (N, S, S, B, 4)
    limit = xyxy.new_tensor([width, height, width, height])
    xyxy = torch.minimum(xyxy.clamp(min=0), limit)
    class_scores = boxes[..., 4:5].detach() * classes.detach()[..., None, :]  # (N, S, S, B, C)
    scores, labels = class_scores.max(dim=-1)  # (N, S, S, B) each
    results = []
    for i in range(pred.shape[0]):
        b, s, c = xyxy[i].reshape(-1, 4), scores[i].reshape(-1), labels[i].reshape(-1)
        keep = s >= score_threshold
        b, s, c = b[keep].float().cpu(), s[keep].float().cpu(), c[keep].cpu()
        kept = B.batched_nms(b, s, c, iou_threshold)[:max_detections]
        results.append({"boxes": b[kept], "scores": s[kept], "labels": c[kept]})
    return results


class YOLONet(nn.Module):
    """A small fully convolutional YOLO v1 detector for square images.

    ``log2(image_size / grid)`` stages of 3x3 convolution, batch norm, leaky ReLU (slope 0.1, as
    the paper) and 2x2 max pooling bring the image down to ``grid x grid`` cells; the remaining
    ``widths`` are 3x3 convolutions at that size; a 1x1 convolution gives each cell its
    ``5 B + C`` numbers. The output is squashed: sigmoid on the box entries and confidences,
    softmax over the classes.

    Args:
        num_classes: ``C``.
        num_boxes: ``B``, predictors per cell.
        grid: ``S``, cells per side.
        image_size: the side of the square input; ``image_size / grid`` must be a power of two.
        in_channels: the images' channels.
        widths: channels of the convolutions (at least one per pooling stage).

    Input ``(N, in_channels, image_size, image_size)``; output ``(N, S, S, 5B + C)``.
    """

    def __init__(self, num_classes: int, num_boxes: int = 2, grid: int = 8, image_size: int = 64,
                 in_channels: int = 1, widths: Sequence[int] = (16, 32, 64, 64, 64)) -> None:
        super().__init__()
        for value, name in ((num_classes, "num_classes"), (num_boxes, "num_boxes"), (grid, "grid"),
                            (image_size, "image_size"), (in_channels, "in_channels")):
            _check_positive(value, name)
        ratio = image_size // grid
        if image_size % grid or ratio & (ratio - 1):
            raise ValueError(f"image_size / grid must be a power of two, got {image_size} / {grid}")
        pools = ratio.bit_length() - 1
        if len(widths) < pools or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths needs at least {pools} channel counts (one per pooling), got {widths!r}")
        layers: list[nn.Module] = []
        c_in = in_channels
        for k, c in enumerate(widths):
            stride = 2 if k < pools else 1  # the first convolutions halve the size
            layers += [nn.Conv2d(c_in, c, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.LeakyReLU(0.1, inplace=True)]
            c_in = c
        self.features = nn.Sequential(*layers)  # (N, c_in, S, S)
        self.head = nn.Conv2d(c_in, BOX_ENTRIES * num_boxes + num_classes, 1)
        self.num_classes, self.num_boxes, self.grid, self.image_size = num_classes, num_boxes, grid, image_size
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        check_tensor(x, "x", ndim=4, shape_hint="(N, C, H, W)")
        if x.shape[1:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(f"x must have shape (N, {self.in_channels}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(x.shape)}")
        out = self.head(self.features(x)).permute(0, 2, 3, 1)  # (N, S, S, 5B + C)
        k = BOX_ENTRIES * self.num_boxes
        return torch.cat([out[..., :k].sigmoid(), out[..., k:].softmax(dim=-1)], dim=-1)


def flip_targets(targets: Tensor) -> Tensor:
    """The targets of images mirrored left to right: the columns of cells reverse, and an object's
    ``x`` in its cell becomes ``1 - x``.

    Args:
        targets: Tensor[N, S, S, 5 + C] from :func:`assign_targets`.

    Returns:
        Tensor[N, S, S, 5 + C], equal to :func:`assign_targets` of the mirrored boxes (for centres
        that are not on a cell's edge).
    """
    check_tensor(targets, "targets", ndim=4, shape_hint="(N, S, S, 5 + C)", floating=True)
    out = targets.flip(2).clone()  # (N, S, S, 5 + C): columns reversed
    out[..., 0] = torch.where(out[..., 4] > 0, 1 - out[..., 0], out[..., 0])
    return out


def fit_yolo(model: YOLONet, images: Tensor, targets: Tensor, *, epochs: int = 10, batch_size: int = 32,
             lr: float = 3e-3, flip: bool = True, seed: int = 0, **loss_options: float) -> list[float]:
    """Train a :class:`YOLONet` with :func:`yolo_loss` (AdamW, one-cycle learning rate).

    Args:
        images: Tensor[N, C, H, W].
        targets: Tensor[N, S, S, 5 + C] from :func:`assign_targets`.
        flip: also show each batch mirrored left to right, half of the time (the box mirrors with
            it: the cells' columns reverse and ``x`` becomes ``1 - x``).
        loss_options: passed on to :func:`yolo_loss` (``lambda_coord``, ``lambda_noobj``, ``rescore``).

    Returns:
        The mean loss of every epoch. Batches go to the model's device.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_tensor(targets, "targets", ndim=4, shape_hint="(N, S, S, 5 + C)", floating=True)
    if len(images) != len(targets) or len(images) == 0:
        raise ValueError(f"images and targets must be non-empty and of equal length, got {len(images)} "
                         f"and {len(targets)}")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    per_epoch = max(1, len(images) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * per_epoch, pct_start=0.2)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for k in range(per_epoch):
            idx = order[k * batch_size:(k + 1) * batch_size]
            x, t = images[idx], targets[idx]
            if flip and bool(torch.rand((), generator=generator) < 0.5):
                x, t = x.flip(-1), flip_targets(t)
            loss = yolo_loss(model(x.to(device)), t.to(device), model.num_boxes, **loss_options)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        losses.append(total / per_epoch)
    model.eval()
    return losses


@torch.no_grad()
def detect(model: YOLONet, images: Tensor, *, batch_size: int = 256, **options: float) -> list[dict[str, Tensor]]:
    """Run a :class:`YOLONet` over ``images`` ``(N, C, H, W)`` and :func:`decode` its output (on the
    CPU); ``options`` go to :func:`decode`."""
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(images[i:i + batch_size].to(device)).float().cpu()
                     for i in range(0, len(images), batch_size)])
    return decode(out, model.num_boxes, images.shape[-2:], **options)
