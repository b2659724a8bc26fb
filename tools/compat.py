"""Learners' environments: install the companion as a notebook's install cell does, run every notebook.

``make compat`` (``python tools/compat.py``) builds three virtual environments outside the
repository (default ``~/.cache/dlcv-compat``; ``--root`` or ``COMPAT_ROOT`` to move it):

* ``colab``: a Colab-like runtime, Colab's torch 2.8 release: torch 2.8.0 + torchvision 0.23.0 with
  Colab's numpy, pandas, matplotlib, scikit-learn, scikit-image, OpenCV, Keras 3.10, ipywidgets
  7.7.1, IPython 7.34 and ipykernel 6.17 (:data:`COLAB`);
* ``floor``: the lowest release of every range in ``pyproject.toml`` (the newest patch of the floor's
  minor version: ``torch>=2.3`` gives torch 2.3.1, ``pandas>=2`` pandas 2.0.3);
* ``newest``: whatever the ranges resolve to today.

In each, it installs the companion from a clean clone of ``--ref`` (default ``HEAD``), non-editable,
as the install cell does, with the extras it names (``pip install "dlcv-companion[...] @ git+file://<clone>"``), after recording
what that install would download and change (``pip install --dry-run --report``). Then it runs
every notebook of the clone (``book/**/*.ipynb``, ``exercises/*/*.ipynb`` without the masters), one
at a time, each from an empty working directory in a kernel of that environment, and prints a
table: environment, versions, notebook, pass/fail, seconds. It fails when a notebook fails, when
``pip check`` finds a conflict, or when the install changes a package the ``colab`` environment had
(Colab's front end pins ipywidgets 7; the install cell must upgrade nothing there).

Torch comes from the package index pip is configured with; ``--torch-index`` installs torch and
torchvision from another one (e.g. PyTorch's CPU wheels where that index can be reached). pip
constraint files of the user's configuration are ignored inside the environments, since they would
pin what this check varies. Not part of ``make test``: run it before resolving a change of
dependencies and put its table in the closing note. ``--measure-only`` stops after the dry run
(download size and changes of the install cell, no notebook run). ``--reuse`` keeps the environments a previous run built
(only the companion is installed again) and ``--only`` picks notebooks, for checking a few new
chapters without a rebuild of 5-20 minutes per environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Colab's runtime of its torch 2.8 release (its `pip list`), less what the notebooks never import.
COLAB = (
    "torch==2.8.0", "torchvision==0.23.0", "numpy==2.0.2", "pandas==2.2.2", "matplotlib==3.10.0",
    "scikit-learn==1.6.1", "scikit-image==0.25.2", "scipy==1.16.1", "pillow==11.3.0", "tqdm==4.67.1",
    "opencv-python==4.12.0.88", "opencv-python-headless==4.12.0.88", "albumentations==2.0.8",
    "keras==3.10.0", "ipywidgets==7.7.1", "ipython==7.34.0", "ipykernel==6.17.1", "nbformat==5.10.4",
)
#: Kaggle's images of late 2025 (their published package lists; scikit-image not among them): the
#: ranges must admit these too, since the install cell upgrades nothing there either.
KAGGLE = ("torch==2.6.0", "torchvision==0.21.0", "numpy==1.26.4", "pandas==2.2.3", "matplotlib==3.7.2",
          "scikit-learn==1.2.2", "tqdm==4.67.1", "pillow==11.3.0", "keras==3.8.0")
#: Packages whose versions the table shows.
SHOWN = ("torch", "torchvision", "numpy", "pandas", "matplotlib", "scikit-learn", "scikit-image", "ipywidgets")
#: What a notebook's kernel gets: one thread (the machine is shared), no display, offline data cache.
KERNEL_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
              "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


@dataclass
class Environment:
    """A virtual environment to install the companion into: what it has before the install cell runs."""

    name: str
    packages: tuple[str, ...]
    description: str
    #: Packages that were there before the install cell (name -> version), filled in by :func:`build`.
    before: dict[str, str] = field(default_factory=dict)


def install_extras(folder: Path) -> str:
    """The extras the notebooks' install cell asks for, e.g. ``"[augment]"`` (``""`` for none)."""
    for notebook in sorted((folder / "book").glob("**/*.ipynb")):
        cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
        match = re.search(r"dlcv-companion(\[[^\]]*\])?\s*@", "".join(cells[0]["source"])) if cells else None
        if match:
            return match.group(1) or ""
    return ""


