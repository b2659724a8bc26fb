"""What a learner's install gets: a wheel that builds without deprecations and needs no grading tools,
check cells that work without otter-grader, extras that agree with the lock, Keras on torch."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: What learners' installs must not pull in (otter-grader and the heavy tools it brings).
GRADING_TOOLS = ("otter-grader", "sphinx", "playwright", "ipywidgets", "jupytext", "python-on-whales")
NOTEBOOKS = sorted((ROOT / "book").glob("**/*.ipynb")) + sorted((ROOT / "exercises").glob("**/*.ipynb"))

_spec = importlib.util.spec_from_file_location("tools_compat", ROOT / "tools" / "compat.py")
compat = sys.modules["tools_compat"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compat)

# Builds the wheel with setuptools' deprecation warnings as errors (PEP 517 backend, no isolation).
BUILD = """
import sys, warnings
from setuptools.warnings import SetuptoolsDeprecationWarning
warnings.simplefilter("error", SetuptoolsDeprecationWarning)
import setuptools.build_meta as backend
print(backend.build_wheel(sys.argv[1]))
"""

# Makes the grade extra's packages unimportable, as in a learner's install.
WITHOUT_GRADE_EXTRA = """
import importlib.abc, sys
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"otter", "nbformat", "ipywidgets", "sphinx", "playwright", "jupytext",
                                  "python_on_whales"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Absent())
"""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_wheel(source: Path, out: Path, pyproject: str | None = None) -> tuple[subprocess.CompletedProcess, Path | None]:
    """Copy the package's sources to ``source`` (with another ``pyproject`` if given) and build its wheel into ``out``."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    if pyproject is not None:
        (source / "pyproject.toml").write_text(pyproject)
    shutil.copytree(ROOT / "companion", source / "companion", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", BUILD, str(out)], cwd=source, capture_output=True, text=True)
    wheels = list(out.glob("*.whl"))
    return done, wheels[0] if wheels else None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    done, path = build_wheel(source, tmp_path_factory.mktemp("dist") / "wheel")
    log = done.stdout + done.stderr
    assert done.returncode == 0 and path is not None, f"the wheel does not build without deprecations:\n{log[-3000:]}"
    assert "SetuptoolsDeprecationWarning" not in log and "deprecated" not in log.lower(), log[-3000:]
    return path


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode()), archive.namelist()


def test_wheel_requires_no_grading_tools(wheel):
    metadata, files = _metadata(wheel)
    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    required = {_normalise(r.name) for r in requires if r.marker is None}
    assert {"torch", "torchvision", "numpy"} <= required
    assert not required & set(GRADING_TOOLS), f"learners would install {sorted(required & set(GRADING_TOOLS))}"
    grade = {_normalise(r.name) for r in requires if r.marker and r.marker.evaluate({"extra": "grade"})}
    assert "otter-grader" in grade, "the grade extra installs otter-grader for authors and instructors"
    assert metadata["License-Expression"] == "MIT" and "LICENSE" in (metadata.get_all("License-File") or [])
    assert any(f.startswith("companion/exercise_tests/01_convolution/") for f in files), "the checks ship"


def test_wheel_build_fails_on_a_deprecated_license_table(tmp_path):
    """The build check can fail: the TOML-table licence of setuptools < 77 must break it."""
    text = (ROOT / "pyproject.toml").read_text()
    old = re.sub(r'^license = "MIT"\nlicense-files = \["LICENSE"\]$', 'license = { text = "MIT" }', text, flags=re.M)
    assert old != text
    (tmp_path / "source").mkdir()
    done, path = build_wheel(tmp_path / "source", tmp_path / "dist", pyproject=old)
    assert done.returncode != 0 and path is None and "SetuptoolsDeprecationWarning" in done.stderr


def test_build_system_floor_supports_the_spdx_license():
    requires = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    setuptools = next(r for r in requires if r.name == "setuptools")
    assert Version("76.1") not in setuptools.specifier and Version("77.0.3") in setuptools.specifier
    assert PYPROJECT["project"]["license"] == "MIT"
    assert '"setuptools>=77"' in (ROOT / "Makefile").read_text(), "the Makefile installs the same floor"


def _pins(pins: tuple[str, ...]) -> dict[str, Version]:
    return {_normalise(name): Version(version) for name, version in (p.split("==") for p in pins)}


def test_learners_requirements_hold_no_grading_tools_and_admit_colab_and_kaggle():
    requires = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    extras = [Requirement(r) for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra]
    assert not {_normalise(r.name) for r in requires} & set(GRADING_TOOLS)
    colab, kaggle = _pins(compat.COLAB), _pins(compat.KAGGLE)
    for requirement in requires:
        name = _normalise(requirement.name)
        assert name in colab, f"{name}: Colab preinstalls it, so say which version it has in tools/compat.py"
    for platform, pins in (("Colab", colab), ("Kaggle", kaggle)):
        for requirement in requires + extras:
            name = _normalise(requirement.name)
            if name in pins and name != "otter-grader":
                assert pins[name] in requirement.specifier, (
                    f"{platform} has {name} {pins[name]}, the companion asks {requirement}: "
                    "the install cell would upgrade it")


def test_floor_environment_pins_every_range_at_its_floor():
    pins = dict(p.split("==") for p in compat.floor_pins(ROOT / "pyproject.toml"))
    assert pins["torch"] == "2.3.*" and pins["torchvision"] == "0.18.*" and pins["pandas"] == "2.0.*"
    assert len(pins) == len(PYPROJECT["project"]["dependencies"])
    augment = dict(p.split("==") for p in compat.floor_pins(ROOT / "pyproject.toml", "[augment]"))
    assert augment["albumentations"] == "2.0.*" and augment["opencv-python-headless"] == "4.9.*"


