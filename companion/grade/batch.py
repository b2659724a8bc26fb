"""The instructor's grader: a folder of submitted notebooks -> a gradebook CSV and feedback files.

For each submission, in its own grading process (:class:`~companion.grade.sandbox.Sandbox`, with
a time and a memory limit):

1. the code cells run one by one; a cell that runs too long, ends the process (``os._exit``, a
   signal) or runs out of memory is skipped, with a note, and the process started again without it;
2. each question's function is called on the same random inputs for every submission (drawn once
   per run from ``seed``); only plain tensors and numbers come back;
3. here, in the grader, the outputs are compared with the reference and the known mistakes, and
   the source of each graded function is searched for the function it must not call.

A submission that raises, loops, exits, kills its process, allocates without bound, prints
megabytes, or redefines ``check``/``torch.allclose``/``torch.testing.assert_close`` gets 0 where
that is due, with the reason, and cannot change anyone else's grade or its own. The gradebook is
always complete (one row per notebook, even an unreadable one) and written atomically.

Why not ``otter run``/``otter grade``: otter executes the tests inside the submission's kernel and
reads back a pickle the kernel wrote, so a submission can redefine what the tests call (or what
unpickling runs) and grade itself. Otter's test-file format is kept (every test file is an otter
exception-based test file), and its ``otter assign`` builds the student notebooks
(:mod:`companion.grade.build`).

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from companion.grade.exercise import checks_dir, load_questions, question_file
from companion.grade.question import Draw, Expected, Question, Result
from companion.grade.sandbox import (Limits, Sandbox, SandboxDied, SandboxError, SandboxMemory,
                                     SandboxTimeout)
from companion.grade.watch import scan_source


@dataclass
class Cell:
    """A code cell of a submission: its position in the notebook (1-based) and its source."""

    number: int
    source: str

    @property
    def first_line(self) -> str:
        lines = [line.strip() for line in self.source.splitlines() if line.strip()]
        return (lines[0][:60] + ("..." if len(lines[0]) > 60 or len(lines) > 1 else "")) if lines else ""


@dataclass
class SubmissionGrade:
    """The grade of one submission.

    Attributes:
        submission: the notebook's file name.
        results: one :class:`~companion.grade.question.Result` per question, in order.
        notes: what happened to the notebook as a whole (cells that failed or were skipped).
        seconds: the wall time grading it took.
    """

    submission: str
    results: dict[str, Result]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return sum(r.points for r in self.results.values())

    @property
    def max_total(self) -> float:
        return sum(r.max_points for r in self.results.values())

    def feedback(self, exercise: str, seed: int) -> str:
        """The feedback file's text."""
        lines = [f"Submission: {self.submission}", f"Exercise: {exercise}",
                 f"Score: {self.total:g} / {self.max_total:g}", ""]
        lines += [r.report() + "\n" for r in self.results.values()]
        if self.notes:
            lines += ["Notebook:"] + [f"  {note}" for note in self.notes] + [""]
        lines.append(f"Checked on random inputs (seed {seed}) against the framework's own functions; "
                     f"graded in {self.seconds:.1f} s.")
        return "\n".join(lines) + "\n"


def read_cells(path: str | Path) -> list[Cell]:
    """The code cells of a notebook (``.ipynb``) or of a Python script (one cell)."""
    path = Path(path)
    if path.suffix == ".py":
        return [Cell(1, path.read_text(encoding="utf-8", errors="replace"))]
    notebook = nbformat.read(str(path), as_version=4)
    cells = []
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            cells.append(Cell(number, "".join(source) if isinstance(source, list) else str(source)))
    return cells


def _python(source: str) -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(source)
    except Exception:
        return source


