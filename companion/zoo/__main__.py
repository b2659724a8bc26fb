"""``python -m companion.zoo list`` and ``python -m companion.zoo train NAME [NAME ...]``.

``train`` runs a recipe of :data:`companion.zoo.RECIPES` and writes the checkpoint and its record
into ``companion/zoo/weights/``; ``check`` re-measures the recorded metric of trained checkpoints.
Threads: ``--threads`` (default: ``OMP_NUM_THREADS``, else 2).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch


def _list() -> None:
    from companion.zoo import RECIPES, read_record

    print(f"{'name':18s} {'classes':8s} {'epochs':>6s} {'metric':>8s} {'seconds':>8s} "
          f"{'params':>8s} {'KB':>6s}  description")
    for recipe in RECIPES:
        found = read_record(recipe.name)
        classes = f"{recipe.classes[0]}-{recipe.classes[-1]}" if len(recipe.classes) > 1 else str(recipe.classes)
        if found is None:
            numbers = f"{'(not trained)':>33s}"
        else:
            numbers = (f"{found.metric:8.4f} {found.seconds:8.1f} {found.parameters:8,d} "
                       f"{found.bytes / 1024:6.0f}")
        print(f"{recipe.name:18s} {classes:8s} {recipe.epochs:6d} {numbers}  {recipe.description}")


def main(argv: list[str] | None = None) -> int:
    from companion.zoo import NAMES

    parser = argparse.ArgumentParser(prog="python -m companion.zoo", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the checkpoints and their records")
    trainer = commands.add_parser("train", help="train checkpoints and write their records")
    trainer.add_argument("names", nargs="+", choices=NAMES, metavar="NAME", help=", ".join(NAMES))
    trainer.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or 2))
    checker = commands.add_parser("check", help="re-measure the recorded metric of trained checkpoints")
    checker.add_argument("names", nargs="*", choices=NAMES, metavar="NAME")
    args = parser.parse_args(argv)

    if args.command == "list":
        _list()
    elif args.command == "train":
        from companion.zoo.training import train_and_record

        torch.set_num_threads(args.threads)
        for name in args.names:
            record = train_and_record(name)
            print(f"{name}: {record.metric_name} {record.metric:.4f} on {record.test_images:,} images, "
                  f"{record.seconds:.0f} s, {record.parameters:,} parameters, {record.bytes:,} bytes")
    else:
        from companion.zoo import record
        from companion.zoo.training import measure

        failed = 0
        for name in args.names or NAMES:
            metric, _ = measure(name)
            recorded = record(name).metric
            ok = abs(metric - recorded) <= 1e-3
            failed += not ok
            print(f"{name}: measured {metric:.4f}, recorded {recorded:.4f} {'ok' if ok else 'DIFFERENT'}")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
