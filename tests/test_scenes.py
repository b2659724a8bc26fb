"""companion.scenes: Fashion-MNIST objects on photographs, with boxes, labels and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou, masks_to_boxes

from companion import data, scenes


@pytest.fixture(scope="module")
def train_scenes():
    return scenes.detection_scenes(60, seed=3, objects=(1, 4), max_iou=0.3)


def test_images_and_targets_have_the_documented_types_and_shapes(train_scenes):
    assert len(train_scenes) == 60
    for image, target in train_scenes:
        assert image.shape == (1, 64, 64) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        k = len(target["labels"])
        assert 1 <= k <= 4
        assert target["boxes"].shape == (k, 4) and target["boxes"].dtype == torch.float32
        assert target["labels"].dtype == torch.int64
        assert target["masks"].shape == (k, 64, 64) and target["masks"].dtype == torch.bool
    counts = {len(t["labels"]) for _, t in train_scenes}
    assert counts == {1, 2, 3, 4}  # every number of objects occurs


def test_boxes_are_tight_around_the_masks_and_inside_the_image(train_scenes):
    for _, target in train_scenes:
        masks, boxes = target["masks"], target["boxes"]
        assert masks.flatten(1).any(dim=1).all()  # no empty mask
        # torchvision gives pixel indices; ours are pixel edges, one more on the right and bottom
        torch.testing.assert_close(boxes, masks_to_boxes(masks) + torch.tensor([0.0, 0.0, 1.0, 1.0]))
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()


def test_masks_are_the_visible_object_pixels_and_do_not_overlap(train_scenes):
    for image, target in train_scenes:
        masks = target["masks"]
        assert masks.sum(dim=0).max() <= 1  # a pixel shows at most one object
        # objects are drawn above the threshold: their visible pixels are brighter than 0.1
        assert (image[0][masks.any(dim=0)] > 0.1).all()


def test_boxes_do_not_overlap_more_than_allowed():
    for max_iou in (0.0, 0.3):
        found = scenes.detection_scenes(40, seed=1, objects=(3, 5), max_iou=max_iou)
        worst = 0.0
        for _, target in found:
            iou = box_iou(target["boxes"], target["boxes"])
            iou.fill_diagonal_(0)
            worst = max(worst, float(iou.max()))
        assert worst <= max_iou + 1e-6
    # with overlap allowed, some boxes do overlap (the rule is not vacuous)
    assert worst > 0


def test_labels_are_the_classes_asked_for_and_match_the_objects():
    classes = (1, 7)  # trousers (tall, narrow) and sneakers (wide, flat)
    found = scenes.detection_scenes(60, seed=0, classes=classes, max_iou=0.0)
    aspect = {1: [], 7: []}
    for _, target in found:
        assert set(target["labels"].tolist()) <= set(classes)
        for box, label in zip(target["boxes"], target["labels"].tolist()):
            aspect[label].append(float((box[3] - box[1]) / (box[2] - box[0])))
    assert min(aspect[1]) > 1.0 > max(aspect[7])  # the label belongs to the object's shape


def test_same_seed_same_scenes_other_seed_or_split_other_scenes():
    a = scenes.detection_scenes(5, seed=7)
    b = scenes.detection_scenes(5, seed=7)
    for (xa, ta), (xb, tb) in zip(a, b):
        assert torch.equal(xa, xb)
        for key in ("boxes", "labels", "masks"):
            assert torch.equal(ta[key], tb[key])
    other = scenes.detection_scenes(5, seed=8)
    test_split = scenes.detection_scenes(5, seed=7, train=False)
    assert not torch.equal(scenes.stack_images(a), scenes.stack_images(other))
    assert not torch.equal(scenes.stack_images(a), scenes.stack_images(test_split))


def test_objects_come_from_the_requested_split():
    # an object pasted at scale 1 (28 pixels) shows its Fashion-MNIST image exactly where the
    # silhouette is; find that image in the split it should come from
    found = scenes.detection_scenes(3, seed=2, scale=(1.0, 1.0), objects=(1, 1), train=False)
    test_images = data.fashion_mnist(train=False).data.float().div(255)  # (N, 28, 28)
    for image, target in found:
        x0, y0, _, _ = target["boxes"][0].long().tolist()
        mask = target["masks"][0]
        for picture in test_images[data.fashion_mnist(train=False).targets == target["labels"][0]]:
            silhouette = picture > 0.1
            rows, cols = torch.nonzero(silhouette.any(1))[:, 0], torch.nonzero(silhouette.any(0))[:, 0]
            top, left = y0 - int(rows[0]), x0 - int(cols[0])
            if not (0 <= top <= 36 and 0 <= left <= 36):
                continue
            window = image[0, top:top + 28, left:left + 28]
            if torch.equal(mask[top:top + 28, left:left + 28], silhouette) and torch.allclose(
                    window[silhouette], picture[silhouette], atol=1e-6):
                break
        else:
            pytest.fail("the object is not a Fashion-MNIST test image")


@pytest.mark.parametrize("kwargs, match", [
    ({"n": -1}, "n must be"),
    ({"image_size": 4}, "image_size"),
    ({"objects": (0, 2)}, "objects"),
    ({"objects": (3, 2)}, "objects"),
    ({"scale": (0.5, 3.0)}, "do not fit"),
    ({"classes": (3, 11)}, "classes"),
    ({"backgrounds": ("wallpaper",)}, "unknown backgrounds"),
    ({"max_iou": 1.5}, "max_iou"),
])
def test_bad_arguments_are_clear_errors(kwargs, match):
    args = {"n": 1} | kwargs
    with pytest.raises(ValueError, match=match):
        scenes.detection_scenes(**args)


def test_mask_to_box_uses_pixel_edges_and_refuses_an_empty_mask():
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[2:4, 1:6] = True  # rows 2-3, columns 1-5
    assert scenes.mask_to_box(mask).tolist() == [1.0, 2.0, 6.0, 4.0]
    with pytest.raises(ValueError, match="empty"):
        scenes.mask_to_box(torch.zeros(3, 3, dtype=torch.bool))


def _fake_penn_fudan(root, sizes=((40, 60), (50, 30))):
    """A folder laid out as Penn-Fudan's: PNGImages/NAME.png and PedMasks/NAME_mask.png."""
    from PIL import Image

    folder = root / "PennFudanPed"
    (folder / "PNGImages").mkdir(parents=True)
    (folder / "PedMasks").mkdir()
    rng = np.random.default_rng(0)
    for n, (h, w) in enumerate(sizes):
        name = f"FudanPed{n:05d}"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / "PNGImages" / f"{name}.png")
        ids = np.zeros((h, w), dtype=np.uint8)
        ids[5:20, 3:11] = 1  # rows 5-19, columns 3-10
        if n == 0:
            ids[22:38, 30:45] = 2
        Image.fromarray(ids, mode="L").save(folder / "PedMasks" / f"{name}_mask.png")
    return folder


