"""Catch a learner who calls the very function an exercise asks them to write.

Two independent checks, because each can be fooled in a way the other is not:

* **at run time** (:class:`Watch`): while the learner's function runs, a
  ``torch.utils._python_dispatch.TorchDispatchMode`` records every ATen operator that executes,
  so ``F.conv2d``, ``torch.conv2d``, ``nn.Conv2d`` and any alias of them all show up as
  ``aten.convolution``; and a ``sys.setprofile`` hook records calls into forbidden Python modules
  (``companion.conv``, ...), however they were imported;
* **in the source** (:func:`scan_source`): the graded function, and the notebook functions it calls,
  are parsed and searched for forbidden names (``F.conv2d``, ``Conv2d``, an alias imported with
  ``from torch.nn.functional import conv2d as c``), which a submission cannot hide by tampering
  with the grading process.

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


@dataclass(frozen=True)
class Forbidden:
    """What a graded function may not call.

    Attributes:
        ops: ATen operators, e.g. ``("aten.convolution",)``, caught at run time whichever Python
            function reached them.
        modules: Python modules whose functions may not run, e.g. ``("companion.conv",)``.
        names: names the source may not use as an attribute or an import, e.g.
            ``("conv2d", "Conv2d")`` (``F.conv2d`` and ``nn.Conv2d``; the learner's own ``conv2d``
            is a plain name and stays allowed).
        what: what the learner must write, for feedback: "This exercise asks you to write {what} yourself".
    """

    ops: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    what: str = ""

    def __bool__(self) -> bool:
        return bool(self.ops or self.modules or self.names)

    def extended(self, *, ops: tuple[str, ...] = (), modules: tuple[str, ...] = (), names: tuple[str, ...] = (),
                 what: str | None = None) -> Forbidden:
        """This set and more, e.g. ``CONVOLUTION.extended(names=("block_diag",), what="the weight")``."""
        return Forbidden(ops=self.ops + ops, modules=self.modules + modules, names=self.names + names,
                         what=self.what if what is None else what)


#: Every way to reach a convolution: the exercises that ask for one forbid these.
CONVOLUTION = Forbidden(
    ops=("aten.convolution", "aten._convolution", "aten.conv2d", "aten.conv1d", "aten.conv3d",
         "aten.mkldnn_convolution", "aten._slow_conv2d_forward"),
    modules=("companion.conv",),
    names=("conv1d", "conv2d", "conv3d", "Conv1d", "Conv2d", "Conv3d", "convolution", "_convolution"),
    what="the convolution",
)


class _OpRecorder(TorchDispatchMode):
    """Record which of some ATen operators run (by overload packet, e.g. ``aten.convolution``)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # nothing is compiled here; True would import torch._dynamo (seconds) on first use

    def __init__(self, ops: Iterable[str]) -> None:
        super().__init__()
        self.packets = {}
        for op in ops:
            namespace, _, name = op.partition(".")
            packet = getattr(getattr(torch.ops, namespace), name, None)
            if packet is not None:
                self.packets[packet] = op
        self.hits: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        op = self.packets.get(func.overloadpacket)
        if op is not None:
            self.hits.add(op)
        return func(*args, **(kwargs or {}))


class Watch:
    """Context manager that records forbidden calls made inside it (see the module docstring).

    Example::

        with Watch(Forbidden(ops=("aten.convolution",))) as watch:
            learner_conv2d(x, w)
        watch.hits  # ("aten.convolution",) if it called F.conv2d
    """

    def __init__(self, forbidden: Forbidden) -> None:
        self.forbidden = forbidden
        self._hits: set[str] = set()
        self._recorder: _OpRecorder | None = None
        self._previous_profile: Callable | None = None

    @property
    def hits(self) -> tuple[str, ...]:
        found = set(self._hits) | (self._recorder.hits if self._recorder else set())
        return tuple(sorted(found))

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            if isinstance(module, str) and any(module == m or module.startswith(m + ".")
                                               for m in self.forbidden.modules):
                self._hits.add(f"{module}.{frame.f_code.co_name}")

    def __enter__(self) -> Watch:
        if self.forbidden.modules:
            self._previous_profile = sys.getprofile()
            sys.setprofile(self._profile)
        if self.forbidden.ops:
            self._recorder = _OpRecorder(self.forbidden.ops)
            self._recorder.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._recorder is not None:
            self._recorder.__exit__(None, None, None)
        if self.forbidden.modules:
            sys.setprofile(self._previous_profile)


def scan_source(sources: Iterable[str], function: str, forbidden: Forbidden) -> tuple[str, ...]:
    """Find forbidden names in the source of ``function`` and of the functions it calls.

    Args:
        sources: Python source, e.g. the code cells of a notebook (IPython syntax already
            transformed); cells that do not parse are skipped.
        function: the name of the graded function (its last module-level definition is used).
        forbidden: what to look for (:attr:`Forbidden.names` and :attr:`Forbidden.modules`).

    Returns:
        The offending expressions as written (e.g. ``("F.conv2d",)``), sorted; empty when clean.
    """
    if not (forbidden.names or forbidden.modules):
        return ()
    definitions: dict[str, ast.AST] = {}
    aliases: dict[str, str] = {}  # a name bound by an import -> what it was imported from
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node in tree.body:
                definitions[node.name] = node
            elif isinstance(node, ast.ImportFrom):
                from_forbidden = _in_modules(node.module or "", forbidden.modules)
                for alias in node.names:
                    if from_forbidden or alias.name in forbidden.names:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:  # `import companion.conv as cc`; a plain dotted import is
                    if _in_modules(alias.name, forbidden.modules) and (alias.asname or "." not in alias.name):
                        aliases[alias.asname or alias.name] = alias.name  # else caught below as an attribute
    hits: set[str] = set()
    seen: set[str] = set()
    todo = [function]
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        for node in ast.walk(definitions[name]):
            if isinstance(node, ast.Attribute) and node.attr in forbidden.names:
                hits.add(ast.unparse(node))
            elif isinstance(node, ast.Attribute) and _in_modules(ast.unparse(node), forbidden.modules):
                hits.add(ast.unparse(node))
            elif isinstance(node, ast.Name) and node.id in aliases:
                hits.add(node.id if node.id == aliases[node.id] else f"{node.id} (imported from {aliases[node.id]})")
            elif isinstance(node, ast.Name) and node.id in definitions:
                todo.append(node.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else ""
                for alias in node.names:
                    if (alias.name in forbidden.names or _in_modules(module or "", forbidden.modules)
                            or _in_modules(alias.name, forbidden.modules)):
                        hits.add(f"import {alias.name}")
    return tuple(sorted(hits))


def scan_function(function: Callable, forbidden: Forbidden) -> tuple[str, ...]:
    """:func:`scan_source` on one live function (its source from ``inspect``); empty if unavailable."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return ()
    name = getattr(function, "__name__", "")
    return scan_source([source], name, forbidden)


def _in_modules(dotted: str, modules: Iterable[str]) -> bool:
    return any(dotted == m or dotted.startswith(m + ".") for m in modules)


__all__ = ["Forbidden", "Watch", "scan_function", "scan_source"]
