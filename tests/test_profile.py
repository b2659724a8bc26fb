from __future__ import annotations

import pytest
import torch

from companion import profile


def test_quick_without_a_gpu(monkeypatch, capsys):
    monkeypatch.delenv(profile.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    p = profile.current()
    assert p.name == "quick" and p.quick and p.device.type == "cpu"
    assert p.pick(quick=1, full=2) == 1
    assert "profile: quick" in capsys.readouterr().out


def test_full_with_a_gpu_and_the_override(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv(profile.ENV_VAR, raising=False)
    assert profile.current(verbose=False).name == "full"
    monkeypatch.setenv(profile.ENV_VAR, "quick")
    assert profile.current(verbose=False).name == "quick"


def test_override_to_full_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(profile.ENV_VAR, "FULL")
    p = profile.current(verbose=False)
    assert p.name == "full" and p.pick(quick="a", full="b") == "b"


def test_bad_override_is_named(monkeypatch):
    monkeypatch.setenv(profile.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="COMPANION_PROFILE must be one of"):
        profile.current()


def test_seeding_repeats_runs(monkeypatch):
    monkeypatch.delenv(profile.ENV_VAR, raising=False)
    profile.current(seed=7, verbose=False)
    a = torch.rand(3)
    profile.current(seed=7, verbose=False)
    assert torch.equal(a, torch.rand(3))


def test_short_training_keeps_the_full_checks(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(profile.ENV_VAR, "full")
    monkeypatch.setenv(profile.SHORT_TRAINING_VAR, "1")
    p = profile.current()
    assert p.pick(quick=1, full=2) == 2, "checks keep the full profile's sizes"
    assert p.train(quick=1, full=2) == 1, "training takes the quick budget"
    assert "profile: full, short training" in capsys.readouterr().out
    monkeypatch.delenv(profile.SHORT_TRAINING_VAR)
    assert profile.current(verbose=False).train(quick=1, full=2) == 2
    monkeypatch.setenv(profile.ENV_VAR, "quick")
    assert profile.current(verbose=False).train(quick=1, full=2) == 1
