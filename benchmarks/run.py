"""Measure what the course promises, on this machine, and print one markdown table per promise.

1. Every chapter and exercise notebook executed in the ``quick`` profile with two CPU threads: wall time
   (budget: 90 s) and the headline result the chapter stores in its ``HEADLINE`` dict.
2. The Fashion-MNIST speed run: chapter 3's recipe trained with ``companion.train.fit`` for a
   fixed wall-clock budget (default 60 s) on the 60,000 training images, then evaluated on the
   10,000 test images (target: >= 92%).
3. Convolution speed on a 1x16x64x64 input with 32 3x3 filters: the im2col ``conv2d`` against
   ``F.conv2d`` (target: within 2x) and against the loop version (target: >= 50x faster).
4. The architectures of part II: parameters and multiply-adds of every ``companion.models``
   builder at its paper's input size, next to torchvision's model (its parameters, and the GFLOPs
   its weights' metadata lists, which are multiply-adds) and the paper's figures.

Usage: ``python benchmarks/run.py [--only notebooks speedrun conv models] [--seconds 60]
[--notebooks 16_ 17_]`` (the last: time only the notebooks whose path contains one of the texts). The
tables are also written to ``benchmarks/results/latest.md``.
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


def notebooks_table(match: tuple[str, ...] = ()) -> str:
    import nbformat
    from nbclient import NotebookClient

    rows = ["| notebook | wall time (s) | within 90 s | headline |", "|---|---:|:---:|---|"]
    paths = sorted((ROOT / "book").glob("part*/*.ipynb")) + sorted((ROOT / "exercises").glob("[0-9]*/*.ipynb"))
    if match:
        paths = [p for p in paths if any(m in str(p.relative_to(ROOT)) for m in match)]
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


# The papers' own figures: (millions of parameters, billions of multiply-adds), None where the paper
# states none for that network.
PAPER = {
    "alexnet (2012 paper's table)": (60, None),  # Krizhevsky et al. 2012, Section 1: "60 million parameters"
    "vgg11": (133, None), "vgg16": (138, None),  # Simonyan & Zisserman, Table 2
    "googlenet": (6.8, 1.5),  # Szegedy et al. 2015, Table 1 (sum of the params column) and Section 5
    "resnet18": (None, 1.8), "resnet34": (None, 3.6), "resnet50": (None, 3.8),  # He et al. 2016, Table 1
    "resnext50_32x4d": (25.0, 4.2),  # Xie et al. 2017, Table 1
    "wide_resnet50_2": (68.9, None),  # Zagoruyko & Komodakis 2016, ImageNet table (WRN-50-2-bottleneck)
    "mobilenet_v1": (4.2, 0.569),  # Howard et al. 2017, Table 6
    "mobilenet_v2": (3.4, 0.300),  # Sandler et al. 2018, Table 4
    "squeezenet1_0": (1.248, None),  # Iandola et al. 2016, Table 1
    "se_resnet50": (28.1, 3.87),  # Hu et al. 2018, Table 2
    "wide_resnet(28, 10), CIFAR": (36.5, None),  # Zagoruyko & Komodakis 2016, Table 4
    "VisionTransformer ViT-B/16": (86, None),  # Dosovitskiy et al. 2021, Table 1
}


def models_table() -> str:
    import torch
    import torchvision

    from companion import count, models
    from companion.models.alexnet import ALEXNET_2012, AlexNet

    tv = torchvision.models
    def theirs(builder, **kwargs):  # torchvision's model (random weights) and its weights' enum, for the metadata
        return lambda: builder(weights=None, **kwargs), torchvision.models.get_model_weights(builder)

    rows = [  # (name, our builder, (torchvision builder, its weights enum) or None, input size)
        ("alexnet", models.alexnet, theirs(tv.alexnet), 224),
        ("alexnet (2012 paper's table)", lambda: AlexNet(ALEXNET_2012), None, 224),
        ("vgg11", models.vgg11, theirs(tv.vgg11), 224), ("vgg16", models.vgg16, theirs(tv.vgg16), 224),
        ("googlenet", lambda: models.googlenet(aux_logits=False),
         theirs(tv.googlenet, aux_logits=False, init_weights=True), 224),
        ("inception_v3", models.inception_v3, theirs(tv.inception_v3, init_weights=True), 299),
        ("resnet18", models.resnet18, theirs(tv.resnet18), 224), ("resnet34", models.resnet34, theirs(tv.resnet34), 224),
        ("resnet50", models.resnet50, theirs(tv.resnet50), 224),
        ("resnext50_32x4d", models.resnext50_32x4d, theirs(tv.resnext50_32x4d), 224),
        ("wide_resnet50_2", models.wide_resnet50_2, theirs(tv.wide_resnet50_2), 224),
        ("densenet121", models.densenet121, theirs(tv.densenet121), 224),
        ("mobilenet_v1", models.mobilenet_v1, None, 224),
        ("mobilenet_v2", models.mobilenet_v2, theirs(tv.mobilenet_v2), 224),
        ("squeezenet1_0", models.squeezenet1_0, theirs(tv.squeezenet1_0), 224),
        ("squeezenet1_1", models.squeezenet1_1, theirs(tv.squeezenet1_1), 224),
        ("se_resnet50", models.se_resnet50, None, 224),
        ("wide_resnet(28, 10), CIFAR", lambda: models.wide_resnet(28, 10, 10), None, 32),
        ("VisionTransformer ViT-B/16", lambda: models.VisionTransformer(224, 16, 768, 12, 12, 3072, 1000),
         theirs(tv.vit_b_16), 224),
    ]
    table = ["| model | input | ours: parameters | ours: GMACs | torchvision: parameters | torchvision: GFLOPs (meta) "
             "| paper: parameters (M) | paper: GMACs |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, ours, reference, size in rows:
        model = ours().eval()
        params = count.count_parameters(model)
        with torch.no_grad():
            macs = count.count_flops(model, (1, 3, size, size)) / 1e9
        tv_params = tv_ops = "—"
        if reference is not None:
            builder, weights = reference
            tv_params = f"{sum(p.numel() for p in builder().parameters()):,}"
            tv_ops = f"{list(weights)[0].meta['_ops']:.3f}"
        paper_params, paper_macs = PAPER.get(name, (None, None))
        table.append(f"| {name} | {size} | {params:,} | {macs:.3f} | {tv_params} | {tv_ops} | "
                     f"{'—' if paper_params is None else f'{paper_params:g}'} | "
                     f"{'—' if paper_macs is None else f'{paper_macs:g}'} |")
        print(table[-1], flush=True)
    table.append("\nMultiply-adds are counted per layer (convolutions and linear layers, `companion.count`); "
                 "torchvision's ViT figure also counts the attention products (QK^T and AV), which no layer holds.")
    return "\n".join(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["notebooks", "speedrun", "conv", "models"],
                        choices=["notebooks", "speedrun", "conv", "models"])
    parser.add_argument("--seconds", type=float, default=60.0, help="speed-run training budget")
    parser.add_argument("--notebooks", nargs="*", default=[], metavar="TEXT",
                        help="time only the notebooks whose path contains one of these texts")
    args = parser.parse_args()
    os.environ.update(COMPANION_PROFILE="quick", OMP_NUM_THREADS=str(THREADS), MPLBACKEND="Agg")
    import torch

    torch.set_num_threads(THREADS)
    tables = [f"Load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs."]
    for name in args.only:
        print(f"== {name}", flush=True)
        table = {"notebooks": lambda: notebooks_table(tuple(args.notebooks)), "conv": conv_table,
                 "models": models_table}.get(name)
        tables.append(table() if table else speedrun_table(args.seconds))
        print(tables[-1], flush=True)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    (out / "latest.md").write_text(f"# Benchmarks, {stamp}, {os.cpu_count()} CPUs\n\n" + "\n\n".join(tables) + "\n")
    print(f"written to {out / 'latest.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
