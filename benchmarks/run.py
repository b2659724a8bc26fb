"""Measure what the course promises, on this machine, and print one markdown table per promise.

1. Every chapter and exercise notebook executed in the ``quick`` profile with two CPU threads: wall time
   (budget: 90 s) and the headline result the chapter stores in its ``HEADLINE`` dict.
2. The Fashion-MNIST speed run: chapter 3's recipe trained with ``companion.train.fit`` for a
   fixed wall-clock budget (default 60 s) on the 60,000 training images, then evaluated on the
   10,000 test images (target: >= 92%).
3. Convolution speed on a 1x16x64x64 input with 32 3x3 filters: the im2col ``conv2d`` against
   ``F.conv2d`` (target: within 2x) and against the loop version (target: >= 50x faster).

Usage: ``python benchmarks/run.py [--only notebooks speedrun conv] [--seconds 60]``. The tables
are also written to ``benchmarks/results/latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_BUDGET_S = 90.0
THREADS = 2


def notebooks_table() -> str:
    import nbformat
    from nbclient import NotebookClient

    rows = ["| notebook | wall time (s) | within 90 s | headline |", "|---|---:|:---:|---|"]
    paths = sorted((ROOT / "book").glob("part*/*.ipynb")) + sorted((ROOT / "exercises").glob("[0-9]*/*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(
            'import json\nprint("HEADLINE=" + json.dumps(globals().get("HEADLINE", {}), default=str))'))
        client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        try:
            client.execute()
            error = ""
        except Exception as exc:  # report the failure in the table and go on with the others
            error = f"FAILED: {type(exc).__name__}"
        seconds = time.perf_counter() - start
        headline = error
        if not error:
            text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
            line = next((l for l in text.splitlines() if l.startswith("HEADLINE=")), "HEADLINE={}")
            values = json.loads(line.removeprefix("HEADLINE="))
            headline = ", ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in values.items())
        ok = "yes" if seconds <= NOTEBOOK_BUDGET_S and not error else "**no**"
        rows.append(f"| {path.relative_to(ROOT)} | {seconds:.1f} | {ok} | {headline} |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


def speedrun_table(seconds: float) -> str:
    import torch

    from companion import data, nets, profile, train

    profile.seed_everything(0)
    x_train, y_train = data.tensors(data.fashion_mnist(train=True))
    x_test, y_test = data.tensors(data.fashion_mnist(train=False))
    model = nets.fashion_cnn()
    start = time.perf_counter()
    history = train.fit(model, (x_train, y_train), epochs=1000, time_budget=seconds, progress=False,
                        **train.FASHION_SPEEDRUN.fit_kwargs())
    wall = time.perf_counter() - start
    test = train.evaluate(model, (x_test, y_test))
    params = sum(p.numel() for p in model.parameters())
    return "\n".join([
        "| run | parameters | training time (s) | epochs | test accuracy (10,000 images) | target |",
        "|---|---:|---:|---:|---:|---|",
        f"| Fashion-MNIST speed run, {torch.get_num_threads()} threads | {params:,} | {wall:.1f} | "
        f"{len(history.epoch)} ({history.steps} steps) | {test['acc']:.4f} | >= 0.92 |",
    ])


def conv_table() -> str:
    import torch
    import torch.nn.functional as F

    from companion import conv

    torch.manual_seed(0)
    x, w = torch.randn(1, 16, 64, 64), torch.randn(32, 16, 3, 3)

    ours, theirs = (lambda: conv.conv2d(x, w, padding=1)), (lambda: F.conv2d(x, w, padding=1))
    for _ in range(20):  # warm up thread pools and allocator caches
        ours(), theirs()
    # Interleave the two, many rounds, and keep each one's best: a busy moment hits both alike.
    t_ours, t_torch = float("inf"), float("inf")
    for _ in range(15):
        t_ours = min(t_ours, timeit.timeit(ours, number=50) / 50)
        t_torch = min(t_torch, timeit.timeit(theirs, number=50) / 50)
    t_loops = min(timeit.repeat(lambda: conv.conv2d_loops(x, w, padding=1), number=1, repeat=3))
    return "\n".join([
        "| conv2d on 1x16x64x64, 32 3x3 filters | time (ms) | ratio | target |",
        "|---|---:|---:|---|",
        f"| torch.nn.functional.conv2d | {t_torch * 1e3:.3f} | 1.0 | |",
        f"| companion.conv.conv2d (im2col) | {t_ours * 1e3:.3f} | {t_ours / t_torch:.2f}x F.conv2d | <= 2x |",
        f"| companion.conv.conv2d_loops | {t_loops * 1e3:.1f} | {t_loops / t_ours:.0f}x im2col | >= 50x im2col |",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["notebooks", "speedrun", "conv"],
                        choices=["notebooks", "speedrun", "conv"])
    parser.add_argument("--seconds", type=float, default=60.0, help="speed-run training budget")
    args = parser.parse_args()
    os.environ.update(COMPANION_PROFILE="quick", OMP_NUM_THREADS=str(THREADS), MPLBACKEND="Agg")
    import torch

    torch.set_num_threads(THREADS)
    tables = []
    for name in args.only:
        print(f"== {name}", flush=True)
        table = {"notebooks": notebooks_table, "conv": conv_table}.get(name)
        tables.append(table() if table else speedrun_table(args.seconds))
        print(tables[-1], flush=True)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    (out / "latest.md").write_text(f"# Benchmarks, {stamp}, {os.cpu_count()} CPUs\n\n" + "\n\n".join(tables) + "\n")
    print(f"written to {out / 'latest.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
