"""companion.grade: diagnostics, forbidden calls, the learner's checks, grading processes, the batch grader."""

from __future__ import annotations

import copy
import csv
import io
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import companion.conv
from companion.grade import Case, Exercise, Forbidden, Mistake, Question
from companion.grade.__main__ import main
from companion.grade.batch import _write_atomically, gradebook_text, read_cells
from companion.grade.compare import NotPlain, check_plain, difference, to_plain
from companion.grade.exercise import GRADING_ENV, TESTS_ROOT, checks_dir
from companion.grade.sandbox import Limits, Sandbox, SandboxDied, SandboxError, decode, encode
from companion.grade.watch import Watch, scan_source

ROOT = Path(__file__).resolve().parents[1]
CONV = Forbidden(ops=("aten.convolution",), modules=("companion.conv",), names=("conv2d", "Conv2d"), what="it")


# ----------------------------------------------------------------------------------------------
# diagnostics


def test_difference_accepts_close_values_and_says_what_differs():
    expected = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    assert difference(expected + 1e-9, expected) is None
    assert difference(expected.float(), expected) is None
    assert "shape (3, 2); expected (2, 3)" in difference(expected.T, expected)
    one_off = expected.clone()
    one_off[1, 2] += 0.5
    assert "1 of 6 entries" in difference(one_off, expected) and "(1, 2)" in difference(one_off, expected)
    assert "NaN" in difference(expected * float("nan"), expected)
    assert "floating-point" in difference(expected.long(), expected)
    assert "expected a tensor of shape (2, 3)" in difference([[0.0] * 3] * 2, expected)


def test_difference_is_strict_about_ints_and_floats():
    assert difference(5, 5) is None
    assert "the float 5.0; expected the int 5" in difference(5.0, 5)
    assert "is 4; expected 5" in difference(4, 5)
    assert "Python int" in difference(torch.tensor(5), 5)
    assert difference(1.5 + 1e-9, 1.5) is None and "1.6" in difference(1.6, 1.5)
    assert ".item()" in difference(torch.tensor(1.5), 1.5)
    assert "expected a bool" in difference(1, True)


def test_difference_walks_tuples_and_dicts():
    a = torch.zeros(2)
    assert difference((a, 1), (a, 1)) is None
    assert "element 1 of your output is 2" in difference((a, 2), (a, 1))
    assert "3 elements; expected 2" in difference((a, 1, 1), (a, 1))
    assert "keys ['x']; expected ['y']" in difference({"x": a}, {"y": a})
    assert difference({"the loss": 2.0}, {"the loss": 1.0}).startswith("the loss is 2")


def test_to_plain_converts_numpy_scalars_subclasses_and_rejects_objects():
    assert type(to_plain(np.int64(3))) is int and type(to_plain(np.float32(0.5))) is float
    assert type(to_plain(np.ones((2, 2)))) is torch.Tensor
    assert type(to_plain(nn.Parameter(torch.ones(2)))) is torch.Tensor
    assert to_plain((1, [2.0, {"a": None}])) == (1, [2.0, {"a": None}])
    with pytest.raises(NotPlain, match="Linear"):
        to_plain(nn.Linear(1, 1))
    with pytest.raises(NotPlain, match="object"):
        to_plain(np.array([object()]))


def test_check_plain_rejects_subclasses_and_unknown_types():
    check_plain({"a": [torch.zeros(1), 1, 2.0, "s", None, (True,)]})
    for bad in (nn.Parameter(torch.zeros(1)), np.float64(1.0), {1: 2}, object()):
        with pytest.raises(NotPlain):
            check_plain(bad)


# ----------------------------------------------------------------------------------------------
# forbidden calls


def _conv_module(x, w):
    layer = nn.Conv2d(1, 1, 3, bias=False)
    layer.weight.data = w
    return layer(x)


@pytest.mark.parametrize("call", [F.conv2d, torch.conv2d, _conv_module,
                                  lambda x, w: torch.ops.aten.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)],
                         ids=["F.conv2d", "torch.conv2d", "nn.Conv2d", "aten"])
def test_watch_sees_the_convolution_however_it_is_reached(call):
    x, w = torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3)
    with Watch(CONV) as watch:
        call(x, w)
    assert watch.hits == ("aten.convolution",)


def test_watch_sees_calls_into_a_forbidden_module_and_restores_the_profiler():
    x, w = torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3)
    before = sys.getprofile()
    with Watch(CONV) as watch:
        F.unfold(x, 3)  # im2col is allowed
    assert watch.hits == () and sys.getprofile() is before
    alias = companion.conv.conv2d
    with Watch(CONV) as watch:
        alias(x, w)
    assert any(hit.startswith("companion.conv.") for hit in watch.hits)


