"""The learner's side of an exercise notebook: ``check``, ``hint`` and the final score.

An exercise notebook starts with::

    from companion.grade import Exercise

    exercise = Exercise("01_convolution")
    check, hint = exercise.check, exercise.hint

and then, after each question, ``check("q1", conv_output_size)``. The checks are read from test
files inside the installed companion package (``companion/exercise_tests/01_convolution/q1.py``),
so they work offline and the same way locally, in Colab and in Kaggle. They need only the
companion's own requirements: where otter-grader (the ``grade`` extra, for authors and instructors)
is not installed, the test files' ``from otter.test_files import test_case`` gets a stand-in.

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import contextlib
import os
import re
import runpy
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

from companion.grade.question import Question, Result

#: Where the checks of every exercise live (shipped as package data).
TESTS_ROOT = Path(__file__).resolve().parents[1] / "exercise_tests"

#: Set in the instructor's grading processes, where check cells must not run the checks themselves.
GRADING_ENV = "COMPANION_GRADING"


def exercise_names() -> list[str]:
    """The exercises that have checks, e.g. ``["01_convolution", "02_pooling", "03_training"]``."""
    return sorted(p.name for p in TESTS_ROOT.iterdir() if p.is_dir() and list(p.glob("q*.py")))


def checks_dir(name: str) -> Path:
    """The directory of the checks of exercise ``name`` (e.g. ``"01_convolution"``)."""
    if not isinstance(name, str) or not (TESTS_ROOT / name).is_dir():
        raise ValueError(f"no checks for exercise {name!r}; the installed companion has {', '.join(exercise_names())}")
    return TESTS_ROOT / name


@contextlib.contextmanager
def _otter_test_case() -> Iterator[None]:
    """Let a test file import ``otter.test_files.test_case`` where otter-grader is not installed.

    The decorator only matters to otter (authoring, ``otter assign``); the learner's checks use
    ``QUESTION``. The stand-in is visible only while the test files load, so ``import otter``
    elsewhere still fails as usual.
    """
    try:
        import otter.test_files  # noqa: F401  (installed: the test files use the real decorator)
    except ImportError:
        pass
    else:
        yield
        return
    otter, test_files = types.ModuleType("otter"), types.ModuleType("otter.test_files")
    test_files.test_case = lambda *args, **kwargs: (lambda function: function)  # type: ignore[attr-defined]
    otter.test_files = test_files  # type: ignore[attr-defined]
    sys.modules.update({"otter": otter, "otter.test_files": test_files})
    try:
        yield
    finally:
        for name in ("otter", "otter.test_files"):
            if sys.modules.get(name) in (otter, test_files):
                del sys.modules[name]


def load_questions(directory: str | Path) -> dict[str, Question]:
    """Load every ``q<k>.py`` test file of a directory, in question order.

    Each file is an otter-grader exception-based test file (``name``, ``points``, a ``test_case``)
    that also defines ``QUESTION``, the :class:`~companion.grade.question.Question` it grades.
    """
    directory = Path(directory)
    paths = sorted(directory.glob("q*.py"), key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)])
    if not paths:
        raise ValueError(f"no test files q*.py in {directory}")
    questions = {}
    for path in paths:
        with _otter_test_case():
            namespace = runpy.run_path(str(path))
        question = namespace.get("QUESTION")
        if not isinstance(question, Question) or namespace.get("name") != question.name:
            raise ValueError(f"{path} must define QUESTION (a Question) and name == QUESTION.name")
        questions[question.name] = question
    return questions


def question_file(directory: str | Path, name: str) -> Path:
    """The test file of question ``name`` in ``directory``."""
    return Path(directory) / f"{name}.py"


class Exercise:
    """The checks of one exercise notebook, with hints and a running score.

    Args:
        name: the exercise, e.g. ``"01_convolution"``.
        tests: a directory of test files, instead of the installed package's.
    """

    def __init__(self, name: str, tests: str | Path | None = None) -> None:
        self.name = name
        self.results: dict[str, Result] = {}
        self._hints_shown: dict[str, int] = {}
        if os.environ.get(GRADING_ENV):  # the instructor's grader checks every question itself, outside
            self.checks_dir, self.questions = Path(), {}  # the notebook, and keeps the checks from it
            return
        self.checks_dir = Path(tests) if tests is not None else checks_dir(name)
        self.questions = load_questions(self.checks_dir)

    def _question(self, question: str) -> Question:
        if question not in self.questions:
            raise ValueError(f"no question {question!r} in exercise {self.name}; "
                             f"the questions are {', '.join(self.questions)}")
        return self.questions[question]

    def grade(self, question: str, function: Callable, seed: int | None = None) -> Result:
        """Grade ``function`` as the answer to ``question`` and return the :class:`Result` (prints nothing)."""
        result = self._question(question).grade(function, seed=seed)
        self.results[question] = result
        return result

    def check(self, question: str, function: Callable) -> None:
        """Run the checks of ``question`` on ``function`` and print the verdict, points and feedback."""
        if os.environ.get(GRADING_ENV):
            return  # the instructor's grader checks every question itself, outside the notebook
        spec = self._question(question)
        name = getattr(function, "__name__", None)
        if callable(function) and name != spec.function:
            print(f"(note: {question} grades {spec.function}; you passed {name})")
        print(self.grade(question, function).report())

    def hint(self, question: str) -> None:
        """Print the next hint of ``question`` (one more each call)."""
        if os.environ.get(GRADING_ENV):
            return
        spec = self._question(question)
        if not spec.hints:
            print(f"{question} has no hints.")
            return
        shown = self._hints_shown.get(question, 0)
        if shown >= len(spec.hints):
            print(f"No more hints for {question}: all {len(spec.hints)} are shown above. "
                  f"Compare your {spec.function} with {spec.oracle} on a small input.")
            return
        self._hints_shown[question] = shown + 1
        print(f"Hint {shown + 1} of {len(spec.hints)} for {question} ({spec.function}): {spec.hints[shown]}")

    def total(self) -> None:
        """Print the score of every question (its last check) and the total."""
        if os.environ.get(GRADING_ENV):
            return
        width = max(len(q.function) for q in self.questions.values())
        lines = [f"Exercise {self.name}"]
        total = maximum = 0.0
        for name, question in self.questions.items():
            result = self.results.get(name)
            points = result.points if result else 0.0
            status = result.status if result else "not checked: run its check cell"
            total, maximum = total + points, maximum + question.points
            lines.append(f"  {name}  {question.function:<{width}}  {points:g}/{question.points:g}  {status}")
        lines.append(f"Total: {total:g} / {maximum:g} points")
        print("\n".join(lines))


__all__ = ["Exercise", "GRADING_ENV", "TESTS_ROOT", "checks_dir", "exercise_names", "load_questions", "question_file"]
