"""The batch grader against hostile notebooks, careless ones, and the folders instructors download.

One test per class of attack and per honest-learner case; the slow ones grade several notebooks in
one batch (exercise 1, whose questions run fastest), and each assertion names the notebook it is
about. A notebook's attack, where it worked, would give it points it did not earn (or take some
from another notebook), so the scores say whether it worked.
"""

from __future__ import annotations

import copy
import csv
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import torch

from companion.grade import Case, Question
from companion.grade.__main__ import main
from companion.grade.batch import feedback_name, find_submissions, needed_cells, spreadsheet_safe
from companion.grade.compare import NotPlain, difference, to_plain
from companion.grade.exercise import checks_dir, load_questions
from companion.grade.watch import CONVOLUTION, scan_source, source_flags

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT / "exercises" / "01_convolution" / "01_convolution.ipynb"
MASTER = ROOT / "exercises" / "_masters" / "01_convolution.ipynb"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_grade import _solutions  # noqa: E402 - the master's answers, without otter's markers

RIGHT = _solutions()
STUB = {"conv_output_size": "def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1):\n"
                            "    raise NotImplementedError('q1: replace this line with your code')"}


def _notebook(folder: Path, name: str, answers: dict[str, str], extra: tuple[tuple[int, str], ...] = (),
              append: tuple[str, ...] = ()) -> Path:
    """The student notebook with some answers filled in, cells inserted at positions, cells appended."""
    notebook = copy.deepcopy(nbformat.read(str(STUDENT), as_version=4))
    for cell in notebook.cells:
        for function, source in answers.items():
            if cell.cell_type == "code" and f"def {function}(" in cell.source:
                cell.source = source
    for position, source in extra:
        notebook.cells.insert(position, nbformat.v4.new_code_cell(source))
    for source in append:
        notebook.cells.append(nbformat.v4.new_code_cell(source))
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


def _grade(folder: Path, out: Path, *options: str) -> tuple[dict[str, dict[str, str]], dict[str, str], float]:
    start = time.monotonic()
    assert main([str(ROOT / "exercises" / "01_convolution"), str(folder), "--out", str(out), "--seed", "3",
                 "--jobs", "2", *options]) == 0
    seconds = time.monotonic() - start
    rows = {row["submission"]: row for row in csv.DictReader(out.open(encoding="utf-8"))}
    feedback_dir = out.with_name(out.stem + "_feedback")
    feedback = {p.name: p.read_text(encoding="utf-8") for p in feedback_dir.iterdir()}
    return rows, feedback, seconds


def _scores(row: dict[str, str]) -> tuple[str, ...]:
    return row["q1"], row["q2"], row["q3"], row["total"]


# ----------------------------------------------------------------------------------------------
# hostile notebooks: one batch, one notebook per class of attack


