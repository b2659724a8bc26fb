"""Neural style transfer: Gram matrices, content and style losses, and the image optimised.

Gatys, Ecker and Bethge, 2016, *Image Style Transfer Using Convolutional Neural Networks*,
https://openaccess.thecvf.com/content_cvpr_2016/html/Gatys_Image_Style_Transfer_CVPR_2016_paper.html.
A layer's feature maps ``F`` (C channels of H x W) describe *where* things are; their Gram matrix
``G = F F^T``, the correlations between channels summed over all positions, keeps *which*
features occur together and forgets where: texture, i.e. style. The stylised image is found by
gradient descent on its pixels, with the network fixed: close to the content image's features
in a deep layer (the content loss, equation 1 of the paper), close to the style image's Gram
matrices in several layers (the style loss, equations 3-5), weighted ``alpha`` and ``beta``
(equation 7). A small total-variation term (Mahendran and Vedaldi, 2015) smooths the pixels.

The network need not be trained: He, Wang and Hopcroft, 2016, *A Powerful Generative Model
Using Random Weights for the Deep Image Representation* (https://arxiv.org/abs/1606.04801),
transfer style with a VGG of random weights, and Ustyuzhaninov et al., 2017, *What does it
take to generate natural textures?* (https://openreview.net/forum?id=BJhZeLsxx), synthesise
textures with random shallow networks. The functions below take any stack of layers, random or
trained (torchvision's ImageNet VGG-19, as in the paper).

Introduced in chapter 23, *Neural style transfer*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from companion._checks import check_positive_int, check_tensor

def vgg_layer_positions(config: Sequence[int | str]) -> dict[str, int]:
    """The positions of a VGG's named ReLUs in its layer list (``relu<stage>_<k>``, from 1).

    ``config`` is a configuration of :mod:`companion.models.vgg` (``VGG19``, ``VGG11``, or the
    first entries of one); the positions are those of :func:`companion.models.vgg.make_layers`
    without batch norm, which are torchvision's (``vgg19().features[22]`` is ``relu4_2``).
    """
    positions, index, stage, k = {}, 0, 1, 0
    for entry in config:
        if entry == "M":
            index, stage, k = index + 1, stage + 1, 0
        else:
            k += 1
            positions[f"relu{stage}_{k}"] = index + 1  # the convolution at index, its ReLU after it
            index += 2
    return positions


#: The positions of VGG-19's named layers in ``features`` (torchvision's ``vgg19().features``,
#: and :func:`companion.models.vgg.make_layers` on ``VGG19``): ``relu4_2`` is the paper's content
#: layer, ``relu1_1`` ... ``relu5_1`` its style layers.
VGG19_LAYERS: dict[str, int] = {
    "relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_2": 13,
    "relu3_3": 15, "relu3_4": 17, "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 35,
}  # == vgg_layer_positions(VGG19)

#: The mean and standard deviation of ImageNet's pixels, per RGB channel, that torchvision's
#: models expect their inputs normalised with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def gram_matrix(features: Tensor) -> Tensor:
    """The normalised Gram matrix of each feature map: ``F @ F^T / (C * H * W)``.

    Dividing by ``C * H * W`` makes layers of different sizes comparable, so that no layer
    dominates the style loss just because it is large.

    Args:
        features (Tensor[N, C, H, W]): feature maps.

    Returns:
        Tensor[N, C, C]: ``G[n, i, j] = sum_p F[n, i, p] F[n, j, p] / (C H W)``.
    """
    check_tensor(features, "features", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)  # (N, C, H*W)
    return flat @ flat.transpose(1, 2) / (c * h * w)  # (N, C, C)


class FeatureExtractor(nn.Module):
    """The activations of chosen layers of a stack of layers, in one forward pass.

    The layers run in sequence up to the deepest one asked for (the rest is never run), and the
    output of each chosen layer is kept. In-place ReLUs are replaced by ordinary ones (an
    in-place ReLU would overwrite a kept convolution output), and max-pools optionally by
    average pools, which Gatys et al. found to give slightly smoother images. The weights are
    frozen (``requires_grad=False``): style transfer optimises the image, never the network.

    Args:
        layers: the network's layers in order, e.g. ``torchvision.models.vgg19().features``.
        chosen: names of the layers to return, mapped to their positions in ``layers``
            (e.g. ``{"relu4_2": 22}``; see :data:`VGG19_LAYERS`).
        mean, std: per-channel statistics the input is normalised with first (ImageNet's by
            default); ``None`` for no normalisation.
        avg_pool: replace every ``nn.MaxPool2d`` by an ``nn.AvgPool2d`` of the same size.

    ``forward(x)``: ``(N, 3, H, W)`` in ``[0, 1]`` -> ``{name: (N, C_l, H_l, W_l)}``.

    Raises:
        ValueError: no layer chosen, or a position outside ``layers``.
    """

    def __init__(self, layers: Sequence[nn.Module], chosen: Mapping[str, int], *,
                 mean: Sequence[float] | None = IMAGENET_MEAN, std: Sequence[float] | None = IMAGENET_STD,
                 avg_pool: bool = False) -> None:
        super().__init__()
        layers = list(layers)
        if not chosen:
            raise ValueError("chosen must name at least one layer, e.g. {'relu4_2': 22}")
        for name, index in chosen.items():
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(layers):
                raise ValueError(f"layer {name!r} is at position {index!r}, outside the {len(layers)} layers "
                                 f"(positions 0 to {len(layers) - 1})")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        kept: list[nn.Module] = []
        for layer in layers[: max(chosen.values()) + 1]:
            if isinstance(layer, nn.ReLU):
                layer = nn.ReLU(inplace=False)
            elif avg_pool and isinstance(layer, nn.MaxPool2d):
                layer = nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding)
            kept.append(layer)
        self.layers = nn.Sequential(*kept)
        self.chosen = dict(chosen)
        self._names = {index: name for name, index in self.chosen.items()}
        if len(self._names) != len(self.chosen):
            raise ValueError(f"two names for the same position in {self.chosen}")
        if mean is not None:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))
        else:
            self.mean = self.std = None
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``(N, 3, H, W)`` -> ``{name: (N, C_l, H_l, W_l)}`` for every chosen layer."""
        check_tensor(x, "x", ndim=4, shape_hint="(N, 3, H, W)", floating=True)
        if self.mean is not None:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)  # (N, 3, H, W), normalised
        found: dict[str, Tensor] = {}
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in self._names:
                found[self._names[index]] = x
        return found