def floor_pins(pyproject: Path, extras: str = "") -> tuple[str, ...]:
    """``name==X.Y.*`` for every ``name>=X.Y`` of the dependencies (and of ``extras``, e.g. ``"[augment]"``):
    the floor's newest patch release."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in filter(None, (e.strip() for e in extras.strip("[]").split(","))):
        requirements += project["optional-dependencies"][extra]
    pins = []
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)(?:\s*,.*)?", requirement)
        if not match:
            raise ValueError(f"cannot derive a floor from {requirement!r}: write its range as name>=X.Y")
        name, version = match.groups()
        parts = (version.split(".") + ["0"])[:2]
        pins.append(f"{name}=={'.'.join(parts)}.*")
    return tuple(pins)


def environments(pyproject: Path, extras: str = "") -> dict[str, Environment]:
    return {
        "colab": Environment("colab", COLAB, "Colab-like (Colab's torch 2.8 runtime)"),
        # matplotlib 3.7's pyplot imports IPython's backend2gui, which IPython 9 removed (2025): platforms
        # with matplotlib 3.7 (Kaggle's 3.7.2) ship IPython 7 or 8.
        "floor": Environment("floor", floor_pins(pyproject, extras) + ("ipykernel", "ipython<9"),
                             "floor of every range"),
        "newest": Environment("newest", ("ipykernel",), "newest the ranges allow"),
    }


def pip_env() -> dict[str, str]:
    env = dict(os.environ, PIP_CONSTRAINT=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    return env


def run(command: list[str], log: Path, **kwargs) -> subprocess.CompletedProcess:
    """Run ``command``, appending its output to ``log``; raise with the log's tail when it fails."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=pip_env(), **kwargs)
    if done.returncode:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise RuntimeError(f"{' '.join(command[:4])} ... failed ({done.returncode}); see {log}:\n{tail}")
    return done


def freeze(python: Path) -> dict[str, str]:
    """name -> version of every distribution in the environment of ``python``."""
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                         env=pip_env(), check=True).stdout
    return {normalise(d["name"]): d["version"] for d in json.loads(out)}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build(env: Environment, where: Path, python: str, torch_index: str | None, log: Path,
          reuse: bool = False) -> Path:
    """Create the environment from nothing (torch first, from ``torch_index`` if given); return its python.

    With ``reuse``, an environment this function completed before (its ``before.json`` is there) is
    kept: only the companion is uninstalled, so that the install cell runs again on what the
    environment had before it.
    """
    marker = where / "before.json"
    py = where / "bin" / "python"
    if reuse and marker.is_file() and py.is_file():
        env.before = json.loads(marker.read_text())
        run([str(py), "-m", "pip", "uninstall", "-q", "-y", "dlcv-companion"], log)
        return py
    shutil.rmtree(where, ignore_errors=True)
    run([python, "-m", "venv", str(where)], log)
    py = where / "bin" / "python"
    run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], log)
    torch = [p for p in env.packages if normalise(re.split(r"[=<>!~ ]", p)[0]) in ("torch", "torchvision")]
    if torch and torch_index:
        run([str(py), "-m", "pip", "install", "-q", "--index-url", torch_index, *torch], log)
    run([str(py), "-m", "pip", "install", "-q", *env.packages], log)
    env.before = freeze(py)
    marker.write_text(json.dumps(env.before, indent=1) + "\n")
    return py


