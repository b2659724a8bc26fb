from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from companion import nets, train


def test_schedules_shape():
    s = train.warmup_cosine(warmup=0.2, start=0.1, final=0.01)
    assert s(0.0) == pytest.approx(0.1) and s(0.2) == pytest.approx(1.0) and s(1.0) == pytest.approx(0.01)
    assert s(0.1) == pytest.approx(0.55)  # halfway up the linear warm-up
    rising = [s(p / 100) for p in range(0, 21)]
    falling = [s(p / 100) for p in range(20, 101)]
    assert rising == sorted(rising) and falling == sorted(falling, reverse=True)
    c = train.cosine()
    assert c(0) == 1 and c(0.5) == pytest.approx(0.5) and c(1) == pytest.approx(0, abs=1e-12)
    assert train.constant()(0.7) == 1
    with pytest.raises(ValueError, match="warmup"):
        train.warmup_cosine(warmup=1.0)


def test_fit_learns_fashion_mnist(fashion_small):
    x_train, y_train, x_test, y_test = fashion_small
    torch.manual_seed(0)
    model = nets.lenet5()
    before = train.evaluate(model, (x_test, y_test))
    history = train.fit(model, (x_train, y_train), (x_test, y_test), epochs=2, batch_size=64, lr=3e-3,
                        progress=False)
    after = train.evaluate(model, (x_test, y_test))
    assert before["acc"] < 0.25  # an untrained net is near chance (10 classes)
    assert after["acc"] > 0.6, history  # trained: far above chance on held-out real images
    assert after["acc"] == pytest.approx(history.val_acc[-1])
    assert history.train_loss[-1] < history.train_loss[0]
    assert len(history.epoch) == len(history.train_acc) == len(history.val_acc) == len(history.lr) == 2
    assert history.steps == 2 * (len(x_train) // 64)
    assert history.seconds == sorted(history.seconds)


def test_fit_follows_the_schedule_to_its_end(fashion_small):
    x, y = fashion_small[0][:256], fashion_small[1][:256]
    schedule = train.warmup_cosine(warmup=0.25, final=0.0)
    history = train.fit(nets.lenet5(), (x, y), epochs=4, batch_size=64, lr=0.01, schedule=schedule, progress=False)
    # 4 steps an epoch: the lr recorded after epoch e is the one of step 4e - 1, at progress (4e - 1) / 16.
    assert history.lr == pytest.approx([0.01 * schedule((4 * e - 1) / 16) for e in (1, 2, 3, 4)])


def test_fit_stops_at_the_time_budget(fashion_small):
    x, y = fashion_small[0], fashion_small[1]
    history = train.fit(nets.lenet5(), (x, y), epochs=1000, batch_size=32, time_budget=1.5, progress=False)
    assert history.seconds[-1] < 1.5 + 1.0  # at most one step beyond the budget
    assert len(history.epoch) < 1000 and history.steps > 0


def test_fit_applies_augmentation_to_every_training_batch(fashion_small):
    x, y = fashion_small[0][:200], fashion_small[1][:200]
    seen = []

    def augment(images):
        seen.append(images.shape)
        return images.flip(-1)

    history = train.fit(nets.lenet5(), (x, y), epochs=2, batch_size=50, augment=augment, progress=False)
    assert len(seen) == history.steps == 8 and all(s == (50, 1, 28, 28) for s in seen)


def test_fit_accepts_datasets_and_loaders():
    torch.manual_seed(0)
    x = torch.randn(96, 4)
    y = (x[:, 0] > 0).long()  # a linearly separable rule
    for data in (TensorDataset(x, y), DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)):
        model = nn.Linear(4, 2)
        train.fit(model, data, epochs=20, batch_size=16, lr=0.05, schedule=train.constant(), progress=False)
        assert train.evaluate(model, TensorDataset(x, y))["acc"] > 0.9


def test_evaluate_matches_a_manual_computation_and_restores_the_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 3), nn.Dropout(0.5))
    x, y = torch.randn(70, 5), torch.randint(0, 3, (70,))
    model.train()
    result = train.evaluate(model, (x, y), batch_size=16, bf16=False)
    assert model.training  # evaluate switched to eval mode (no dropout) and back
    model.eval()
    logits = model(x)
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert result["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())


def test_tensor_batches_cover_every_example_once():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    batches = train.TensorBatches(x, y, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 3
    seen = torch.cat([b for _, b in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert len(train.TensorBatches(x, y, 4, drop_last=True)) == 2


@pytest.mark.parametrize("bad, error, match", [
    (dict(model="not a model"), TypeError, "torch.nn.Module"),
    (dict(train_data=(torch.rand(4, 1, 28, 28),)), TypeError, r"\(images, labels\)"),
    (dict(train_data=(torch.rand(4, 1, 28, 28), torch.zeros(3, dtype=torch.long))), ValueError, "labels \\(N,\\)"),
    (dict(train_data=(torch.rand(4, 1, 28, 28), torch.zeros(4))), TypeError, "int64"),
    (dict(train_data=(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))), TypeError,
     "floating point"),
    (dict(train_data=[1, 2, 3]), TypeError, "Dataset or a DataLoader"),
    (dict(epochs=0), ValueError, "epochs must be a positive int"),
    (dict(lr=0), ValueError, "lr must be > 0"),
    (dict(time_budget=-1), ValueError, "time_budget"),
    (dict(label_smoothing=1.5), ValueError, "label_smoothing"),
])
def test_fit_names_bad_input(bad, error, match):
    args = dict(model=nets.lenet5(), train_data=(torch.rand(8, 1, 28, 28), torch.zeros(8, dtype=torch.long)))
    args.update(bad)
    with pytest.raises(error, match=match):
        train.fit(args.pop("model"), args.pop("train_data"), progress=False, **args)


def test_bf16_only_where_the_cpu_computes_it():
    assert train._use_bf16(torch.device("cpu"), True) is True
    assert train._use_bf16(torch.device("cpu"), False) is False
    assert train._use_bf16(torch.device("cpu"), None) is train.cpu_has_native_bf16()
    assert train._use_bf16(torch.device("cuda"), None) is False
    assert math.isfinite(train.evaluate(nets.lenet5(), (torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)),
                                        bf16=True)["loss"])


def test_recipes_turn_into_fit_arguments():
    from companion.augment import random_flip_crop

    kwargs = train.Recipe(batch_size=64, lr=0.01, flip_crop=True).fit_kwargs()
    assert kwargs["batch_size"] == 64 and kwargs["lr"] == 0.01 and kwargs["augment"] is random_flip_crop
    assert kwargs["schedule"](0.25) == pytest.approx(1.0)  # default warm-up: a quarter of training
    assert train.FASHION_SPEEDRUN.fit_kwargs()["augment"] is None