def test_scan_source_finds_attributes_aliases_and_helpers_of_the_graded_function_only():
    cells = ["import torch.nn.functional as F\nfrom torch.nn.functional import conv2d as c",
             "def helper(x, w):\n    return c(x, w)\n\ndef conv2d(x, w):\n    return helper(x, w)",
             "def corr2d(x, w):\n    return F.conv2d(x, w)",
             "print(F.conv2d(x, w))  # checking an answer outside the function is fine",
             "%timeit this is not python"]
    assert scan_source(cells, "conv2d", CONV) == ("c (imported from torch.nn.functional.conv2d)",)
    assert scan_source(cells, "corr2d", CONV) == ("F.conv2d",)
    assert scan_source(["import companion.conv as cc\ndef f(x):\n    return cc.im2col(x)"], "f", CONV) == (
        "cc (imported from companion.conv)",)
    assert scan_source(["def f(x):\n    return x.unfold(1, 3, 1)"], "f", CONV) == ()


# ----------------------------------------------------------------------------------------------
# a question


def _cases(draw):
    return [Case((draw.normal(3), k), f"k={k}") for k in (1, 2, 3)]


DOUBLE = Question(
    name="q1", function="double", points=2, reference=lambda x, k: 2 * x, oracle="2 * x", cases=_cases,
    mistakes=(Mistake("tripled", value=lambda x, k: 3 * x),
              Mistake("tripled when k > 1", value=lambda x, k: 3 * x if k > 1 else None),
              Mistake("one too many", matches=lambda v, e, args: v.shape[0] == e.shape[0] + 1)),
    hints=("multiply", "by two"), forbidden=CONV)


def test_assess_passes_a_right_answer_and_copies_the_inputs():
    def double(x, k):
        x.mul_(2)  # in place: the reference must not see it
        return x
    result = DOUBLE.grade(double)
    assert result.passed and result.points == 2 and "on 3 random configurations" in result.report()


def test_assess_names_the_mistake_that_explains_every_case():
    assert "Likely mistake: tripled\n" in DOUBLE.grade(lambda x, k: 3 * x).report() + "\n"
    assert "Likely mistake: tripled when k > 1" in DOUBLE.grade(lambda x, k: 3 * x if k > 1 else 2 * x).report()
    assert "Likely mistake: one too many" in DOUBLE.grade(lambda x, k: torch.cat([2 * x, x[:1]])).report()
    unexplained = DOUBLE.grade(lambda x, k: 2 * x + 1)
    assert unexplained.status == "fail" and "Likely" not in unexplained.report()
    assert 'hint("q1")' in unexplained.report() and "with k=1" in unexplained.report()


def test_assess_reports_errors_unanswered_forbidden_and_non_plain_outputs():
    def unanswered(x, k):
        raise NotImplementedError
    assert DOUBLE.grade(unanswered).status == "unanswered"

    def raises(x, k):
        return x[5]
    report = DOUBLE.grade(raises).report()
    assert "IndexError" in report and "return x[5]" in report

    def cheats(x, k):
        return F.conv2d(x[None, None, None], torch.full((1, 1, 1, 1), 2.0, dtype=x.dtype))[0, 0, 0]
    result = DOUBLE.grade(cheats)
    assert result.status == "forbidden" and result.points == 0 and "aten.convolution" in result.report()
    assert "returned a torch.nn.modules.linear.Linear" in DOUBLE.grade(lambda x, k: nn.Linear(1, 1)).report()
    assert DOUBLE.grade(42).status == "missing"


# ----------------------------------------------------------------------------------------------
# the learner's side


