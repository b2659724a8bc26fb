"""A graded question: random cases, the framework as the reference, known mistakes, a verdict.

A :class:`Question` is data, written in one test file per question
(``companion/exercise_tests/<nn>_<name>/q<k>.py``). Grading it has three steps, kept apart so
that the instructor's grader can run the middle one in another process:

1. :meth:`Question.expect` draws random :class:`Case` s and computes, in the grader, the
   reference output (torch, torchvision or the companion) and the output of every known
   :class:`Mistake`;
2. :meth:`Question.run` calls the learner's function on copies of the same inputs and turns what
   it returns (or raises) into :class:`Outcome` s of plain values, while a
   :class:`~companion.grade.watch.Watch` looks for forbidden calls;
3. :meth:`Question.assess` compares, and names the likely mistake: the known mistake whose output
   the learner's matches on every case (e.g. ``F.conv2d(x, w.flip(-2, -1))`` for a flipped kernel).

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import linecache
import secrets
import sysconfig
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from companion.grade.compare import NotPlain, clone, difference, to_plain
from companion.grade.watch import Forbidden, Watch, reachable_codes, scan_function

#: Frames from these directories are the grader's or a library's, not the learner's.
_LIBRARY_DIRS = (str(Path(torch.__file__).resolve().parent), str(Path(__file__).resolve().parents[1]),
                 sysconfig.get_paths()["stdlib"])


class Draw:
    """Random numbers for one check, all from one seed (so a failing check can be replayed).

    Args:
        seed: the seed; a fresh random one when ``None``.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = secrets.randbits(31) if seed is None else int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def int(self, low: int, high: int) -> int:
        """An int in ``[low, high]`` (both included)."""
        return int(torch.randint(low, high + 1, (), generator=self.generator))

    def choice(self, options: Sequence[Any]) -> Any:
        """One of ``options``."""
        return options[self.int(0, len(options) - 1)]

    def uniform(self, low: float, high: float) -> float:
        """A float in ``[low, high)``."""
        return low + (high - low) * float(torch.rand((), generator=self.generator, dtype=torch.float64))

    def normal(self, *shape: int, scale: float = 1.0, dtype: torch.dtype = torch.float64) -> Tensor:
        """A tensor of independent N(0, scale^2) values."""
        return scale * torch.randn(shape, generator=self.generator, dtype=dtype)


@dataclass(frozen=True)
class Case:
    """One input to a graded function.

    Attributes:
        args: plain values (tensors, numbers, tuples of them) passed on to :attr:`Question.call`.
        label: how feedback names this configuration, e.g. ``"x (2, 6, 6), weight (3, 2, 3, 3), stride 2"``.
    """

    args: tuple
    label: str


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer and the feedback that names it.

    Give either ``value`` (the output the mistake produces, computed with the framework, e.g.
    ``lambda x, w, b, s, p: F.conv2d(x, w.flip(-2, -1), b, s, p)``; return ``None`` where the mistake
    cannot show) or ``matches`` (a predicate ``(learner value, expected value, args) -> bool``, or
    ``None`` where it cannot tell; used on the wrong outputs only, for mistakes no formula
    reproduces, like an output one row too large).
    """

    message: str
    value: Callable[..., Any] | None = None
    matches: Callable[[Any, Any, tuple], bool | None] | None = None


def call_function(function: Callable, *args: Any) -> Any:
    """The default way a question calls the learner's function: ``function(*args)``."""
    return function(*args)


@dataclass(frozen=True)
class Outcome:
    """What the learner's function did on one case: a plain value, or an error; and forbidden calls."""

    value: Any = None
    error_type: str | None = None
    error: str | None = None
    where: str | None = None
    forbidden: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_message(self) -> dict[str, Any]:
        """A plain dict (for :func:`companion.grade.sandbox.encode`)."""
        return {"value": self.value, "error_type": self.error_type, "error": self.error,
                "where": self.where, "forbidden": list(self.forbidden), "seconds": float(self.seconds)}

    @classmethod
    def from_message(cls, message: Any) -> Outcome:
        """Rebuild an outcome from :meth:`to_message`, checking every field's type."""
        if type(message) is not dict:
            raise TypeError("an outcome must be a dict")
        text = {k: message.get(k) for k in ("error_type", "error", "where")}
        if any(v is not None and type(v) is not str for v in text.values()):
            raise TypeError("outcome text fields must be str or None")
        forbidden = message.get("forbidden", [])
        if type(forbidden) is not list or any(type(f) is not str for f in forbidden):
            raise TypeError("outcome 'forbidden' must be a list of str")
        seconds = message.get("seconds", 0.0)
        if type(seconds) is not float:
            raise TypeError("outcome 'seconds' must be a float")
        return cls(value=message.get("value"), forbidden=tuple(forbidden), seconds=seconds,
                   **{k: (v[:2000] if v else v) for k, v in text.items()})


