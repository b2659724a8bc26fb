"""How long the batch grader takes on a class: 300 submissions of exercise 1, good and bad mixed.

Run from the repository root::

    python benchmarks/grade_class.py                 # 300 notebooks, 2 at a time
    python benchmarks/grade_class.py --count 30      # a quick run

It writes the notebooks into a temporary folder (built from the master's answers: right ones,
partial ones, known mistakes, unanswered stubs, cells that raise, loop or exit, answers that call
the forbidden convolution, hostile cells), grades them with ``python -m companion.grade``'s
``grade_folder`` (``--timeout 10``, the default memory limit and budget), checks every score
against what it should be, and prints the wall time. The target: at most 10 minutes for 300
submissions on 2 cores. It also prints the CPU time the grader and all its processes used, and
what that makes on 2 idle cores (CPU time / 2), since a shared machine's wall time says little.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from companion.grade.batch import grade_folder  # noqa: E402
from companion.grade.sandbox import Limits, _Launcher  # noqa: E402


def _cpu_seconds(pid: int | str = "self") -> float:
    """CPU time of a process and of its children that ended (user + system, from /proc)."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _solutions() -> dict[str, str]:
    """The master's answer cells, without otter's solution markers and the learner's stub."""
    master = nbformat.read(str(ROOT / "exercises" / "_masters" / "01_convolution.ipynb"), as_version=4)
    found = {}
    for cell in master.cells:
        match = re.search(r"^def (\w+)\(", cell.source, re.M)
        if cell.cell_type == "code" and match:
            source = re.sub(r'\n\s*""" # BEGIN PROMPT.*?""" # END PROMPT', "", cell.source, flags=re.S)
            found[match.group(1)] = "\n".join(line for line in source.splitlines() if "SOLUTION" not in line)
    return found


def kinds() -> list[tuple[str, dict[str, str], tuple[str, ...], float]]:
    """(kind, answers, extra cells, expected total), in the proportions of a class."""
    right = _solutions()
    flipped = right["corr2d"].replace("* kernel)", "* kernel.flip(0, 1))")
    no_bias = right["conv2d"].replace("out += bias[:, None, None]", "pass")
    one_short = right["conv_output_size"].replace("// stride + 1", "// stride")
    cheat = ("def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
             "    return F.conv2d(x[None], weight, bias, stride, padding)[0]")
    return [
        ("correct", right, (), 10), ("correct", right, (), 10), ("correct", right, (), 10),
        ("correct_with_plots", right, ("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.close('all')",), 10),
        ("partial", {"conv_output_size": right["conv_output_size"], "corr2d": flipped}, (), 2),
        ("mistakes", {"conv_output_size": one_short, "corr2d": flipped, "conv2d": no_bias}, (), 0),
        ("unanswered", {}, (), 0),
        ("raises", {**right, "conv_output_size": "def conv_output_size(n, *args):\n    return n // 0"}, ("1 / 0",), 8),
        ("cheats", {**right, "conv2d": cheat}, (), 5),
        ("exits", right, ("import sys\nsys.exit(0)",), 10),
    ]


def hostile() -> list[tuple[str, dict[str, str], tuple[str, ...], float]]:
    """Rarer notebooks: one that loops, one that kills its process, one that tampers."""
    right = _solutions()
    return [("loops", {**right, "conv2d": "def conv2d(*args):\n    while True:\n        pass"}, (), 5),
            ("kills", right, ("import os\nos._exit(3)",), 10),
            ("tampers", {}, ("import companion.grade.question as q\nq.run_case = None\ncheck = print",), 0)]


def write_class(folder: Path, count: int) -> dict[str, float]:
    """``count`` notebooks in ``folder`` (one per student folder, as an LMS exports them); name -> expected total."""
    student = nbformat.read(str(ROOT / "exercises" / "01_convolution" / "01_convolution.ipynb"), as_version=4)
    common, rare = kinds(), hostile()
    expected = {}
    for index in range(count):
        kind, answers, extra, total = rare[index // 100 % len(rare)] if index % 100 == 99 else common[index % len(common)]
        notebook = copy.deepcopy(student)
        for cell in notebook.cells:
            for function, source in answers.items():
                if cell.cell_type == "code" and f"def {function}(" in cell.source:
                    cell.source = source
        for source in extra:
            notebook.cells.insert(3, nbformat.v4.new_code_cell(source))
        name = f"student_{index:03d}_{kind}/01_convolution.ipynb"
        (folder / name).parent.mkdir(parents=True)
        nbformat.write(notebook, str(folder / name))
        expected[name] = total
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="submissions (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="submissions graded at once (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per cell and question (default %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        submissions = Path(folder) / "submissions"
        expected = write_class(submissions, args.count)
        _Launcher.get()  # started (and its start timed) outside the measurement
        launcher = _Launcher.get().process.pid
        cpu = _cpu_seconds() + _cpu_seconds(launcher)
        start = time.monotonic()
        grades = grade_folder("01_convolution", submissions, Path(folder) / "grades.csv", seed=0, jobs=args.jobs,
                              limits=Limits(timeout=args.timeout))
        seconds = time.monotonic() - start
        cpu = _cpu_seconds() + _cpu_seconds(launcher) - cpu
        _Launcher.reset()
    wrong = [f"{g.submission}: {g.total:g}, expected {expected[g.submission]:g}" for g in grades
             if g.total != expected[g.submission]]
    print(f"graded {len(grades)} submissions of 01_convolution in {seconds:.1f} s "
          f"({seconds / max(1, len(grades)):.2f} s each, {args.jobs} at a time); {len(wrong)} scored unexpectedly")
    print(f"CPU time: {cpu:.1f} s ({cpu / max(1, len(grades)):.2f} s each): {cpu / 2:.1f} s on 2 idle cores")
    for line in wrong[:20]:
        print("  " + line)
    return 1 if wrong or len(grades) != args.count else 0


if __name__ == "__main__":
    sys.exit(main())
