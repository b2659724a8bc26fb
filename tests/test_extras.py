"""companion.extras: the optional parts equal pyproject.toml's extras; only what is missing is named."""

import importlib.metadata
import importlib.util
import tomllib
from pathlib import Path

import pytest

from companion import extras

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(extras.EXTRAS))
def test_every_extra_equals_pyproject(name):
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert sorted(extras.EXTRAS[name].values()) == sorted(declared[name])


@pytest.mark.parametrize("name", sorted(extras.EXTRAS))
def test_every_module_is_importable_here_and_nothing_is_missing(name):
    for module in extras.EXTRAS[name]:
        assert importlib.util.find_spec(module) is not None, module
    assert extras.missing(name) == ""


def test_only_the_missing_modules_are_named(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name in ("cv2", "keras") else real(name))
    numpy = f'"numpy=={importlib.metadata.version("numpy")}"'  # what is installed stays
    assert extras.missing("keras") == f'"keras>=3,<4" {numpy}'
    assert extras.missing("opencv") == f'"opencv-python-headless>=4.9,<5" {numpy}'
    assert extras.missing("serve") == ""


def test_an_unknown_extra_is_named():
    with pytest.raises(ValueError, match="unknown extra 'tensorflow'.*keras"):
        extras.missing("tensorflow")
