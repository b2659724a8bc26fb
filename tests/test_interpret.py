"""companion.interpret.grad_cam against captum's LayerGradCam."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerGradCam
from torch import nn


def small_cnn(num_classes: int = 4) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


@pytest.mark.parametrize("layer_index", [0, 3, 4])
@pytest.mark.parametrize("target", [2, "per-input"])
def test_equals_captum(layer_index, target):
    from companion.interpret import grad_cam

    model = small_cnn().eval()
    x = torch.randn(5, 1, 12, 12)
    t = torch.tensor([0, 1, 2, 3, 1]) if target == "per-input" else target
    layer = model[layer_index]  # the conv (followed by an in-place ReLU), a later conv, a batch norm
    expected = LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)  # (N, 1, h, w)
    ours = grad_cam(model, layer, x, t)
    assert ours.shape == expected.shape[:1] + expected.shape[2:]
    torch.testing.assert_close(ours, expected[:, 0])
    assert all(p.grad is None for p in model.parameters()), "parameters' gradients untouched"


def test_grad_cam_is_cam_for_a_global_average_pooling_head():
    from companion.interpret import grad_cam

    model = small_cnn().eval()
    x = torch.randn(3, 1, 12, 12)
    features = model[:6](x)  # (N, 8, 6, 6): the maps the head pools
    weights = model[8].weight  # (classes, 8)
    cam = torch.relu(torch.einsum("k,nkhw->nhw", weights[1], features)) / (6 * 6)
    torch.testing.assert_close(grad_cam(model, model[5], x, 1), cam.detach())


def test_bad_input_is_named():
    from companion.interpret import grad_cam

    model = small_cnn().eval()
    with pytest.raises(ValueError, match="layer must be a module inside model"):
        grad_cam(model, nn.Conv2d(1, 1, 1), torch.randn(1, 1, 12, 12), 0)
    with pytest.raises(ValueError, match=r"classes in \[0, 4\)"):
        grad_cam(model, model[3], torch.randn(2, 1, 12, 12), 4)
    with pytest.raises(ValueError, match="must output a feature map"):
        grad_cam(model, model[8], torch.randn(2, 1, 12, 12), 0)
