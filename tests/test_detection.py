"""companion.detection: sliding windows, their crops, training examples, detection with NMS."""

from __future__ import annotations

import pytest
import torch
import torchvision.ops as ops
from torch import nn

from companion import boxes as B
from companion import detection as D
from companion import scenes


def test_windows_count_and_order_match_their_crops():
    torch.manual_seed(0)
    images = torch.rand(2, 1, 20, 20)
    sizes, stride = (4, 8), 3
    windows = D.sliding_windows(20, sizes, stride)
    # (20 - 4) // 3 + 1 = 6 and (20 - 8) // 3 + 1 = 5 positions per axis
    assert windows.shape == (6 * 6 + 5 * 5, 4)
    crops = D.crop_windows(images, sizes, stride, out_size=4)  # no resizing for the 4x4 windows
    assert crops.shape == (2, 61, 1, 4, 4)
    for k in (0, 1, 7, 35):
        x0, y0, x1, y1 = windows[k].long().tolist()
        assert torch.equal(crops[1, k], images[1, :, y0:y1, x0:x1])
    # an 8x8 window resized to 4x4: bilinear halving averages 2x2 blocks
    x0, y0, x1, y1 = windows[40].long().tolist()
    expected = nn.functional.avg_pool2d(images[0, :, y0:y1, x0:x1], 2)
    torch.testing.assert_close(crops[0, 40], expected)


def test_fractional_crops_sample_the_window():
    image = torch.arange(100.0).reshape(1, 10, 10)
    patches, _ = D._crop(image, torch.tensor([[2.0, 3.0, 6.0, 7.0]]), 4)
    torch.testing.assert_close(patches[0], image[:, 3:7, 2:6])  # an integer window: its pixels
    patches, _ = D._crop(image, torch.tensor([[2.5, 3.0, 6.5, 7.0]]), 4)
    torch.testing.assert_close(patches[0], image[:, 3:7, 2:6] + 0.5)  # half a pixel right


def test_window_examples_label_objects_and_background_and_encode_the_boxes():
    classes = (0, 1, 7)
    found = scenes.detection_scenes(6, seed=0, classes=classes)
    crops, labels, deltas = D.window_examples(found, classes, (16, 24), positives=3, negatives=5, seed=1)
    objects = sum(len(t["labels"]) for _, t in found)
    assert crops.shape == (3 * objects + 5 * 6, 1, 28, 28)
    assert (labels == 3).sum() == 30  # background is the last label
    assert sorted(set(labels[labels < 3].tolist())) <= [0, 1, 2]
    assert (deltas[labels == 3] == 0).all()
    # the offsets of the first object's windows decode back to its box
    box = found[0][1]["boxes"][0]
    assert labels[0] == classes.index(int(found[0][1]["labels"][0]))
    again = D.window_examples(found, classes, (16, 24), positives=3, negatives=5, seed=1)
    assert torch.equal(again[0], crops)  # deterministic
    # windows: re-derive them from the crops is impossible, so check the decoding on the encoder
    windows = torch.tensor([[10.0, 12.0, 30.0, 32.0]])
    torch.testing.assert_close(B.decode_boxes(B.encode_boxes(box[None], windows), windows), box[None])


class BrightnessNet(nn.Module):
    """A fixed 'classifier': class 0 scores a window by its mean brightness, class 1 by its
    darkness; background constant; box offsets zero."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        logits = torch.stack([8 * m, 8 * (1 - m), torch.full_like(m, 3.0)], dim=1)
        return torch.cat([logits, torch.zeros(len(x), 4)], dim=1)


def test_detect_is_per_class_nms_over_the_windows_scores():
    torch.manual_seed(0)
    images = torch.rand(2, 1, 24, 24)
    images[0, :, 4:12, 4:12] = 1.0
    sizes, stride = (8, 12), 2
    found = D.detect(BrightnessNet(), images, sizes, stride, 2, regress=True, score_threshold=0.1,
                     iou_threshold=0.4)
    windows = D.sliding_windows(24, sizes, stride)
    crops = D.crop_windows(images, sizes, stride).flatten(0, 1)
    probs = BrightnessNet()(crops)[:, :3].softmax(1)[:, :2].reshape(2, -1, 2)
    for i in range(2):
        scores, labels = probs[i].max(1)
        keep = scores >= 0.1
        kept = ops.batched_nms(windows[keep], scores[keep], labels[keep], 0.4)
        torch.testing.assert_close(found[i]["boxes"], windows[keep][kept])
        torch.testing.assert_close(found[i]["scores"], scores[keep][kept])
        assert torch.equal(found[i]["labels"], labels[keep][kept])
    # the brightest window is the white square
    assert found[0]["boxes"][0].tolist() == [4.0, 4.0, 12.0, 12.0]


def test_a_window_net_can_learn_the_scenes_a_little():
    classes = (1, 8)  # trousers and bags
    found = scenes.detection_scenes(40, seed=0, classes=classes)
    crops, labels, deltas = D.window_examples(found, classes, (16, 24, 32), seed=0)
    net = D.WindowNet(2)
    losses = D.fit_windows(net, crops, labels, deltas, 2, epochs=12, batch_size=64, seed=0)
    assert losses[-1] < 0.6 * losses[0]
    out = net(crops)
    assert out.shape == (len(crops), 2 + 1 + 4)


@pytest.mark.parametrize("sizes, stride", [((0,), 2), ((40,), 2), ((8,), 0)])
def test_bad_windows_are_clear_errors(sizes, stride):
    with pytest.raises(ValueError):
        D.sliding_windows(32, sizes, stride)
