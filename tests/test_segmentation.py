"""companion.segmentation: FCN's convolutional classifier and bilinear upsampling, dilated stacks and
the pixels they read, the segmentation set made from the scenes, and the training helpers."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion import pool, scenes
from companion.models.unet import UNet
from companion.nets import fashion_cnn
from companion.segmentation import (bilinear_upsampling_weight, convolutional_classifier, dilated_stack,
                                    fit_segmentation, foreground_masks, predict_masks, reached_offsets)


def test_the_convolutional_classifier_scores_every_window_as_the_classifier_does():
    torch.manual_seed(0)
    model = fashion_cnn(num_classes=5).double().eval()
    fcn = convolutional_classifier(model.backbone, model.classifier, 7).eval()
    with torch.no_grad():
        z = torch.randn(2, 32, 10, 9, dtype=torch.float64)  # a 10x9 feature map: 4x3 windows of 7x7
        scores = fcn[1:](z)  # (2, 5, 4, 3)
        for i in range(4):
            for j in range(3):
                torch.testing.assert_close(scores[:, :, i, j], model.head(z[:, :, i:i + 7, j:j + 7]))
        x = torch.randn(3, 1, 28, 28, dtype=torch.float64)  # on the training size: the classifier itself
        torch.testing.assert_close(fcn(x)[:, :, 0, 0], model(x))
    assert model.classifier[1].weight.data_ptr() != fcn[1].weight.data_ptr()  # copies, not shared


def test_the_convolutional_classifier_refuses_a_head_it_cannot_rewrite():
    model = fashion_cnn(num_classes=5)
    with pytest.raises(ValueError, match="start with nn.Flatten"):
        convolutional_classifier(model.backbone, nn.Sequential(nn.Linear(4, 2)), 7)
    with pytest.raises(ValueError, match="is feature_size right"):
        convolutional_classifier(model.backbone, model.classifier, 5)
    with pytest.raises(ValueError, match="Linear layers and parameter-free layers only"):
        convolutional_classifier(model.backbone, nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4)), 7)


@pytest.mark.parametrize("factor", [1, 2, 3, 4])
def test_the_bilinear_transposed_convolution_equals_interpolation_inside_the_border(factor):
    torch.manual_seed(factor)
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    weight = bilinear_upsampling_weight(3, factor).double()
    k = weight.shape[-1]
    assert k == 2 * factor - factor % 2
    up = F.conv_transpose2d(x, weight, stride=factor, padding=(k - factor) // 2)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape == (2, 3, 7 * factor, 9 * factor)
    inner = (slice(None), slice(None), slice(factor, -factor), slice(factor, -factor))
    torch.testing.assert_close(up[inner], ref[inner])
    if factor > 1:  # the border fades: not the same there
        assert not torch.allclose(up, ref)
    channel_mixing = weight.clone()
    channel_mixing[range(3), range(3)] = 0
    assert channel_mixing.abs().sum() == 0  # each channel is upsampled on its own


def test_bilinear_upsampling_weight_refuses_bad_arguments():
    with pytest.raises(ValueError, match="factor must be a positive int"):
        bilinear_upsampling_weight(2, 0)
    with pytest.raises(ValueError, match="channels must be a positive int"):
        bilinear_upsampling_weight(True, 2)


@pytest.mark.parametrize("dilations", [(1,), (1, 2, 4), (2, 2, 2), (1, 1, 2, 4, 8, 16, 1), (3, 1)])
def test_a_dilated_stack_keeps_the_size_and_its_field_is_what_the_calculator_says(dilations):
    torch.manual_seed(0)
    stack = dilated_stack(2, dilations)
    x = torch.randn(1, 2, 40, 41)
    assert stack(x).shape == x.shape
    assert len([m for m in stack if isinstance(m, nn.ReLU)]) == len(dilations) - 1
    rf = pool.receptive_field(stack)
    assert rf.size == 1 + 2 * sum(dilations) and rf.jump == 1


@pytest.mark.parametrize("dilations, kernel", [((1, 2, 4), 3), ((2, 2, 2), 3), ((2, 4), 3), ((1, 3), 5), ((4,), 3)])
def test_the_reached_pixels_are_where_the_gradient_of_one_unit_is_nonzero(dilations, kernel):
    reached = reached_offsets(dilations, kernel)
    size = 1 + (kernel - 1) * sum(dilations)
    assert reached.dtype == torch.bool and reached.shape == (size,)
    assert reached[0] and reached[-1]
    # a linear stack with all-ones weights: the gradient of the centre unit counts the paths to each pixel
    stack = dilated_stack(1, dilations, kernel, relu=False).double()
    with torch.no_grad():
        for conv in stack:
            conv.weight.fill_(1.0)
            conv.bias.zero_()
    n = size + 6
    grad = pool.gradient_map(stack, torch.zeros(1, n, n, dtype=torch.float64), position=(n // 2, n // 2))
    (top, bottom), (left, right) = pool.nonzero_extent(grad)
    assert bottom - top + 1 == size == right - left + 1
    window = grad[top:bottom + 1, left:right + 1] != 0
    assert torch.equal(window, reached[:, None] & reached[None, :])


def test_equal_rates_leave_holes_and_doubling_rates_do_not():
    assert reached_offsets((1, 2, 4)).all()
    gridded = reached_offsets((2, 2, 2))
    assert torch.equal(gridded, torch.arange(13) % 2 == 0)
    assert reached_offsets((1, 3, 3)).all() and not reached_offsets((1, 4, 4)).all()  # a jump past the field so far
    assert torch.equal(reached_offsets((1,), kernel_size=1), torch.tensor([True]))


def test_dilated_stack_and_reached_offsets_refuse_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        dilated_stack(2, (1, 2), kernel_size=4)
    with pytest.raises(ValueError, match="dilations must be"):
        dilated_stack(2, ())
    with pytest.raises(ValueError, match="dilations must be"):
        reached_offsets((1, 0))
    with pytest.raises(ValueError, match="kernel_size must be"):
        reached_offsets((1,), kernel_size=0)


def test_foreground_masks_are_the_union_of_the_objects():
    found = scenes.detection_scenes(4, image_size=32, scale=(0.5, 1.0), objects=(2, 3), seed=3)
    images, masks = foreground_masks(found)
    assert images.shape == (4, 1, 32, 32) and masks.shape == (4, 32, 32) and masks.dtype == torch.bool
    for (image, target), mask in zip(found, masks):
        assert torch.equal(mask, target["masks"].any(0))
        assert mask.sum() == target["masks"].sum()  # the visible masks do not overlap
    assert torch.equal(images, scenes.stack_images(found))
    with pytest.raises(ValueError, match="empty"):
        foreground_masks([])
    with pytest.raises(ValueError, match="masks"):
        foreground_masks([(images[0], {"boxes": torch.zeros(1, 4)})])


def test_a_small_unet_learns_the_foreground_and_predict_masks_thresholds_the_logits():
    found = scenes.detection_scenes(64, image_size=16, scale=(0.4, 0.55), seed=1)
    images, masks = foreground_masks(found)
    torch.manual_seed(0)
    net = UNet(1, 1, base_channels=4, depth=1)
    before = copy.deepcopy(net)
    losses = fit_segmentation(net, images, masks, epochs=10, batch_size=16, lr=1e-2, seed=0)
    assert len(losses) == 10 and losses[-1] < 0.6 * losses[0]
    assert not net.training
    predicted = predict_masks(net, images, batch_size=10)
    assert predicted.dtype == torch.bool and predicted.shape == masks.shape
    with torch.no_grad():
        assert torch.equal(predicted, net(images)[:, 0] > 0)
    accuracy = (predicted == masks).float().mean()
    untrained = (predict_masks(before, images) == masks).float().mean()
    background = 1 - masks.float().mean()  # the accuracy of calling every pixel background
    assert accuracy > background + 0.15 and accuracy > untrained


def test_fit_segmentation_is_repeatable_and_checks_its_inputs():
    found = scenes.detection_scenes(8, image_size=16, scale=(0.4, 0.55), seed=2)
    images, masks = foreground_masks(found)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = UNet(1, 1, base_channels=2, depth=1)
        runs.append(fit_segmentation(net, images, masks, epochs=2, batch_size=4, seed=5))
    assert runs[0] == runs[1]
    with pytest.raises(ValueError, match=r"must be \(N, H, W\) of images"):
        fit_segmentation(net, images, masks[:, :8], epochs=1)
    with pytest.raises(ValueError, match="masks"):
        fit_segmentation(net, images, masks[0], epochs=1)
