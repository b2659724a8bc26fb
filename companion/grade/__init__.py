"""Graded exercises: self-checks in the notebook, and an instructor's batch grader.

* In an exercise notebook (locally, in Colab or in Kaggle, offline):
  :class:`Exercise` gives ``check("q1", conv_output_size)``, which tests the learner's function on
  random inputs against the framework and names the likely mistake; ``hint("q1")``, which reveals
  one hint at a time; and ``exercise.total()``, the notebook's score.
* For an instructor: ``python -m companion.grade exercises/01_convolution submissions/ --out grades.csv``
  grades a folder of notebooks, each in its own time- and memory-limited process
  (:mod:`companion.grade.batch`), into a gradebook and one feedback file per submission.
* For authors: each question is a :class:`Question` in an otter-grader test file,
  ``companion/exercise_tests/<nn>_<name>/q<k>.py``; student notebooks are built from masters with
  solutions by ``python -m companion.grade.build`` (otter assign).

Introduced with chapter 1's exercises (``exercises/01_convolution``); every chapter's exercise
notebook uses it.
"""

from companion.grade.compare import difference
from companion.grade.exercise import Exercise, checks_dir, exercise_names, load_questions
from companion.grade.question import Case, Draw, Mistake, Outcome, Question, Result
from companion.grade.watch import CONVOLUTION, Forbidden

__all__ = ["CONVOLUTION", "Case", "Draw", "Exercise", "Forbidden", "Mistake", "Outcome", "Question", "Result", "checks_dir",
           "difference", "exercise_names", "load_questions"]
