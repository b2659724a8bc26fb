"""Inside a grading process: the guard around a submission, its cells, and the calls of its functions.

This module runs in the process that executes one submission (started by
:mod:`companion.grade.sandbox`). Everything a grade depends on is decided in the grader, outside
this process; what runs here is kept small, and set up before the first line of the submission:

* :class:`Guard`, a ``sys.addaudithook`` hook (hooks cannot be removed): the submission may read
  the Python libraries and its own scratch directory only, and write only there; it cannot start
  programs (``os.system``, ``subprocess``, ``exec``), load C functions with ``ctypes``, open network
  connections, signal any process outside its own session, walk the garbage collector, or switch
  off the profiler or the tracer while its function is graded. What it tries anyway is *flagged*:
  a line written at once to a pipe that only the grader reads (``flagged`` column of the gradebook);
* :func:`serve`, the loop that runs the cells and calls the graded functions with a
  :class:`~companion.grade.watch.Watch` on every thread, on inputs the grader sent, and sends back
  plain values only. The questions' reference answers are never in this process: only each
  question's function name, what it may not call, and how it is called (its ``call``, kept with
  just the globals it needs) are, see :func:`call_specs`.

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import builtins
import io
import linecache
import os
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable

#: Code cells' file names in tracebacks; a frame from one of them is the submission's.
CELL_PREFIX = "<cell "

#: Audit events that start another program (which no audit hook would watch).
_PROGRAMS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen", "os.startfile", "pty.spawn")
#: Audit events that reach C code or memory directly.
_CTYPES = ("ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.cdata", "ctypes.cdata/buffer",
           "ctypes.string_at", "ctypes.wstring_at", "ctypes.addressof")
#: Audit events of the network.
_NETWORK = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
            "socket.gethostbyname", "socket.gethostbyaddr", "urllib.Request")
#: Audit events that change files, with the positions of their path arguments.
_WRITES = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.link": (0, 1),
           "os.symlink": (1,), "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,),
           "os.chflags": (0,), "os.lchflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
           "shutil.rmtree": (0,), "os.mkfifo": (0,), "os.mknod": (0,)}
#: Audit events of walking the interpreter's objects or frames.
_WALKS = ("gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames")
#: Attributes that lead from an object to frames (and so to the grader's locals).
_FRAME_ATTRIBUTES = ("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "gi_code", "f_globals", "f_locals")
#: Modules whose classes and functions a submission may not patch.
_PROTECTED = ("companion.grade", "torch.utils._python_dispatch", "torch.profiler", "torch.autograd.profiler",
              "torch._C._profiler", "torch.overrides", "threading", "_thread")

_O_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Refused(PermissionError):
    """What the guard raises instead of letting an operation happen."""


def _submission_frame(depth: int = 2) -> bool:
    """Whether the code that triggered the current audit event is the submission's (a cell)."""
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return False
    for _ in range(5):  # the event's Python caller, or the library wrappers right above it
        if frame is None:
            return False
        if frame.f_code.co_filename.startswith(CELL_PREFIX):
            return True
        frame = frame.f_back
    return False


def _thread_start(depth: int) -> bool:
    """Whether the event comes from ``threading`` starting a thread (which sets the watch's hook on it)."""
    try:
        code = sys._getframe(depth).f_code
    except ValueError:
        return False
    return code.co_name == "_bootstrap_inner" and code.co_filename.endswith("threading.py")