def random_vgg_layers(config: Sequence[int | str] | None = None, seed: int = 0) -> nn.Sequential:
    """A VGG's convolutional layers with random weights (He initialisation), for offline use.

    The layers are :func:`companion.models.vgg.make_layers` on ``config`` (VGG-19's by default),
    initialised as :class:`companion.models.vgg.VGG` does (He et al., 2015, ``fan_out``; zero
    biases), from a generator seeded with ``seed`` (the global one is untouched).
    """
    from companion.models.vgg import VGG19, make_layers

    layers = nn.Sequential(*make_layers(VGG19 if config is None else config))
    generator = torch.Generator().manual_seed(seed)
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            fan_out = layer.out_channels * layer.kernel_size[0] * layer.kernel_size[1]
            with torch.no_grad():
                layer.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=generator)
                layer.bias.zero_()
    return layers


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """The content loss, the mean squared difference of two feature maps (Gatys et al., eq. 1).

    The paper sums and halves; the mean only rescales the loss (and the weight it needs).

    Args:
        features (Tensor[N, C, H, W]): the features of the image being optimised.
        target (Tensor[N, C, H, W]): the content image's features, computed once and detached.

    Raises:
        ValueError: the shapes differ, or ``target`` still requires a gradient (detach it: the
            target is a constant, and a target that moves with the image is no target).
    """
    check_tensor(features, "features", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_tensor(target, "target", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    if features.shape != target.shape:
        raise ValueError(f"features {tuple(features.shape)} and target {tuple(target.shape)} must have "
                         "the same shape: the content and the optimised images must be the same size")
    if target.requires_grad:
        raise ValueError("target requires a gradient: compute it once and detach it "
                         "(target = extractor(content)[name].detach())")
    return F.mse_loss(features, target)


def style_loss(features: Sequence[Tensor], target_grams: Sequence[Tensor],
               weights: Sequence[float] | None = None) -> Tensor:
    """The style loss: a weighted sum over layers of the MSE of Gram matrices (Gatys et al., eq. 3-5).

    ``sum_l w_l * mean((gram(F_l) - G_l) ** 2)``, with :func:`gram_matrix` normalised by
    ``C * H * W``. The paper's ``1 / (4 N_l^2 M_l^2)`` factor does the same job as that
    normalisation: without it, the layer with the most positions dominates.

    Args:
        features: one ``(N, C_l, H_l, W_l)`` feature map per layer, of the image being optimised.
        target_grams: one ``(N or 1, C_l, C_l)`` Gram matrix per layer, of the style image
            (detached; a batch of one is broadcast over the batch).
        weights: one weight per layer; equal weights ``1 / L`` by default, as in the paper.

    Raises:
        ValueError: the three sequences differ in length, are empty, a Gram matrix has the wrong
            shape or requires a gradient.
    """
    features, target_grams = list(features), list(target_grams)
    if not features or len(features) != len(target_grams):
        raise ValueError(f"need one target Gram matrix per feature map, got {len(features)} feature maps "
                         f"and {len(target_grams)} Gram matrices")
    if weights is None:
        weights = [1.0 / len(features)] * len(features)
    weights = list(weights)
    if len(weights) != len(features):
        raise ValueError(f"need one weight per layer, got {len(weights)} weights for {len(features)} layers")
    total = features[0].new_zeros(())
    for layer, (f, target, w) in enumerate(zip(features, target_grams, weights)):
        gram = gram_matrix(f)  # (N, C, C)
        check_tensor(target, f"target_grams[{layer}]", ndim=3, shape_hint="(N, C, C)", floating=True)
        if target.shape[1:] != gram.shape[1:] or target.shape[0] not in (1, gram.shape[0]):
            raise ValueError(f"target_grams[{layer}] has shape {tuple(target.shape)}, the layer's Gram matrix "
                             f"{tuple(gram.shape)}")
        if target.requires_grad:
            raise ValueError(f"target_grams[{layer}] requires a gradient: compute the style image's Gram "
                             "matrices once and detach them")
        total = total + w * F.mse_loss(gram, target.expand_as(gram))
    return total


def total_variation(image: Tensor) -> Tensor:
    """The mean squared difference of neighbouring pixels, down and across (a smoothness prior).

    Args:
        image (Tensor[N, C, H, W]): with ``H, W >= 2``.
    """
    check_tensor(image, "image", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    if image.shape[-1] < 2 or image.shape[-2] < 2:
        raise ValueError(f"image must be at least 2x2 pixels, got {tuple(image.shape)}")
    down = image[..., 1:, :] - image[..., :-1, :]  # (N, C, H-1, W)
    across = image[..., :, 1:] - image[..., :, :-1]  # (N, C, H, W-1)
    return down.pow(2).mean() + across.pow(2).mean()


def transfer(content: Tensor, style: Tensor, extractor: FeatureExtractor, *,
             content_layers: Sequence[str], style_layers: Sequence[str],
             content_weight: float = 1.0, style_weight: float = 1e3, tv_weight: float = 0.0,
             style_layer_weights: Sequence[float] | None = None, steps: int = 200, lr: float = 0.02,
             optimizer: str = "adam", init: Tensor | None = None,
             progress: bool = True) -> tuple[Tensor, dict[str, list[float]]]:
    """Optimise an image's pixels for the content of ``content`` and the style of ``style``.

    The loss is ``content_weight * content_loss + style_weight * style_loss + tv_weight * TV``
    (Gatys et al., eq. 7, with ``alpha = content_weight``, ``beta = style_weight``). The targets
    are computed once, detached; the image starts as a *copy* of ``init`` (the content image by
    default) and is the only thing optimised; it is clamped to ``[0, 1]`` after every step.

    Args:
        content (Tensor[1, 3, H, W]): the content image, in ``[0, 1]``; it is not modified.
        style (Tensor[1, 3, H', W']): the style image, in ``[0, 1]``, any size.
        extractor: returns (at least) the named layers' activations.
        content_layers, style_layers: names of the extractor's layers for each loss.
        content_weight, style_weight, tv_weight: the weights of the three terms.
        style_layer_weights: one weight per style layer (equal by default).
        steps: optimisation steps (for L-BFGS, iterations of one evaluation each).
        lr: the learning rate (Adam), or the step size of L-BFGS (1 is its usual value).
        optimizer: ``"adam"`` or ``"lbfgs"``.
        init (Tensor[1, 3, H, W]): the starting image (copied); the content image by default.
        progress: show a progress bar.

    Returns:
        The optimised image ``(1, 3, H, W)`` (detached), and the history: one value per step of
        ``"content"``, ``"style"``, ``"tv"`` and ``"total"`` (the weighted sum), measured before
        the step, plus one final entry each after the last step.

    Raises:
        ValueError: bad shapes, an unknown layer name or optimiser, a non-positive ``steps`` or
            ``lr``, negative weights.
    """
    check_tensor(content, "content", ndim=4, shape_hint="(1, 3, H, W)", floating=True)
    check_tensor(style, "style", ndim=4, shape_hint="(1, 3, H, W)", floating=True)
    if content.shape[:2] != style.shape[:2]:
        raise ValueError(f"content {tuple(content.shape)} and style {tuple(style.shape)} need the same "
                         "batch size and channels")
    check_positive_int(steps, "steps")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if min(content_weight, style_weight, tv_weight) < 0:
        raise ValueError("the loss weights must be >= 0")
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    unknown = [n for n in (*content_layers, *style_layers) if n not in extractor.chosen]
    if unknown or not content_layers or not style_layers:
        raise ValueError(f"layers {unknown} are not among the extractor's {sorted(extractor.chosen)} "
                         "(and both content_layers and style_layers must name at least one)")
    start = content if init is None else init
    if start.shape != content.shape:
        raise ValueError(f"init {tuple(start.shape)} must have the content image's shape {tuple(content.shape)}")
    with torch.no_grad():
        content_targets = {n: t.detach() for n, t in extractor(content).items() if n in content_layers}
        style_found = extractor(style)
        gram_targets = [gram_matrix(style_found[n]).detach() for n in style_layers]  # (1, C_l, C_l) each
    image = start.detach().clone().requires_grad_(True)  # (1, 3, H, W): the only parameter
    history: dict[str, list[float]] = {"content": [], "style": [], "tv": [], "total": []}

    def losses() -> Tensor:
        found = extractor(image)
        c = sum(content_loss(found[n], content_targets[n]) for n in content_layers) / len(content_layers)
        s = style_loss([found[n] for n in style_layers], gram_targets, style_layer_weights)
        tv = total_variation(image) if tv_weight > 0 else image.new_zeros(())
        total = content_weight * c + style_weight * s + tv_weight * tv
        for key, value in (("content", c), ("style", s), ("tv", tv), ("total", total)):
            history[key].append(float(value.detach()))
        return total

    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam([image], lr=lr)
    else:
        opt = torch.optim.LBFGS([image], lr=lr, max_iter=1, history_size=20)
    for _ in tqdm(range(steps), desc="style transfer", unit="step", disable=not progress):
        def closure() -> Tensor:
            opt.zero_grad()
            total = losses()
            total.backward()
            return total

        opt.step(closure)
        with torch.no_grad():
            image.clamp_(0.0, 1.0)
    with torch.no_grad():
        losses()
    return image.detach(), history


__all__ = ["FeatureExtractor", "IMAGENET_MEAN", "IMAGENET_STD", "VGG19_LAYERS", "content_loss", "gram_matrix",
           "random_vgg_layers", "style_loss", "total_variation", "transfer", "vgg_layer_positions"]
