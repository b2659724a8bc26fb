from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from companion import data


def test_fashion_mnist_is_the_real_data_set():
    train, test = data.fashion_mnist(train=True), data.fashion_mnist(train=False)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.data.shape == (60_000, 28, 28) and train.data.dtype == torch.uint8
    # Balanced classes, 6,000 per class in training and 1,000 in test: the published split.
    assert torch.bincount(train.targets).tolist() == [6000] * 10
    assert torch.bincount(test.targets).tolist() == [1000] * 10
    assert train.classes == list(data.FASHION_MNIST_CLASSES)


def test_fashion_mnist_unpacks_the_debian_files_into_a_fresh_root(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path))
    ds = data.fashion_mnist(train=False, download=False)
    assert len(ds) == 10_000
    raw = tmp_path / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(data.FASHION_MNIST_FILES)
    with gzip.open(data.DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        assert (raw / "t10k-labels-idx1-ubyte").read_bytes() == f.read()


def test_fashion_mnist_without_any_source_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(RuntimeError, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist(root=tmp_path, download=False)


def test_fashion_mnist_reads_a_root_that_already_holds_the_files(tmp_path, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.FASHION_MNIST_FILES:
        with gzip.open(data.DEBIAN_FASHION_MNIST / f"{name}.gz", "rb") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    assert len(data.fashion_mnist(train=False, root=tmp_path, download=False)) == 10_000


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path))
    assert data.cache_dir() == tmp_path
    monkeypatch.delenv("COMPANION_DATA")
    assert data.cache_dir() == Path.home() / ".cache" / "companion"


def test_tensors_scales_and_subsets_reproducibly():
    ds = data.fashion_mnist(train=False)
    images, labels = data.tensors(ds, limit=500, seed=3)
    assert images.shape == (500, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (500,) and labels.dtype == torch.int64
    assert 0 <= images.min() and images.max() <= 1 and images.max() > 0.99
    again, _ = data.tensors(ds, limit=500, seed=3)
    other, _ = data.tensors(ds, limit=500, seed=4)
    assert torch.equal(images, again) and not torch.equal(images, other)
    # Each kept image is the stored one scaled to [0, 1].
    index = int((ds.data.flatten(1).float() / 255 == images[0].flatten()).all(1).nonzero()[0])
    assert labels[0] == ds.targets[index]


def test_tensors_of_generic_datasets():
    ds = TensorDataset(torch.rand(10, 3, 4, 4), torch.arange(10))
    images, labels = data.tensors(ds)
    assert torch.equal(images, ds.tensors[0]) and torch.equal(labels, ds.tensors[1])
    pairs = [(torch.full((1, 2, 2), float(i)), i) for i in range(5)]
    images, labels = data.tensors(pairs)  # a list is a dataset too
    assert images.shape == (5, 1, 2, 2) and labels.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="limit must be a positive int"):
        data.tensors(ds, limit=0)


def test_digits_is_the_real_scikit_learn_set():
    ds = data.digits()
    images, labels = ds.tensors
    assert images.shape == (1797, 1, 8, 8) and labels.shape == (1797,)
    assert images.min() == 0 and images.max() == 1
    assert sorted(labels.unique().tolist()) == list(range(10))


@pytest.mark.parametrize("name", data.SAMPLE_IMAGES)
def test_every_sample_image_loads_offline(name):
    image = data.sample_image(name)
    assert image.dim() == 3 and image.shape[0] in (1, 3) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.01


def test_sample_image_gray_and_errors():
    colour, gray = data.sample_image("astronaut"), data.sample_image("astronaut", gray=True)
    assert colour.shape == (3, 512, 512) and gray.shape == (1, 512, 512)
    luminance = 0.2125 * colour[0] + 0.7154 * colour[1] + 0.0721 * colour[2]
    torch.testing.assert_close(gray[0], luminance, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="choose one of"):
        data.sample_image("lena")
