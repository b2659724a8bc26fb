"""companion.yolo: target assignment on hand cases, the loss against a loop (values and gradients),
decoding round trips, the network's shapes, and the errors at the public functions."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.ops as ops

from companion import boxes as B
from companion import yolo


def _target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}


# ---------------------------------------------------------------- target assignment, by hand


def test_an_object_goes_to_the_cell_of_its_centre_row_from_y_column_from_x():
    # 64x64 image, 4x4 grid of 16-pixel cells; centre (40, 12): column 2 (x), row 0 (y)
    t = yolo.assign_targets([_target([[30, 4, 50, 20]], [2])], grid=4, num_classes=3, image_size=64)
    assert t.shape == (1, 4, 4, 8)
    assert t[0, :, :, 4].nonzero().tolist() == [[0, 2]]
    x, y, sw, sh, obj = t[0, 0, 2, :5].tolist()
    assert x == pytest.approx(40 / 16 - 2) and y == pytest.approx(12 / 16 - 0)
    assert sw == pytest.approx(math.sqrt(20 / 64)) and sh == pytest.approx(math.sqrt(16 / 64))
    assert obj == 1.0 and t[0, 0, 2, 5:].tolist() == [0.0, 0.0, 1.0]
    assert t.sum() == pytest.approx(t[0, 0, 2].sum())  # every other cell is empty


def test_a_rectangular_image_and_a_centre_on_the_last_edge():
    # (height 32, width 64), grid 2: cells 32 wide and 16 high; the box touching the right and
    # bottom edges has its centre inside the last cell
    t = yolo.assign_targets([_target([[40, 20, 64, 32], [0, 0, 10, 10]], [0, 1])], 2, 2, (32, 64))
    assert t[0, :, :, 4].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert t[0, 1, 1, :2].tolist() == pytest.approx([52 / 32 - 1, 26 / 16 - 1])
    assert t[0, 0, 0, 5:].tolist() == [0.0, 1.0]


def test_two_centres_in_one_cell_the_first_keeps_it_and_images_stay_apart():
    targets = [_target([[0, 0, 6, 6], [2, 2, 8, 8]], [0, 1]), _target([[0, 0, 6, 6]], [1])]
    t = yolo.assign_targets(targets, 4, 2, 32)
    assert t[0, 0, 0, 5:].tolist() == [1.0, 0.0]  # the first box's class
    assert t[0, 0, 0, 2].item() == pytest.approx(math.sqrt(6 / 32))
    assert t[1, 0, 0, 5:].tolist() == [0.0, 1.0]
    assert t[:, :, :, 4].sum() == 2


# ---------------------------------------------------------------- the loss against a loop


def loop_loss(pred, target, num_boxes, lambda_coord=5.0, lambda_noobj=0.5, rescore=True):
    """Equation 3 of Redmon et al. (2016), one cell and one predictor at a time."""
    n, s = pred.shape[0], pred.shape[1]
    total = pred.new_zeros(())
    for a in range(n):
        for i in range(s):
            for j in range(s):
                cell, truth = pred[a, i, j], target[a, i, j]
                has_object = truth[4] > 0
                ious = []
                for k in range(num_boxes):
                    x, y, sw, sh = cell[5 * k:5 * k + 4]
                    # the boxes in a unit image: centre (j + x) / s, width sw^2
                    mine = torch.stack([(j + x) / s - sw ** 2 / 2, (i + y) / s - sh ** 2 / 2,
                                        (j + x) / s + sw ** 2 / 2, (i + y) / s + sh ** 2 / 2])
                    tx, ty, tw, th = truth[:4]
                    true = torch.stack([(j + tx) / s - tw ** 2 / 2, (i + ty) / s - th ** 2 / 2,
                                        (j + tx) / s + tw ** 2 / 2, (i + ty) / s + th ** 2 / 2])
                    ious.append(ops.box_iou(mine[None], true[None])[0, 0] if has_object else None)
                best = max(range(num_boxes), key=lambda k: ious[k].item()) if has_object else -1
                for k in range(num_boxes):
                    x, y, sw, sh, c = cell[5 * k:5 * k + 5]
                    if k == best:
                        total = total + lambda_coord * ((x - truth[0]) ** 2 + (y - truth[1]) ** 2)
                        total = total + lambda_coord * ((sw - truth[2]) ** 2 + (sh - truth[3]) ** 2)
                        goal = ious[k].detach() if rescore else 1.0
                        total = total + (c - goal) ** 2
                    else:
                        total = total + lambda_noobj * c ** 2
                if has_object:
                    total = total + ((cell[5 * num_boxes:] - truth[5:]) ** 2).sum()
    return total / n


def _random_case(seed, n=2, s=3, num_boxes=2, c=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(n, s, s, 5 * num_boxes + c, generator=g, dtype=dtype) * 0.9 + 0.05
    targets = []
    for _ in range(n):
        k = int(torch.randint(1, 4, (), generator=g))
        xy = torch.rand(k, 2, generator=g) * 40
        wh = 4 + torch.rand(k, 2, generator=g) * 20
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(0, c, (k,), generator=g)})
    return pred, yolo.assign_targets(targets, s, c, 64).to(dtype)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("options", [{}, {"lambda_coord": 2.0, "lambda_noobj": 0.1, "rescore": False}])
def test_the_loss_equals_a_loop_in_value_and_gradient(seed, options):
    pred, target = _random_case(seed)
    ours_pred = pred.clone().requires_grad_()
    loop_pred = pred.clone().requires_grad_()
    ours = yolo.yolo_loss(ours_pred, target, 2, **options)
    theirs = loop_loss(loop_pred, target, 2, **options)
    torch.testing.assert_close(ours["loss"], theirs)
    ours["loss"].backward()
    theirs.backward()
    torch.testing.assert_close(ours_pred.grad, loop_pred.grad)


def test_the_terms_add_up_with_their_weights_and_one_predictor_per_object():
    pred, target = _random_case(7, num_boxes=3)
    terms = yolo.yolo_loss(pred, target, 3, lambda_coord=3.0, lambda_noobj=0.25)
    total = 3.0 * (terms["xy"] + terms["wh"]) + terms["obj"] + 0.25 * terms["noobj"] + terms["class"]
    torch.testing.assert_close(terms["loss"], total)
    mask = yolo.responsible(pred, target, 3)
    assert torch.equal(mask.sum(-1), target[..., 4])  # exactly one responsible predictor per object


def test_a_hand_case_each_term():
    # a 2x2 grid, one object in cell (1, 0), B = 2 predictors, C = 2 classes
    target = torch.zeros(1, 2, 2, 7, dtype=torch.float64)
    target[0, 1, 0] = torch.tensor([0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 1.0], dtype=torch.float64)
    pred = torch.zeros(1, 2, 2, 12, dtype=torch.float64)
    # predictor 0: the right box, confidence 0.8; predictor 1: a far-off box, confidence 0.4
    pred[0, 1, 0, :10] = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.8, 0.0, 0.0, 0.1, 0.1, 0.4], dtype=torch.float64)
    pred[0, 1, 0, 10:] = torch.tensor([0.3, 0.7], dtype=torch.float64)
    pred[0, 0, 1, 4] = 0.2  # a confidence in an empty cell
    terms = yolo.yolo_loss(pred, target, 2)
    assert terms["xy"].item() == 0.0 and terms["wh"].item() == 0.0
    assert terms["obj"].item() == pytest.approx((0.8 - 1.0) ** 2)  # IoU 1 with the object
    assert terms["noobj"].item() == pytest.approx(0.4 ** 2 + 0.2 ** 2)  # the other predictor too
    assert terms["class"].item() == pytest.approx(0.3 ** 2 + 0.3 ** 2)
    assert terms["loss"].item() == pytest.approx(0.04 + 0.5 * 0.2 + 0.18)


def test_the_square_roots_make_a_small_box_pay_more_for_the_same_error():
    def size_term(width):  # a box of `width` (fraction of the image) predicted 0.05 too wide
        target = torch.zeros(1, 1, 1, 6, dtype=torch.float64)
        target[0, 0, 0] = torch.tensor([0.5, 0.5, math.sqrt(width), math.sqrt(width), 1.0, 1.0])
        pred = torch.zeros(1, 1, 1, 6, dtype=torch.float64)
        pred[0, 0, 0] = torch.tensor([0.5, 0.5, math.sqrt(width + 0.05), math.sqrt(width), 1.0, 1.0])
        return yolo.yolo_loss(pred, target, 1)["wh"].item()
    assert size_term(0.1) > 3 * size_term(0.8)


# ---------------------------------------------------------------- decoding


def _perfect(target, num_boxes):
    """An output that predicts the target exactly with predictor 0 (confidence 1)."""
    n, s = target.shape[:2]
    c = target.shape[-1] - 5
    pred = torch.zeros(n, s, s, 5 * num_boxes + c)
    pred[..., :5] = target[..., :5]
    pred[..., 5 * num_boxes:] = target[..., 5:]
    return pred


def test_encode_then_decode_gives_the_boxes_back():
    g = torch.Generator().manual_seed(3)
    targets = []
    for _ in range(5):
        # boxes apart, so that no two centres share a cell
        corners = torch.tensor([[2.0, 3.0], [34.0, 5.0], [6.0, 36.0]])[: int(torch.randint(1, 4, (), generator=g))]
        sides = 8 + torch.rand(len(corners), 2, generator=g) * 20
        targets.append({"boxes": torch.cat([corners, corners + sides], 1),
                        "labels": torch.randint(0, 4, (len(corners),), generator=g)})
    target = yolo.assign_targets(targets, 8, 4, 64)
    found = yolo.decode(_perfect(target, 2), 2, 64, score_threshold=0.5)
    for got, want in zip(found, targets):
        order = torch.argsort(got["boxes"][:, 0])
        want_order = torch.argsort(want["boxes"][:, 0])
        torch.testing.assert_close(got["boxes"][order], want["boxes"][want_order], atol=1e-4, rtol=0)
        assert torch.equal(got["labels"][order], want["labels"][want_order])
        assert torch.all(got["scores"] == 1.0)
    # cells_to_boxes on the object cells is the same round trip
    boxes = yolo.cells_to_boxes(target[..., :4], 64)[target[..., 4] > 0]
    assert len(boxes) == sum(len(t["boxes"]) for t in targets)


def test_decode_scores_are_confidence_times_class_probability_and_nms_is_per_class():
    pred = torch.zeros(1, 1, 1, 2 * 5 + 2)
    # two predictors with almost the same box; class probabilities 0.6 / 0.4
    pred[0, 0, 0, :10] = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.9, 0.5, 0.5, 0.5, 0.52, 0.8])
    pred[0, 0, 0, 10:] = torch.tensor([0.6, 0.4])
    found = yolo.decode(pred, 2, 32)[0]
    assert found["scores"].tolist() == pytest.approx([0.54])  # the duplicate is suppressed
    assert found["labels"].tolist() == [0]
    # centre (16, 16), sides 0.5^2 of the image: 8 pixels
    torch.testing.assert_close(found["boxes"], torch.tensor([[12.0, 12.0, 20.0, 20.0]]))
    # the same boxes in two cells of two classes both stay (per-class NMS)
    two = torch.zeros(1, 2, 2, 5 + 2)
    two[0, 0, 0] = torch.tensor([0.9, 0.5, 0.7, 0.7, 1.0, 1.0, 0.0])
    two[0, 0, 1] = torch.tensor([0.1, 0.5, 0.7, 0.7, 1.0, 0.0, 1.0])
    found = yolo.decode(two, 1, 32)[0]
    assert sorted(found["labels"].tolist()) == [0, 1]
    assert B.box_iou(found["boxes"][:1], found["boxes"][1:]).item() > 0.5


def test_decoded_boxes_are_clipped_to_the_image():
    pred = torch.zeros(1, 2, 2, 6)
    pred[0, 0, 0] = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # a whole-image box at a corner
    found = yolo.decode(pred, 1, (20, 40))[0]
    # centred on the corner (0, 0), 40 x 20: (-20, -10, 20, 10) before clipping
    torch.testing.assert_close(found["boxes"], torch.tensor([[0.0, 0.0, 20.0, 10.0]]))


def test_flipped_targets_are_the_targets_of_the_mirrored_boxes():
    g = torch.Generator().manual_seed(5)
    targets = []
    for _ in range(4):
        xy = torch.rand(3, 2, generator=g) * 40
        wh = 5 + torch.rand(3, 2, generator=g) * 20
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(0, 3, (3,), generator=g)})
    mirrored = [{"boxes": torch.stack([64 - t["boxes"][:, 2], t["boxes"][:, 1], 64 - t["boxes"][:, 0],
                                       t["boxes"][:, 3]], 1), "labels": t["labels"]} for t in targets]
    flipped = yolo.flip_targets(yolo.assign_targets(targets, 8, 3, 64))
    torch.testing.assert_close(flipped, yolo.assign_targets(mirrored, 8, 3, 64))


# ---------------------------------------------------------------- the network and training


def test_the_network_shape_range_and_a_short_training_lowers_the_loss():
    torch.manual_seed(0)
    net = yolo.YOLONet(3, num_boxes=2, grid=4, image_size=32, widths=(8, 8, 8))
    out = net(torch.rand(5, 1, 32, 32))
    assert out.shape == (5, 4, 4, 13)
    assert out[..., :10].min() >= 0 and out[..., :10].max() <= 1
    torch.testing.assert_close(out[..., 10:].sum(-1), torch.ones(5, 4, 4))
    images = torch.rand(16, 1, 32, 32)
    target = yolo.assign_targets([_target([[4, 4, 20, 20]], [1])] * 16, 4, 3, 32)
    losses = yolo.fit_yolo(net, images, target, epochs=6, batch_size=8, seed=0)
    assert losses[-1] < losses[0]
    assert len(yolo.detect(net, images[:3])) == 3


# ---------------------------------------------------------------- errors


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="grid must be a positive int"):
        yolo.assign_targets([_target([[0, 0, 4, 4]], [0])], 0, 2, 32)
    with pytest.raises(ValueError, match=r"labels'\] must be in 0..1"):
        yolo.assign_targets([_target([[0, 0, 4, 4]], [2])], 4, 2, 32)
    with pytest.raises(ValueError, match="list of dicts"):
        yolo.assign_targets(_target([[0, 0, 4, 4]], [0]), 4, 2, 32)
    with pytest.raises(ValueError, match="image_size"):
        yolo.assign_targets([_target([[0, 0, 4, 4]], [0])], 4, 2, (32,))
    with pytest.raises(ValueError, match=r"5 \* num_boxes \+ num_classes"):
        yolo.yolo_loss(torch.rand(1, 4, 4, 10), torch.rand(1, 4, 4, 7), 2)
    with pytest.raises(ValueError, match="target must have shape"):
        yolo.yolo_loss(torch.rand(1, 4, 4, 12), torch.rand(1, 4, 4, 6), 2)
    with pytest.raises(ValueError, match=r"\(N, S, S, 5 \* num_boxes"):
        yolo.decode(torch.rand(1, 4, 3, 12), 2, 32)
    with pytest.raises(ValueError, match="power of two"):
        yolo.YOLONet(2, grid=6, image_size=64)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 64, 64\)"):
        yolo.YOLONet(2)(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"cells must have shape \(\.\.\., S, S, 4\)"):
        yolo.cells_to_boxes(torch.rand(4, 4, 5), 32)