def test_compat_installs_the_extras_the_install_cell_names(tmp_path):
    cell = 'if True:\n    %pip install -q "dlcv-companion[augment] @ git+{REPO}"'
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "01.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": cell}]}))
    assert compat.install_extras(tmp_path) == "[augment]"
    (tmp_path / "book" / "01.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": "x"}]}))
    assert compat.install_extras(tmp_path) == ""


@pytest.mark.parametrize("extra", ["augment", "opencv"])
def test_opencv_is_capped_below_5_as_in_the_lock(extra):
    """OpenCV 5 has no Haar cascades (cv2.data); the extras cap it as requirements-lock.txt does."""
    requires = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]
    opencv = [r for r in requires if _normalise(r.name) == "opencv-python-headless"]
    assert opencv, f"the {extra} extra must cap opencv-python-headless"
    assert Version("5.0.0") not in opencv[0].specifier and Version("4.14.0.94") in opencv[0].specifier


def test_check_cells_work_without_the_grade_extra():
    script = WITHOUT_GRADE_EXTRA + """
import torch.nn.functional as F
from companion.grade import Exercise, exercise_names
exercises = [Exercise(name) for name in exercise_names()]
exercise = exercises[0]
def corr2d(x, kernel):
    columns = F.unfold(x[None, None], kernel.shape)[0]  # (kh*kw, L): one column per window
    return (kernel.reshape(-1) @ columns).reshape(x.shape[0] - kernel.shape[0] + 1, -1)  # (L,) -> (H', W')
exercise.check("q2", corr2d)
exercise.hint("q1")
exercise.total()
try:
    import otter
except ModuleNotFoundError:
    print("otter stays absent")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PASS  3/3" in done.stdout and "Hint 1 of" in done.stdout and "Total: 3 /" in done.stdout
    assert "otter stays absent" in done.stdout


@pytest.mark.parametrize("module", ["companion.grade.build", "companion.grade"])
def test_instructor_tools_name_the_grade_extra_when_it_is_missing(module):
    script = WITHOUT_GRADE_EXTRA + f"import runpy; runpy.run_module({module!r}, run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", script, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0 and 'pip install "dlcv-companion[grade]"' in done.stderr, done.stderr[-2000:]


# ----------------------------------------------------------------------------------------------
# Keras runs on torch: without KERAS_BACKEND=torch, Colab silently runs Keras on TensorFlow.

KERAS_IMPORT = re.compile(r"^\s*(import keras\b|from keras\b)", re.M)
SETS_BACKEND = re.compile(r"""^\s*os\.environ\[["']KERAS_BACKEND["']\]\s*=\s*["']torch["']""", re.M)
ASSERTS_BACKEND = re.compile(r"""^\s*assert keras\.backend\.backend\(\)\s*==\s*["']torch["']""", re.M)


def keras_backend_problems(notebook: dict) -> list[str]:
    """Why a notebook that imports Keras might not run it on torch (empty when it does, or has no Keras).

    The first code cell after the install cell must set ``os.environ["KERAS_BACKEND"] = "torch"``
    before any Keras import, then assert ``keras.backend.backend() == "torch"``.
    """
    code = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    if not any(KERAS_IMPORT.search(source) for source in code):
        return []
    if len(code) < 2:
        return ["no code cell after the install cell"]
    problems = []
    if KERAS_IMPORT.search(code[0]):
        problems.append("the install cell imports keras")
    first = code[1]
    backend, imported = SETS_BACKEND.search(first), KERAS_IMPORT.search(first)
    if not backend:
        problems.append('the first code cell after the install cell does not set os.environ["KERAS_BACKEND"] = "torch"')
    elif imported and imported.start() < backend.start():
        problems.append("keras is imported before KERAS_BACKEND is set")
    if not imported:
        problems.append("keras is imported in a later cell, not right after setting KERAS_BACKEND")
    asserted = ASSERTS_BACKEND.search(first)
    if not asserted or (imported and asserted.start() < imported.start()):
        problems.append('the cell does not assert keras.backend.backend() == "torch" after importing keras')
    return problems


def _notebook(*cells: str) -> dict:
    return {"cells": [{"cell_type": "code", "source": source} for source in cells]}


INSTALL = "import os, sys\n# install cell"
GOOD = 'import os\nos.environ["KERAS_BACKEND"] = "torch"\nimport keras\nassert keras.backend.backend() == "torch"'


@pytest.mark.parametrize("cells, problem", [
    ((INSTALL, GOOD, "model = keras.Sequential()"), None),
    ((INSTALL, "import torch", "model = 1"), None),  # no Keras, nothing to check
    ((INSTALL, "import keras\nimport os", "x = 1"), "does not set"),
    ((INSTALL, 'import keras\nos.environ["KERAS_BACKEND"] = "torch"\nassert keras.backend.backend() == "torch"'),
     "before KERAS_BACKEND"),
    ((INSTALL, 'os.environ["KERAS_BACKEND"] = "torch"\nimport keras'), "does not assert"),
    ((INSTALL, 'os.environ["KERAS_BACKEND"] = "torch"', "import keras\nassert keras.backend.backend() == 'torch'"),
     "later cell"),
    ((INSTALL, "import torch", GOOD), "does not set"),
])
def test_keras_backend_rule_on_small_notebooks(cells, problem):
    problems = keras_backend_problems(_notebook(*cells))
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_keras_notebooks_run_keras_on_torch(path):
    assert keras_backend_problems(json.loads(path.read_text())) == []