class Guard:
    """The audit hook of a grading process (see the module docstring).

    Args:
        scratch: the submission's own directory (its working directory): it may read and write there.
        readable: directories it may read (the Python libraries).
        hidden: directories it may not read even inside ``readable`` (the checks and reference answers).
        flags: a file descriptor to which each flag is written as one line.
    """

    def __init__(self, scratch: str, readable: tuple[str, ...], hidden: tuple[str, ...], flags: int) -> None:
        self.scratch = os.path.realpath(scratch)
        self.readable = tuple(os.path.realpath(p) for p in readable)
        hidden = tuple(os.path.realpath(p) for p in hidden)
        self.hidden = tuple(h for h in hidden if not any(  # never a
            r == h or r.startswith(h.rstrip("/") + "/") for r in self.readable))  # library's own folder
        self.flags_fd = flags
        self.proc_self = os.path.realpath("/proc/self")
        self.session = os.getsid(0)
        self.pid = os.getpid()
        self.in_call = False
        self.watch_switching = False  # the watch itself is setting the profiler
        self.flagged: set[str] = set()
        self._busy = False
        self._write = os.write
        self._realpath = os.path.realpath
        self._getsid = os.getsid
        self._getpid = os.getpid

    # -- flags -----------------------------------------------------------------------------

    def flag(self, reason: str) -> None:
        """Report ``reason`` to the grader (once per reason)."""
        if reason in self.flagged:
            return
        self.flagged.add(reason)
        try:
            self._write(self.flags_fd, (reason.replace("\n", " ")[:200] + "\n").encode("utf-8", "replace"))
        except OSError:
            pass

    def refuse(self, reason: str, what: str) -> None:
        """Refuse the operation; flag it when the notebook's own code asked for it (not a library's
        probing, like matplotlib looking for fonts)."""
        if _submission_frame(4):
            self.flag(reason)
        raise Refused(f"the grader does not let a submission {what}")

    # -- paths -----------------------------------------------------------------------------

    def _inside(self, path: str, roots: tuple[str, ...]) -> bool:
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

    def _resolve(self, path: Any) -> str | None:
        if isinstance(path, int) or path is None:
            return None
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            path = os.fspath(path)
        return self._realpath(path)

    def may_read(self, path: str) -> bool:
        if self._inside(path, self.hidden):
            return False
        if self._inside(path, (self.scratch, self.proc_self, "/proc/self", "/proc/thread-self")):
            return True
        if path in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/proc/meminfo", "/proc/cpuinfo",
                    "/proc/stat", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
                    "/etc/ld.so.cache", "/proc/filesystems", "/proc/mounts"):
            return True
        if self._inside(path, ("/sys/devices/system/cpu", "/sys/fs/cgroup", "/usr/share", "/usr/local/share",
                               "/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib", "/lib64", "/etc/fonts",
                               "/etc/ssl", "/usr/X11", "/usr/X11R6")):
            return True
        return self._inside(path, self.readable)

    def may_write(self, path: str) -> bool:
        return path == "/dev/null" or self._inside(path, (self.scratch,))

    # -- the hook --------------------------------------------------------------------------

    def __call__(self, event: str, args: tuple) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            self._check(event, args)
        finally:
            self._busy = False

    def _check(self, event: str, args: tuple) -> None:  # noqa: C901 - one branch per kind of event
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            resolved = self._resolve(path)
            if resolved is None:
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _O_WRITE)
            if writing and not self.may_write(resolved):
                self.refuse("wrote outside its directory", f"write {path!r}")
            if not writing and not self.may_read(resolved):
                self.refuse("read files outside its directory", f"read {path!r}")
        elif event in ("os.listdir", "os.scandir"):
            resolved = self._resolve(args[0] if args else ".")
            if resolved is not None and not self.may_read(resolved):
                self.refuse("read files outside its directory", f"list {args[0]!r}")
        elif event in _WRITES:
            for index in _WRITES[event]:
                if index < len(args):
                    resolved = self._resolve(args[index])
                    if resolved is not None and not self.may_write(resolved):
                        self.refuse("wrote outside its directory", f"change {args[index]!r}")
        elif event.startswith(_PROGRAMS):
            self.refuse("started a program", "start programs")
        elif event in _CTYPES:
            self.refuse("used ctypes", "use ctypes")
        elif event in _NETWORK:
            self.refuse("used the network", "use the network")
        elif event in ("os.kill", "os.killpg"):
            target = args[0] if args else 0
            if not self._own(target, group=event == "os.killpg"):
                self.refuse("signalled another process", "signal processes outside its own")
        elif event in ("os.fork", "os.forkpty"):
            if self.in_call:
                self.flag("started a process while graded")
        elif event in ("sys.setprofile", "sys.settrace"):
            if self.in_call and not self.watch_switching and not _thread_start(3):
                self.refuse("switched off profiling or tracing", "replace the profiler or the tracer while graded")
        elif event in _WALKS:
            if _submission_frame(3):
                self.refuse("walked the garbage collector or other threads' frames",
                            "walk the interpreter's objects (gc)")
        elif event == "sys._getframe":
            if _submission_frame(3):
                self.flag("read the call stack (sys._getframe)")
        elif event == "object.__getattr__":
            if len(args) > 1 and args[1] in _FRAME_ATTRIBUTES and _submission_frame(3):
                self.flag("read the call stack (frames)")
        elif event in ("object.__setattr__", "object.__delattr__"):
            target = args[0] if args else None
            module = getattr(target, "__module__", None) if isinstance(target, (type, types.FunctionType)) else None
            if isinstance(module, str) and module.startswith(_PROTECTED):
                self.refuse("patched the grader or torch's watch", "change the grader's or torch's internals")
            if isinstance(target, types.FunctionType) and len(args) > 1 and args[1] == "__code__" \
                    and _submission_frame(3):
                self.flag("replaced a function's code")
        elif event == "resource.setrlimit":
            self.refuse("changed its resource limits", "change its limits")
        elif event in ("sys.addaudithook", "cpython.PyInterpreterState_New"):
            if _submission_frame(3):
                self.flag("added an audit hook")

    def _own(self, target: Any, *, group: bool) -> bool:
        try:
            target = int(target)
        except (TypeError, ValueError):
            return False
        if target <= 0:
            return False
        if not group and target == self._getpid():
            return True
        try:
            return self._getsid(target) == self.session if not group else os.getpgid(0) == target
        except OSError:
            return False