@dataclass(frozen=True)
class Expected:
    """The grader's side of a check: the cases, the reference outputs, each mistake's outputs."""

    cases: list[Case]
    reference: list[Any]
    mistakes: list[list[Any]]  # [mistake][case]; None where the mistake cannot show
    seed: int


@dataclass(frozen=True)
class Result:
    """The verdict on one question.

    Attributes:
        status: ``"pass"``, ``"fail"``, ``"unanswered"``, ``"forbidden"`` or, from the instructor's
            grader, ``"missing"``, ``"timeout"``, ``"crashed"``.
        messages: the feedback, one sentence each.
    """

    question: str
    function: str
    points: float
    max_points: float
    status: str
    messages: tuple[str, ...]
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def report(self) -> str:
        """The feedback as printed by a check cell."""
        verdict = "PASS" if self.passed else "FAIL"
        head = f"{self.question} ({self.function}): {verdict}  {_points(self.points)}/{_points(self.max_points)} points"
        return "\n".join([head] + [f"  {m}" for m in self.messages])


@dataclass(frozen=True)
class Question:
    """One graded question (see the module docstring).

    Attributes:
        name: ``"q1"``, ``"q2"``, ... as in the notebook.
        function: the name of the function the learner writes, e.g. ``"conv2d"``.
        points: what the question is worth (all or nothing).
        reference: the correct output for a case's args, computed with the framework.
        oracle: what ``reference`` uses, for feedback (``"torch.nn.functional.conv2d"``).
        cases: draws the random cases of one check.
        mistakes: known mistakes, most specific first.
        hints: revealed one at a time by ``hint(name)``; none of them gives the solution away.
        forbidden: what the learner's function may not call.
        call: how the learner's function is called on a case's args (``function(*args)`` unless the
            question builds objects first, e.g. a model for a training step).
        rtol, atol: tolerances for floating-point outputs.
    """

    name: str
    function: str
    points: float
    reference: Callable[..., Any]
    oracle: str
    cases: Callable[[Draw], list[Case]]
    mistakes: tuple[Mistake, ...] = ()
    hints: tuple[str, ...] = ()
    forbidden: Forbidden = field(default_factory=Forbidden)
    call: Callable[..., Any] = call_function
    rtol: float = 1e-5
    atol: float = 1e-6

    def expect(self, seed: int | None = None) -> Expected:
        """Draw the cases of one check and compute the reference and mistake outputs."""
        draw = Draw(seed)
        return self._expected(self.cases(draw), draw.seed)

    def _expected(self, cases: list[Case], seed: int) -> Expected:
        reference = [to_plain(self.reference(*clone(case.args))) for case in cases]
        mistakes = [[_mistake_value(m, case.args) for case in cases] for m in self.mistakes]
        return Expected(cases=cases, reference=reference, mistakes=mistakes, seed=seed)

    def run(self, function: Callable, cases: Sequence[Case], *, interruptible: bool = True) -> list[Outcome]:
        """Call the learner's function on (copies of) every case, in this process."""
        return [run_case(self, function, case.args, interruptible=interruptible) for case in cases]

    def assess(self, expected: Expected, outcomes: Sequence[Outcome], static: Sequence[str] = ()) -> Result:
        """Compare outcomes with the reference, and name the likely mistake (see the module docstring).

        An output that cannot even be compared (a value no comparison was written for) fails this
        question alone, with the reason.

        Args:
            expected: from :meth:`expect`.
            outcomes: one per case, from :meth:`run` (here or in a grading process).
            static: forbidden names found in the function's source (:func:`~companion.grade.watch.scan_source`).
        """
        try:
            return self._assess(expected, outcomes, static)
        except Exception as error:  # noqa: BLE001 - one question's output must not stop the others' grading
            seconds = sum(o.seconds for o in outcomes if type(o.seconds) is float)
            return _result_factory(self, seconds)("fail", [
                f"{self.function}'s output could not be compared with the expected one "
                f"({type(error).__name__}: {str(error)[:200]}), so it scores 0. Return what the question asks for: "
                f"a tensor, a number, or a tuple or dict of them."])

    def _assess(self, expected: Expected, outcomes: Sequence[Outcome], static: Sequence[str] = ()) -> Result:
        cases, name = expected.cases, self.function
        seconds = sum(o.seconds for o in outcomes)
        result = _result_factory(self, seconds)
        if len(outcomes) != len(cases):
            return result("crashed", [f"the grader got {len(outcomes)} results for {len(cases)} cases"])
        if all(o.error_type == "NotImplementedError" and (o.where is None or "NotImplementedError" in o.where)
               for o in outcomes):
            return result("unanswered", [f"Not answered yet: {name} still raises NotImplementedError. "
                                         "Replace the `raise NotImplementedError(...)` line with your code."])
        forbidden = sorted({hit for o in outcomes for hit in o.forbidden} | set(static))
        if forbidden:
            operators = " (aten.* are the operators torch's own functions run)" if any(
                hit.startswith("aten.") for hit in forbidden) else ""
            return result("forbidden", [
                f"{name} calls {', '.join(forbidden)}{operators}. This exercise asks you to write "
                f"{self.forbidden.what or 'this function'} yourself, so the answer scores 0: "
                f"use the framework to test your answer, not inside it."])
        diffs = [None if o.error_type else difference(o.value, e, rtol=self.rtol, atol=self.atol)
                 for o, e in zip(outcomes, expected.reference)]
        failing = [i for i, (o, d) in enumerate(zip(outcomes, diffs)) if o.error_type or d]
        if not failing:
            return result("pass", [f"{name} matches {self.oracle} on {len(cases)} random configurations."],
                          points=self.points)
        messages = [f"{name} is wrong on {len(failing)} of {len(cases)} random configurations."]
        mistake = self._explain(expected, outcomes, diffs)
        if mistake is not None:
            messages.append(f"Likely mistake: {mistake.message}")
        errors = [i for i in failing if outcomes[i].error_type]
        if errors:
            o = outcomes[errors[0]]
            where = f" (at `{o.where}`)" if o.where else ""
            messages.append(f"It raised an error on {len(errors)} of them, e.g. with {cases[errors[0]].label}: "
                            f"{o.error_type}: {o.error}{where}")
        wrong = [i for i in failing if not outcomes[i].error_type]
        if wrong:
            messages.append(f"For example, with {cases[wrong[0]].label}: {diffs[wrong[0]]}.")
        if mistake is None and wrong:
            messages.append(f"Compare your output with {self.oracle} on that input to find the difference.")
        if self.hints:
            messages.append(f'Need a nudge? hint("{self.name}") reveals one hint at a time ({len(self.hints)} available).')
        return result("fail", messages)

    def _explain(self, expected: Expected, outcomes: Sequence[Outcome], diffs: Sequence[str | None]) -> Mistake | None:
        """The first mistake whose output matches the learner's on every case it returned a value for."""
        for mistake, values in zip(self.mistakes, expected.mistakes):
            explains, consistent = False, True
            for i, outcome in enumerate(outcomes):
                if outcome.error_type:
                    continue
                if mistake.matches is not None:
                    if diffs[i] is None:
                        continue
                    try:
                        same = mistake.matches(outcome.value, expected.reference[i], expected.cases[i].args)
                    except Exception:
                        same = False
                    if same is None:  # the predicate cannot tell on this case
                        continue
                else:
                    if values[i] is None:
                        continue
                    same = difference(outcome.value, values[i], rtol=self.rtol, atol=self.atol) is None
                if not same:
                    consistent = False
                    break
                explains = explains or diffs[i] is not None
            if consistent and explains:
                return mistake
        return None

    def grade(self, function: Callable, seed: int | None = None) -> Result:
        """Check ``function`` in this process: :meth:`expect`, :meth:`run`, :meth:`assess`."""
        if not callable(function):
            return _result_factory(self, 0.0)("missing", [
                f"{self.name} grades the function {self.function}; got {type(function).__name__} {function!r:.60}"])
        draw = Draw(seed)
        cases = self.cases(draw)
        outcomes = self.run(function, cases)  # on copies: the cases stay as drawn
        if all(o.error_type == "NotImplementedError" and (o.where is None or "NotImplementedError" in o.where)
               for o in outcomes):  # nothing to compare with yet
            expected = Expected(cases=cases, reference=[None] * len(cases), mistakes=[], seed=draw.seed)
        else:
            expected = self._expected(cases, draw.seed)
        return self.assess(expected, outcomes, scan_function(function, self.forbidden))

    def assert_passes(self, function: Callable | None) -> None:
        """Raise ``AssertionError`` with the feedback unless ``function`` passes (for otter's test files)."""
        if function is None:
            raise AssertionError(f"{self.function} is not defined")
        result = self.grade(function)
        if not result.passed:
            raise AssertionError(result.report())


