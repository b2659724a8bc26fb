"""Grade a folder of submitted exercise notebooks into a gradebook.

Usage::

    python -m companion.grade exercises/01_convolution submissions/ --out grades.csv

writes ``grades.csv`` (one row per submission, one column per question, the total) and a feedback
file per submission in ``grades_feedback/``. See :mod:`companion.grade.batch`.
"""

from __future__ import annotations

import argparse
import sys
import time

from companion.grade import extra

extra.require("batch grading", ("nbformat", "IPython"))
from companion.grade.batch import SubmissionGrade, grade_folder, safe_text  # noqa: E402
from companion.grade.sandbox import Limits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("exercise", help="the exercise's folder or name, e.g. exercises/01_convolution")
    parser.add_argument("submissions", help="a folder of submitted .ipynb notebooks")
    parser.add_argument("--out", required=True, help="the gradebook CSV to write")
    parser.add_argument("--feedback", help="folder for the feedback files (default: <out>_feedback/)")
    parser.add_argument("--tests", help="a folder of test files instead of the installed package's")
    parser.add_argument("--timeout", type=float, default=Limits.timeout,
                        help="seconds allowed for each code cell and for each question (default %(default)s)")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb,
                        help="MB each submission's processes may use together, on top of torch (default %(default)s)")
    parser.add_argument("--budget", type=float,
                        help="wall-clock seconds for each whole submission (default: 10 x --timeout)")
    parser.add_argument("--seed", type=int, help="seed of the random inputs (default: a fresh one)")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at the same time (default 1)")
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = 10 * args.timeout
    if args.timeout <= 0 or args.memory <= 0 or args.jobs <= 0 or args.budget <= 0:
        parser.error("--timeout, --memory, --budget and --jobs must be positive")

    def progress(grade: SubmissionGrade) -> None:
        points = "  ".join(f"{name} {r.points:g}/{r.max_points:g}" for name, r in grade.results.items())
        flagged = f"  flagged: {'; '.join(grade.flags)}" if grade.flags else ""
        print(f"{safe_text(grade.submission):<32} {points}  total {grade.total:g}/{grade.max_total:g}  "
              f"({grade.seconds:.1f} s){flagged}", flush=True)

    start = time.monotonic()
    try:
        grades = grade_folder(args.exercise, args.submissions, args.out, feedback=args.feedback, tests=args.tests,
                              limits=Limits(timeout=args.timeout, memory_mb=args.memory, budget=args.budget),
                              seed=args.seed,
                              jobs=args.jobs, progress=progress)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"graded {len(grades)} submissions in {time.monotonic() - start:.1f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
