"""A grading process: runs one submission's code, and calls its functions on the grader's inputs.

The instructor's grader (:mod:`companion.grade.batch`) never runs a submission in its own
process. It starts a :class:`Sandbox` per submission, a child process that

* executes the notebook's code cells one by one (IPython syntax such as ``%pip`` is translated and
  ignored), reporting after each cell, so that a cell that loops, exits or kills the process is
  found, skipped, and the rest of the notebook still graded;
* on request, calls the learner's function on inputs the grader chose and sends back only plain
  values (tensors and numbers) serialised with ``torch.save``.

The grader reads every message with ``torch.load(weights_only=True)`` and checks the exact type of
everything in it (:func:`decode`), so nothing a submission defines or patches (``torch.allclose``,
the checks, ``pickle``) can run in the grader, and the comparison with the reference happens there.

Limits: the child runs in its own session (so the whole process group can be killed), with its
output thrown away (printing megabytes costs nothing), an address-space limit (``RLIMIT_AS``) of
``memory_mb`` above what the libraries use, and, as a backstop, the grader kills it when its
resident memory grows past the limit. Children are forked from a server process that has already
imported torch, so a submission starts in milliseconds.

This is process isolation, not a security boundary: a submission can still read files or use the
network where the grading machine allows it. Grade untrusted submissions inside a container.

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import builtins
import io
import linecache
import multiprocessing
import os
import runpy
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from companion.grade.compare import check_plain
from companion.grade.exercise import GRADING_ENV
from companion.grade.question import Outcome, Question, run_case

#: The longest message the grader accepts from a grading process (bytes).
MAX_MESSAGE = 64 * 2**20

#: Cell magics whose body is Python and still defines names when run as plain code.
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}


@dataclass(frozen=True)
class Limits:
    """What one submission may use.

    Attributes:
        timeout: seconds for each code cell, and for each question's calls.
        memory_mb: memory a submission may allocate on top of what Python and torch use.
        max_restarts: grading processes started again after a cell or a call killed one.
    """

    timeout: float = 30.0
    memory_mb: int = 2048
    max_restarts: int = 6


class SandboxError(RuntimeError):
    """The grading process did not answer as it should; the message says how (for the feedback)."""


class SandboxTimeout(SandboxError):
    """No answer within the time limit."""


class SandboxDied(SandboxError):
    """The grading process ended (``sys.exit`` is caught, so: ``os._exit``, a signal, a crash)."""


class SandboxMemory(SandboxError):
    """The grading process went past its memory limit."""


def encode(message: Any) -> bytes:
    """Serialise a plain message (dicts, lists, tensors, numbers, strings) with ``torch.save``."""
    buffer = io.BytesIO()
    torch.save(message, buffer)
    return buffer.getvalue()


def decode(data: bytes) -> Any:
    """Read a message written by :func:`encode`: ``weights_only`` loading, then exact type checks.

    Raises:
        SandboxError: if the bytes are not a plain message.
    """
    try:
        message = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        check_plain(message)
    except Exception as error:
        raise SandboxError(f"the grading process sent back something that is not plain data ({error})") from None
    return message


# --------------------------------------------------------------------------------------------
# the child


class _Discard(io.TextIOBase):
    """A text stream that throws everything away (the submission's prints)."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


class _Shell:
    """Stands in for ``get_ipython()``: line magics and shell commands do nothing, Python cell magics run."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.user_ns = namespace

    def run_cell_magic(self, magic: str, line: str, cell: str) -> None:
        if magic in _PYTHON_CELL_MAGICS:
            _exec(cell, self.user_ns, "<cell magic>")

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _exec(source: str, namespace: dict[str, Any], filename: str) -> None:
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(source)
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)  # tracebacks show lines
    exec(compile(code, filename, "exec"), namespace)


def _limit_memory(memory_mb: int) -> None:
    try:
        import resource

        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        used = int(fields["VmSize"].split()[0]) * 1024
        limit = used + memory_mb * 2**20
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, KeyError, ValueError):
        pass  # not Linux: the grader's resident-memory watchdog still applies


def _is_out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, MemoryError) or ("memory" in text and "allocat" in text)


def _child_main(conn: Any, memory_mb: int) -> None:
    """The grading process: answer the grader's requests until it goes away."""
    os.setsid()
    os.environ[GRADING_ENV] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = _Discard()
    sys.stdin = io.StringIO()
    torch.set_num_threads(1)
    _limit_memory(memory_mb)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    namespace["get_ipython"] = lambda: shell
    shell = _Shell(namespace)
    questions: dict[str, Question] = {}
    while True:
        try:
            request = decode(conn.recv_bytes())
        except (EOFError, OSError, SandboxError):
            return
        if request.get("kind") == "cells":
            for index, source in request["cells"]:
                reply: dict[str, Any] = {"cell": index, "ok": True}
                try:
                    _exec(source, namespace, f"<cell {index}>")
                except BaseException as error:  # noqa: BLE001 - sys.exit() in a cell is graded, not obeyed
                    reply = {"cell": index, "ok": False, "memory": _is_out_of_memory(error),
                             "error": f"{type(error).__name__}: {str(error)[:300]}"}
                conn.send_bytes(encode(reply))
        elif request.get("kind") == "question":
            path = request["path"]
            if path not in questions:
                questions[path] = runpy.run_path(path)["QUESTION"]
            question = questions[path]
            function = namespace.get(question.function)
            if not callable(function):
                what = "is not defined" if function is None else f"is a {type(function).__name__}, not a function"
                conn.send_bytes(encode({"missing": f"{question.function} {what} in the notebook"}))
                continue
            outcomes = []
            for args in request["args"]:
                if outcomes and outcomes[-1]["error_type"] == "MemoryError":  # each retry would fill memory again
                    outcomes.append({**outcomes[-1], "error": "not run after a case ran out of memory", "seconds": 0.0})
                    continue
                outcomes.append(run_case(question, function, tuple(args), interruptible=False).to_message())
            conn.send_bytes(encode({"outcomes": outcomes}))
        else:
            return


# --------------------------------------------------------------------------------------------
# the grader's handle on a child


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # every grading process then starts with torch, IPython's cell translator, otter's test-file
    # format (which the test files import) and torch._dynamo (which an optimiser imports on first use)
    # already loaded: seconds saved per submission
    context.set_forkserver_preload([__name__, "IPython.core.inputtransformer2", "otter.test_files", "torch._dynamo"])
    return context


def _resident_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Sandbox:
    """One grading process (see the module docstring); close it with :meth:`close`.

    Args:
        limits: the time and memory limits.
    """

    #: Resident memory (MB) of Python and torch, allowed on top of ``limits.memory_mb``.
    BASELINE_MB = 1536

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        context = _context()
        self._conn, child_conn = context.Pipe()
        self.process = context.Process(target=_child_main, args=(child_conn, limits.memory_mb), daemon=True)
        self.process.start()
        child_conn.close()

    def send(self, message: dict[str, Any]) -> None:
        """Send a request (plain data)."""
        try:
            self._conn.send_bytes(encode(message))
        except (BrokenPipeError, OSError) as error:
            raise SandboxDied(self._ended()) from error

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next message, within ``timeout`` seconds, as checked plain data.

        Raises:
            SandboxTimeout, SandboxDied, SandboxMemory, SandboxError: see their docstrings.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxTimeout(f"no answer within {timeout:g} s")
            if self._conn.poll(min(0.1, remaining)):
                try:
                    data = self._conn.recv_bytes(MAX_MESSAGE)
                except (EOFError, OSError) as error:
                    self.process.join(1)
                    raise SandboxDied(self._ended() if not self.process.is_alive()
                                      else f"a broken message ({error})") from None
                message = decode(data)
                if type(message) is not dict:
                    raise SandboxError("the grading process sent back something that is not a dict")
                return message
            if not self.process.is_alive():
                raise SandboxDied(self._ended())
            if _resident_mb(self.process.pid) > self.limits.memory_mb + self.BASELINE_MB:
                self.close()
                raise SandboxMemory(f"it used more than {self.limits.memory_mb} MB of memory")

    def _ended(self) -> str:
        code = self.process.exitcode
        if code is None:
            return "the grading process stopped answering"
        if code < 0:
            try:
                return f"the process was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"the process was killed by signal {-code}"
        return f"the process exited with code {code}"

    def close(self) -> None:
        """Kill the grading process and everything it started."""
        if self.process.pid is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self._conn.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def outcomes(self, question_path: str, args: list[tuple], timeout: float) -> list[Outcome] | str:
        """Call the question's function on each args tuple; the outcomes, or why the function is missing."""
        self.send({"kind": "question", "path": question_path, "args": [list(a) for a in args]})
        reply = self.receive(timeout)
        if "missing" in reply:
            return str(reply["missing"])
        outcomes = reply.get("outcomes")
        if type(outcomes) is not list or len(outcomes) != len(args):
            raise SandboxError("the grading process sent back a wrong number of results")
        try:
            return [Outcome.from_message(o) for o in outcomes]
        except TypeError as error:
            raise SandboxError(f"the grading process sent back a malformed result ({error})") from None


__all__ = ["Limits", "MAX_MESSAGE", "Sandbox", "SandboxDied", "SandboxError", "SandboxMemory", "SandboxTimeout",
           "decode", "encode"]