def run_case(question: Question, function: Callable, args: tuple, *, interruptible: bool = True) -> Outcome:
    """Call ``question.call(function, *args)`` on copies of ``args``, watching for forbidden calls.

    Args:
        interruptible: let ``KeyboardInterrupt`` through (a learner pressing stop); a grading
            process records it as an error instead.
    """
    args = clone(args)
    watch = Watch(question.forbidden, allowed=_call_codes(question.call))
    start = time.perf_counter()
    try:
        with watch:
            value = question.call(function, *args)
        plain = to_plain(value)
    except NotPlain as error:
        return Outcome(error_type="TypeError", forbidden=watch.hits, seconds=time.perf_counter() - start,
                       error=f"{question.function} returned {error}; return a tensor or a number")
    except KeyboardInterrupt:
        if interruptible:
            raise
        return Outcome(error_type="KeyboardInterrupt", error="interrupted", forbidden=watch.hits,
                       seconds=time.perf_counter() - start)
    except BaseException as error:  # noqa: BLE001 - SystemExit too: a learner's sys.exit() is an error
        return Outcome(error_type=type(error).__name__, error=_message(error), where=_where(error),
                       forbidden=watch.hits, seconds=time.perf_counter() - start)
    return Outcome(value=plain, forbidden=watch.hits, seconds=time.perf_counter() - start)