# --------------------------------------------------------------------------------------------
# what the worker knows about the questions


@dataclass(frozen=True)
class CallSpec:
    """What a grading process needs to call one question's function (no reference, no mistakes)."""

    name: str
    function: str
    call: Callable[..., Any]
    forbidden: Any  # companion.grade.watch.Forbidden


def _needed_globals(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _needed_globals(const)
    return names


def _rebuild(function: Callable, namespace: dict[str, Any], done: dict[int, Any]) -> Any:
    """``function`` with globals cut down to what its code (and its helpers' code) refers to."""
    if not isinstance(function, types.FunctionType) or function.__globals__ is not namespace:
        return function
    if id(function) in done:
        return done[id(function)]
    kept: dict[str, Any] = {"__builtins__": builtins, "__name__": "companion.grade.checks"}
    rebuilt = types.FunctionType(function.__code__, kept, function.__name__, function.__defaults__,
                                 function.__closure__)
    rebuilt.__kwdefaults__ = function.__kwdefaults__
    done[id(function)] = rebuilt
    for name in _needed_globals(function.__code__):
        if name in namespace:
            kept[name] = _rebuild(namespace[name], namespace, done)
    return rebuilt


def call_specs(tests: str) -> dict[str, CallSpec]:
    """Load the questions of a tests folder, keeping of each only what calling the learner's function needs."""
    import gc

    from companion.grade.exercise import load_questions

    questions = load_questions(tests)
    specs = {}
    for name, question in questions.items():
        namespace = getattr(question.call, "__globals__", None)
        call = _rebuild(question.call, namespace, {}) if namespace is not None else question.call
        specs[name] = CallSpec(name=name, function=question.function, call=call, forbidden=question.forbidden)
    del questions, question, namespace
    gc.collect()
    return specs


# --------------------------------------------------------------------------------------------
# the loop


class _Discard(io.TextIOBase):
    """A text stream that throws everything away (the submission's prints)."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


#: Cell magics whose body is Python and still defines names when run as plain code.
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}


class _Shell:
    """Stands in for ``get_ipython()``: line magics and shell commands do nothing, Python cell magics run."""

    def __init__(self, namespace: dict[str, Any], run: Callable[[str, dict, str], None]) -> None:
        self.user_ns = namespace
        self._run = run

    def run_cell_magic(self, magic: str, line: str, cell: str) -> None:
        if magic in _PYTHON_CELL_MAGICS:
            self._run(cell, self.user_ns, "<cell magic>")

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _display(*objects: Any, **kwargs: Any) -> None:
    """``IPython.display.display`` in a grading process: shows nothing."""
    return None


#: Modules whose functions and classes the watch relies on: kept as they were before the first cell.
_SNAPSHOT_MODULES = ("sys", "threading", "_thread", "torch", "torch._C", "torch._C._profiler", "torch.autograd",
                     "torch.autograd.profiler", "torch.profiler", "torch.profiler.profiler", "torch.utils._python_dispatch",
                     "torch._ops", "companion.grade", "companion.grade.watch", "companion.grade.worker",
                     "companion.grade.question", "companion.grade.compare", "companion.grade.sandbox")


class _Snapshot:
    """The functions, classes and modules of :data:`_SNAPSHOT_MODULES`, to restore (and flag) when patched."""

    def __init__(self) -> None:
        self.saved: dict[str, tuple[Any, dict[str, Any]]] = {}
        for name in _SNAPSHOT_MODULES:
            module = sys.modules.get(name)
            if module is not None:
                self.saved[name] = (module, {k: v for k, v in vars(module).items()
                                             if callable(v) or isinstance(v, types.ModuleType)})

    def restore(self, guard: Guard) -> None:
        patched = False
        for name, (module, values) in self.saved.items():
            current = vars(module)
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                patched = True
            for key, value in values.items():
                if current.get(key) is not value:
                    current[key] = value
                    patched = True
        if patched:
            guard.flag("patched the grader's or torch's watch")


def serve(recv: Callable[[], bytes], send: Callable[[bytes], None], specs: dict[str, dict[str, CallSpec]],
          guard: Guard) -> None:
    """Answer the grader's requests until it goes away (see the module docstring).

    Requests: ``{"kind": "cells", "cells": [(number, source), ...]}`` (one reply per cell) and
    ``{"kind": "question", "tests": folder, "name": "q1", "args": [args, ...]}`` (one reply with
    every outcome); ``specs`` maps each tests folder to its questions' :class:`CallSpec`.
    """
    from companion.grade.compare import NotPlain, to_plain
    from companion.grade.question import Outcome, _message, _where
    from companion.grade.sandbox import decode, encode
    from companion.grade.watch import Watch, reachable_codes

    import time

    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    perf = time.perf_counter
    clone_args = __import__("companion.grade.compare", fromlist=["clone"]).clone

    def run(source: str, namespace: dict[str, Any], filename: str) -> None:
        try:
            compiled = compile(source, filename, "exec")  # plain Python: no translation (fast on huge cells)
            code = source
        except SyntaxError:
            code = transform(source)
            compiled = compile(code, filename, "exec")
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        exec(compiled, namespace)

    snapshot = _Snapshot()

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    shell = _Shell(namespace, run)
    namespace["get_ipython"] = lambda: shell
    namespace["display"] = _display
    builtins.display = _display  # type: ignore[attr-defined]  # a display() left inside a function
    try:
        import IPython.display

        IPython.display.display = _display
    except ImportError:
        pass

    def is_out_of_memory(error: BaseException) -> bool:
        text = str(error).lower()
        return isinstance(error, MemoryError) or ("memory" in text and "allocat" in text)

    allowed: dict[int, frozenset] = {}

    def call_case(spec: CallSpec, function: Callable, args: tuple) -> Any:
        args = clone_args(args)
        start = perf()
        try:
            value = spec.call(function, *args)
            plain = to_plain(value)
        except NotPlain as error:
            return Outcome(error_type="TypeError", seconds=perf() - start,
                           error=f"{spec.function} returned {error}; return a tensor or a number")
        except BaseException as error:  # noqa: BLE001 - SystemExit too: a learner's sys.exit() is an error
            try:
                return Outcome(error_type=type(error).__name__, error=_message(error), where=_where(error),
                               seconds=perf() - start)
            except BaseException:  # noqa: BLE001 - an exception whose str() fails
                return Outcome(error_type=type(error).__name__, error="(no message)", seconds=perf() - start)
        return Outcome(value=plain, seconds=perf() - start)

    def call_cases(spec: CallSpec, function: Callable, cases: list) -> list[dict[str, Any]]:
        """Every case under one watch (on every thread): its hits count for the whole question."""
        if id(spec) not in allowed:
            allowed[id(spec)] = frozenset(reachable_codes(spec.call))
        snapshot.restore(guard)  # what the cells patched in the grader's or torch's watch is put back
        watch = Watch(spec.forbidden, threads=True, guard=guard, allowed=allowed[id(spec)])
        outcomes: list[Any] = []
        guard.in_call = True
        try:
            with watch:
                for args in cases:
                    if outcomes and outcomes[-1].error_type == "MemoryError":  # each retry would fill memory again
                        outcomes.append(Outcome(error_type="MemoryError", error="not run after a case ran out of memory"))
                        continue
                    outcomes.append(call_case(spec, function, tuple(args)))
        except BaseException:  # noqa: BLE001 - the watch itself was broken from inside
            guard.flag("broke the grader's watch")
        finally:
            guard.in_call = False
        for reason in watch.flags:
            guard.flag(reason)
        snapshot.restore(guard)
        while len(outcomes) < len(cases):
            outcomes.append(Outcome(error_type="RuntimeError", error="the function broke the grader's watch"))
        hits = list(watch.hits)
        messages = []
        for outcome in outcomes:
            message = outcome.to_message()
            message["forbidden"] = hits
            messages.append(message)
        return messages

    while True:
        try:
            request = decode(recv())
        except BaseException:  # noqa: BLE001 - the grader went away, or sent something unreadable
            return
        kind = request.get("kind")
        if kind == "cells":
            for index, source in request["cells"]:
                reply: dict[str, Any] = {"cell": index, "ok": True}
                try:
                    run(source, namespace, f"{CELL_PREFIX}{index}>")
                except BaseException as error:  # noqa: BLE001 - sys.exit() in a cell is graded, not obeyed
                    try:
                        text = f"{type(error).__name__}: {str(error)[:300]}"
                    except BaseException:  # noqa: BLE001 - an exception whose str() fails
                        text = type(error).__name__
                    reply = {"cell": index, "ok": False, "memory": is_out_of_memory(error), "error": text}
                send(encode(reply))
        elif kind == "question":
            spec = specs.get(request.get("tests"), {}).get(request.get("name"))
            if spec is None:
                send(encode({"missing": f"no question {request.get('name')!r}"}))
                continue
            function = namespace.get(spec.function)
            if not callable(function):
                what = "is not defined" if function is None else f"is a {type(function).__name__}, not a function"
                send(encode({"missing": f"{spec.function} {what} in the notebook"}))
                continue
            outcomes = call_cases(spec, function, request["args"])
            try:
                message = encode({"outcomes": outcomes})
            except BaseException as error:  # noqa: BLE001 - e.g. a value torch.save cannot write
                bad = f"{spec.function} returned a value the grader cannot read back ({type(error).__name__})"
                message = encode({"outcomes": [{**o, "value": None, "error_type": o["error_type"] or "TypeError",
                                                "error": o["error"] or bad} for o in outcomes]})
            send(message)
        else:
            return


__all__ = ["CELL_PREFIX", "CallSpec", "Guard", "Refused", "call_specs", "serve"]
