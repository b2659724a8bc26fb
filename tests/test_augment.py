"""Tests of companion.augment: every output must be a flipped-or-not window of the zero-padded input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from companion import data
from companion.augment import (albumentations_pipeline, fancy_pca, principal_components, random_flip_crop,
                              resize_shorter_side, rgb_covariance, scale_jitter_crop, torchvision_pipeline)


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


# ---------------------------------------------------------------- AlexNet's and VGG's augmentation (chapter 5)


def jitter_draws(out: torch.Tensor, images: torch.Tensor, scales: range, crop: int) -> list[tuple[int, bool]]:
    """For each output (C, crop, crop): every (S, flipped) for which it is a window of the image resized to S."""
    found = []
    for o, image in zip(out, images):
        matches = []
        for s in scales:
            resized = F.interpolate(image[None], size=(s, s), mode="bilinear", align_corners=False)[0]
            for flipped in (False, True):
                windows = resized.unfold(1, crop, 1).unfold(2, crop, 1)  # (C, s - crop + 1, s - crop + 1, crop, crop)
                target = o.flip(-1) if flipped else o
                if (windows - target[:, None, None]).abs().amax(dim=(0, 3, 4)).min() < 1e-6:
                    matches.append((s, flipped))
        found.append(matches)
    return found


def test_scale_jitter_crop_cuts_a_window_of_the_image_resized_to_a_scale_in_the_range():
    images = noise_images(60, c=2, h=8, w=8, seed=11)
    out = scale_jitter_crop(images, (8, 12), crop=6, generator=torch.Generator().manual_seed(0))
    assert out.shape == (60, 2, 6, 6)
    draws = jitter_draws(out, images, range(8, 13), crop=6)
    assert all(len(d) == 1 for d in draws), "each output must be one window of one rescaled (mirrored) image"
    seen = {d[0] for d in draws}
    assert {s for s, _ in seen} == set(range(8, 13))  # every scale S_min .. S_max is drawn
    assert {f for _, f in seen} == {False, True}


def test_scale_jitter_crop_with_one_scale_is_alexnet_s_crop_and_flip():
    images = noise_images(40, c=3, h=10, w=10, seed=2)
    out = scale_jitter_crop(images, 10, crop=7, generator=torch.Generator().manual_seed(1))
    # no resize at S = 10: every output is a 7x7 window of the image itself, or of its mirror image
    assert all(d == [(10, False)] or d == [(10, True)] for d in jitter_draws(out, images, [10], crop=7))
    same = scale_jitter_crop(images, 10, crop=10, flip=False, generator=torch.Generator().manual_seed(1))
    assert torch.equal(same, images)  # crop = S and no flip: nothing changes


def test_scale_jitter_crop_draws_scales_uniformly_and_repeats_with_a_generator():
    images = torch.rand(3000, 1, 4, 4)
    a = scale_jitter_crop(images, (4, 7), crop=4, flip=False, generator=torch.Generator().manual_seed(3))
    b = scale_jitter_crop(images, (4, 7), crop=4, flip=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    unchanged = (a == images).flatten(1).all(1).float().mean()  # S = 4 leaves the image as it is: 1 draw in 4
    # Binomial(3000, 1/4): standard deviation 0.0079, so +-0.04 is 5 sigma
    assert abs(unchanged - 0.25) < 0.04


def test_resize_shorter_side_keeps_the_aspect_ratio():
    images = torch.rand(2, 3, 20, 30, dtype=torch.float64)
    out = resize_shorter_side(images, 10)
    assert out.shape == (2, 3, 10, 15)
    torch.testing.assert_close(out, F.interpolate(images, size=(10, 15), mode="bilinear", align_corners=False))
    assert resize_shorter_side(images.transpose(2, 3), 40).shape == (2, 3, 60, 40)
    assert resize_shorter_side(images, 20) is images


def test_scale_jitter_crop_errors():
    with pytest.raises(ValueError, match="crop <= S_min <= S_max"):
        scale_jitter_crop(torch.rand(2, 1, 8, 8), (6, 10), crop=8)
    with pytest.raises(ValueError, match="crop <= S_min <= S_max"):
        scale_jitter_crop(torch.rand(2, 1, 8, 8), (12, 10), crop=8)
    with pytest.raises(TypeError, match="floating-point"):
        scale_jitter_crop(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), 8, crop=8)
    with pytest.raises(ValueError, match="size must be a positive int"):
        resize_shorter_side(torch.rand(1, 1, 4, 4), 0)


def photo_pixels() -> torch.Tensor:
    """The RGB pixels of three scikit-image photographs, (N, 3), in float64."""
    images = [data.sample_image(name) for name in ("astronaut", "coffee", "chelsea")]  # (3, H, W) each
    return torch.cat([x.reshape(3, -1).T for x in images]).double()  # (N, 3)


def test_rgb_covariance_is_torch_cov_and_numpy_cov_of_the_channels():
    pixels = photo_pixels()
    ours = rgb_covariance(pixels)
    assert ours.shape == (3, 3)
    torch.testing.assert_close(ours, torch.cov(pixels.T))  # torch.cov wants (variables, observations)
    np.testing.assert_allclose(ours.numpy(), np.cov(pixels.numpy(), rowvar=False), rtol=1e-10)
    few = torch.randn(5, 3, dtype=torch.float64)  # N - 1, not N: visible with five pixels
    torch.testing.assert_close(rgb_covariance(few), torch.cov(few.T))


@pytest.mark.parametrize("seed", range(10))
def test_principal_components_are_torch_and_numpy_eigh(seed):
    gen = torch.Generator().manual_seed(seed)
    d = 2 + seed % 4
    a = torch.randn(d, d, dtype=torch.float64, generator=gen)
    matrix = a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)  # symmetric, positive definite
    values, vectors = principal_components(matrix)
    expected_values, expected_vectors = torch.linalg.eigh(matrix)  # ascending
    torch.testing.assert_close(values, expected_values.flip(0))
    np.testing.assert_allclose(values.numpy(), np.linalg.eigh(matrix.numpy())[0][::-1], rtol=1e-10)
    # eigenvectors are defined up to their sign: compare |cosine| = 1, column by column
    cosines = (vectors * expected_vectors.flip(1)).sum(0).abs()
    torch.testing.assert_close(cosines, torch.ones(d, dtype=torch.float64))
    torch.testing.assert_close(vectors @ torch.diag(values) @ vectors.T, matrix)  # P diag(l) P^T
    torch.testing.assert_close(vectors.T @ vectors, torch.eye(d, dtype=torch.float64))


def test_principal_components_of_photo_pixels():
    covariance = rgb_covariance(photo_pixels())
    values, vectors = principal_components(covariance)
    torch.testing.assert_close(values, torch.linalg.eigvalsh(covariance).flip(0))
    assert (vectors.abs().argmax(0) == vectors.argmax(0)).all()  # the fixed sign: largest entry positive
    # natural photographs: the first component is brightness, all three channels with the same sign
    assert (vectors[:, 0] > 0).all() and values[0] > 5 * values[1]


def test_principal_components_refuses_a_non_symmetric_matrix():
    with pytest.raises(ValueError, match="symmetric square matrix"):
        principal_components(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric square matrix"):
        principal_components(torch.ones(2, 3))


def test_fancy_pca_adds_one_shift_per_image_along_the_principal_components():
    values = torch.tensor([0.05, 0.004, 0.001], dtype=torch.float64)
    vectors, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    images = torch.rand(4000, 3, 5, 5, dtype=torch.float64)
    out = fancy_pca(images, values, vectors, std=0.1, generator=torch.Generator().manual_seed(1))
    shift = out - images  # (N, 3, 5, 5)
    torch.testing.assert_close(shift, shift[:, :, :1, :1].expand_as(shift))  # the same at every pixel
    alpha = (shift[:, :, 0, 0] @ vectors) / values  # (N, 3): the coordinates along p_i, divided by l_i
    # a_i ~ N(0, 0.1^2): mean 0 (standard error 0.0016, so 0.008 is 5 sigma), standard deviation 0.1
    assert alpha.mean(0).abs().max() < 0.008
    assert (alpha.std(0) - 0.1).abs().max() < 0.006
    # the shifts' covariance is P diag(std^2 l^2) P^T: the largest component moves the colours most
    expected = vectors @ torch.diag(0.01 * values**2) @ vectors.T
    torch.testing.assert_close(torch.cov(shift[:, :, 0, 0].T), expected, rtol=0.1, atol=1e-7)
    assert torch.equal(fancy_pca(images, values, vectors, std=0.0), images)


def test_fancy_pca_errors():
    values, vectors = torch.ones(3), torch.eye(3)
    with pytest.raises(ValueError, match=r"RGB images \(N, 3, H, W\)"):
        fancy_pca(torch.rand(2, 1, 4, 4), values, vectors)
    with pytest.raises(ValueError, match="eigenvectors \\(3, 3\\)"):
        fancy_pca(torch.rand(2, 3, 4, 4), values, torch.eye(2))
    with pytest.raises(ValueError, match="std must be >= 0"):
        fancy_pca(torch.rand(2, 3, 4, 4), values, vectors, std=-1.0)
    with pytest.raises(ValueError, match=r"pixels must have shape \(N, 3\)"):
        rgb_covariance(torch.rand(3, 100))
