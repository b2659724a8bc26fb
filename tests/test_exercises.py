"""The exercise notebooks: masters score full marks, student notebooks run and score 0, every known
mistake gets its own message, calling the framework scores 0, and no solution reaches a learner."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import companion.conv
import companion.count
import companion.norm
import companion.pool
import companion.upsample
from companion.grade import Exercise, exercise_names, load_questions
from companion.grade.batch import grade_submission
from companion.grade.build import masters, stale, student_path
from companion.grade.exercise import checks_dir

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
MASTERS = masters(EXERCISES)
NAMES = [m.stem for m in MASTERS]
QUESTIONS = {name: load_questions(checks_dir(name)) for name in NAMES}


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
    assert NAMES == exercise_names() == ["01_convolution", "02_pooling", "03_training", "04_upsampling"]
    for master in MASTERS:
        cells = nbformat.read(str(master), as_version=4).cells
        declared = dict(re.findall(r"# BEGIN QUESTION\nname: (q\d+)\npoints: (\d+)", "\n".join(
            c.source for c in cells if c.cell_type == "raw")))
        questions = QUESTIONS[master.stem]
        assert 3 <= len(questions) <= 6 and set(declared) == set(questions)
        for name, question in questions.items():
            assert float(declared[name]) == question.points  # otter's points == the check's points
            assert any(f"def {question.function}(" in c.source for c in cells)  # the question names its function
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
# wrong answers, one per known mistake (and a right one per question)


def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1, *, mistake=None):
    span = (kernel_size if mistake == "dilation" else dilation * (kernel_size - 1) + 1)
    padded = n + {"padding": 0, "one side": padding}.get(mistake, 2 * padding)
    if mistake == "float":
        return (padded - span) / stride + 1
    steps = (padded - span) // (1 if mistake == "stride" else stride)
    return steps + (0 if mistake == "off by one" else 1)


def corr2d(x, kernel, *, mistake=None):
    kernel = {"flipped": kernel.flip(0, 1), "transposed": kernel.T}.get(mistake, kernel)
    kh, kw = kernel.shape
    out = x.new_zeros(x.shape[0] - kh + 1 + (mistake == "off by one"), x.shape[1] - kw + 1)
    for i in range(x.shape[0] - kh + 1):
        for j in range(out.shape[1]):
            out[i, j] = (x[i:i + kh, j:j + kw] * kernel).sum()
    return out.T if mistake == "output transposed" else out


def conv2d(x, weight, bias=None, stride=1, padding=0, *, mistake=None):
    if mistake == "flipped":
        weight = weight.flip(-2, -1)
    if mistake in ("no bias", "output channels"):
        bias = None
    step = 1 if mistake in ("stride", "unstrided") else stride
    pad = (padding, 0, padding, 0) if mistake == "top left" else (0,) * 4 if mistake == "padding" else (padding,) * 4
    x = F.pad(x, pad)
    kh, kw = weight.shape[2:]
    out_h = (x.shape[1] - kh) // (stride if mistake == "unstrided" else step) + 1 + (mistake == "off by one")
    out_w = (x.shape[2] - kw) // (stride if mistake == "unstrided" else step) + 1
    maps = []
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, i * step:i * step + kh, j * step:j * step + kw]
            if window.shape[1:] != (kh, kw):
                window = F.pad(window, (0, kw - window.shape[2], 0, kh - window.shape[1]))  # the extra row: zeros
            if mistake == "swapped axes":
                products = window * weight.transpose(0, 1)  # (C_in, C_out, ...) read as (C_out, C_in, ...)
            elif mistake == "first channel":
                products = window[:1] * weight[:, :1]
            else:
                products = window * weight  # (C_out, C_in, kh, kw)
            per_channel = products.sum(dim=(2, 3))  # (C_out, C_in)
            maps.append({"unsummed": per_channel, "mean": per_channel.mean(1),
                         "output channels": per_channel.sum(0)}.get(mistake, per_channel.sum(1)))
    out = torch.stack(maps, -1).reshape(*maps[0].shape, out_h, out_w)  # (..., H'*W') -> (..., H', W')
    if bias is not None:
        extra = (None,) * (out.dim() - 1)
        out = out + (x.shape[0] if mistake == "bias per channel" else 1) * bias[(slice(None),) + extra]
    return out


def receptive_field(layers, *, mistake=None):
    field, jump = 1, 1
    for kernel_size, stride in layers:
        if mistake == "own stride":
            jump *= stride
        field += (kernel_size - 1) * (1 if mistake == "jump" else jump)
        if mistake != "own stride":
            jump *= stride
    return field + (1 if mistake == "off by one" else 0)


def conv2d_parameters(in_channels, out_channels, kernel_size, bias=True, groups=1, *, mistake=None):
    kh, kw = (kernel_size, 1 if mistake == "not squared" else kernel_size) if isinstance(kernel_size, int) else kernel_size
    seen = {"in_channels": 1, "groups": in_channels}.get(mistake, in_channels // groups)
    biases = {"biases": 0, "always": out_channels, "per input": in_channels if bias else 0}.get(
        mistake, out_channels if bias else 0)
    return out_channels * seen * kh * kw + biases


def max_pool2d(x, kernel_size, stride=None, *, mistake=None):
    stride = {"default 1": stride or 1, "stride": 1}.get(mistake, stride or kernel_size)
    size = (lambda n: -(-(n - kernel_size) // stride) + 1) if mistake == "ceil" else (lambda n: (n - kernel_size) // stride + 1)
    out = x.new_zeros(x.shape[0], x.shape[1], size(x.shape[2]) + (mistake == "off by one"), size(x.shape[3]))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = x[:, :, i * stride:i * stride + kernel_size, j * stride:j * stride + kernel_size]
            if mistake == "average":
                out[:, :, i, j] = window.mean(dim=(-2, -1))
            elif mistake == "zero start":
                out[:, :, i, j] = window.amax(dim=(-2, -1)).clamp(min=0)
            elif mistake == "absolute":
                out[:, :, i, j] = window.abs().amax(dim=(-2, -1))
            elif mistake == "channels":
                out[:, :, i, j] = window.amax(dim=(1, -2, -1))[:, None]  # (N,) -> (N, 1), broadcast over C
            else:
                out[:, :, i, j] = window.amax(dim=(-2, -1))
    return out


def batch_norm_train(x, gamma, beta, eps=1e-5, *, mistake=None):
    dims = {"layer": (1, 2, 3), "instance": (2, 3), "batch only": (0,), "all": (0, 1, 2, 3)}.get(mistake, (0, 2, 3))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=mistake == "unbiased")
    eps = 0.0 if mistake == "no eps" else eps
    if mistake == "eps outside":
        x_hat = (x - mean) / (var.sqrt() + eps)
    elif mistake == "no root":
        x_hat = (x - mean) / (var + eps)
    else:
        x_hat = (x - mean) / torch.sqrt(var + eps)
    g, b = gamma.view(1, -1, 1, 1), beta.view(1, -1, 1, 1)  # (C,) -> (1, C, 1, 1)
    if mistake == "last axis":
        g, b = gamma, beta  # (C,) broadcast against W
    return {"swapped": lambda: b * x_hat + g, "no affine": lambda: x_hat, "no beta": lambda: g * x_hat,
            "no gamma": lambda: x_hat + b}.get(mistake, lambda: g * x_hat + b)()


def update_running_stats(running_mean, running_var, x, momentum=0.1, *, mistake=None):
    mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=mistake != "biased")
    m = {"reversed": 1 - momentum, "replaced": 1.0, "not updated": 0.0}.get(mistake, momentum)
    return (1 - m) * running_mean + m * mean, (1 - m) * running_var + m * var


def train_step(model, optimizer, x, y, *, mistake=None):
    if mistake != "no train":
        model.train()
    if mistake != "no zero_grad":
        optimizer.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits.softmax(1) if mistake == "softmax" else logits, y,
                           reduction="sum" if mistake == "sum" else "mean")
    if mistake == "step first":
        optimizer.step()
    loss.backward()
    if mistake not in ("step first", "no step"):
        optimizer.step()
    return loss if mistake == "tensor" else loss.item()


def source_coordinate(i, in_size, out_size, align_corners, *, mistake=None):
    if mistake == "mixed up":
        align_corners = not align_corners
    n_in, n_out = (out_size, in_size) if mistake == "inverted" else (in_size, out_size)
    if align_corners:
        u = i * (n_in - 1) / (n_out - 1)
    else:
        u = i * n_in / n_out if mistake == "no offset" else (i + 0.5) * n_in / n_out - 0.5
    return u if mistake == "no clamp" else min(max(u, 0.0), in_size - 1.0)


def bilinear_resize(x, size, align_corners=False, *, mistake=None):
    if mistake == "swapped":
        size = size[::-1]
    corners = (not align_corners) if mistake == "align_corners" else align_corners

    def neighbours(n_in, n_out):
        i = torch.arange(n_out, dtype=x.dtype)
        u = i * (n_in - 1) / (n_out - 1) if corners else (i + 0.5) * n_in / n_out - 0.5
        if mistake != "no clamp":
            u = u.clamp(0, n_in - 1)
        first = u.floor().long()  # -1 left of the image when u is not clamped
        return first, (first + 1).clamp(max=n_in - 1), (u - first) * (mistake != "nearest")  # t = 0: nearest

    r0, r1, ty = neighbours(x.shape[1], size[0])
    q0, q1, tx = neighbours(x.shape[2], size[1])
    ty = ty[:, None]  # (h,) -> (h, 1)
    rows = (1 - ty) * x[:, r0, :] + ty * x[:, r1, :]  # (C, h, W); a wrapped index -1 reads the last row
    return (1 - tx) * rows[:, :, q0] + tx * rows[:, :, q1]  # (C, h, w)


def conv_transpose2d(x, weight, stride=1, *, mistake=None):
    weight = {"flipped": weight.flip(-2, -1), "swapped axes": weight.transpose(0, 1)}.get(mistake, weight)
    step = 1 if mistake == "stride" else stride
    k = weight.shape[-1]
    height, width = x.shape[1:]
    extra = mistake == "off by one"
    out = x.new_zeros(weight.shape[1], (height - 1) * step + k + extra, (width - 1) * step + k)
    for i in range(height):
        for j in range(width):
            out[:, i * step:i * step + k, j * step:j * step + k] += (x[:, i, j, None, None, None] * weight).sum(0)
    return out


# (exercise, question, implementation, its mistake, words of the message it must get)
WRONG = [
    ("01_convolution", "q1", conv_output_size, "float", "floor division"),
    ("01_convolution", "q1", conv_output_size, "padding", "padding is ignored"),
    ("01_convolution", "q1", conv_output_size, "one side", "one side only"),
    ("01_convolution", "q1", conv_output_size, "stride", "stride is ignored"),
    ("01_convolution", "q1", conv_output_size, "dilation", "dilation is ignored"),
    ("01_convolution", "q1", conv_output_size, "off by one", "off by one"),
    ("01_convolution", "q2", corr2d, "flipped", "kernel is flipped"),
    ("01_convolution", "q2", corr2d, "transposed", "kernel is transposed"),
    ("01_convolution", "q2", corr2d, "output transposed", "output is transposed"),
    ("01_convolution", "q2", corr2d, "off by one", "off by one"),
    ("01_convolution", "q3", conv2d, "flipped", "kernel is flipped"),
    ("01_convolution", "q3", conv2d, "padding", "padding is missing"),
    ("01_convolution", "q3", conv2d, "top left", "top and left only"),
    ("01_convolution", "q3", conv2d, "stride", "stride is ignored"),
    ("01_convolution", "q3", conv2d, "unstrided", "windows ignore the stride"),
    ("01_convolution", "q3", conv2d, "no bias", "bias is forgotten"),
    ("01_convolution", "q3", conv2d, "bias per channel", "once per input channel"),
    ("01_convolution", "q3", conv2d, "first channel", "only the first input channel"),
    ("01_convolution", "q3", conv2d, "mean", "averaged, not summed"),
    ("01_convolution", "q3", conv2d, "swapped axes", "first two axes are swapped"),
    ("01_convolution", "q3", conv2d, "unsummed", "one map per (output, input) channel pair"),
    ("01_convolution", "q3", conv2d, "output channels", "one map per *input* channel"),
    ("01_convolution", "q3", conv2d, "off by one", "off by one"),
    ("02_pooling", "q1", receptive_field, "jump", "jump is forgotten"),
    ("02_pooling", "q1", receptive_field, "own stride", "its own stride"),
    ("02_pooling", "q1", receptive_field, "off by one", "off by one"),
    ("02_pooling", "q2", conv2d_parameters, "biases", "biases are forgotten"),
    ("02_pooling", "q2", conv2d_parameters, "always", "although bias=False"),
    ("02_pooling", "q2", conv2d_parameters, "per input", "one bias per *input* channel"),
    ("02_pooling", "q2", conv2d_parameters, "in_channels", "input channels are forgotten"),
    ("02_pooling", "q2", conv2d_parameters, "groups", "groups are ignored"),
    ("02_pooling", "q2", conv2d_parameters, "not squared", "k * k weights"),
    ("02_pooling", "q3", max_pool2d, "default 1", "stride=None is taken as 1"),
    ("02_pooling", "q3", max_pool2d, "stride", "stride is ignored"),
    ("02_pooling", "q3", max_pool2d, "average", "average pooling"),
    ("02_pooling", "q3", max_pool2d, "zero start", "starts at 0"),
    ("02_pooling", "q3", max_pool2d, "absolute", "largest absolute value"),
    ("02_pooling", "q3", max_pool2d, "channels", "channels are mixed"),
    ("02_pooling", "q3", max_pool2d, "ceil", "stick out of the input"),
    ("02_pooling", "q3", max_pool2d, "off by one", "off by one"),
    ("03_training", "q1", batch_norm_train, "unbiased", "unbiased one"),
    ("03_training", "q1", batch_norm_train, "eps outside", "added to the standard deviation"),
    ("03_training", "q1", batch_norm_train, "no eps", "eps is forgotten"),
    ("03_training", "q1", batch_norm_train, "no root", "square root is missing"),
    ("03_training", "q1", batch_norm_train, "layer", "like layer norm"),
    ("03_training", "q1", batch_norm_train, "instance", "like instance norm"),
    ("03_training", "q1", batch_norm_train, "batch only", "batch axis only"),
    ("03_training", "q1", batch_norm_train, "all", "all axes at once"),
    ("03_training", "q1", batch_norm_train, "swapped", "gamma and beta are swapped"),
    ("03_training", "q1", batch_norm_train, "no affine", "gamma and beta are forgotten"),
    ("03_training", "q1", batch_norm_train, "no beta", "beta is forgotten"),
    ("03_training", "q1", batch_norm_train, "no gamma", "gamma is forgotten"),
    ("03_training", "q1", batch_norm_train, "last axis", "along the last axis"),
    ("03_training", "q2", update_running_stats, "biased", "biased batch variance"),
    ("03_training", "q2", update_running_stats, "reversed", "momentum is reversed"),
    ("03_training", "q2", update_running_stats, "replaced", "replaced by the batch statistics"),
    ("03_training", "q2", update_running_stats, "not updated", "not updated"),
    ("03_training", "q3", train_step, "no zero_grad", "gradients are not reset"),
    ("03_training", "q3", train_step, "no train", "not put in training mode"),
    ("03_training", "q3", train_step, "step first", "weights never change"),
    ("03_training", "q3", train_step, "no step", "weights never change"),
    ("03_training", "q3", train_step, "softmax", "softmax is applied before the loss"),
    ("03_training", "q3", train_step, "sum", "summed over the batch"),
    ("04_upsampling", "q1", source_coordinate, "mixed up", "align_corners is mixed up"),
    ("04_upsampling", "q1", source_coordinate, "no offset", "half-pixel offset is missing"),
    ("04_upsampling", "q1", source_coordinate, "inverted", "scale is inverted"),
    ("04_upsampling", "q1", source_coordinate, "no clamp", "not clamped"),
    ("04_upsampling", "q2", bilinear_resize, "nearest", "nearest-neighbour resizing"),
    ("04_upsampling", "q2", bilinear_resize, "align_corners", "align_corners is ignored or mixed up"),
    ("04_upsampling", "q2", bilinear_resize, "swapped", "height and width are swapped"),
    ("04_upsampling", "q2", bilinear_resize, "no clamp", "the border is wrong"),
    ("04_upsampling", "q3", conv_transpose2d, "stride", "stride is ignored"),
    ("04_upsampling", "q3", conv_transpose2d, "flipped", "kernel is flipped"),
    ("04_upsampling", "q3", conv_transpose2d, "swapped axes", "first two axes are swapped"),
    ("04_upsampling", "q3", conv_transpose2d, "off by one", "off by one"),
]


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
    report = QUESTIONS["03_training"]["q3"].grade(_answer(train_step, "tensor")).report()
    assert "expected a Python float (use .item())" in report


# ----------------------------------------------------------------------------------------------
# answers that call what they are asked to write


def _conv_module(x, weight, bias=None, stride=1, padding=0):
    layer = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2:], stride, padding, bias=bias is not None)
    layer.to(x.dtype).weight.data = weight
    if bias is not None:
        layer.bias.data = bias
    return layer(x[None])[0]


CHEATS = [
    ("01_convolution", "q1", lambda n, k, s=1, p=0, d=1: F.conv1d(torch.zeros(1, 1, n), torch.zeros(1, 1, k), None, s, p, d).shape[-1]),
    ("01_convolution", "q1", lambda n, k, s=1, p=0, d=1: companion.conv.conv_output_size(n, k, s, p, d)),
    ("01_convolution", "q2", lambda x, k: F.conv2d(x[None, None], k[None, None])[0, 0]),
    ("01_convolution", "q3", lambda x, w, b=None, s=1, p=0: F.conv2d(x[None], w, b, s, p)[0]),
    ("01_convolution", "q3", _conv_module),
    ("01_convolution", "q3", lambda x, w, b=None, s=1, p=0: companion.conv.conv2d(x[None], w, b, s, p)[0]),
    ("02_pooling", "q1", lambda layers: companion.pool.receptive_field(layers).size),
    ("02_pooling", "q2", lambda i, o, k, bias=True, g=1: sum(p.numel() for p in nn.Conv2d(i, o, k, bias=bias, groups=g).parameters())),
    ("02_pooling", "q3", lambda x, k, s=None: F.max_pool2d(x, k, s)),
    ("02_pooling", "q3", lambda x, k, s=None: nn.MaxPool2d(k, s)(x)),
    ("03_training", "q1", lambda x, g, b, eps=1e-5: F.batch_norm(x, None, None, g, b, training=True, eps=eps)),
    ("03_training", "q1", lambda x, g, b, eps=1e-5: companion.norm.BatchNorm2d(x.shape[1], eps=eps).double()(x) * g[:, None, None] + b[:, None, None]),
    ("03_training", "q2", lambda m, v, x, momentum=0.1: (F.batch_norm(x, m, v, training=True, momentum=momentum), (m, v))[1]),
    ("04_upsampling", "q1", lambda i, n, m, a: float(F.interpolate(torch.arange(float(n))[None, None], m, mode="linear", align_corners=a)[0, 0, i])),
    ("04_upsampling", "q1", lambda i, n, m, a: float(companion.upsample.source_coordinates(n, m, a)[2][i])),
    ("04_upsampling", "q2", lambda x, size, a=False: F.interpolate(x[None], size, mode="bilinear", align_corners=a)[0]),
    ("04_upsampling", "q2", lambda x, size, a=False: nn.Upsample(size, mode="bilinear", align_corners=a)(x[None])[0]),
    ("04_upsampling", "q2", lambda x, size, a=False: companion.upsample.bilinear_resize(x[None], size, a)[0]),
    ("04_upsampling", "q3", lambda x, w, s=1: F.conv_transpose2d(x[None], w, stride=s)[0]),
    ("04_upsampling", "q3", lambda x, w, s=1: companion.upsample.conv_transpose2d(x, w, stride=s)),
    ("04_upsampling", "q3", lambda x, w, s=1: torch.func.vjp(
        lambda z: F.conv2d(z, w, stride=s), x.new_zeros(1, x.shape[0], (x.shape[1] - 1) * s + w.shape[-1],
                                                       (x.shape[2] - 1) * s + w.shape[-1]))[1](x[None])[0][0]),
]


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