def clone(ref: str, root: Path, log: Path, source: Path = ROOT) -> tuple[Path, str]:
    """A clean clone of the repository ``source`` at ``ref``; returns its folder and commit."""
    sha = subprocess.run(["git", "-C", str(source), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    folder = root / "clones" / sha[:12]
    if not (folder / ".git").is_dir():
        shutil.rmtree(folder, ignore_errors=True)
        run(["git", "clone", "--quiet", str(source), str(folder)], log)
        run(["git", "-C", str(folder), "checkout", "--quiet", sha], log)
    return folder, sha


@dataclass
class Install:
    """What the install cell downloads and changes in one environment."""

    new: dict[str, str]
    changed: dict[str, tuple[str, str]]
    download_mb: float
    pip_check: str = ""


def measure(py: Path, env: Environment, requirement: str, root: Path, log: Path) -> Install:
    """Dry-run the install cell: which packages it adds or changes, and how many MB it downloads."""
    report = root / "reports" / f"{env.name}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    run([str(py), "-m", "pip", "install", "-q", "--dry-run", "--report", str(report), requirement], log)
    wanted = {normalise(item["metadata"]["name"]): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    wanted.pop("dlcv-companion", None)
    new = {n: v for n, v in wanted.items() if n not in env.before}
    changed = {n: (env.before[n], v) for n, v in wanted.items() if n in env.before}
    with tempfile.TemporaryDirectory(dir=root) as empty:
        if wanted:
            run([str(py), "-m", "pip", "download", "-q", "--no-deps", "--dest", empty,
                 *(f"{n}=={v}" for n, v in wanted.items())], log)
        size = sum(f.stat().st_size for f in Path(empty).iterdir())
    return Install(new, changed, size / 1e6)


def notebooks(folder: Path) -> list[Path]:
    book = sorted((folder / "book").glob("**/*.ipynb"))
    exercises = sorted(p for p in (folder / "exercises").glob("*/*.ipynb") if p.parent.name != "_masters")
    return [p for p in book + exercises if ".ipynb_checkpoints" not in p.parts]


def run_notebook(notebook: Path, python: Path, timeout: float, data: Path,
                 report: Path | None = None) -> tuple[bool, float, str]:
    """Execute ``notebook`` in a kernel of ``python`` from an empty working directory.

    Returns whether it passed, its seconds and the last error line; a failure's whole output goes to
    ``report`` when given.
    """
    with tempfile.TemporaryDirectory(prefix="compat-run-") as work:
        spec = Path(work) / "jupyter" / "kernels" / "compat"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "compat", "language": "python",
            "env": dict(KERNEL_ENV, COMPANION_DATA=str(data), PATH=f"{python.parent}:{os.environ['PATH']}")}))
        cwd = Path(work) / "cwd"
        cwd.mkdir()
        child = (f"import nbformat, nbclient; nb = nbformat.read({str(notebook)!r}, as_version=4); "
                 f"nbclient.NotebookClient(nb, timeout={int(timeout)}, kernel_name='compat', "
                 f"resources={{'metadata': {{'path': {str(cwd)!r}}}}}).execute()")
        env = dict(os.environ, JUPYTER_PATH=str(Path(work) / "jupyter"), JUPYTER_PLATFORM_DIRS="1")
        start = time.perf_counter()
        # A session of its own, so that a timeout ends the kernel too, not only the client.
        process = subprocess.Popen([sys.executable, "-c", child], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return False, time.perf_counter() - start, f"timed out after {timeout:.0f} s"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # a kernel left behind by the client
        seconds = time.perf_counter() - start
    if process.returncode == 0:
        return True, seconds, ""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in (stderr or stdout).splitlines() if line.strip()]
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("\n".join(lines) + "\n")
    errors = [line for line in lines if re.match(r"^\w*(Error|Exception|Interrupt)\b", line.strip())]
    return False, seconds, (errors or lines or ["failed"])[-1].strip()[:160]


