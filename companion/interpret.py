"""Looking inside a network: feature maps, CAM, Grad-CAM, occlusion, and their sanity check.

* :func:`record_outputs`: a context manager that records chosen layers' outputs (forward hooks).
* :func:`cam`: the class activation map of Zhou et al., 2016, *Learning Deep Features for
  Discriminative Localization*, https://arxiv.org/abs/1512.04150: for a network whose head is
  global average pooling and one linear layer, ``M_c = sum_k w_k^c A^k``, the class score spread
  over the positions of the last feature maps ``A^k`` (their mean plus the bias is the score).
* :func:`grad_cam`: Selvaraju et al., 2017, *Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization*, https://arxiv.org/abs/1610.02391. For a class score ``y_c`` and
  the feature maps ``A^k`` of a convolutional layer, each channel's weight is the spatial mean of
  its gradient, ``alpha_k = mean_{i,j} dy_c / dA^k_{ij}``, and the map is
  ``ReLU(sum_k alpha_k A^k)``: where the layer's features push the score up. For a network whose
  head is global average pooling and one linear layer, ``alpha_k`` is that layer's weight for class
  ``c`` divided by the map's size, so Grad-CAM is ``ReLU(CAM) / (h w)``. Equal to captum's
  ``LayerGradCam(model, layer).attribute(x, target, relu_attributions=True)`` (the test oracle),
  without its channel axis.
* :func:`occlusion`: the occlusion sensitivity of Zeiler and Fergus, 2014, *Visualizing and
  Understanding Convolutional Networks*, https://arxiv.org/abs/1311.2901: how much the score drops
  when a window of the image is covered, averaged per pixel over the windows that cover it; equal
  to captum's ``Occlusion`` (the test oracle).
* :func:`rank_correlation`, :func:`randomize_layers`, :func:`cascading_randomization`: the
  sanity check of Adebayo et al., 2018, *Sanity Checks for Saliency Maps*,
  https://arxiv.org/abs/1810.03292: re-initialise the weights layer by layer from the top, and an
  explanation of the model must change (its Spearman rank correlation with the trained model's
  map must fall).

Introduced in chapter 26, *Looking inside*.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from companion._checks import as_tuple, check_positive_int, check_tensor


def grad_cam(model: nn.Module, layer: nn.Module, x: Tensor, target: int | Tensor) -> Tensor:
    """Grad-CAM of ``target``'s score at the output of ``layer``.

    The model runs in whatever mode it is in (put it in ``eval()`` first for batch norm and
    dropout to behave as at test time); its parameters' ``.grad`` are left untouched.

    Args:
        model: maps ``x`` to class scores ``(N, num_classes)`` (logits: the score, not the softmax).
        layer: a module inside ``model`` whose output is a feature map ``(N, K, h, w)``.
        x (Tensor[N, ...]): the inputs.
        target: the class to explain, one int for all inputs or a ``Tensor[N]`` of ints.

    Returns:
        Tensor[N, h, w]: ``ReLU(sum_k alpha_k A^k)``, at the layer's resolution.
    """
    check_tensor(x, "x", floating=True)
    if not any(m is layer for m in model.modules()):
        raise ValueError("layer must be a module inside model (e.g. model.layer4), so that its output "
                         "is on the way from x to the scores")
    saved: list[Tensor] = []

    def keep_output(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
        if not isinstance(output, Tensor) or output.dim() < 3:
            raise ValueError(f"layer must output a feature map (N, K, h, w), got "
                             f"{tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__}")
        saved.append(output)
        return output.clone()  # later in-place ops (ReLU(inplace=True)) change the clone, not the maps

    handle = layer.register_forward_hook(keep_output)
    try:
        with torch.enable_grad():
            scores = model(x)
            if scores.dim() != 2:
                raise ValueError(f"model must return scores (N, num_classes), got shape {tuple(scores.shape)}")
            targets = torch.as_tensor(target, device=scores.device).long().expand(len(scores)) \
                if not isinstance(target, Tensor) or target.dim() == 0 else target.to(scores.device).long()
            if targets.shape != (len(scores),) or int(targets.min()) < 0 or int(targets.max()) >= scores.shape[1]:
                raise ValueError(f"target must be an int or a Tensor[{len(scores)}] of classes in "
                                 f"[0, {scores.shape[1]}), got {target!r:.60}")
            chosen = scores.gather(1, targets[:, None]).sum()  # sum of each input's target score
            maps = saved[-1]  # (N, K, h, w)
            grads = torch.autograd.grad(chosen, maps)[0]  # (N, K, h, w)
    finally:
        handle.remove()
    alpha = grads.mean(dim=tuple(range(2, grads.dim())), keepdim=True)  # (N, K, 1, 1)
    return torch.relu((alpha * maps).sum(dim=1)).detach()  # (N, h, w)


def _targets(target: int | Tensor, n: int, num_classes: int, device: torch.device) -> Tensor:
    """``target`` as a ``Tensor[n]`` of class indices in ``[0, num_classes)``; ValueError otherwise."""
    if isinstance(target, bool) or not isinstance(target, (int, Tensor)):
        raise ValueError(f"target must be an int or a Tensor[{n}] of classes, got {type(target).__name__}")
    targets = torch.as_tensor(target, device=device)
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"target must hold integer classes, got dtype {targets.dtype}")
    targets = targets.long().expand(n) if targets.dim() == 0 else targets.long()
    if targets.shape != (n,) or (n and (int(targets.min()) < 0 or int(targets.max()) >= num_classes)):
        raise ValueError(f"target must be an int or a Tensor[{n}] of classes in [0, {num_classes}), "
                         f"got {target!r:.60}")
    return targets


# --- feature maps through forward hooks --------------------------------------------------------


@contextmanager
def record_outputs(layers: Mapping[str, nn.Module]) -> Iterator[dict[str, Tensor]]:
    """Record the output of each named layer during the forward passes run inside the block.

    ::

        with record_outputs({"conv1": model.conv1, "layer4": model.layer4}) as maps:
            model(x)
        maps["layer4"]  # (N, 2048, 7, 7) for a ResNet-50 on 224 x 224 images

    Each output is stored as a detached *copy*: a later in-place operation (``ReLU(inplace=True)``
    right after a convolution or a batch norm) would otherwise change what was recorded. A layer
    run several times in one pass (a shared module) keeps its last output. The hooks are removed
    when the block ends, even on an error.

    Args:
        layers: name -> module; the names are the keys of the dict the block receives.

    Yields:
        dict[str, Tensor]: filled as the layers run (empty until a forward pass).

    Raises:
        ValueError: ``layers`` is empty or holds something other than modules.
    """
    if not isinstance(layers, Mapping) or not layers:
        raise ValueError("layers must be a non-empty dict name -> module, e.g. {'conv1': model.conv1}")
    for name, layer in layers.items():
        if not isinstance(layer, nn.Module):
            raise ValueError(f"layers[{name!r}] must be an nn.Module, got {type(layer).__name__}")
    recorded: dict[str, Tensor] = {}

    def keeper(name: str):
        def keep(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            if not isinstance(output, Tensor):
                raise ValueError(f"layer {name!r} returned {type(output).__name__}, not a tensor")
            recorded[name] = output.detach().clone()  # a copy: in-place ops after the layer cannot change it

        return keep

    handles = [layer.register_forward_hook(keeper(name)) for name, layer in layers.items()]
    try:
        yield recorded
    finally:
        for handle in handles:
            handle.remove()


def feature_maps(model: nn.Module, layers: Mapping[str, nn.Module], x: Tensor) -> dict[str, Tensor]:
    """The outputs of the named ``layers`` of ``model`` on ``x``, in one forward pass without gradients.

    Args:
        model: run as it is (``eval()`` it first for batch norm to use its running statistics).
        layers: name -> a module inside ``model``.
        x (Tensor[N, ...]): the inputs.

    Returns:
        dict[str, Tensor]: name -> that layer's output, e.g. ``(N, K, h, w)`` for a convolution.

    Raises:
        ValueError: a layer is not inside ``model``, or did not run on the way to the output.
    """
    check_tensor(x, "x", floating=True)
    for name, layer in layers.items():
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"layers[{name!r}] is not a module inside model")
    with record_outputs(layers) as recorded, torch.no_grad():
        model(x)
    missing = [name for name in layers if name not in recorded]
    if missing:
        raise ValueError(f"layers {missing} did not run in model's forward pass (called outside forward?)")
    return dict(recorded)


# --- CAM, Zhou et al. 2016 ------------------------------------------------------------------------


def cam(features: Tensor, weight: Tensor, target: int | Tensor) -> Tensor:
    """The class activation map of a global-average-pooling + linear head (Zhou et al., 2016, eq. 2).

    ``M_c(i, j) = sum_k w_k^c A^k(i, j)``. Because average pooling is linear, the score is the mean
    of the map plus the bias: ``y_c = mean_{i,j} M_c(i, j) + b_c``. The map is signed (no ReLU);
    Grad-CAM of the same layer is ``ReLU(M_c) / (h w)``.

    Args:
        features (Tensor[N, K, h, w]): the maps the head pools (e.g. recorded with
            :func:`record_outputs` at the last convolutional stage).
        weight (Tensor[C, K]): the linear layer's weight (``fc.weight``).
        target: the class, one int for all inputs or a ``Tensor[N]`` of ints.

    Returns:
        Tensor[N, h, w]: ``M_target``, at the features' resolution.

    Raises:
        ValueError: wrong dimensions, ``K`` differs between ``features`` and ``weight``, or a
            class out of range.
    """
    check_tensor(features, "features", ndim=4, shape_hint="(N, K, h, w)", floating=True)
    check_tensor(weight, "weight", ndim=2, shape_hint="(num_classes, K)", floating=True)
    if weight.shape[1] != features.shape[1]:
        raise ValueError(f"weight has {weight.shape[1]} inputs per class but features have {features.shape[1]} "
                         "channels: pass the weight of the linear layer right after the global average pooling")
    targets = _targets(target, len(features), weight.shape[0], features.device)
    chosen = weight[targets]  # (N, K): each input's class weights
    return torch.einsum("nk,nkhw->nhw", chosen.to(features.dtype), features)  # (N, h, w)


# --- occlusion sensitivity, Zeiler and Fergus 2014 ---------------------------------------------------


def occlusion(model: nn.Module, x: Tensor, target: int | Tensor, window: int | tuple[int, int],
              stride: int | tuple[int, int] = 1, baseline: float = 0.0, batch_size: int = 256) -> Tensor:
    """Occlusion sensitivity: how much ``target``'s score drops when a window of the image is covered.

    The window slides over the image from the top-left corner by ``stride``, at positions
    ``0, s, 2s, ...`` up to the first one that reaches the border (the last window is cut at the
    border), covering every channel with ``baseline``. Each pixel gets the mean, over the windows
    that cover it, of ``score(x) - score(x with the window covered)``: positive where covering the
    pixel lowers the score. Equal to captum's ``Occlusion(model).attribute(x,
    sliding_window_shapes=(C, kh, kw), strides=(C, sh, sw), baselines=baseline, target=target)``
    (the same value in every channel).

    Args:
        model: maps ``x`` to scores ``(N, num_classes)``; run as it is, without gradients.
        x (Tensor[N, C, H, W]): the images.
        target: the class, one int or a ``Tensor[N]``.
        window: the side(s) ``(kh, kw)`` of the covered square.
        stride: the step(s) ``(sh, sw)`` between windows, at most the window's side.
        baseline: the value the covered pixels take.
        batch_size: occluded images per forward pass.

    Returns:
        Tensor[N, H, W]: the mean score drop per pixel.
    """
    check_tensor(x, "x", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    n, c, height, width = x.shape
    kh, kw = as_tuple(window, 2, "window", minimum=1)
    sh, sw = as_tuple(stride, 2, "stride", minimum=1)
    check_positive_int(batch_size, "batch_size")
    if kh > height or kw > width:
        raise ValueError(f"window {(kh, kw)} is larger than the images ({height}, {width})")
    if (sh > kh and kh < height) or (sw > kw and kw < width):
        raise ValueError(f"stride {(sh, sw)} must not exceed the window {(kh, kw)}: pixels would be skipped")
    rows = [i * sh for i in range(1 + -(-(height - kh) // sh))]  # window tops
    cols = [j * sw for j in range(1 + -(-(width - kw) // sw))]
    with torch.no_grad():
        scores = model(x)
        if scores.dim() != 2:
            raise ValueError(f"model must return scores (N, num_classes), got shape {tuple(scores.shape)}")
        targets = _targets(target, n, scores.shape[1], scores.device)
        original = scores.gather(1, targets[:, None])[:, 0]  # (N,)
        total = torch.zeros(n, height, width, dtype=scores.dtype, device=x.device)
        counts = torch.zeros(height, width, dtype=scores.dtype, device=x.device)
        positions = [(top, left) for top in rows for left in cols]
        per_pass = max(1, batch_size // max(n, 1))  # window positions per forward pass
        for start in range(0, len(positions), per_pass):
            chunk = positions[start:start + per_pass]
            covered = x.unsqueeze(0).repeat(len(chunk), 1, 1, 1, 1)  # (P, N, C, H, W)
            for p, (top, left) in enumerate(chunk):
                covered[p, :, :, top:top + kh, left:left + kw] = baseline
            out = model(covered.flatten(0, 1))  # (P * N, classes)
            drops = original - out.view(len(chunk), n, -1).gather(
                2, targets[None, :, None].expand(len(chunk), n, 1))[..., 0]  # (P, N)
            for p, (top, left) in enumerate(chunk):
                total[:, top:top + kh, left:left + kw] += drops[p][:, None, None].to(total.device)
                counts[top:top + kh, left:left + kw] += 1
    return total / counts  # (N, H, W)


# --- the sanity check of Adebayo et al. 2018 ---------------------------------------------------------


def _ranks(values: Tensor) -> Tensor:
    """Ranks 1..M of each row of ``values (Tensor[N, M])``, ties given their average rank."""
    order = values.argsort(dim=1, stable=True)
    sorted_values = values.gather(1, order)
    m = values.shape[1]
    positions = torch.arange(1, m + 1, dtype=torch.float64, device=values.device).expand_as(values)
    # tie groups: a new group starts where the sorted value changes
    starts = torch.ones_like(sorted_values, dtype=torch.bool)
    starts[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    group = starts.long().cumsum(dim=1) - 1  # (N, M): group index of each sorted entry
    sums = torch.zeros_like(positions).scatter_add_(1, group, positions)
    sizes = torch.zeros_like(positions).scatter_add_(1, group, torch.ones_like(positions))
    average = (sums / sizes.clamp(min=1)).gather(1, group)  # (N, M): average rank, sorted order
    return torch.empty_like(average).scatter_(1, order, average)


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation of each pair of maps ``a[n]``, ``b[n]`` (flattened), in float64.

    Ties get their average rank, as in ``scipy.stats.spearmanr``; a map with one value everywhere
    has no ranking, and its correlation is ``nan`` (as scipy's is).

    Args:
        a (Tensor[N, ...]): maps, e.g. ``(N, h, w)``.
        b (Tensor[N, ...]): maps of the same shape.

    Returns:
        Tensor[N]: the correlations, in ``[-1, 1]`` (or ``nan``).
    """
    check_tensor(a, "a")
    check_tensor(b, "b")
    if a.shape != b.shape or a.dim() < 2 or a[0].numel() < 2:
        raise ValueError(f"a and b must be maps of the same shape (N, ...) with at least 2 values each, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = (_ranks(t.detach().flatten(1).double()) for t in (a, b))  # (N, M)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    denominator = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    correlation = (ra * rb).sum(1) / denominator
    return torch.where(denominator > 0, correlation, torch.full_like(correlation, float("nan")))


def randomize_layers(model: nn.Module, names: Sequence[str], seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose named layers are re-initialised, the rest unchanged.

    Each named layer's ``reset_parameters()`` draws its weights again from the layer's initial
    distribution, as in a fresh network (a batch norm returns to its initial scale 1, shift 0 and
    running statistics). Each layer draws from its own stream, seeded by ``seed`` and the layer's
    place in ``model.named_modules()``: the same seed gives a layer the same weights whichever
    other layers are re-initialised with it, and the global random state is left as it was.
    ``model`` itself is not changed.

    Args:
        model: the trained network.
        names: names of modules in ``model.named_modules()`` (e.g. ``"classifier.3"``), each with
            its own parameters and a ``reset_parameters`` method.
        seed: seeds the new weights.

    Raises:
        ValueError: an unknown name, or a module with nothing to re-initialise.
    """
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules:
            raise ValueError(f"no module {name!r} in model; its layers are {[n for n in modules if n][:12]}...")
        if not hasattr(modules[name], "reset_parameters") or not list(modules[name].parameters(recurse=False)):
            raise ValueError(f"module {name!r} ({type(modules[name]).__name__}) has no weights of its own to "
                             "re-initialise: name the convolutions, linear layers and norms")
    randomized = copy.deepcopy(model)
    copies = dict(randomized.named_modules())
    places = {name: i for i, name in enumerate(copies)}
    with torch.random.fork_rng():
        for name in names:
            torch.manual_seed(seed * 1_000_003 + places[name])  # this layer's own stream
            copies[name].reset_parameters()
    return randomized


def cascading_randomization(model: nn.Module, names: Sequence[str],
                            seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """Adebayo et al.'s cascading randomisation: re-initialise the layers from the top down, cumulatively.

    ``names`` lists the layers with weights in forward order (input first). The first model
    yielded has the last layer re-initialised, the next the last two, and so on down to the
    first layer: every model has all the layers from the named one to the output random.

    Args:
        model: the trained network (not changed).
        names: the layers, in forward order.
        seed: seeds the new weights (see :func:`randomize_layers`).

    Yields:
        ``(name, randomised copy)``: the layer randomised last, and the copy.
    """
    if not names:
        raise ValueError("names must list at least one layer, in forward order")
    for k in range(len(names) - 1, -1, -1):
        yield names[k], randomize_layers(model, names[k:], seed=seed)
