"""Catch a learner who calls the very function an exercise asks them to write.

Two independent checks, because each can be fooled in a way the other is not:

* **at run time** (:class:`Watch`), while the learner's function runs:

  - a ``torch.utils._python_dispatch.TorchDispatchMode`` records every ATen operator that
    executes, so ``F.conv2d``, ``torch.conv2d``, ``nn.Conv2d`` and any alias of them all show up
    as ``aten.convolution``;
  - in the instructor's grader (``threads=True``), torch's profiler records the operators of
    *every* thread, including composite ones (``aten::cross_entropy_loss``), and is not switched
    off by ``torch._C._DisableTorchDispatch()``;
  - a ``sys.setprofile`` hook (set on new threads too) records calls into forbidden Python
    modules (``companion.conv``, ``scipy.signal``, ``cv2``, ...), of forbidden single functions
    (``numpy.convolve``, ``F.local_response_norm``), and of the grader's own checks;

* **in the source** (:func:`scan_source`): the graded function or class, and the notebook
  functions and classes it uses, are parsed and searched for forbidden names (``F.conv2d``,
  ``Conv2d``, an alias imported with ``from torch.nn.functional import conv2d as c`` or assigned
  with ``_c = F.conv2d``, a name looked up as a string), which a submission cannot hide by
  tampering with the grading process.

:func:`source_flags` names what in a notebook only serves to get around the grader (for the
gradebook's ``flagged`` column).

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
import textwrap
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, FunctionType
from typing import Any

import torch
from torch._C._profiler import _ExperimentalConfig
from torch.utils._python_dispatch import TorchDispatchMode


@dataclass(frozen=True)
class Forbidden:
    """What a graded function may not call.

    Attributes:
        ops: operators, e.g. ``("aten.convolution", "torchvision.roi_pool")``, caught at run time
            whichever Python function reached them (on any thread, while the function runs).
        modules: Python modules whose functions may not run, e.g. ``("companion.conv", "cv2")``
            (their Python functions and their C functions).
        names: names the source may not use as an attribute or an import, e.g.
            ``("conv2d", "Conv2d")`` (``F.conv2d`` and ``nn.Conv2d``; the learner's own ``conv2d``
            is a plain name and stays allowed).
        what: what the learner must write, for feedback: "This exercise asks you to write {what} yourself".
        functions: single functions that may not run, by dotted path, e.g.
            ``("numpy.convolve", "torch.nn.functional.cross_entropy")``: for a finished implementation
            in a module whose other functions are allowed. Paths that do not import are ignored.
    """

    ops: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    what: str = ""
    functions: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ops or self.modules or self.names or self.functions)

    def extended(self, *, ops: tuple[str, ...] = (), modules: tuple[str, ...] = (), names: tuple[str, ...] = (),
                 what: str | None = None, functions: tuple[str, ...] = ()) -> Forbidden:
        """This set and more, e.g. ``CONVOLUTION.extended(names=("block_diag",), what="the weight")``."""
        return Forbidden(ops=self.ops + ops, modules=self.modules + modules, names=self.names + names,
                         what=self.what if what is None else what, functions=self.functions + functions)


#: Every way to reach a convolution: the exercises that ask for one forbid these (torch's operators,
#: the companion's, SciPy's, OpenCV's, scikit-image's filters and NumPy's 1-D convolution).
CONVOLUTION = Forbidden(
    ops=("aten.convolution", "aten._convolution", "aten.conv2d", "aten.conv1d", "aten.conv3d",
         "aten.mkldnn_convolution", "aten._slow_conv2d_forward", "aten.thnn_conv2d", "aten.slow_conv3d",
         "aten.slow_conv3d_forward", "aten.slow_conv_dilated2d", "aten.slow_conv_dilated3d",
         "aten.slow_conv_transpose2d", "aten.slow_conv_transpose3d", "aten.conv_tbc", "aten._convolution_mode",
         "aten.convolution_overrideable", "aten._nnpack_spatial_convolution", "aten.conv_transpose1d",
         "aten.conv_transpose2d", "aten.conv_transpose3d", "aten.cudnn_convolution", "aten.miopen_convolution",
         "aten.conv_depthwise3d", "aten._conv_depthwise2d"),
    modules=("companion.conv", "scipy.signal", "scipy.ndimage", "cv2", "skimage.filters"),
    names=("conv1d", "conv2d", "conv3d", "Conv1d", "Conv2d", "Conv3d", "convolution", "_convolution",
           "convolve", "convolve2d", "correlate", "correlate2d", "filter2D", "fftconvolve", "oaconvolve"),
    what="the convolution",
    functions=("numpy.convolve", "numpy.correlate"),
)

#: What the grader's own checks are made of: a submission that runs them (the reference answers
#: included) is caught, whatever the question.
CHECKS_ROOT = str(Path(__file__).resolve().parents[1] / "exercise_tests")


def _op_names(ops: Iterable[str]) -> set[str]:
    """``aten.convolution`` -> ``aten::convolution`` (how the profiler names operators)."""
    return {op.replace(".", "::", 1) for op in ops}


def _resolve_functions(paths: Iterable[str]) -> tuple[set[Any], set[Any]]:
    """The code objects (Python functions) and the builtins (C functions) named by dotted paths."""
    import importlib

    codes, builtins_ = set(), set()
    for path in paths:
        parts = path.split(".")
        target = None
        for cut in range(len(parts) - 1, 0, -1):
            module = sys.modules.get(".".join(parts[:cut]))
            if module is None and parts[0] in sys.modules:
                try:
                    module = importlib.import_module(".".join(parts[:cut]))
                except Exception:  # noqa: BLE001 - an optional library
                    module = None
            if module is None:
                continue
            target = module
            for part in parts[cut:]:
                target = getattr(target, part, None)
            break
        target = inspect.unwrap(target) if callable(target) else target
        code = getattr(target, "__code__", None)
        if code is not None:
            codes.add(code)
        elif callable(target):
            builtins_.add(target)
    return codes, builtins_


def reachable_codes(function: Callable) -> set[Any]:
    """The code objects of ``function``, its nested functions, and the helpers from the checks' folder it names."""
    found: set[Any] = set()
    todo = [function]
    while todo:
        f = todo.pop()
        code = getattr(f, "__code__", None)
        if code is None or code in found:
            continue
        namespace = getattr(f, "__globals__", {})
        stack = [code]
        while stack:
            c = stack.pop()
            if c in found:
                continue
            found.add(c)
            stack += [k for k in c.co_consts if isinstance(k, type(c))]
            for name in c.co_names:
                value = namespace.get(name)
                if isinstance(value, FunctionType) and value.__code__.co_filename.startswith(CHECKS_ROOT):
                    todo.append(value)
    return found


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
            try:
                packet = getattr(getattr(torch.ops, namespace), name, None)
            except Exception:  # noqa: BLE001 - an operator library that is not loaded
                packet = None
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

    Args:
        forbidden: what to look for.
        threads: also watch the operators run by every other thread (torch's profiler), and the
            Python calls of threads started inside (slower; the instructor's grader uses it).
        guard: the grading process's :class:`~companion.grade.worker.Guard`, told when the watch
            itself switches the profiler.
        allowed: code objects from the checks' folder that may run (the question's own ``call``).

    Example::

        with Watch(Forbidden(ops=("aten.convolution",))) as watch:
            learner_conv2d(x, w)
        watch.hits  # ("aten.convolution",) if it called F.conv2d
    """

    def __init__(self, forbidden: Forbidden, *, threads: bool = False, guard: Any = None,
                 allowed: set[Any] | frozenset = frozenset()) -> None:
        self.forbidden = forbidden
        self.threads = threads
        self.guard = guard
        self.allowed = allowed
        self.flags: list[str] = []
        self._hits: set[str] = set()
        self._recorder: _OpRecorder | None = None
        self._profiler: Any = None
        self._previous_profile: Callable | None = None
        self._previous_thread_profile: Callable | None = None
        self._codes, self._builtins = _resolve_functions(forbidden.functions)

    @property
    def hits(self) -> tuple[str, ...]:
        found = set(self._hits) | (self._recorder.hits if self._recorder else set())
        return tuple(sorted(found))

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if code in self._codes:
                self._hits.add(f"{frame.f_globals.get('__name__', '?')}.{code.co_name}")
                return
            module = frame.f_globals.get("__name__", "")
            if isinstance(module, str) and _in_modules(module, self.forbidden.modules):
                self._hits.add(f"{module}.{code.co_name}")
            elif code.co_filename.startswith(CHECKS_ROOT) and code not in self.allowed:
                self._hits.add(f"the grader's own checks ({code.co_name})")
        elif event == "c_call":
            if arg in self._builtins:
                self._hits.add(f"{getattr(arg, '__module__', '?')}.{getattr(arg, '__name__', '?')}")
                return
            module = getattr(arg, "__module__", None)
            if isinstance(module, str) and _in_modules(module, self.forbidden.modules):
                self._hits.add(f"{module}.{getattr(arg, '__name__', '?')}")

    def _set_profile(self, function: Callable | None) -> None:
        if self.guard is not None:
            self.guard.watch_switching = True
        try:
            sys.setprofile(function)
        finally:
            if self.guard is not None:
                self.guard.watch_switching = False

    def __enter__(self) -> Watch:
        python = bool(self.forbidden.modules or self._codes or self._builtins) or self.threads
        if python:
            self._previous_profile = sys.getprofile()
            self._set_profile(self._profile)
            if self.threads:
                self._previous_thread_profile = threading.getprofile()
                threading.setprofile(self._profile)
        if self.forbidden.ops:
            self._recorder = _OpRecorder(self.forbidden.ops)
            self._recorder.__enter__()
            if self.threads:
                from torch.profiler import ProfilerActivity, profile

                self._profiler = profile(activities=[ProfilerActivity.CPU],
                                         experimental_config=_ExperimentalConfig(profile_all_threads=True))
                self._profiler.__enter__()
        self._python = python
        return self

    def __exit__(self, *exc: object) -> None:
        if self._profiler is not None:
            try:
                self._profiler.__exit__(None, None, None)
                names = _op_names(self.forbidden.ops)
                for event in self._profiler.profiler.kineto_results.events():  # raw: events() takes seconds
                    if event.name() in names:
                        self._hits.add(event.name().replace("::", ".", 1))
            except Exception:  # noqa: BLE001 - the profiler was switched off inside
                self.flags.append("switched off torch's profiler")
        if self._recorder is not None:
            try:
                self._recorder.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - the dispatch-mode stack was changed inside
                self.flags.append("changed torch's dispatch modes")
        if self._python:
            if sys.getprofile() != self._profile:
                self.flags.append("switched off profiling")
            self._set_profile(self._previous_profile)
            if self.threads:
                threading.setprofile(self._previous_thread_profile)


@functools.lru_cache(maxsize=512)
def parse(source: str) -> ast.Module | None:
    """``ast.parse``, remembered (a notebook's cells are parsed once for every scan); ``None`` if it does not parse."""
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _parse(sources: Iterable[str]) -> list[ast.Module]:
    return [tree for tree in map(parse, sources) if tree is not None]


def _forbidden_in(node: ast.AST, forbidden: Forbidden, aliases: dict[str, str]) -> set[str]:
    """The forbidden names ``node`` uses: attributes, imported aliases, and names spelled in strings."""
    hits: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Attribute) and child.attr in forbidden.names:
            hits.add(ast.unparse(child))
        elif isinstance(child, ast.Attribute) and _in_modules(ast.unparse(child), forbidden.modules):
            hits.add(ast.unparse(child))
        elif isinstance(child, ast.Name) and child.id in aliases:
            hits.add(child.id if child.id == aliases[child.id].split(" from ")[-1] else f"{child.id} ({aliases[child.id]})")
        elif isinstance(child, ast.Constant) and isinstance(child.value, str) and child.value in forbidden.names:
            hits.add(f"{child.value!r} (looked up by name)")
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            module = child.module if isinstance(child, ast.ImportFrom) else ""
            for alias in child.names:
                if (alias.name in forbidden.names or _in_modules(module or "", forbidden.modules)
                        or _in_modules(alias.name, forbidden.modules)):
                    hits.add(f"import {alias.name}")
    return hits


def scan_source(sources: Iterable[str], function: str, forbidden: Forbidden) -> tuple[str, ...]:
    """Find forbidden names in the source of ``function`` and of the functions and classes it uses.

    Catches ``F.conv2d``, ``nn.Conv2d``, an alias imported (``from torch.nn.functional import
    conv2d as c``) or assigned (``_c = F.conv2d``, ``ops = [F.conv2d]``) at the top level, a name
    looked up as a string (``getattr(F, "conv2d")``), in functions and in class bodies (a module
    question's class and its methods).

    Args:
        sources: Python source, e.g. the code cells of a notebook (IPython syntax already
            transformed); cells that do not parse are skipped.
        function: the name of the graded function or class (its last top-level definition is used,
            with every other top-level assignment of the name).
        forbidden: what to look for (:attr:`Forbidden.names` and :attr:`Forbidden.modules`).

    Returns:
        The offending expressions as written (e.g. ``("F.conv2d",)``), sorted; empty when clean.
    """
    if not (forbidden.names or forbidden.modules):
        return ()
    trees = _parse(sources)
    definitions: dict[str, list[ast.AST]] = {}
    aliases: dict[str, str] = {}  # a top-level name bound to something forbidden -> what
    star = False
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                from_forbidden = _in_modules(node.module or "", forbidden.modules)
                for alias in node.names:
                    if alias.name == "*" and node.module and node.module.split(".")[0] in ("torch", "torchvision",
                                                                                          "scipy", "cv2", "numpy"):
                        star = True
                    elif from_forbidden or alias.name in forbidden.names:
                        aliases[alias.asname or alias.name] = f"imported from {node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:  # `import companion.conv as cc`; a plain dotted import is
                    if _in_modules(alias.name, forbidden.modules) and (alias.asname or "." not in alias.name):
                        aliases[alias.asname or alias.name] = f"imported from {alias.name}"  # else an attribute
    for _ in range(3):  # aliases of aliases
        for tree in trees:
            for node in tree.body:
                targets: list[ast.expr] = []
                if isinstance(node, ast.Assign):
                    targets = node.targets
                elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
                    targets = [node.target]
                if not targets:
                    continue
                found = _forbidden_in(node.value, forbidden, aliases)
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name) and found and name.id not in aliases:
                            aliases[name.id] = "assigned from " + ", ".join(sorted(found))
    for tree in trees:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                definitions[node.name] = [node]  # the last definition wins
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        definitions[target.id] = [node]
    if star:
        for name in forbidden.names:
            if name not in definitions:
                aliases.setdefault(name, "imported with a * import")
    hits: set[str] = set()
    seen: set[str] = set()
    todo = [function]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name != function and name in aliases:
            continue  # reported where it is used
        for definition in definitions.get(name, []):
            hits |= _forbidden_in(definition, forbidden, {k: v for k, v in aliases.items() if k != function})
            for node in ast.walk(definition):
                if isinstance(node, ast.Name) and node.id in definitions:
                    todo.append(node.id)
        if name == function and name in aliases and name not in definitions:
            hits.add(f"{name} ({aliases[name]})")
    return tuple(sorted(hits))