def _call_codes(call: Callable) -> frozenset:
    """The code a question's ``call`` runs from the checks' folder (allowed; the rest of that folder is not)."""
    return frozenset(reachable_codes(call))


def _mistake_value(mistake: Mistake, args: tuple) -> Any:
    if mistake.value is None:
        return None
    try:
        value = mistake.value(*clone(args))
    except Exception:  # the mistake cannot show on this case (e.g. no padding to forget)
        return None
    return None if value is None else to_plain(value)


def _result_factory(question: Question, seconds: float) -> Callable[..., Result]:
    def result(status: str, messages: Sequence[str], points: float = 0.0) -> Result:
        return Result(question=question.name, function=question.function, points=points,
                      max_points=question.points, status=status, messages=tuple(messages), seconds=seconds)
    return result


def _message(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"the function called sys.exit({error.code!r})"
    if isinstance(error, MemoryError):
        return "ran out of memory"
    text = str(error).strip().splitlines()
    return (text[0] if text else "(no message)")[:300]


def _where(error: BaseException) -> str | None:
    """The learner's source line where ``error`` was raised (the last frame outside the libraries)."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        filename = frame.filename or ""
        if filename.startswith(_LIBRARY_DIRS) or "site-packages" in filename or filename.startswith("<frozen"):
            continue
        line = frame.line or linecache.getline(filename, frame.lineno or 0).strip()
        return line[:200] if line else None
    return None


def _points(value: float) -> str:
    return f"{value:g}"


__all__ = ["Case", "Draw", "Expected", "Mistake", "Outcome", "Question", "Result", "call_function", "run_case"]
