"""Tests of companion.augment: every output must be a flipped-or-not window of the zero-padded input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from companion.augment import albumentations_pipeline, random_flip_crop, torchvision_pipeline


def windows(out: torch.Tensor, image: torch.Tensor, padding: int, atol: float = 0.0) -> list[tuple[bool, int, int]]:
    """Every (flipped, dy, dx) for which ``out`` (C, H, W) equals a window of the padded (flipped) image.

    ``atol`` allows for the last bit of a uint8 -> float conversion done in another order.
    """
    h, w = image.shape[-2:]
    found = []
    for flipped in (False, True):
        source = image.flip(-1) if flipped else image
        padded = F.pad(source, (padding,) * 4)  # (C, H + 2p, W + 2p)
        for dy, dx in itertools.product(range(2 * padding + 1), repeat=2):
            if torch.allclose(out, padded[:, dy : dy + h, dx : dx + w], rtol=0, atol=atol):
                found.append((flipped, dy, dx))
    return found


def draws_of(out: torch.Tensor, images: torch.Tensor, padding: int) -> list[tuple[bool, int, int]]:
    """For a batch (N, C, H, W): the one (flipped, dy, dx) that turned each image into its output."""
    h, w = images.shape[-2:]
    candidates = list(itertools.product((False, True), range(2 * padding + 1), range(2 * padding + 1)))
    padded = {flipped: F.pad(images.flip(-1) if flipped else images, (padding,) * 4) for flipped in (False, True)}
    matches = torch.stack([(out == padded[f][:, :, dy : dy + h, dx : dx + w]).flatten(1).all(1)
                           for f, dy, dx in candidates], dim=1)  # (N, number of candidates)
    assert (matches.sum(1) == 1).all(), "some outputs are not exactly one window of the padded image"
    return [candidates[k] for k in matches.int().argmax(1).tolist()]


def noise_images(n: int, c: int = 1, h: int = 9, w: int = 8, seed: int = 0) -> torch.Tensor:
    """Random images in (0, 1]: no two windows of one image are equal, so a match is unique."""
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) + 1e-3


# ---------------------------------------------------------------- random_flip_crop

@pytest.mark.parametrize("padding", [0, 1, 2, 3])
@pytest.mark.parametrize("c", [1, 3])
def test_random_flip_crop_is_a_window_of_the_padded_image(padding, c):
    images = noise_images(64, c=c, seed=padding)
    out = random_flip_crop(images, padding=padding, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    for i in range(len(images)):
        assert len(windows(out[i], images[i], padding)) == 1, f"image {i} is not one window of the padded image"


def test_random_flip_crop_draws_every_flip_and_shift():
    padding = 2
    images = noise_images(600, h=6, w=6, seed=3)
    out = random_flip_crop(images, padding=padding, generator=torch.Generator().manual_seed(0))
    seen = set(draws_of(out, images, padding))
    assert seen == set(itertools.product((False, True), range(5), range(5)))  # all 2 * 5 * 5 draws


def test_random_flip_crop_flips_half_the_images_and_shifts_uniformly():
    n, padding = 4000, 2
    images = noise_images(n, h=5, w=4, seed=4)
    out = random_flip_crop(images, padding=padding, generator=torch.Generator().manual_seed(7))
    draws = draws_of(out, images, padding)
    flipped = np.array([d[0] for d in draws])
    # Binomial(4000, 1/2): standard deviation of the fraction 0.0079, so +-0.04 is 5 sigma
    assert abs(flipped.mean() - 0.5) < 0.04
    dy = np.bincount([d[1] for d in draws], minlength=5) / n
    dx = np.bincount([d[2] for d in draws], minlength=5) / n
    # each offset has probability 1/5: standard deviation 0.0063, so +-0.032 is 5 sigma
    assert np.abs(dy - 0.2).max() < 0.032 and np.abs(dx - 0.2).max() < 0.032


def test_random_flip_crop_shifts_content_and_fills_with_zeros():
    images = torch.ones(200, 1, 6, 6)
    out = random_flip_crop(images, padding=2, generator=torch.Generator().manual_seed(0))
    zeros_per_image = (out == 0).sum(dim=(1, 2, 3))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert (zeros_per_image > 0).any() and (zeros_per_image == 0).any()  # shifted ones and the centred ones
    assert zeros_per_image.max() <= 36 - 16  # at most 2 rows and 2 columns leave the image


def test_random_flip_crop_is_deterministic_given_a_generator():
    images = noise_images(32, c=2)
    a = random_flip_crop(images, generator=torch.Generator().manual_seed(123))
    b = random_flip_crop(images, generator=torch.Generator().manual_seed(123))
    c = random_flip_crop(images, generator=torch.Generator().manual_seed(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.manual_seed(5)
    d = random_flip_crop(images)
    torch.manual_seed(5)
    assert torch.equal(random_flip_crop(images), d)  # no generator: the global one, seeded


def test_random_flip_crop_keeps_uint8_and_does_not_touch_its_input():
    images = (noise_images(8) * 255).to(torch.uint8)
    copy = images.clone()
    out = random_flip_crop(images, padding=1, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8
    assert torch.equal(images, copy)
    assert all(len(windows(o, x, 1)) >= 1 for o, x in zip(out, images))


def test_random_flip_crop_keeps_gradients_flowing():
    images = noise_images(4).requires_grad_(True)
    random_flip_crop(images, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert images.grad is not None and images.grad.shape == images.shape


def test_random_flip_crop_errors():
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\).*3-D"):
        random_flip_crop(torch.rand(3, 28, 28))
    with pytest.raises(TypeError, match="torch.Tensor"):
        random_flip_crop(np.zeros((2, 1, 28, 28)))
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        random_flip_crop(torch.rand(2, 1, 28, 28), padding=-1)
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        random_flip_crop(torch.rand(2, 1, 28, 28), padding=1.5)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        random_flip_crop(torch.rand(2, 1, 28, 28), generator=0)


# ---------------------------------------------------------------- per-image pipelines

def uint8_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 256, size=(28, 28), dtype=np.uint8)


def pipelines(train: bool):
    return {"torchvision": torchvision_pipeline(train=train), "albumentations": albumentations_pipeline(train=train, seed=0)}


INPUTS = {
    "PIL": lambda a: Image.fromarray(a),
    "numpy (H, W)": lambda a: a,
    "numpy (H, W, 1)": lambda a: a[:, :, None],
    "tensor uint8 (1, H, W)": lambda a: torch.from_numpy(a)[None],
    "tensor float (1, H, W)": lambda a: torch.from_numpy(a)[None].float() / 255,
}


@pytest.mark.parametrize("kind", ["torchvision", "albumentations"])
@pytest.mark.parametrize("source", list(INPUTS))
def test_eval_pipeline_only_converts(kind, source):
    array = uint8_image()
    out = pipelines(train=False)[kind](INPUTS[source](array))
    assert type(out) is torch.Tensor and out.dtype == torch.float32 and out.shape == (1, 28, 28)
    torch.testing.assert_close(out, torch.from_numpy(array)[None].float() / 255)


@pytest.mark.parametrize("kind", ["torchvision", "albumentations"])
@pytest.mark.parametrize("source", list(INPUTS))
def test_train_pipeline_flips_and_shifts(kind, source):
    array = uint8_image(1)
    reference = torch.from_numpy(array)[None].float() / 255  # (1, 28, 28)
    pipeline = pipelines(train=True)[kind]
    torch.manual_seed(0)  # torchvision draws from torch's global generator
    draws = set()
    for _ in range(60):
        out = pipeline(INPUTS[source](array))
        assert type(out) is torch.Tensor and out.dtype == torch.float32 and out.shape == (1, 28, 28)
        assert 0 <= out.min() and out.max() <= 1
        found = windows(out, reference, padding=2, atol=1e-6)  # pixels differ by >= 1/255
        assert len(found) == 1, "not a window of the zero-padded (flipped) image"
        draws.add(found[0])
    assert {flipped for flipped, _, _ in draws} == {False, True}
    assert len({(dy, dx) for _, dy, dx in draws}) >= 8  # out of 25 offsets, in 60 draws


def test_pipelines_work_as_dataset_transforms_on_fashion_mnist_style_pil_images():
    from torchvision.datasets import VisionDataset

    class Tiny(VisionDataset):
        def __init__(self, transform):
            super().__init__(root=None, transform=transform)

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return self.transform(Image.fromarray(uint8_image(i))), i  # a greyscale ("L") image

    for pipeline in pipelines(train=True).values():
        dataset = Tiny(pipeline)
        batch = torch.stack([dataset[i][0] for i in range(len(dataset))])
        assert batch.shape == (3, 1, 28, 28)


def test_albumentations_seed_repeats_the_draws():
    array = uint8_image(2)
    runs = [[pipeline(array) for _ in range(10)] for pipeline in (albumentations_pipeline(seed=3),
                                                                   albumentations_pipeline(seed=3))]
    assert all(torch.equal(x, y) for x, y in zip(*runs))
    assert any(not torch.equal(runs[0][0], x) for x in runs[0][1:])  # the draws do vary
    other = [albumentations_pipeline(seed=4)(array) for _ in range(10)]
    assert any(not torch.equal(x, y) for x, y in zip(runs[0], other))


def test_pipeline_options_and_errors():
    wide = torchvision_pipeline(train=True, size=32, padding=4)(np.zeros((32, 32), np.uint8))
    assert wide.shape == (1, 32, 32)
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        torchvision_pipeline(padding=-2)
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        albumentations_pipeline(padding=-2)
    with pytest.raises(ValueError, match="size must be a positive int"):
        albumentations_pipeline(size=0)
    pipeline = albumentations_pipeline()
    with pytest.raises(TypeError, match="PIL image, a NumPy array"):
        pipeline([[0, 1], [2, 3]])
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        pipeline(np.full((28, 28), 3.0, np.float32))
    with pytest.raises(TypeError, match="uint8 in \\[0, 255\\] or float"):
        pipeline(np.zeros((28, 28), np.int64))
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(H, W\) tensor"):
        pipeline(torch.zeros(1, 1, 28, 28))