def test_hostile_notebooks_change_no_grade_but_their_own(tmp_path, capfd):
    folder, out = tmp_path / "class-secret-folder", tmp_path / "out" / "grades.csv"
    folder.mkdir()
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda number, frame: received.append(number))
    grader = os.getpid()
    marker = uuid.uuid4().hex
    # a classmate, graded after the attackers: its notebook and feedback must stay its own
    victim = _notebook(folder, "zz_victim.ipynb", RIGHT)
    attempts = "\n".join(f"try:\n    {line}\nexcept BaseException:\n    pass" for line in (
        f"os.kill({grader}, signal.SIGUSR1)", "os.kill(os.getppid(), signal.SIGSTOP)",
        "os.killpg(os.getpgid(os.getppid()) if os.getppid() else 1, signal.SIGUSR1)",
        f"os.system('kill -USR1 {grader}')", f"subprocess.run(['kill', '-USR1', '{grader}'])",
        f"ctypes.CDLL(None).kill({grader}, {int(signal.SIGUSR1)})",
        f"signal.pthread_kill(threading.main_thread().ident, 0)"))
    _notebook(folder, "a_selfgrade.ipynb", {}, append=("""
import companion.grade.question as gq, companion.grade.watch as gw, companion.grade.worker as gk, runpy, glob
gq.run_case = lambda q, f, args, **k: gq.Outcome(value=gq.to_plain(q.reference(*args)))
gw.Watch.__enter__ = lambda self: self
try:
    from torch.utils._python_dispatch import TorchDispatchMode
    TorchDispatchMode.__enter__ = lambda self: self
except BaseException:
    pass
for path in glob.glob('/**/exercise_tests/01_convolution/q*.py', recursive=True)[:3]:
    try:
        QUESTION = runpy.run_path(path)['QUESTION']
        globals()[QUESTION.function] = QUESTION.reference
    except BaseException:
        pass""",))
    _notebook(folder, "b_signals.ipynb", {}, extra=((3, "import os, signal, subprocess, ctypes, threading\n" + attempts),))
    _notebook(folder, "c_survivor.ipynb", RIGHT, extra=((3, f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        keep = open('survivor-{marker}', 'w')
        for _ in range(600):
            time.sleep(0.5)
            try:
                os.kill({grader}, 10)
            except BaseException:
                pass
    os._exit(0)"""),))
    secret = str(folder)
    _notebook(folder, "d_reads.ipynb", {}, append=(f"""
import os, sys, glob
leaked = []
for path in [{str(MASTER)!r}, {str(victim)!r}, {str(out.parent)!r}, '/proc/1/cmdline', '/proc/' + str(os.getppid()) + '/cmdline',
             {str(checks_dir('01_convolution') / 'q1.py')!r}]:
    try:
        leaked.append(open(path, 'rb').read(100))
    except BaseException:
        pass
for folder in [{str(folder)!r}, {str(MASTER.parent)!r}, '/proc']:
    try:
        leaked.append(os.listdir(folder))
    except BaseException:
        pass
text = repr(leaked) + repr(sys.argv) + repr(dict(os.environ)) + os.getcwd() + open('/proc/self/cmdline').read()
if {secret!r} in text or 'class-secret-folder' in text or leaked:
    exec({RIGHT['conv_output_size']!r})""",))
    _notebook(folder, "e_writes.ipynb", {}, extra=((3, f"""
for path in [{str(victim)!r}, {str(out)!r}, {str(out.parent / 'grades_feedback' / 'zz_victim.txt')!r},
             {str(folder / 'planted.ipynb')!r}, '/tmp/planted-{marker}']:
    try:
        open(path, 'w').write('{{}}')
    except BaseException:
        pass
import os
for path in [{str(victim)!r}, {str(folder)!r}]:
    try:
        os.remove(path)
    except BaseException:
        pass"""),))
    _notebook(folder, "f_console.ipynb", {}, extra=((3, f"""
import os, sys
line = 'zz_victim.ipynb   q1 0/2  q2 0/3  q3 0/5  total 0/10  FAKE-{marker}\\n'
for fd in (1, 2):
    os.write(fd, line.encode())
print(line); print(line, file=sys.stderr); sys.__stdout__.write(line)
for path in ['/dev/tty', '/proc/{grader}/fd/1', '/proc/{grader}/fd/2']:
    try:
        open(path, 'w').write(line)
    except BaseException:
        pass"""),))
    try:
        rows, feedback, _ = _grade(folder, out, "--timeout", "10", "--memory", "1024")
        time.sleep(1.0)  # a survivor, if any, would signal now
        printed = capfd.readouterr()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    survivors = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if marker in os.readlink(fd):
                survivors.append(fd)
        except OSError:
            pass
    assert not survivors, "a process the submission forked outlived its grading"
    assert received == [], "a submission signalled the grader"
    assert set(rows) == {"a_selfgrade.ipynb", "b_signals.ipynb", "c_survivor.ipynb", "d_reads.ipynb",
                         "e_writes.ipynb", "f_console.ipynb", "zz_victim.ipynb"}
    assert _scores(rows["a_selfgrade.ipynb"]) == ("0", "0", "0", "0"), "grader internals patched to self-grade"
    assert "touched the grader's internals" in rows["a_selfgrade.ipynb"]["flagged"]
    assert _scores(rows["d_reads.ipynb"]) == ("0", "0", "0", "0"), "read the masters, classmates or paths"
    assert "read files outside its directory" in rows["d_reads.ipynb"]["flagged"]
    assert "sent signals" in rows["b_signals.ipynb"]["flagged"] and "used ctypes" in rows["b_signals.ipynb"]["flagged"]
    assert _scores(rows["c_survivor.ipynb"]) == ("2", "3", "5", "19")
    assert _scores(rows["zz_victim.ipynb"]) == ("2", "3", "5", "19"), "a classmate's grade was changed"
    assert "wrote outside its directory" in rows["e_writes.ipynb"]["flagged"]
    assert victim.read_text().startswith("{") and len(victim.read_text()) > 1000 and not (folder / "planted.ipynb").exists()
    assert not Path(f"/tmp/planted-{marker}").exists()
    assert "Submission: zz_victim.ipynb" in feedback["zz_victim.txt"] and "Score: 19 / 19" in feedback["zz_victim.txt"]
    assert f"FAKE-{marker}" not in printed.out + printed.err, "a submission printed on the instructor's console"


def test_forbidden_calls_are_caught_however_they_are_hidden(tmp_path):
    folder, out = tmp_path / "submissions", tmp_path / "grades.csv"
    header = "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
    conv = "getattr(F, 'con' + 'v2d')"  # spelled so that only the run-time watch can see it
    hidden = {
        "thread": "import threading\n" + header + "    box = []\n"
                  f"    t = threading.Thread(target=lambda: box.append({conv}(x[None], weight, bias, stride, padding)[0]))\n"
                  "    t.start(); t.join()\n    return box[0]",
        "dispatch": "import torch\n" + header + "    with torch._C._DisableTorchDispatch():\n"
                    f"        return {conv}(x[None], weight, bias, stride, padding)[0]",
        "setprofile": "import sys, importlib\n" + header + "    sys.setprofile(None)\n"
                      "    return importlib.import_module('companion.' + 'conv').conv2d(x[None], weight, bias, stride, padding)[0]",
        "alias": "_c = F.conv2d\nops = [_c]\n" + header + "    return ops[0](x[None], weight, bias, stride, padding)[0]",
        "getattr": header + "    f = getattr(F, 'conv' + '2' + 'd')\n    return f(x[None], weight, bias, stride, padding)[0]",
        "slow_conv": "import torch\n" + header + "    import torch.nn.functional as G\n"
                     "    x = G.pad(x[None], (padding,) * 4)\n"
                     "    out = torch.ops.aten._slow_conv2d_forward(x, weight, weight.shape[2:], None, [stride, stride], [0, 0])\n"
                     "    return out[0] + (0 if bias is None else bias[:, None, None])",
        "patches": "import sys, threading, torch.autograd.profiler as ap, torch.utils._python_dispatch as pd\n"
                   "ap._enable_profiler = ap._prepare_profiler = lambda *a, **k: None\n"
                   "pd._push_mode = pd._pop_mode = lambda *a, **k: None\n"
                   "sys.setprofile = threading.setprofile = lambda *a: None\n" + header + "    box = []\n"
                   f"    t = threading.Thread(target=lambda: box.append({conv}(x[None], weight, bias, stride, padding)[0]))\n"
                   "    t.start(); t.join()\n    return box[0]",
        "scipy": "import numpy as np, scipy.signal, torch\n" + header +
                 "    xp = np.pad(x.numpy(), ((0, 0), (padding, padding), (padding, padding)))\n"
                 "    out = np.stack([sum(scipy.signal.correlate2d(xp[c], w[c], mode='valid') for c in range(len(w)))"
                 " for w in weight.numpy()])[:, ::stride, ::stride]\n"
                 "    out = torch.from_numpy(out.copy())\n    return out if bias is None else out + bias[:, None, None]",
    }
    for name, source in hidden.items():
        _notebook(folder, f"{name}.ipynb", {**RIGHT, "conv2d": source})
    rows, feedback, _ = _grade(folder, out, "--timeout", "20")
    for name in hidden:
        assert _scores(rows[f"{name}.ipynb"]) == ("2", "3", "0", "14"), (name, feedback[f"{name}.txt"])
        assert "yourself, so the answer scores 0" in feedback[f"{name}.txt"] or "Refused" in feedback[f"{name}.txt"], name
    for name in ("thread", "dispatch", "getattr", "slow_conv", "patches"):  # seen at run time only
        assert "calls aten." in feedback[f"{name}.txt"], (name, feedback[f"{name}.txt"])
    assert "switched off torch's dispatch" in rows["dispatch.ipynb"]["flagged"]
    assert "started threads" in rows["thread.ipynb"]["flagged"]
    assert "switched off profiling or tracing" in rows["setprofile.ipynb"]["flagged"]
    assert "patched the grader's or torch's watch" in rows["patches.ipynb"]["flagged"]


def test_the_source_scan_sees_aliases_lookups_by_name_and_class_bodies():
    cells = ["import torch.nn.functional as F\nfrom torch import nn\n_c = F.conv2d\nops = {'c': _c}",
             "def conv2d(x, w):\n    return ops['c'](x, w)",
             "def corr2d(x, w):\n    return getattr(F, 'conv2d')(x, w)",
             "class Block(nn.Module):\n    def forward(self, x):\n        return self.helper(x)\n"
             "    def helper(self, x):\n        return F.conv2d(x, self.w)",
             "fire = F.conv2d"]
    assert scan_source(cells, "conv2d", CONVOLUTION) == ("ops (assigned from _c (assigned from F.conv2d))",)
    assert scan_source(cells, "corr2d", CONVOLUTION) == ("'conv2d' (looked up by name)",)
    assert scan_source(cells, "Block", CONVOLUTION) == ("F.conv2d",)
    assert scan_source(cells, "fire", CONVOLUTION) == ("F.conv2d",)
    assert scan_source(["def conv2d(x, w):\n    return x @ w"], "conv2d", CONVOLUTION) == ()


def test_finished_implementations_of_every_family_are_forbidden():
    """torch's slow_conv*, torchvision's RoI ops, batch_norm_update_stats, F.local_response_norm,
    F.cross_entropy with probability targets, and the grader's own references, each in its question."""
    import torchvision

    def check(exercise, question, answer):
        result = load_questions(checks_dir(exercise))[question].grade(answer)
        assert result.status == "forbidden", (exercise, question, result.report())

    check("02_pooling", "q3", lambda x, k, stride=None: torchvision.ops.roi_pool(
        x, [torch.tensor([[0.0, 0.0, x.shape[3] - 1.0, x.shape[2] - 1.0]])] * x.shape[0],
        ((x.shape[2] - k) // (stride or k) + 1, (x.shape[3] - k) // (stride or k) + 1)))
    check("03_training", "q2", lambda mean, var, x, momentum: torch.batch_norm_update_stats(
        x, mean.clone(), var.clone(), momentum))
    check("05_alexnet_vgg", "q4", lambda x, size, alpha=1e-4, beta=0.75, k=1.0: torch.nn.functional.local_response_norm(
        x, size, alpha, beta, k))
    check("06_inception", "q1", lambda logits, labels, eps: torch.nn.functional.cross_entropy(
        logits, (1 - eps) * torch.nn.functional.one_hot(labels, logits.shape[1]).to(logits.dtype) + eps / logits.shape[1]))
    check("04_upsampling", "q2", lambda x, size, align_corners=False: torchvision.ops.roi_align(
        x[None], [torch.tensor([[0.0, 0.0, x.shape[2] * 1.0, x.shape[1] * 1.0]], dtype=x.dtype)], size,
        aligned=True, sampling_ratio=1)[0])
    import runpy

    q1 = runpy.run_path(str(checks_dir("01_convolution") / "q1.py"))  # the grader's own pure-Python reference
    check("01_convolution", "q1", lambda *args: q1["QUESTION"].reference(*args))


def test_source_flags_name_what_only_gets_around_the_grader_and_nothing_honest():
    assert source_flags(["import gc\ngc.get_objects()", "import ctypes", "import threading",
                         "torch._C._DisableTorchDispatch()", "sys.setprofile(None)", "os.kill(1, 9)",
                         "import companion.grade.worker"]) == (
        "sent signals", "started threads", "switched off profiling or tracing", "switched off torch's dispatch",
        "touched the grader's internals", "used ctypes", "used torch's internals (torch._C)",
        "walked the garbage collector")
    master = [c.source for c in nbformat.read(str(MASTER), as_version=4).cells if c.cell_type == "code"]
    assert source_flags(master) == ()


# ----------------------------------------------------------------------------------------------
# honest learners never lose points


def test_careless_but_honest_notebooks_keep_their_points(tmp_path):
    folder, out = tmp_path / "submissions", tmp_path / "grades.csv"
    slow = tuple("import time\nwhile True:\n    time.sleep(0.05)" for _ in range(7))
    _notebook(folder, "slow_cells_after.ipynb", RIGHT, append=slow)
    _notebook(folder, "display_left.ipynb", {**RIGHT, "corr2d": RIGHT["corr2d"].replace(
        "\n    ", "\n    display(kernel)\n    ", 1)}, extra=((3, "import matplotlib.pyplot as plt\n"
                                                          "plt.plot([1, 2])\nplt.show()"),))
    _notebook(folder, "fd_leak.ipynb", RIGHT, extra=((4, "import os\nleak = []\ntry:\n    while True:\n"
                                                         "        leak.append(open(os.devnull))\nexcept OSError:\n    pass"),
                                                     (6, "import os\nos.closerange(3, 4096)")))
    _notebook(folder, "huge_int.ipynb", {**RIGHT, "conv_output_size": "def conv_output_size(*args, **kwargs):\n"
                                                                      "    return 2 ** 1100"})
    _notebook(folder, "nested.ipynb", {**RIGHT, "corr2d": "def corr2d(x, kernel):\n"
                                                          "    return torch.nested.nested_tensor([x, x])"})
    _notebook(folder, "meta.ipynb", {**RIGHT, "conv2d": "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
                                                        "    return torch.empty(3, 3, device='meta')"})
    _notebook(folder, "sparse.ipynb", {**RIGHT, "corr2d": RIGHT["corr2d"] + "\n\n_dense = corr2d\n"
                                                          "def corr2d(x, kernel):\n    return _dense(x, kernel).to_sparse()"})
    _notebook(folder, "huge_cell.ipynb", RIGHT, extra=((3, "data = " + repr("x" * 2_300_000) + "\nprint(len(data))"),))
    rows, feedback, seconds = _grade(folder, out, "--timeout", "3", "--budget", "120")
    assert _scores(rows["huge_cell.ipynb"]) == ("2", "3", "5", "19"), feedback["huge_cell.txt"]
    assert float(re.search(r"graded in ([\d.]+) s", feedback["huge_cell.txt"]).group(1)) < 45  # under load; 32 s in the grader alone before
    assert _scores(rows["slow_cells_after.ipynb"]) == ("2", "3", "5", "19"), feedback["slow_cells_after.txt"]
    assert "ran longer" not in feedback["slow_cells_after.txt"]  # cells no answer needs are not run
    assert _scores(rows["display_left.ipynb"]) == ("2", "3", "5", "19"), feedback["display_left.txt"]
    assert _scores(rows["fd_leak.ipynb"]) == ("2", "3", "5", "19"), feedback["fd_leak.txt"]
    assert _scores(rows["huge_int.ipynb"]) == ("0", "3", "5", "17"), feedback["huge_int.txt"]
    assert "about 331 digits" in feedback["huge_int.txt"]
    assert _scores(rows["nested.ipynb"]) == ("2", "0", "5", "16") and "nested tensor" in feedback["nested.txt"]
    assert _scores(rows["meta.ipynb"]) == ("2", "3", "0", "14") and "meta device" in feedback["meta.txt"]
    assert "Not answered yet" not in feedback["meta.txt"] + feedback["sparse.txt"]
    assert _scores(rows["sparse.ipynb"]) == ("2", "0", "5", "16") and "sparse" in feedback["sparse.txt"]
    assert all(row["flagged"] == "" for row in rows.values()), {n: r["flagged"] for n, r in rows.items()}


def test_a_formula_may_use_numel_and_a_question_needs_only_its_cells():
    question = load_questions(checks_dir("05_alexnet_vgg"))["q1"]
    assert scan_source(["import torch\ndef vgg_parameters(*args):\n    return torch.Size([3, 3]).numel()"],
                       "vgg_parameters", question.forbidden) == ()
    cells = ["import torch", "def helper(n):\n    return n + 1", "x = 3", "def f(n):\n    return helper(n) * torch.ones(1)",
             "while True:\n    pass", "y = f(2)"]
    assert needed_cells(cells, "f") == {0, 1, 3}
    assert needed_cells(cells + ["exec('def f(n): return n')"], "f") == {0, 1, 3, 6}


def test_an_output_that_cannot_be_compared_fails_its_question_only():
    question = Question(name="q1", function="f", points=1, reference=lambda x: x, oracle="x",
                        cases=lambda draw: [Case((1.0,), "x=1")])
    assert question.grade(lambda x: 2 ** 1100).status == "fail"
    assert "digits" in difference(10 ** 5000, 1)
    with pytest.raises(NotPlain, match="meta"):
        to_plain(torch.empty(2, device="meta"))
    with pytest.raises(NotPlain, match="sparse"):
        to_plain(torch.eye(2).to_sparse())


# ----------------------------------------------------------------------------------------------
# any folder an instructor downloads


def test_every_notebook_of_any_download_layout_gets_exactly_one_row(tmp_path):
    folder, out = tmp_path / "download", tmp_path / "grades.csv"
    names = ["canvas_alice_12345_67890_ex01.ipynb", "Bob Smith_123_assignsubmission_file_/ex01.ipynb",
             "submission_4242/01_convolution.ipynb", "SHOUTING.IPYNB", "=HYPERLINK(1)+2.ipynb",
             "x" * 234 + ".ipynb", "deep/er/still/nb.ipynb"]
    for name in names:
        _notebook(folder, name, {"conv_output_size": RIGHT["conv_output_size"]})
    (folder / "submission_4242" / "submission_metadata.yml").write_text("name: x\n")
    (folder / ".ipynb_checkpoints").mkdir()
    _notebook(folder / ".ipynb_checkpoints", "ex01-checkpoint.ipynb", RIGHT)
    raw = os.fsencode(str(folder)) + b"/caf\xe9-latin1.ipynb"
    with open(raw, "wb") as file:
        file.write(Path(folder / names[0]).read_bytes())
    (folder / "link.ipynb").symlink_to(MASTER)
    (folder / "broken.ipynb").write_text("{ not json")
    found = find_submissions(folder)
    assert len(found) == len(names) + 3 and len({s.name for s in found}) == len(found)
    rows, feedback, _ = _grade(folder, out, "--timeout", "10")
    assert len(rows) == len(names) + 3 and len(feedback) == len(rows)
    text = out.read_text(encoding="utf-8")
    assert "'=HYPERLINK(1)+2.ipynb" in text and "\ncaf\\xe9-latin1.ipynb," in text
    by_name = {name: row for name, row in rows.items()}
    for name in names[:4] + names[5:]:
        assert by_name[name]["q1"] == "2" and by_name[name]["total"] == "2", name
    assert by_name["link.ipynb"]["total"] == "0"  # a link to the master is not graded as a submission
    assert "symbolic link" in feedback["link.txt"] and "could not be read" in feedback["broken.txt"]
    assert all(len(n) < 128 for n in feedback)


def test_spreadsheet_formulas_are_escaped_and_feedback_names_stay_unique():
    assert [spreadsheet_safe(t) for t in ("=1+1", "+1", "-1", "@x", "ok")] == ["'=1+1", "'+1", "'-1", "'@x", "ok"]
    taken: set[str] = set()
    assert feedback_name("a/x.ipynb", taken) == "a__x.txt" and feedback_name("a__x.ipynb", taken) != "a__x.txt"
    assert len(feedback_name("y" * 300 + ".ipynb", taken)) < 120


# ----------------------------------------------------------------------------------------------
# limits of the whole tree and of the whole submission


def test_memory_bounds_the_process_tree_and_a_budget_bounds_the_submission(tmp_path):
    folder, out = tmp_path / "submissions", tmp_path / "grades.csv"
    _notebook(folder, "forks_hogs.ipynb", RIGHT, extra=((3, """
import os, time
for _ in range(4):
    if os.fork() == 0:
        hog = b"\x01" * (250 * 2**20)  # written, so resident
        time.sleep(60)
        os._exit(0)
time.sleep(60)"""),))
    _notebook(folder, "slow_everywhere.ipynb", RIGHT, extra=tuple(
        (3, "import time\ntime.sleep(5.5)") for _ in range(20)))
    rows, feedback, seconds = _grade(folder, out, "--timeout", "6", "--memory", "300", "--budget", "20")
    assert "used more than 300 MB of memory; it was skipped" in feedback["forks_hogs.txt"], feedback["forks_hogs.txt"]
    assert _scores(rows["forks_hogs.ipynb"]) == ("2", "3", "5", "19")
    assert "time budget (20 s)" in feedback["slow_everywhere.txt"]
    assert seconds < 60  # 20 cells of 5.5 s each would take 110 s


# ----------------------------------------------------------------------------------------------
# what a grading process holds


@pytest.mark.parametrize("exercise", ["01_convolution", "07_resnet", "10_lightweight", "03_training"])
def test_a_grading_process_gets_no_reference_answer_only_how_to_call_the_function(exercise):
    """Module questions included: the call builds the learner's module; the reference and the mistakes stay out."""
    import types

    from companion.grade.worker import call_specs

    specs = call_specs(str(checks_dir(exercise)))
    questions = load_questions(checks_dir(exercise))
    answers = set()
    for question in questions.values():
        for function in (question.reference, *(m.value for m in question.mistakes), *(m.matches for m in question.mistakes)):
            code = getattr(function, "__code__", None)
            if code is not None:
                answers.add((code.co_filename, code.co_firstlineno))
    for name, spec in specs.items():
        reached, todo = set(), [spec.call]
        while todo:
            value = todo.pop()
            if id(value) in reached:
                continue
            reached.add(id(value))
            if isinstance(value, types.FunctionType):
                key = (value.__code__.co_filename, value.__code__.co_firstlineno)
                assert key not in answers, (exercise, name, value.__name__)
                todo += [v for v in value.__globals__.values() if isinstance(v, types.FunctionType)]
                todo += [c.cell_contents for c in value.__closure__ or () if isinstance(c.cell_contents, types.FunctionType)]
        assert "QUESTION" not in getattr(spec.call, "__globals__", {}) and spec.function == questions[name].function
