"""Build the student exercise notebooks from the masters with otter assign; check they are current.

A master, ``exercises/_masters/<nn>_<name>.ipynb``, is an otter-assign notebook: the solution of
each question sits between ``# BEGIN SOLUTION NO PROMPT`` and ``# END SOLUTION``, and what the
learner sees instead (a stub that raises ``NotImplementedError``) in a string between two lines
ending in ``# BEGIN PROMPT`` and ``# END PROMPT``. Run from the repository root::

    python -m companion.grade.build            # every master -> exercises/<nn>_<name>/<nn>_<name>.ipynb
    python -m companion.grade.build --verify   # first grade each master: it must score full marks
    python -m companion.grade.build --check    # exit 1 if a committed student notebook is out of date
    python -m companion.grade.build --only 05_alexnet_vgg --verify   # one exercise (several names allowed)

The student notebooks are otter's output with outputs cleared, otter's metadata dropped, and cell
ids numbered, so that building twice gives the same file.

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from companion.grade import extra

extra.require("building the exercise notebooks (otter assign)")
import nbformat  # noqa: E402  (after the check, so that a learner's install gets a clear error)

#: Where masters live, relative to the exercises folder.
MASTERS = "_masters"


def masters(exercises: str | Path = "exercises", only: Sequence[str] | None = None) -> list[Path]:
    """The master notebooks, e.g. ``exercises/_masters/01_convolution.ipynb`` (those named in ``only``, if given)."""
    found = sorted((Path(exercises) / MASTERS).glob("*.ipynb"))
    if only is None:
        return found
    unknown = sorted(set(only) - {m.stem for m in found})
    if unknown:
        raise ValueError(f"no master named {', '.join(unknown)} in {Path(exercises) / MASTERS}; "
                         f"masters: {', '.join(m.stem for m in found)}")
    return [m for m in found if m.stem in only]


def student_path(master: Path, exercises: str | Path = "exercises") -> Path:
    """Where the student notebook of ``master`` goes: ``exercises/<name>/<name>.ipynb``."""
    return Path(exercises) / master.stem / f"{master.stem}.ipynb"


def student_notebook(master: str | Path) -> nbformat.NotebookNode:
    """Run otter assign on ``master`` (in a temporary folder) and tidy its student notebook."""
    from otter.assign import main as otter_assign

    master = Path(master).resolve()
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
        otter_assign(str(master), folder, no_pdfs=True, no_run_tests=True)
        notebook = nbformat.read(str(Path(folder) / "student" / master.name), as_version=4)
    notebook.metadata.pop("otter", None)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    for number, cell in enumerate(notebook.cells):
        cell["id"] = f"{master.stem.replace('_', '-')}-{number:02d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


def _text(notebook: nbformat.NotebookNode) -> str:
    return json.dumps(nbformat.from_dict(notebook), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def verify(master: Path) -> list[str]:
    """Grade ``master`` like a submission; the reasons it does not score full marks (empty if it does)."""
    from companion.grade.batch import grade_submission
    from companion.grade.exercise import checks_dir, load_questions

    tests = checks_dir(master.stem)
    questions = load_questions(tests)
    expected = {n: q.expect() for n, q in questions.items()}
    grade = grade_submission(master, questions, expected, tests)
    problems = [r.report() for r in grade.results.values() if not r.passed]
    return problems + [f"notebook: {note}" for note in grade.notes]


def build(exercises: str | Path = "exercises", *, out: str | Path | None = None,
          check_masters: bool = False, only: Sequence[str] | None = None) -> list[Path]:
    """Write the student notebook of every master.

    Args:
        exercises: the exercises folder (with ``_masters/`` inside).
        out: write into this folder instead (``<out>/<name>/<name>.ipynb``), e.g. to compare.
        check_masters: grade each master first and stop if one does not score full marks.
        only: build just the masters with these names (default: all).

    Returns:
        The notebooks written.
    """
    written = []
    for master in masters(exercises, only):
        if check_masters:
            problems = verify(master)
            if problems:
                raise RuntimeError(f"{master} does not pass its own checks:\n" + "\n".join(problems))
        target = student_path(master, out if out is not None else exercises)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_text(student_notebook(master)), encoding="utf-8")
        written.append(target)
    return written


def stale(exercises: str | Path = "exercises", only: Sequence[str] | None = None) -> list[str]:
    """The student notebooks that differ (cell types or sources) from a fresh build of their master."""
    found = []
    for master in masters(exercises, only):
        fresh = student_notebook(master)
        path = student_path(master, exercises)
        if not path.is_file():
            found.append(f"{path} is missing")
            continue
        committed = nbformat.read(str(path), as_version=4)
        if [(c.cell_type, c.source) for c in committed.cells] != [(c.cell_type, c.source) for c in fresh.cells]:
            found.append(f"{path} is out of date with {master}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion.grade.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exercises", default="exercises", help="the exercises folder (default %(default)s)")
    parser.add_argument("--check", action="store_true", help="only report student notebooks that are out of date")
    parser.add_argument("--verify", action="store_true", help="grade every master first; it must score full marks")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these exercises, e.g. 05_alexnet_vgg")
    args = parser.parse_args(argv)
    try:
        chosen = masters(args.exercises, args.only)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not chosen:
        print(f"error: no masters in {Path(args.exercises) / MASTERS}", file=sys.stderr)
        return 2
    if args.check:
        problems = stale(args.exercises, args.only)
        for problem in problems:
            print(problem)
        if problems:
            print("run: python -m companion.grade.build")
        return 1 if problems else 0
    for path in build(args.exercises, check_masters=args.verify, only=args.only):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
