"""The exercise notebooks: masters score full marks, student notebooks run and score 0, every known
mistake gets its own message, calling the framework scores 0, and no solution reaches a learner."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import nbformat
import pytest
from torch import nn

import companion.count
import companion.pool
from companion.grade import Exercise, exercise_names, load_questions
from companion.grade.batch import grade_submission
from companion.grade.build import masters, stale, student_path
from companion.grade.exercise import checks_dir

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
MASTERS = masters(EXERCISES)
NAMES = [m.stem for m in MASTERS]
QUESTIONS = {name: load_questions(checks_dir(name)) for name in NAMES}
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("part*/[0-9][0-9]_*.ipynb"))

# tests/answers/<exercise>.py: a right answer per question, one wrong answer per known mistake, and cheats.
ANSWERS = {p.stem: runpy.run_path(str(p)) for p in sorted((ROOT / "tests" / "answers").glob("[0-9][0-9]_*.py"))}
# (exercise, question, implementation, its mistake, words of the message it must get)
WRONG = [(name, *row) for name, answers in ANSWERS.items() for row in answers["WRONG"]]
# (exercise, question, an answer that calls what it is asked to write)
CHEATS = [(name, *row) for name, answers in ANSWERS.items() for row in answers["CHEATS"]]


def _solution_lines(master: Path) -> list[str]:
    """The lines of a master between its solution markers (long enough to be telling)."""
    lines, inside = [], False
    for cell in nbformat.read(str(master), as_version=4).cells:
        for line in cell.source.splitlines() if cell.cell_type == "code" else []:
            if "# BEGIN SOLUTION" in line:
                inside = True
            elif "# END SOLUTION" in line:
                inside = False
            elif inside and len(line.strip()) >= 12:
                lines.append(line.strip())
    return lines


def test_every_exercise_has_a_master_a_student_notebook_and_three_to_six_checked_questions():
    assert NAMES == exercise_names() == CHAPTERS == list(ANSWERS)  # one per chapter, each with its answers file
    for master in MASTERS:
        cells = nbformat.read(str(master), as_version=4).cells
        declared = dict(re.findall(r"# BEGIN QUESTION\nname: (q\d+)\npoints: (\d+)", "\n".join(
            c.source for c in cells if c.cell_type == "raw")))
        questions = QUESTIONS[master.stem]
        assert 3 <= len(questions) <= 6 and set(declared) == set(questions)
        for name, question in questions.items():
            assert float(declared[name]) == question.points  # otter's points == the check's points
            # the question names its function (or its class, for a module the learner writes)
            assert any(f"def {question.function}(" in c.source or f"class {question.function}(" in c.source for c in cells)
            assert any(c.source == f'check("{name}", {question.function})' for c in cells)
        assert student_path(master, EXERCISES).is_file()


@pytest.mark.parametrize("master", MASTERS, ids=NAMES)
def test_master_scores_full_marks_in_the_batch_grader(master):
    questions = QUESTIONS[master.stem]
    expected = {n: q.expect() for n, q in questions.items()}
    grade = grade_submission(master, questions, expected, checks_dir(master.stem))
    assert grade.total == grade.max_total, "\n".join(r.report() for r in grade.results.values())
    assert grade.notes == []


@pytest.mark.parametrize("name", NAMES)
def test_untouched_student_notebook_runs_to_the_end_and_scores_zero(name):
    from nbclient import NotebookClient

    notebook = nbformat.read(str(student_path(EXERCISES / "_masters" / f"{name}.ipynb", EXERCISES)), as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert not [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    for question in QUESTIONS[name].values():
        assert f"Not answered yet: {question.function} still raises NotImplementedError" in outputs
    total = sum(q.points for q in QUESTIONS[name].values())
    assert f"Total: 0 / {total:g} points" in outputs


def test_student_notebooks_are_up_to_date_with_their_masters():
    assert stale(EXERCISES) == []


def test_the_build_can_be_limited_to_named_exercises_and_names_an_unknown_one():
    assert masters(EXERCISES, only=["02_pooling"]) == [EXERCISES / "_masters" / "02_pooling.ipynb"]
    with pytest.raises(ValueError, match="no master named 99_nothing .*masters: 01_convolution"):
        masters(EXERCISES, only=["99_nothing"])


@pytest.mark.parametrize("master", MASTERS, ids=NAMES)
def test_no_solution_line_reaches_the_student_notebook_the_hints_or_the_feedback(master):
    solution = _solution_lines(master)
    assert len(solution) >= 10
    student = student_path(master, EXERCISES).read_text()
    hints = [h for q in QUESTIONS[master.stem].values() for h in q.hints]
    feedback = [m.message for q in QUESTIONS[master.stem].values() for m in q.mistakes]
    for line in solution:
        assert line not in student, line
        assert not any(line in hint for hint in hints), line
        if "=" in line or line.startswith("return"):  # feedback may name one missing call, never a computation
            assert not any(line in message for message in feedback), line


# ----------------------------------------------------------------------------------------------
# wrong answers, one per known mistake (and a right one per question), from tests/answers/


def _answer(implementation, mistake):
    def answer(*args, **kwargs):
        return implementation(*args, **kwargs, mistake=mistake)
    answer.__name__ = implementation.__name__
    return answer


@pytest.mark.parametrize("exercise, question, implementation", sorted(
    {(e, q, i) for e, q, i, _, _ in WRONG}, key=lambda row: row[:2]), ids=lambda v: getattr(v, "__name__", v))
def test_the_reference_implementation_of_the_wrong_answers_passes(exercise, question, implementation):
    result = QUESTIONS[exercise][question].grade(_answer(implementation, None))
    assert result.passed, result.report()


@pytest.mark.parametrize("exercise, question, implementation, mistake, words", WRONG,
                         ids=[f"{e}-{q}-{m}" for e, q, _, m, _ in WRONG])
def test_a_known_mistake_gets_its_own_message(exercise, question, implementation, mistake, words):
    result = QUESTIONS[exercise][question].grade(_answer(implementation, mistake))
    assert result.status == "fail" and result.points == 0
    likely = [m for m in result.messages if m.startswith("Likely mistake: ")]
    assert likely and words in likely[0], result.report()


def test_every_known_mistake_is_exercised_by_a_wrong_answer():
    for exercise, questions in QUESTIONS.items():
        for name, question in questions.items():
            words = [w for e, q, _, _, w in WRONG if (e, q) == (exercise, name)]
            for mistake in question.mistakes:
                assert any(w in mistake.message for w in words), (exercise, name, mistake.message)


def test_a_loss_returned_as_a_tensor_is_told_to_use_item():
    report = QUESTIONS["03_training"]["q3"].grade(_answer(ANSWERS["03_training"]["train_step"], "tensor")).report()
    assert "expected a Python float (use .item())" in report


# ----------------------------------------------------------------------------------------------
# answers that call what they are asked to write


@pytest.mark.parametrize("exercise, question, answer", CHEATS, ids=[f"{e}-{q}-{i}" for i, (e, q, _) in enumerate(CHEATS)])
def test_an_answer_that_calls_the_framework_scores_zero_and_is_told_why(exercise, question, answer):
    result = QUESTIONS[exercise][question].grade(answer)
    assert result.status == "forbidden" and result.points == 0, result.report()
    assert "yourself, so the answer scores 0" in result.report()


def test_the_exercise_object_loads_the_checks_from_the_installed_package():
    exercise = Exercise("02_pooling")
    assert list(exercise.questions) == ["q1", "q2", "q3"]
    assert exercise.checks_dir == Path(companion.pool.__file__).parent / "exercise_tests" / "02_pooling"
    assert companion.count.count_parameters(nn.Linear(2, 2)) == 6  # the companion module the q2 check forbids exists