def versions(installed: dict[str, str]) -> str:
    return ", ".join(f"{n} {installed[n]}" for n in SHOWN if n in installed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", nargs="+", choices=("colab", "floor", "newest"), default=["colab", "floor", "newest"])
    parser.add_argument("--ref", default="HEAD", help="the commit to clone and install (default HEAD)")
    parser.add_argument("--source", type=Path, default=ROOT, help="the git repository to clone (default this one)")
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("COMPAT_ROOT")
                                                          or Path.home() / ".cache" / "dlcv-compat"))
    parser.add_argument("--python", default="python3", help="the interpreter of the environments")
    parser.add_argument("--torch-index", help="index URL for torch and torchvision (e.g. CPU wheels)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per notebook")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="run only the notebooks whose path contains one of these texts")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an environment a previous run built (reinstall only the companion)")
    parser.add_argument("--measure-only", action="store_true", help="stop after measuring the install cell")
    parser.add_argument("--before", metavar="REF", help="also measure the install cell of another commit (a baseline)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if root == ROOT or ROOT in root.parents:
        parser.error(f"--root must lie outside the repository ({ROOT})")
    root.mkdir(parents=True, exist_ok=True)
    log = root / "compat.log"
    folder, sha = clone(args.ref, root, log, args.source)
    extras = install_extras(folder)  # as the install cell asks, e.g. "[augment]"
    requirement = f"dlcv-companion{extras} @ git+file://{folder}@{sha}"
    python_version = subprocess.run([args.python, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"companion {sha[:12]} from a clean clone, {python_version}; log: {log}", flush=True)
    rows, problems = [], []
    for env in (environments(folder / "pyproject.toml", extras)[name] for name in args.env):
        print(f"[{env.name}] building the environment ({env.description}) ...", flush=True)
        start = time.perf_counter()
        py = build(env, root / "envs" / env.name, args.python, args.torch_index, log, args.reuse)
        if args.before:
            old_folder, old_sha = clone(args.before, root, log, args.source)
            old_requirement = f"dlcv-companion{install_extras(old_folder)} @ git+file://{old_folder}@{old_sha}"
            old = measure(py, env, old_requirement, root, log)
            print(f"[{env.name}] before ({old_sha[:12]}): the install cell downloads {old.download_mb:.1f} MB, "
                  f"{len(old.new)} new packages ({', '.join(sorted(old.new)) or 'none'}); it changes "
                  f"{', '.join(f'{n} {a} -> {b}' for n, (a, b) in sorted(old.changed.items())) or 'nothing'}",
                  flush=True)
        install = measure(py, env, requirement, root, log)
        added = ", ".join(f"{n} {v}" for n, v in sorted(install.new.items())) or "nothing"
        changes = ", ".join(f"{n} {a} -> {b}" for n, (a, b) in sorted(install.changed.items())) or "nothing"
        print(f"[{env.name}] the install cell downloads {install.download_mb:.1f} MB "
              f"({len(install.new)} new packages: {added}); it changes {changes}", flush=True)
        if env.name == "colab" and install.changed:
            problems.append(f"{env.name}: the install cell changes {changes}")
        if args.measure_only:
            continue
        run([str(py), "-m", "pip", "install", "-q", requirement], log)
        check = subprocess.run([str(py), "-m", "pip", "check"], capture_output=True, text=True, env=pip_env())
        if check.returncode:
            problems.append(f"{env.name}: pip check: {check.stdout.strip()}")
        installed = freeze(py)
        shown = versions(installed)
        print(f"[{env.name}] ready in {time.perf_counter() - start:.0f} s: {shown}", flush=True)
        for notebook in notebooks(folder):
            rel = notebook.relative_to(folder).as_posix()
            if args.only and not any(text in rel for text in args.only):
                continue
            failure = root / "failures" / env.name / f"{notebook.stem}.txt"
            ok, seconds, error = run_notebook(notebook, py, args.timeout, root / "data", failure)
            error += f" [{failure}]" if not ok else ""
            rows.append((env.name, shown, rel, "pass" if ok else "FAIL", seconds, error))
            print(f"[{env.name}] {rel}: {'pass' if ok else 'FAIL'} ({seconds:.1f} s) {error}", flush=True)
            if not ok:
                problems.append(f"{env.name}: {rel}: {error}")
    if rows:
        print("\n| environment | versions | notebook | result | seconds |\n|---|---|---|---|---:|")
        for name, shown, rel, result, seconds, error in rows:
            note = f" ({error})" if error else ""
            print(f"| {name} | {shown} | {rel} | {result}{note} | {seconds:.1f} |")
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