#: What a notebook may use only to get around the grader: (what to look for, the reason flagged).
_SUSPICIOUS_ATTRIBUTES = {
    "_C": "used torch's internals (torch._C)",
    "_DisableTorchDispatch": "switched off torch's dispatch",
    "_disable_profiler": "switched off torch's profiler",
    "_enable_record_function": "switched off torch's profiler",
    "_set_torch_dispatch_mode": "changed torch's dispatch modes",
    "_pop_mode": "changed torch's dispatch modes",
    "setprofile": "switched off profiling or tracing", "settrace": "switched off profiling or tracing",
    "_getframe": "read the call stack", "currentframe": "read the call stack", "tb_frame": "read the call stack",
    "f_back": "read the call stack", "f_globals": "read the call stack", "f_locals": "read the call stack",
    "gi_frame": "read the call stack", "stack": None,
    "get_objects": "walked the garbage collector", "get_referrers": "walked the garbage collector",
    "get_referents": "walked the garbage collector", "_current_frames": "walked other threads",
    "addaudithook": "added an audit hook", "__code__": "replaced a function's code",
    "kill": "sent signals", "killpg": "sent signals", "pthread_kill": "sent signals", "setitimer": "sent signals",
    "alarm": "sent signals", "reload": "reloaded a module", "fork": "started processes", "system": "started processes",
    "start_new_thread": "started threads", "Thread": "started threads",
    "__subclasses__": "walked the interpreter's classes", "__globals__": "read a function's globals",
    "create_dynamic": "loaded native code", "ExtensionFileLoader": "loaded native code",
    "spec_from_file_location": "loaded native code", "load_dynamic": "loaded native code",
    "__builtins__": "changed the builtins",
}
_SUSPICIOUS_MODULES = {
    "ctypes": "used ctypes", "cffi": "used ctypes", "gc": "walked the garbage collector",
    "threading": "started threads", "_thread": "started threads", "concurrent": "started threads",
    "signal": "sent signals", "multiprocessing": "started processes", "subprocess": "started processes",
    "pty": "started processes", "inspect": "read the call stack", "traceback": None, "importlib": "reloaded a module",
    "runpy": "ran the grader's files", "companion.grade": "touched the grader's internals",
    "companion.exercise_tests": "ran the grader's files", "sys": None, "builtins": "changed the builtins",
    "socket": "used the network", "urllib": "used the network", "requests": "used the network",
    "_imp": "loaded native code",
}


