"""Tests of companion.zoo: the recipes, the shipped checkpoints and their records, loading, the
re-measured test accuracies, the train command on a tiny recipe, and ImageNet weights offline."""

from __future__ import annotations

import dataclasses
import json
import shutil
from functools import partial

import pytest
import torch

from companion import nets, simclr, zoo
from companion.zoo import training
from companion.zoo.__main__ import main as zoo_main

#: Every recipe of the zoo must be trained and shipped.
NAMES = [recipe.name for recipe in zoo.RECIPES]
#: Shipped files stay small (the package carries them).
MAX_BYTES = 2_500_000


def test_recipes_are_frozen_records_with_unique_names() -> None:
    assert {"fmnist_cnn", "fmnist5_backbone"} <= set(NAMES)
    assert len(set(NAMES)) == len(NAMES)
    for recipe in zoo.RECIPES:
        assert dataclasses.is_dataclass(recipe)
        with pytest.raises(dataclasses.FrozenInstanceError):
            recipe.epochs = 1  # type: ignore[misc]
        assert zoo.get(recipe.name) is recipe
        assert recipe.description and recipe.num_classes == len(recipe.classes)
    assert zoo.get("fmnist5_backbone").classes == (5, 6, 7, 8, 9)
    assert zoo.get("fmnist_cnn").classes == tuple(range(10))
    with pytest.raises(KeyError, match="fmnist_cnn"):
        zoo.get("resnet_imagenet")


def test_recipes_hold_plain_callables_not_strings() -> None:
    for recipe in zoo.RECIPES:
        for part in (recipe.builder, recipe.trainer, recipe.metric):
            assert callable(part) and not isinstance(part, str), (recipe.name, part)
    backbone = zoo.get("fmnist5_backbone")
    assert backbone.trainer is training.supervised
    assert backbone.metric is training.test_accuracy
    assert isinstance(backbone.builder, partial)
    assert backbone.builder.func is nets.fashion_cnn
    assert backbone.builder.keywords == {"num_classes": 5}
    encoder = zoo.get("simclr_encoder")
    assert encoder.builder is simclr.SimCLR
    assert encoder.trainer is simclr.zoo_pretrain
    assert encoder.metric is simclr.probe_accuracy_1pct_labels
    assert zoo.record("simclr_encoder").metric_name == "probe_accuracy_1pct_labels"


@pytest.mark.parametrize("name", ["fmnist_cnn", "fmnist5_backbone"])
def test_the_classifiers_have_features_and_head_halves(name: str) -> None:
    recipe = zoo.get(name)
    torch.manual_seed(0)
    model = recipe.build().eval()
    x = torch.rand(3, 1, 28, 28)
    features = model.features(x)
    assert features.dim() == 4 and features.shape[0] == 3  # (N, C, h, w) maps
    torch.testing.assert_close(model.head(features), model(x))
    assert model(x).shape == (3, recipe.num_classes)


@pytest.mark.parametrize("name", NAMES)
def test_each_checkpoint_is_shipped_with_a_consistent_record(name: str) -> None:
    path = training.weights_path(name)
    assert path.is_file(), f"train it: {zoo.train_command(name)}"
    record = zoo.record(name)
    assert record.name == name
    assert record.bytes == path.stat().st_size <= MAX_BYTES
    assert record.sha256 == training.sha256(path)
    assert 0 < record.seconds and 0 < record.metric <= 1
    model = zoo.load(name)
    assert not model.training and all(not m.training for m in model.modules())
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert record.parameters == sum(p.numel() for p in model.parameters())
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_each_recorded_accuracy_holds_on_the_real_test_set(name: str) -> None:
    metric, count = training.measure(name)  # float32, on the CPU, on every test image of its classes
    record = zoo.record(name)
    assert count == record.test_images
    assert abs(metric - record.metric) <= 1e-3, f"measured {metric:.4f}, recorded {record.metric:.4f}"


def test_the_teacher_and_the_backbone_are_strong() -> None:
    assert zoo.record("fmnist_cnn").metric > 0.90
    assert zoo.record("fmnist5_backbone").metric > 0.95  # three kinds of shoes, shirts and bags


def test_a_missing_checkpoint_names_the_file_and_the_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(training, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"fmnist_cnn\.pt.*python -m companion\.zoo train fmnist_cnn"):
        zoo.load("fmnist_cnn")
    with pytest.raises(KeyError, match="fmnist5_backbone"):
        zoo.load("no_such_model")