def test_check_hint_and_total_print_the_verdict_the_hints_and_the_score(capsys):
    exercise = Exercise("01_convolution")

    def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1):
        return (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1

    exercise.check("q1", conv_output_size)
    exercise.check("q2", lambda x, k: x)
    for _ in range(4):
        exercise.hint("q1")
    exercise.total()
    out = capsys.readouterr().out
    assert "q1 (conv_output_size): PASS  2/2 points" in out
    assert "(note: q2 grades corr2d; you passed <lambda>)" in out and "q2 (corr2d): FAIL  0/3" in out
    assert "Hint 1 of 3 for q1" in out and "Hint 3 of 3" in out and "No more hints for q1" in out
    assert "q3  conv2d" in out and "not checked" in out and "Total: 2 / 19 points" in out


def test_exercise_names_what_exists_when_asked_for_something_else():
    with pytest.raises(ValueError, match="01_convolution"):
        Exercise("99_nothing")
    with pytest.raises(ValueError, match="q1, q2, q3"):
        Exercise("01_convolution").check("q9", print)


def test_checks_stay_silent_inside_a_grading_process(monkeypatch, capsys):
    monkeypatch.setenv(GRADING_ENV, "1")
    exercise = Exercise("01_convolution")
    exercise.check("q1", print)
    exercise.hint("q1")
    exercise.total()
    assert capsys.readouterr().out == "" and exercise.results == {}


def test_test_files_are_otter_exception_test_files():
    from otter.test_files import ExceptionTestFile

    test_file = ExceptionTestFile.from_file(str(checks_dir("01_convolution") / "q2.py"))
    assert test_file.name == "q2" and test_file.possible == 3

    def corr2d(x, kernel):
        columns = F.unfold(x[None, None], kernel.shape)[0]  # (kh*kw, L): one column per window
        return (kernel.reshape(-1) @ columns).reshape(x.shape[0] - kernel.shape[0] + 1, -1)  # (L,) -> (H', W')
    test_file.run({"corr2d": corr2d})
    assert test_file.passed_all and test_file.score == 3
    test_file.run({"corr2d": lambda x, kernel: corr2d(x, kernel.flip(0, 1))})
    assert not test_file.passed_all and test_file.score == 0
    assert "kernel is flipped" in test_file.test_case_results[0].message


# ----------------------------------------------------------------------------------------------
# grading processes


def test_decode_accepts_plain_messages_only():
    message = {"outcomes": [{"value": (torch.ones(2), 3), "error": None}]}
    assert torch.equal(decode(encode(message))["outcomes"][0]["value"][0], torch.ones(2))
    for forged in (nn.Parameter(torch.ones(1)), {"x": np.float64(1)}, Path("/")):
        buffer = io.BytesIO()
        torch.save(forged, buffer)
        with pytest.raises(SandboxError, match="not plain"):
            decode(buffer.getvalue())


def test_sandbox_runs_cells_calls_functions_and_reports_a_death():
    question = str(checks_dir("01_convolution") / "q1.py")
    args = [(9, 3, 2, 1, 1)]
    with Sandbox(Limits(timeout=30), checks_dir("01_convolution")) as sandbox:
        sandbox.send({"kind": "cells", "cells": [(1, "%matplotlib inline\nimport os"),
                                                 (2, "def conv_output_size(n, k, s, p, d):\n    return n // s")]})
        assert [sandbox.receive(30)["ok"] for _ in range(2)] == [True, True]
        assert sandbox.outcomes(question, args, 30)[0].value == 4
        sandbox.send({"kind": "cells", "cells": [(3, "os._exit(7)")]})
        with pytest.raises(SandboxDied, match="exited with code 7"):
            sandbox.receive(30)


# ----------------------------------------------------------------------------------------------
# the batch grader


def test_gradebook_is_csv_and_written_atomically(tmp_path):
    out = tmp_path / "grades.csv"
    out.write_text("old")
    _write_atomically(out, gradebook_text(["q1", "q2"], []))
    assert out.read_text() == "submission,q1,q2,total,flagged\n" and [p.name for p in tmp_path.iterdir()] == ["grades.csv"]


def test_read_cells_numbers_code_cells_by_their_place_in_the_notebook(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(notebook, str(tmp_path / "a.ipynb"))
    (tmp_path / "b.py").write_text("y = 2\n")
    assert [(c.number, c.source) for c in read_cells(tmp_path / "a.ipynb")] == [(2, "x = 1")]
    assert [(c.number, c.source) for c in read_cells(tmp_path / "b.py")] == [(1, "y = 2\n")]


def _solutions() -> dict[str, str]:
    """The master's answer cells, with otter's solution markers and the learner's stub removed."""
    master = nbformat.read(str(ROOT / "exercises" / "_masters" / "01_convolution.ipynb"), as_version=4)
    found = {}
    for cell in master.cells:
        match = re.search(r"^def (\w+)\(", cell.source, re.M)
        if cell.cell_type == "code" and match:
            source = re.sub(r'\n\s*""" # BEGIN PROMPT.*?""" # END PROMPT', "", cell.source, flags=re.S)
            found[match.group(1)] = "\n".join(line for line in source.splitlines() if "SOLUTION" not in line)
    return found


def _submission(folder: Path, name: str, answers: dict[str, str], extra: tuple[tuple[int, str], ...] = ()) -> None:
    notebook = nbformat.read(str(ROOT / "exercises" / "01_convolution" / "01_convolution.ipynb"), as_version=4)
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        for function, source in answers.items():
            if cell.cell_type == "code" and f"def {function}(" in cell.source:
                cell.source = source
    for position, source in extra:
        notebook.cells.insert(position, nbformat.v4.new_code_cell(source))
    nbformat.write(notebook, str(folder / f"{name}.ipynb"))


def test_batch_grades_correct_partial_wrong_and_adversarial_submissions(tmp_path, capsys):
    folder = tmp_path / "submissions"
    folder.mkdir()
    right = _solutions()
    flipped = right["corr2d"].replace("* kernel)", "* kernel.flip(0, 1))")
    no_bias = right["conv2d"].replace("out += bias[:, None, None]", "pass")
    one_short = right["conv_output_size"].replace("// stride + 1", "// stride")
    _submission(folder, "correct", right)
    _submission(folder, "partial", {"conv_output_size": right["conv_output_size"], "corr2d": flipped})
    _submission(folder, "wrong", {"conv_output_size": one_short, "corr2d": flipped, "conv2d": no_bias})
    _submission(folder, "raises", {**right, "conv_output_size": "def conv_output_size(n, *args):\n    return n // 0"},
                extra=((3, "1 / 0"),))
    _submission(folder, "loops", {**right, "conv2d": "def conv2d(*args):\n    while True:\n        pass"},
                extra=((3, "while True:\n    pass"),))
    _submission(folder, "exits", right, extra=((3, "import sys\nsys.exit(0)"), (3, "exit()")))
    _submission(folder, "kills", {**right, "corr2d": "import os\ndef corr2d(x, kernel):\n    os._exit(3)"},
                extra=((3, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"), (3, "import os\nos._exit(1)")))
    _submission(folder, "hogs", {**right, "conv_output_size":
                                 "def conv_output_size(*args):\n    hog = []\n    while True:\n        hog.append(bytearray(10**8))"},
                extra=((3, "hog = []\nwhile True:\n    hog.append(bytearray(10**8))"),))
    _submission(folder, "prints", right, extra=((3, "for _ in range(40):\n    print('spam' * 250_000)"),
                                                (3, "import os\nos.write(1, b'y' * 10**7)")))
    _submission(folder, "tampers", {"conv_output_size": one_short, "corr2d": flipped, "conv2d": no_bias}, extra=((3, """
import torch, companion.grade, companion.grade.question, companion.grade.compare
torch.allclose = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
companion.grade.compare.difference = companion.grade.question.difference = lambda *a, **k: None
companion.grade.Exercise.check = lambda self, q, f: print(q, "PASS")
check = lambda *args: print("PASS")"""),))
    _submission(folder, "cheats", {**right, "conv2d": "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
                                                       "    return F.conv2d(x[None], weight, bias, stride, padding)[0]"})
    (folder / "unreadable.ipynb").write_text("{ not json")
    out = tmp_path / "grades.csv"
    assert main([str(ROOT / "exercises" / "01_convolution"), str(folder), "--out", str(out),
                 "--timeout", "10", "--memory", "1024", "--jobs", "2", "--seed", "7"]) == 0
    printed = capsys.readouterr().out
    rows = {row["submission"]: row for row in csv.DictReader(out.open())}
    scores = {name: (row["q1"], row["q2"], row["q3"], row["total"]) for name, row in rows.items()}
    assert scores == {
        "correct.ipynb": ("2", "3", "5", "19"), "partial.ipynb": ("2", "0", "0", "2"),
        "wrong.ipynb": ("0", "0", "0", "0"), "raises.ipynb": ("0", "3", "5", "17"),
        "loops.ipynb": ("2", "3", "0", "14"), "exits.ipynb": ("2", "3", "5", "19"),
        "kills.ipynb": ("2", "0", "5", "16"), "hogs.ipynb": ("0", "3", "5", "17"),
        "prints.ipynb": ("2", "3", "5", "19"), "tampers.ipynb": ("0", "0", "0", "0"),
        "cheats.ipynb": ("2", "3", "0", "14"), "unreadable.ipynb": ("0", "0", "0", "0")}
    feedback = {p.stem: p.read_text() for p in (tmp_path / "grades_feedback").iterdir()}
    assert set(feedback) == {name.removesuffix(".ipynb") for name in rows}
    assert "Likely mistake: off by one" in feedback["wrong"] and "kernel is flipped" in feedback["wrong"]
    assert "bias is forgotten" in feedback["wrong"] and "bias is forgotten" in feedback["tampers"]
    assert "Not answered yet: conv2d" in feedback["partial"]
    assert "cell 4 (`1 / 0`) raised ZeroDivisionError" in feedback["raises"]
    assert "ran longer than 10 s; it was skipped" in feedback["loops"] and "did not return within 10 s" in feedback["loops"]
    assert "raised SystemExit: 0" in feedback["exits"]
    assert "killed by SIGKILL); it was skipped" in feedback["kills"] and "exited with code 1" in feedback["kills"]
    assert "Calling corr2d ended the Python process" in feedback["kills"]
    assert "ran out of memory (limit 1024 MB)" in feedback["hogs"] and "MemoryError" in feedback["hogs"]
    assert "conv2d calls F.conv2d, aten." in feedback["cheats"] and "aten.convolution" in feedback["cheats"]
    assert "could not be read" in feedback["unreadable"] and "seed 7" in feedback["correct"]
    assert not list(tmp_path.glob(".grades*")) and "graded 12 submissions" in printed
    assert re.search(r"^correct.ipynb +q1 2/2  q2 3/3  q3 5/5  q4 2/2  q5 3/3  q6 4/4  total 19/19  \(\d+\.\d s\)$", printed, re.M)


def test_cli_says_what_is_wrong_with_its_arguments(tmp_path, capsys):
    assert main(["exercises/01_convolution", str(tmp_path / "missing"), "--out", str(tmp_path / "g.csv")]) == 2
    assert "must be a folder of notebooks" in capsys.readouterr().err
    assert main(["99_nothing", str(tmp_path), "--out", str(tmp_path / "g.csv")]) == 2
    assert "no checks for exercise '99_nothing'" in capsys.readouterr().err
    assert TESTS_ROOT.is_dir()


# ----------------------------------------------------------------------------------------------
# module questions: random reference weights, loaded into the learner's module by name


def test_random_state_has_the_template_s_names_and_shapes_and_positive_batch_norm_scales():
    from companion.grade import Draw
    from companion.grade.modules import random_state

    with torch.device("meta"):
        template = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4))
    state = random_state(Draw(0), template)
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in template.state_dict().items()}
    assert not any(v.is_meta for v in state.values())
    assert (state["1.weight"] >= 0.5).all() and (state["1.running_var"] >= 0.5).all()
    assert state["0.weight"].std() > 0.1 and int(state["1.num_batches_tracked"]) == 0
    assert torch.equal(state["0.weight"], random_state(Draw(0), template)["0.weight"])  # one seed, one draw


def test_load_named_state_loads_by_name_and_names_what_does_not_fit():
    from companion.grade import Draw
    from companion.grade.modules import load_named_state, random_state

    reference = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)).eval()
    state = random_state(Draw(1), reference)
    reference.load_state_dict(state)
    learner = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3, track_running_stats=True))
    del learner[1].num_batches_tracked  # a hand-made batch norm may lack it
    learner[1].register_buffer("num_batches_tracked", None)
    loaded = load_named_state(learner, state, function="block", layout="a conv then a batch norm")
    x = torch.randn(2, 2, 4, 4)
    assert not loaded.training
    torch.testing.assert_close(loaded(x), reference(x))
    with pytest.raises(TypeError, match="block must return an nn.Module, got function"):
        load_named_state(lambda x: x, state, function="block", layout="...")
    with pytest.raises(ValueError, match=r"block needs a conv then a batch norm; missing \['1.bias'.*unexpected "
                                         r"nothing"):
        load_named_state(nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3, affine=False)), state,
                         function="block", layout="a conv then a batch norm")
    with pytest.raises(ValueError, match=r"wrong shape: 0.bias is \(4,\), expected \(3,\); 0.weight is \(4, 2, 1, 1\), expected \(3, 2, 1, 1\)"):
        load_named_state(nn.Sequential(nn.Conv2d(2, 4, 1), nn.BatchNorm2d(3)), state, function="block", layout="...")


def test_a_forbidden_set_extends_another_without_changing_it():
    from companion.grade import CONVOLUTION

    more = CONVOLUTION.extended(ops=("aten.block_diag",), names=("block_diag",), what="the weight")
    assert more.ops == CONVOLUTION.ops + ("aten.block_diag",) and more.names == CONVOLUTION.names + ("block_diag",)
    assert more.modules == CONVOLUTION.modules and more.what == "the weight"
    assert CONVOLUTION.extended().what == CONVOLUTION.what and "block_diag" not in CONVOLUTION.names