def source_flags(sources: Iterable[str]) -> tuple[str, ...]:
    """What in a notebook's source only serves to get around the grader (for the gradebook's ``flagged`` column).

    An honest notebook uses none of it: torch's private ``_C`` functions, profilers and tracers,
    frames and the garbage collector, threads, processes and signals, ``ctypes``, the grader's own
    modules (beyond ``from companion.grade import Exercise``). Nothing here changes a grade.
    """
    found: set[str] = set()
    for tree in _parse(sources):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _SUSPICIOUS_ATTRIBUTES.get(node.attr):
                if node.attr == "stack" or (node.attr == "system" and "os" not in ast.unparse(node.value)):
                    continue
                if node.attr == "Thread" and "thread" not in ast.unparse(node.value).lower():
                    continue
                found.add(_SUSPICIOUS_ATTRIBUTES[node.attr])
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for module in modules:
                    for name, reason in _SUSPICIOUS_MODULES.items():
                        if reason and (module == name or module.startswith(name + ".")):
                            if name == "companion.grade" and isinstance(node, ast.ImportFrom) and \
                                    node.module == "companion.grade" and all(a.name == "Exercise" for a in node.names):
                                continue
                            found.add(reason)
                if isinstance(node, ast.ImportFrom):
                    for alias in node.names:
                        if _SUSPICIOUS_ATTRIBUTES.get(alias.name):
                            found.add(_SUSPICIOUS_ATTRIBUTES[alias.name])
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
                found.add("imported a module by name")
    return tuple(sorted(found))


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


__all__ = ["CHECKS_ROOT", "CONVOLUTION", "Forbidden", "Watch", "reachable_codes", "scan_function", "scan_source",
           "source_flags"]