def test_a_changed_file_is_refused(tmp_path, monkeypatch) -> None:
    for suffix in (".pt", ".json"):
        shutil.copy(training.WEIGHTS_DIR / f"fmnist_cnn{suffix}", tmp_path / f"fmnist_cnn{suffix}")
    monkeypatch.setattr(training, "WEIGHTS_DIR", tmp_path)
    zoo.load("fmnist_cnn")  # the intact copy loads
    state = torch.load(tmp_path / "fmnist_cnn.pt", weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 1
    torch.save(state, tmp_path / "fmnist_cnn.pt")
    with pytest.raises(RuntimeError, match="does not match its record.*python -m companion.zoo train fmnist_cnn"):
        zoo.load("fmnist_cnn")
    assert zoo.load("fmnist_cnn", check=False)(torch.rand(1, 1, 28, 28)).shape == (1, 10)


def test_fashion_subset_relabels_the_chosen_classes() -> None:
    images, labels = training.fashion_subset(False, (9, 5))  # ankle boots -> 0, sandals -> 1
    from companion import data

    all_images, all_labels = data.tensors(data.fashion_mnist(train=False))
    assert len(labels) == int((all_labels == 9).sum() + (all_labels == 5).sum()) == 2000
    assert set(labels.tolist()) == {0, 1}
    torch.testing.assert_close(images[labels == 0], all_images[all_labels == 9])
    torch.testing.assert_close(images[labels == 1], all_images[all_labels == 5])
    few, few_labels = training.fashion_subset(True, (0, 1), limit=50, seed=3)
    assert few.shape == (50, 1, 28, 28) and few_labels.max() <= 1
    for bad in [(), (0, 0), (10,), (-1, 2)]:
        with pytest.raises(ValueError, match="classes must be distinct"):
            training.fashion_subset(False, bad)


def test_the_train_command_writes_a_checkpoint_and_a_record_that_hold(tmp_path) -> None:
    tiny = zoo.get("fmnist5_backbone").replace(name="tiny", train_images=512, epochs=2, batch_size=32, classes=(7, 8),
                                               builder=partial(nets.fashion_cnn, num_classes=2, hidden=8))
    record = training.train_and_record(tiny, tmp_path)
    assert json.loads((tmp_path / "tiny.json").read_text())["sha256"] == record.sha256
    assert training.read_record("tiny", tmp_path) == record
    assert record.bytes == (tmp_path / "tiny.pt").stat().st_size
    assert record.test_images == 2000  # sneakers and bags of the test set
    assert record.metric_name == "test accuracy (float32)"
    model = tiny.build()
    model.load_state_dict(torch.load(tmp_path / "tiny.pt", weights_only=True))
    metric, _ = training.test_accuracy(model.eval(), tiny)
    assert metric == pytest.approx(record.metric, abs=1e-6)
    assert record.metric > 0.8  # sneakers and bags are easy


def test_list_and_check_commands(capsys) -> None:
    assert zoo_main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)
    assert zoo_main(["check", "fmnist5_backbone"]) == 0
    assert "ok" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        zoo_main(["train", "no_such_model"])


def test_imagenet_offline_fails_fast_naming_the_zoo_alternative(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # nothing cached
    monkeypatch.setattr(zoo, "_reachable", lambda url, timeout: False)  # offline
    with pytest.raises(RuntimeError, match=r"resnet18.*companion\.zoo\.load\('fmnist5_backbone'\)"):
        zoo.imagenet("resnet18")
    with pytest.raises(RuntimeError, match=r"load\('fmnist_cnn'\)") as error:
        zoo.imagenet("resnet18", alternative="fmnist_cnn")
    assert "fmnist5_backbone" not in str(error.value)
    with pytest.raises(ValueError, match="not a torchvision model"):
        zoo.imagenet("resnet_from_mars")
    with pytest.raises(KeyError):
        zoo.imagenet("resnet18", alternative="no_such_model")


def test_imagenet_reachability_probe_is_quick_and_false_for_a_closed_port() -> None:
    import time

    start = time.perf_counter()
    assert zoo._reachable("https://127.0.0.1:9/weights.pth", timeout=1.0) is False
    assert time.perf_counter() - start < 2.0