class _Notes:
    """Notebook notes without repeats (cells run again when a grading process restarts)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        if line not in self.lines:
            self.lines.append(line)


def _run_cells(sandbox: Sandbox, cells: Sequence[Cell], skip: set[int], notes: _Notes, limits: Limits) -> bool:
    """Run the cells not in ``skip``; on a cell that kills the process, skip it and return False."""
    todo = [c for c in cells if c.number not in skip]
    if not todo:
        return True
    try:
        sandbox.send({"kind": "cells", "cells": [(c.number, c.source) for c in todo]})
    except SandboxError as error:
        notes.add(f"the grading process did not start: {error}")
        return False
    for cell in todo:
        name = f"cell {cell.number} (`{cell.first_line}`)"
        try:
            reply = sandbox.receive(limits.timeout)
        except SandboxTimeout:
            notes.add(f"{name} ran longer than {limits.timeout:g} s; it was skipped.")
        except SandboxMemory as error:
            notes.add(f"{name}: {error}; it was skipped.")
        except SandboxDied as error:
            notes.add(f"{name} ended the Python process ({error}); it was skipped.")
        except SandboxError as error:
            notes.add(f"{name}: {error}; it was skipped.")
        else:
            if reply.get("ok") is True:
                continue
            if reply.get("memory") is True:
                notes.add(f"{name} ran out of memory (limit {limits.memory_mb} MB); it was skipped.")
            else:
                notes.add(f"{name} raised {str(reply.get('error'))[:300]}")
                continue
        skip.add(cell.number)
        return False
    return True


def _failed(question: Question, status: str, message: str) -> Result:
    return Result(question=question.name, function=question.function, points=0.0,
                  max_points=question.points, status=status, messages=(message,))


def grade_submission(path: str | Path, questions: dict[str, Question], expected: dict[str, Expected],
                     tests: str | Path, limits: Limits = Limits()) -> SubmissionGrade:
    """Grade one notebook (see the module docstring).

    Args:
        path: the submitted notebook.
        questions: the exercise's questions (:func:`~companion.grade.exercise.load_questions`).
        expected: each question's cases and reference outputs (:meth:`Question.expect`), shared
            by every submission of a run.
        tests: the directory of the test files (the grading process loads each question from there).
        limits: time and memory limits.
    """
    start = time.monotonic()
    path = Path(path)
    try:
        cells = read_cells(path)
    except Exception as error:
        reason = f"the notebook could not be read ({type(error).__name__}: {str(error)[:200]})"
        results = {n: _failed(q, "missing", f"Not graded: {reason}.") for n, q in questions.items()}
        return SubmissionGrade(path.name, results, [reason], time.monotonic() - start)
    python = [_python(c.source) for c in cells]
    static = {n: scan_source(python, q.function, q.forbidden) for n, q in questions.items()}
    results: dict[str, Result] = {}
    notes, skip, pending = _Notes(), set(), list(questions)
    restarts = 0
    while pending and restarts <= limits.max_restarts:
        with Sandbox(limits) as sandbox:
            if not _run_cells(sandbox, cells, skip, notes, limits):
                restarts += 1
                continue
            while pending:
                name = pending[0]
                question = questions[name]
                try:
                    outcomes = sandbox.outcomes(str(question_file(tests, name)),
                                                [c.args for c in expected[name].cases], limits.timeout)
                except SandboxError as error:
                    pending.pop(0)
                    restarts += 1
                    results[name] = _failed(question, "timeout" if isinstance(error, SandboxTimeout) else "crashed",
                                            _call_failure(question, error, limits))
                    break
                pending.pop(0)
                if isinstance(outcomes, str):
                    results[name] = _failed(question, "missing", f"Not graded: {outcomes}.")
                else:
                    results[name] = question.assess(expected[name], outcomes, static[name])
    for name in pending:
        results[name] = _failed(questions[name], "crashed",
                                f"Not graded: the notebook stopped the grading process {restarts} times.")
    ordered = {name: results[name] for name in questions}
    return SubmissionGrade(path.name, ordered, notes.lines, time.monotonic() - start)


def _call_failure(question: Question, error: SandboxError, limits: Limits) -> str:
    name = question.function
    if isinstance(error, SandboxTimeout):
        return (f"{name} did not return within {limits.timeout:g} s on the grader's small inputs "
                f"(an infinite loop?), so it scores 0.")
    if isinstance(error, SandboxMemory):
        return f"{name} used more than {limits.memory_mb} MB of memory on small inputs, so it scores 0."
    if isinstance(error, SandboxDied):
        return f"Calling {name} ended the Python process ({error}), so it scores 0."
    return f"{name} could not be graded: {error}."


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def gradebook_text(questions: Sequence[str], grades: Sequence[SubmissionGrade]) -> str:
    """The gradebook as CSV: ``submission``, one column per question, ``total``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["submission", *questions, "total"])
    for grade in grades:
        writer.writerow([grade.submission, *(f"{grade.results[q].points:g}" for q in questions), f"{grade.total:g}"])
    return buffer.getvalue()


def grade_folder(exercise: str | Path, submissions: str | Path, out: str | Path, *,
                 feedback: str | Path | None = None, tests: str | Path | None = None,
                 limits: Limits = Limits(), seed: int | None = None, jobs: int = 1,
                 progress: Callable[[SubmissionGrade], None] | None = None) -> list[SubmissionGrade]:
    """Grade every ``*.ipynb`` in ``submissions`` into the gradebook ``out`` and one feedback file each.

    Args:
        exercise: the exercise's name or its folder (``exercises/01_convolution``; the name is its last part).
        submissions: a folder of submitted notebooks.
        out: the gradebook CSV to write.
        feedback: the folder of feedback files (default: ``<out without .csv>_feedback`` beside ``out``).
        tests: a folder of test files instead of the installed package's.
        limits: time and memory limits per submission.
        seed: the seed of the random inputs (default: a fresh one, printed in every feedback file).
        jobs: how many submissions to grade at the same time.
        progress: called with each submission's grade as soon as it is done.

    Returns:
        The grades, in the order of the submissions' file names.
    """
    name = Path(exercise).name
    tests = Path(tests) if tests is not None else checks_dir(name)
    questions = load_questions(tests)
    folder = Path(submissions)
    if not folder.is_dir():
        raise ValueError(f"submissions must be a folder of notebooks, got {folder}")
    paths = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    seed = Draw(seed).seed  # one seed, so every submission gets the same inputs
    expected = {n: q.expect(seed) for n, q in questions.items()}
    out = Path(out)
    feedback_dir = Path(feedback) if feedback is not None else out.with_name(out.stem + "_feedback")

    def grade(path: Path) -> SubmissionGrade:
        try:
            result = grade_submission(path, questions, expected, tests, limits)
        except Exception as error:  # a bug or a broken machine must not lose the other rows
            reason = f"the grader failed on this notebook ({type(error).__name__}: {error})"
            result = SubmissionGrade(path.name, {n: _failed(q, "crashed", f"Not graded: {reason}.")
                                                 for n, q in questions.items()}, [reason])
        _write_atomically(feedback_dir / f"{path.stem}.txt", result.feedback(name, seed))
        if progress is not None:
            progress(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        grades = list(pool.map(grade, paths))
    _write_atomically(out, gradebook_text(list(questions), grades))
    return grades


__all__ = ["Cell", "SubmissionGrade", "grade_folder", "grade_submission", "gradebook_text", "read_cells"]
