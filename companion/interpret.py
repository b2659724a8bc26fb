"""Looking inside a network: Grad-CAM heat maps.

Selvaraju et al., 2017, *Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization*, https://arxiv.org/abs/1610.02391. For a class score ``y_c`` and the feature maps
``A^k`` of a convolutional layer, each channel's weight is the spatial mean of its gradient,
``alpha_k = mean_{i,j} dy_c / dA^k_{ij}``, and the map is ``ReLU(sum_k alpha_k A^k)``: where the
layer's features push the score up. For a network whose head is global average pooling and one
linear layer, ``alpha_k`` is that layer's weight for class ``c`` divided by the map's size, so
Grad-CAM is the class activation map (CAM) of Zhou et al., 2016, up to that constant.

Equal to captum's ``LayerGradCam(model, layer).attribute(x, target, relu_attributions=True)``
(the test oracle), without its channel axis.

Introduced in chapter 26, *Looking inside*.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from companion._checks import check_tensor


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
