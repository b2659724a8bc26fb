"""The repository's own promises: pins that cannot drift, notebooks that follow the conventions."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

import companion

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("part*/*.ipynb"))
INSTALL_CELL = f'''# In Colab or Kaggle, install the course's companion package
# (the platform's own torch stays as it is).
import os, sys
if "google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
    REPO = "{companion.REPOSITORY}"
    %pip install -q "dlcv-companion @ git+{{REPO}}"'''


def _lock() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = Version(version)
    return pins


def test_lock_pins_the_verified_stack():
    pins = _lock()
    assert pins["torch"] == Version("2.14.1") and pins["torchvision"] == Version("0.29.1")
    assert pins["jupyter-book"] == Version("1.0.4.post1")
    assert pins["opencv-python-headless"] < Version("5") and pins["keras"].major == 3
    assert pins["otter-grader"] == Version("7.0.0")
    assert {"nbval", "pytest-xdist", "matplotlib", "albumentations", "scikit-image"} <= set(pins)


def test_pyproject_ranges_admit_the_locked_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock()
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    for req in requirements:
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is a dependency but not in requirements-lock.txt"
        assert pins[name] in req.specifier, f"lock has {name}=={pins[name]}, pyproject asks {req}"
    # Ranges, not pins, so that Colab and Kaggle keep their own torch.
    assert not any(str(r.specifier).startswith("==") for r in requirements)


def test_environment_yml_installs_the_lock_and_the_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["-r requirements-lock.txt", "-e ."]


def test_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_toc_lists_exactly_the_chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files + [toc["root"]]:
        assert any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb")), f"{f} is in _toc.yml but missing"
    listed = {f for f in files if f.startswith("book/part")}
    assert listed == {str(p.relative_to(ROOT).with_suffix("")) for p in CHAPTERS}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_follows_the_conventions(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), "strip the outputs"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "".join(code[0]["source"]).strip() == INSTALL_CELL, "the first code cell must be the install cell"
    source = "\n".join("".join(c["source"]) for c in code)
    assert "profile.current(" in source, "the chapter must print its profile"
    assert "assert_close(" in source, "the chapter must check itself against the framework"
    assert re.search(r"^assert ", source, re.M), "the experiment's result must be asserted"
    title = "".join(cells[0]["source"])
    rel = path.relative_to(ROOT).as_posix()
    kaggle = f"https://kaggle.com/kernels/welcome?src={companion.REPOSITORY}/blob/main/{rel}"
    assert title.startswith("# ") and kaggle in title, "the first cell has the title and the Kaggle link"
    exercise = ROOT / "exercises" / path.stem / f"{path.stem}.ipynb"
    assert exercise.is_file(), f"every chapter has its graded exercise notebook: {exercise.relative_to(ROOT)}"
    assert f"exercises/{path.stem}" in "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_chapters_show_figures_only_with_alt_text():
    for path in CHAPTERS:
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert "plt.show(" not in code and "display(fig" not in code, f"{path.name}: show figures with companion.plot"


def test_cited_keys_exist():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "book" / "references.bib").read_text(), re.M))
    for path in CHAPTERS + [ROOT / "book" / "intro.md"]:
        text = path.read_text()
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            for key in group.split(","):
                assert key.strip() in keys, f"{path.name} cites unknown key {key.strip()}"


def test_book_config_points_at_the_same_repository():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == companion.REPOSITORY
    assert config["only_build_toc_files"] is True and "path_to_book" not in config["repository"]


def test_citations_tell_papers_apart():
    """The text cites author-year ("He et al., 2016a"): no two entries may read the same."""
    from pybtex.database import parse_file

    labels: dict[str, str] = {}
    for key, entry in parse_file(ROOT / "book" / "references.bib").entries.items():
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [" ".join(p.last_names) for p in persons[:2]]
        who = names[0] if len(persons) == 1 else " and ".join(names) if len(persons) == 2 else \
            f"{names[0]} et al." if persons else key
        label = f"{who}, {entry.fields.get('year')}"
        assert label not in labels, f"{key} and {labels[label]} both cite as {label}: add a/b to the years"
        labels[label] = key
