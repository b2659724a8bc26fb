"""The instructor's grader: a folder of submitted notebooks -> a gradebook CSV and feedback files.

First every notebook in the folder (and its subfolders: the layouts of Canvas, Moodle and
Gradescope downloads) is found and read into memory; then each one is graded in its own process
tree (:class:`~companion.grade.sandbox.Sandbox`), which gets only that notebook's code:

1. the code cells run one by one, up to the last one an answer needs (the cells that define each
   graded function and, transitively, every name it uses: :func:`needed_cells`); a cell that runs
   too long, ends the process (``os._exit``, a signal) or runs out of memory is skipped, with a
   note, and the process started again without it;
2. each question's function is called on the same random inputs for every submission (drawn once
   per run from ``seed``); only plain tensors and numbers come back;
3. here, in the grader, the outputs are compared with the reference and the known mistakes, and
   the source of each graded function is searched for the function it must not call;
4. a question whose grading process crashed for a reason outside its function is graded again in
   a fresh process that runs only the cells that question needs: each question's grade depends on
   its answer and the cells it needs, not on the rest of the notebook.

A submission that raises, loops, exits, kills its process, allocates without bound, prints
megabytes, or redefines ``check``/``torch.allclose``/``torch.testing.assert_close`` gets 0 where
that is due, with the reason, and cannot change anyone else's grade or its own. What a notebook
does only to get around the grader (see :func:`~companion.grade.watch.source_flags` and
:class:`~companion.grade.worker.Guard`) is named in the gradebook's ``flagged`` column. The
gradebook is always written, with one row per notebook found (even an unreadable one), atomically,
after each submission; the grader alone writes it and the feedback files.

Why not ``otter run``/``otter grade``: otter executes the tests inside the submission's kernel and
reads back a pickle the kernel wrote, so a submission can redefine what the tests call (or what
unpickling runs) and grade itself. Otter's test-file format is kept (every test file is an otter
exception-based test file), and its ``otter assign`` builds the student notebooks
(:mod:`companion.grade.build`).

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from companion.grade.exercise import checks_dir, load_questions
from companion.grade.question import Draw, Expected, Question, Result
from companion.grade.sandbox import (Limits, Sandbox, SandboxDied, SandboxError, SandboxMemory,
                                     SandboxTimeout)
from companion.grade.watch import parse, scan_source, source_flags

#: The largest notebook file the grader reads (bytes); a larger one gets a row saying so.
MAX_NOTEBOOK_BYTES = 32 * 2**20

#: The longest code cell the grader runs (characters); a longer one is skipped with a note.
MAX_CELL_CHARS = 8_000_000

#: Folders of a download that hold no submissions (Jupyter's autosaves, macOS zip metadata).
SKIPPED_FOLDERS = (".ipynb_checkpoints", "__MACOSX")


@dataclass
class Cell:
    """A code cell of a submission: its position in the notebook (1-based) and its source."""

    number: int
    source: str

    @property
    def first_line(self) -> str:
        lines = [line.strip() for line in self.source[:2000].splitlines() if line.strip()]
        line = safe_text(lines[0]) if lines else ""
        return (line[:60] + ("..." if len(line) > 60 or len(lines) > 1 else "")) if lines else ""


@dataclass
class SubmissionGrade:
    """The grade of one submission.

    Attributes:
        submission: the notebook's name: its path below the submissions folder, in printable text.
        results: one :class:`~companion.grade.question.Result` per question, in order.
        notes: what happened to the notebook as a whole (cells that failed or were skipped).
        seconds: the wall time grading it took.
        flags: what the notebook did that only serves to get around the grader, for the
            instructor to review (it changes no grade).
    """

    submission: str
    results: dict[str, Result]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)

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
        if self.flags:
            lines += ["Flagged for the instructor to review (no points taken): " + "; ".join(self.flags), ""]
        lines.append(f"Checked on random inputs (seed {seed}) against the framework's own functions; "
                     f"graded in {self.seconds:.1f} s.")
        return "\n".join(lines) + "\n"


def safe_text(text: str) -> str:
    """``text`` as printable UTF-8: undecodable bytes and control characters written as escapes."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                   for c in text)


