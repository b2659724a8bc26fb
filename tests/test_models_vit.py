"""Chapter 11's addition to the ViT: ``load_torchvision_vit`` (torchvision's weights into ours).

The oracle is torchvision's ``VisionTransformer``: with its (randomised) weights loaded, ours must
give the same logits and the same input gradients, and every one of our parameters must have been
overwritten.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from companion.models.vit import VisionTransformer, load_torchvision_vit

CONFIG = dict(image_size=32, patch_size=8, dim=32, depth=2, heads=4, mlp_dim=64, num_classes=10)


def torchvision_vit(**changes) -> torchvision.models.VisionTransformer:
    cfg = {**CONFIG, **changes}
    return torchvision.models.VisionTransformer(cfg["image_size"], cfg["patch_size"], num_layers=cfg["depth"],
                                                num_heads=cfg["heads"], hidden_dim=cfg["dim"],
                                                mlp_dim=cfg["mlp_dim"], num_classes=cfg["num_classes"])


def test_load_torchvision_vit_gives_the_same_function_values_and_gradients(same_function):
    torch.manual_seed(0)
    theirs = torchvision_vit()
    with torch.no_grad():   # torchvision zeroes the head and some biases; random values make a swap show
        for p in theirs.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ours = VisionTransformer(**CONFIG)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    load_torchvision_vit(ours, theirs)
    assert all(not torch.equal(before[k], v) for k, v in ours.state_dict().items())  # every tensor was loaded
    ours.eval()
    theirs.eval()
    same_function(ours, theirs, torch.randn(2, 3, 32, 32))


def test_vit_b_16_has_torchvisions_parameter_count():
    with torch.device("meta"):   # shapes only: no memory, no initialisation
        ours = VisionTransformer(224, 16, 768, 12, 12, 3072, 1000)
        theirs = torchvision.models.vit_b_16(weights=None)
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters()) == 86_567_656
    assert count == torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1.meta["num_params"]


@pytest.mark.parametrize(("changes", "ours_changes"), [
    (dict(depth=3), {}), (dict(mlp_dim=32), {}), (dict(num_classes=5), {}), (dict(patch_size=4), {}),
    ({}, dict(channels=1))])
def test_load_torchvision_vit_names_a_configuration_mismatch(changes, ours_changes):
    ours = VisionTransformer(**{**CONFIG, **ours_changes})
    with pytest.raises(ValueError, match=r"the two ViTs must have the same \(channels, image_size, patch_size"):
        load_torchvision_vit(ours, torchvision_vit(**changes))


def test_load_torchvision_vit_errors():
    ours = VisionTransformer(**CONFIG)
    with pytest.raises(ValueError, match=r"need nn.MultiheadAttention\(32, 4\)"):
        load_torchvision_vit(ours, torchvision_vit(heads=2))
    with pytest.raises(TypeError, match="expected a VisionTransformer and a torchvision.models.VisionTransformer"):
        load_torchvision_vit(ours, nn.Linear(2, 2))
    with pytest.raises(TypeError, match="got Linear and VisionTransformer"):
        load_torchvision_vit(nn.Linear(2, 2), torchvision_vit())