def test_penn_fudan_is_read_into_the_scenes_format(tmp_path):
    _fake_penn_fudan(tmp_path)
    full = scenes.penn_fudan_scenes(tmp_path, image_size=None)
    assert len(full) == 2 and [len(t["labels"]) for _, t in full] == [2, 1]
    image, target = full[0]
    assert image.shape == (1, 40, 60) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    torch.testing.assert_close(target["boxes"], torch.tensor([[3.0, 5, 11, 20], [30, 22, 45, 38]]))
    assert target["labels"].tolist() == [1, 1] and target["masks"].shape == (2, 40, 60)
    assert int(target["masks"][0].sum()) == 15 * 8
    # torchvision's boxes from the same masks are pixel indices: ours end one pixel further
    torch.testing.assert_close(masks_to_boxes(target["masks"]) + torch.tensor([0, 0, 1, 1]),
                               target["boxes"])
    small = scenes.penn_fudan_scenes(tmp_path, image_size=32, limit=1)
    assert len(small) == 1 and small[0][0].shape == (1, 32, 32) and small[0][1]["masks"].shape[1:] == (32, 32)
    for box, mask in zip(small[0][1]["boxes"], small[0][1]["masks"]):
        torch.testing.assert_close(box, scenes.mask_to_box(mask))


def test_penn_fudan_without_the_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        scenes.penn_fudan_scenes(tmp_path)
    _fake_penn_fudan(tmp_path)
    with pytest.raises(ValueError, match="image_size"):
        scenes.penn_fudan_scenes(tmp_path, image_size=4)
    with pytest.raises(ValueError, match="limit"):
        scenes.penn_fudan_scenes(tmp_path, limit=0)