def _cells_of(notebook: dict) -> list[Cell]:
    if type(notebook) is not dict or type(notebook.get("cells")) is not list:
        raise ValueError("not a notebook (no list of cells)")
    cells = []
    for number, cell in enumerate(notebook["cells"], start=1):
        if type(cell) is dict and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            if isinstance(source, list):
                source = "".join(s for s in source if isinstance(s, str))
            cells.append(Cell(number, source if isinstance(source, str) else ""))
    return cells


def read_cells(path: str | Path) -> list[Cell]:
    """The code cells of a notebook (``.ipynb``, any version 4 JSON) or of a Python script (one cell)."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix.lower() == ".py":
        return [Cell(1, data.decode("utf-8", errors="replace"))]
    return _cells_of(json.loads(data.decode("utf-8-sig", errors="replace")))


@dataclass
class Submission:
    """A notebook found in the submissions folder, read into memory before any grading starts.

    Attributes:
        name: its path below the folder, as printable text (the gradebook's ``submission``).
        cells: its code cells, or ``None`` when it could not be read.
        problem: why it could not be read.
    """

    name: str
    cells: list[Cell] | None
    problem: str | None = None


def find_submissions(folder: str | Path) -> list[Submission]:
    """Every notebook (``*.ipynb``, any case) in ``folder`` and its subfolders, read, sorted by name.

    Symbolic links are not followed (a link gets a row saying so); ``.ipynb_checkpoints`` and
    ``__MACOSX`` folders are skipped.
    """
    folder = Path(folder)
    found: list[Submission] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
        for file in sorted(files):
            if not file.lower().endswith(".ipynb"):
                continue
            path = Path(root) / file
            name = safe_text(str(path.relative_to(folder)))
            found.append(_read_submission(path, name))
        for d in list(dirs):  # a linked folder: its notebooks are not graded, but it gets a row if it looks like one
            if (Path(root) / d).is_symlink():
                dirs.remove(d)
    return sorted(found, key=lambda s: s.name)


def _read_submission(path: Path, name: str) -> Submission:
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            return Submission(name, None, "it is a symbolic link, not a notebook file")
        if not stat.S_ISREG(info.st_mode):
            return Submission(name, None, "it is not a regular file")
        if info.st_size > MAX_NOTEBOOK_BYTES:
            return Submission(name, None, f"it is {info.st_size / 2**20:.0f} MB, more than the "
                                          f"{MAX_NOTEBOOK_BYTES // 2**20} MB a notebook may be")
        return Submission(name, read_cells(path))
    except Exception as error:  # noqa: BLE001 - any unreadable file gets its row
        return Submission(name, None, f"the notebook could not be read ({type(error).__name__}: "
                                      f"{safe_text(str(error))[:200]})")


# --------------------------------------------------------------------------------------------
# which cells an answer needs


def _python(source: str) -> str:
    """A cell's source as Python: as it is when it parses, else IPython's translation (magics, ``!``)."""
    if parse(source) is not None:
        return source
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - left as it is: it will not run either
        return source


def _names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """The top-level names a cell binds, and every name it reads."""
    bound: set[str] = set()
    for node in getattr(tree, "body", []):
        for child in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                               ast.ClassDef)) else [node]:
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(child.name)
            elif isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
                bound.add(child.id)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                for alias in child.names:
                    bound.add((alias.asname or alias.name).split(".")[0])
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    for node in ast.walk(tree):  # `global x` in a function binds x at the top level
        if isinstance(node, ast.Global):
            bound |= set(node.names)
        elif isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            bound.add("*")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _DYNAMIC:
            bound.add("*")  # exec(...), globals()[...] = ...: may bind any name
    return bound, used


#: Calls through which a cell may bind names no parser sees.
_DYNAMIC = ("exec", "eval", "globals", "vars", "setattr", "__import__", "locals")


def needed_cells(python: Sequence[str], function: str) -> set[int]:
    """The indices of the cells that ``function`` needs: those binding it or, transitively, a name it uses.

    A cell that may bind names in ways no parser follows (``exec``, ``globals()[...]``, a ``*``
    import) counts as needed by every function.
    """
    parsed = [_names(tree) if tree is not None else (set(), set()) for tree in map(parse, python)]
    names, cells = {function}, set()
    changed = True
    while changed:
        changed = False
        for index, (bound, used) in enumerate(parsed):
            if index not in cells and (bound & names or "*" in bound):
                cells.add(index)
                names |= used
                changed = True
    return cells


# --------------------------------------------------------------------------------------------
# running a submission


class _Notes:
    """Notebook notes without repeats (cells run again when a grading process restarts)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        if line not in self.lines:
            self.lines.append(line)


class _OutOfTime(Exception):
    """The submission's wall-clock budget is spent."""


def _run_cells(sandbox: Sandbox, cells: Sequence[Cell], skip: set[int], notes: _Notes, limits: Limits,
               deadline: float) -> bool:
    """Run the cells not in ``skip``; on a cell that kills the process, skip it and return False."""
    todo = [c for c in cells if c.number not in skip]
    if not todo:
        return True
    try:
        sandbox.send({"kind": "cells", "cells": [(c.number, c.source) for c in todo]})
    except SandboxError as error:
        notes.add(f"the grading process did not take the notebook's cells: {error}")
        return False
    for cell in todo:
        name = f"cell {cell.number} (`{cell.first_line}`)"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _OutOfTime
        wait = min(limits.timeout, remaining)
        try:
            reply = sandbox.receive(wait)
        except SandboxTimeout:
            if wait < limits.timeout:
                raise _OutOfTime from None
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
                notes.add(f"{name} raised {safe_text(str(reply.get('error')))[:300]}")
                continue
        skip.add(cell.number)
        return False
    return True


def _failed(question: Question, status: str, message: str) -> Result:
    return Result(question=question.name, function=question.function, points=0.0,
                  max_points=question.points, status=status, messages=(message,))


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


class _Run:
    """Grading one submission: the cells it runs, the processes it uses, the flags they raised."""

    def __init__(self, questions: dict[str, Question], expected: dict[str, Expected], tests: Path, limits: Limits,
                 hidden: tuple[str, ...], deadline: float) -> None:
        self.questions, self.expected, self.tests, self.limits = questions, expected, tests, limits
        self.hidden, self.deadline = hidden, deadline
        self.flags: set[str] = set()
        self.notes = _Notes()

    def sandbox(self) -> Sandbox:
        return Sandbox(self.limits, self.tests, self.hidden)

    def grade(self, cells: list[Cell], names: list[str], static: dict[str, tuple[str, ...]],
              skip: set[int]) -> dict[str, Result]:
        """Run ``cells`` (minus ``skip``, which grows), then grade the questions ``names``."""
        results: dict[str, Result] = {}
        pending = list(names)
        restarts = 0
        try:
            while pending and restarts <= self.limits.max_restarts:
                if time.monotonic() >= self.deadline:
                    raise _OutOfTime
                try:
                    started = time.monotonic()
                    sandbox = self.sandbox()
                    self.deadline += time.monotonic() - started  # starting a process is the grader's time
                except SandboxError as error:
                    self.notes.add(f"a grading process did not start ({error}).")
                    restarts += 1
                    continue
                with sandbox:
                    try:
                        if not _run_cells(sandbox, cells, skip, self.notes, self.limits, self.deadline):
                            restarts += 1
                            continue
                        while pending:
                            name = pending[0]
                            question = self.questions[name]
                            remaining = self.deadline - time.monotonic()
                            if remaining <= 0:
                                raise _OutOfTime
                            wait = min(self.limits.timeout, remaining)
                            try:
                                outcomes = sandbox.outcomes(name, [c.args for c in self.expected[name].cases], wait)
                            except SandboxError as error:
                                if isinstance(error, SandboxTimeout) and wait < self.limits.timeout:
                                    raise _OutOfTime from None
                                pending.pop(0)
                                restarts += 1
                                results[name] = _failed(question, "timeout" if isinstance(error, SandboxTimeout)
                                                        else "crashed", _call_failure(question, error, self.limits))
                                break
                            pending.pop(0)
                            if isinstance(outcomes, str):
                                results[name] = _failed(question, "missing", f"Not graded: {safe_text(outcomes)}.")
                            else:
                                results[name] = question.assess(self.expected[name], outcomes, static[name])
                    finally:
                        sandbox.close()
                        self.flags.update(sandbox.flags)
        except _OutOfTime:
            self.notes.add(f"The notebook used up its time budget ({self.limits.budget:g} s): what was left "
                           f"was not run.")
            for name in pending:
                results[name] = _failed(self.questions[name], "timeout",
                                        f"Not graded: the notebook used up its time budget "
                                        f"({self.limits.budget:g} s) before this question.")
            pending = []
        for name in pending:
            results[name] = _failed(self.questions[name], "crashed",
                                    f"Not graded: the notebook stopped the grading process {restarts} times.")
        return results


def grade_cells(name: str, cells: list[Cell], questions: dict[str, Question], expected: dict[str, Expected],
                tests: str | Path, limits: Limits = Limits(), hidden: tuple[str, ...] = ()) -> SubmissionGrade:
    """Grade one submission's code cells (see the module docstring)."""
    start = time.monotonic()
    tests = Path(tests)
    notes_before: list[str] = []
    runnable = []
    for cell in cells:
        if len(cell.source) > MAX_CELL_CHARS:
            notes_before.append(f"cell {cell.number} has {len(cell.source):,} characters (more than "
                                f"{MAX_CELL_CHARS:,}); it was not run.")
        else:
            runnable.append(cell)
    python = [_python(c.source) for c in runnable]
    runnable = [Cell(c.number, p) for c, p in zip(runnable, python)]
    flags = set(source_flags(python))
    static = {n: scan_source(python, q.function, q.forbidden) for n, q in questions.items()}
    needs = {n: needed_cells(python, q.function) for n, q in questions.items()}
    last = max((max(indices) for indices in needs.values() if indices), default=-1)
    run = _Run(questions, expected, tests, limits, hidden, start + limits.budget)
    for note in notes_before:
        run.notes.add(note)
    skip: set[int] = set()
    results = run.grade(runnable[:last + 1], list(questions), static, skip)
    # a question that crashed for a reason outside its own function: once more, with only its cells
    for question, result in list(results.items()):
        if result.status != "crashed" or time.monotonic() >= run.deadline:
            continue
        own = [runnable[i] for i in sorted(needs[question])]
        if not own:
            continue
        again = run.grade(own, [question], static, set(skip) & {c.number for c in own})
        if again[question].points > result.points or again[question].status not in ("crashed",):
            results[question] = again[question]
    ordered = {name: results[name] for name in questions}
    flags |= run.flags
    return SubmissionGrade(name, ordered, run.notes.lines, time.monotonic() - start, sorted(flags))


def grade_submission(path: str | Path, questions: dict[str, Question], expected: dict[str, Expected],
                     tests: str | Path, limits: Limits = Limits(), hidden: tuple[str, ...] = ()) -> SubmissionGrade:
    """Grade one notebook (see the module docstring).

    Args:
        path: the submitted notebook.
        questions: the exercise's questions (:func:`~companion.grade.exercise.load_questions`).
        expected: each question's cases and reference outputs (:meth:`Question.expect`), shared
            by every submission of a run.
        tests: the directory of the test files.
        limits: time and memory limits.
        hidden: folders the submission may not read, besides the checks (e.g. the other submissions).
    """
    path = Path(path)
    return _grade_loaded(_read_submission(path, safe_text(path.name)), questions, expected, tests, limits,
                         (*hidden, str(path)))


def _grade_loaded(submission: Submission, questions: dict[str, Question], expected: dict[str, Expected],
                  tests: str | Path, limits: Limits, hidden: tuple[str, ...]) -> SubmissionGrade:
    if submission.cells is None:
        reason = submission.problem or "the notebook could not be read"
        results = {n: _failed(q, "missing", f"Not graded: {reason}.") for n, q in questions.items()}
        return SubmissionGrade(submission.name, results, [reason])
    return grade_cells(submission.name, submission.cells, questions, expected, tests, limits, hidden)


# --------------------------------------------------------------------------------------------
# the gradebook


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def spreadsheet_safe(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one starting with ``= + - @`` (a formula) gets a leading ``'``."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r", "|") else text


def gradebook_text(questions: Sequence[str], grades: Sequence[SubmissionGrade]) -> str:
    """The gradebook as CSV: ``submission``, one column per question, ``total``, ``flagged``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["submission", *questions, "total", "flagged"])
    for grade in grades:
        writer.writerow([spreadsheet_safe(safe_text(grade.submission)),
                         *(f"{grade.results[q].points:g}" for q in questions), f"{grade.total:g}",
                         spreadsheet_safe(safe_text("; ".join(grade.flags)))])
    return buffer.getvalue()


def feedback_name(submission: str, taken: set[str]) -> str:
    """A file name for a submission's feedback: its path with ``/`` as ``__``, short, unique in ``taken``."""
    stem = submission[:-6] if submission.lower().endswith(".ipynb") else submission
    stem = stem.replace("/", "__").replace("\\", "_")
    stem = "".join(c if (c.isalnum() or c in " ._-") else "_" for c in stem).strip(" .") or "notebook"
    short = stem[:100]
    if short != stem or short.lower() in taken:
        short = f"{stem[:90]}-{hashlib.sha1(submission.encode('utf-8', 'replace')).hexdigest()[:8]}"
    taken.add(short.lower())
    return short + ".txt"


def grade_folder(exercise: str | Path, submissions: str | Path, out: str | Path, *,
                 feedback: str | Path | None = None, tests: str | Path | None = None,
                 limits: Limits = Limits(), seed: int | None = None, jobs: int = 1,
                 progress: Callable[[SubmissionGrade], None] | None = None) -> list[SubmissionGrade]:
    """Grade every notebook in ``submissions`` (and its subfolders) into the gradebook ``out`` and one feedback file each.

    Args:
        exercise: the exercise's name or its folder (``exercises/01_convolution``; the name is its last part).
        submissions: a folder of submitted notebooks, directly or one folder per student.
        out: the gradebook CSV to write.
        feedback: the folder of feedback files (default: ``<out without .csv>_feedback`` beside ``out``).
        tests: a folder of test files instead of the installed package's.
        limits: time, memory and budget limits per submission.
        seed: the seed of the random inputs (default: a fresh one, printed in every feedback file).
        jobs: how many submissions to grade at the same time.
        progress: called with each submission's grade as soon as it is done.

    Returns:
        The grades, in the order of the submissions' names.
    """
    name = Path(exercise).name
    tests = Path(tests) if tests is not None else checks_dir(name)
    questions = load_questions(tests)
    folder = Path(submissions)
    if not folder.is_dir():
        raise ValueError(f"submissions must be a folder of notebooks, got {folder}")
    found = find_submissions(folder)  # every notebook read before any runs
    Sandbox(limits, tests).close()  # the launcher starts (seconds) before any submission's clock does
    seed = Draw(seed).seed  # one seed, so every submission gets the same inputs
    expected = {n: q.expect(seed) for n, q in questions.items()}
    out = Path(out)
    feedback_dir = Path(feedback) if feedback is not None else out.with_name(out.stem + "_feedback")
    hidden = [str(folder), str(feedback_dir), str(out)]
    exercise_path = Path(exercise)
    if exercise_path.is_dir():
        hidden += [str(exercise_path), str(exercise_path.parent / "_masters")]
    taken: set[str] = set()
    files = [feedback_name(s.name, taken) for s in found]
    grades: list[SubmissionGrade | None] = [None] * len(found)
    lock = threading.Lock()

    def pending(submission: Submission) -> SubmissionGrade:
        reason = "the grader stopped before this notebook"
        return SubmissionGrade(submission.name, {n: _failed(q, "missing", f"Not graded: {reason}.")
                                                 for n, q in questions.items()}, [reason], 0.0, ["not graded"])

    def write_gradebook() -> None:
        rows = [g if g is not None else pending(s) for g, s in zip(grades, found)]
        _write_atomically(out, gradebook_text(list(questions), rows))

    def grade(index: int) -> SubmissionGrade:
        submission = found[index]
        start = time.monotonic()
        try:
            result = _grade_loaded(submission, questions, expected, tests, limits, tuple(hidden))
        except Exception as error:  # a bug or a broken machine must not lose the other rows
            reason = f"the grader failed on this notebook ({type(error).__name__}: {safe_text(str(error))[:300]})"
            result = SubmissionGrade(submission.name, {n: _failed(q, "crashed", f"Not graded: {reason}.")
                                                       for n, q in questions.items()}, [reason],
                                     time.monotonic() - start)
        try:
            _write_atomically(feedback_dir / files[index], result.feedback(name, seed))
        except OSError as error:
            result.notes.append(f"its feedback file could not be written ({error})")
        with lock:
            grades[index] = result
            write_gradebook()
        if progress is not None:
            progress(result)
        return result

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(grade, range(len(found))))
    finally:
        with lock:
            write_gradebook()
    return [g for g in grades if g is not None]


__all__ = ["Cell", "Submission", "SubmissionGrade", "feedback_name", "find_submissions", "grade_cells",
           "grade_folder", "grade_submission", "gradebook_text", "needed_cells", "read_cells", "safe_text",
           "spreadsheet_safe"]
