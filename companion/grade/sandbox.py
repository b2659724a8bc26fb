"""Grading processes: each submission runs in a bounded process tree that the grader kills afterwards.

The instructor's grader (:mod:`companion.grade.batch`) never runs a submission in its own
process, and never lets one near another. The processes::

    grader  (reads the notebooks, holds the reference outputs, compares, writes the gradebook)
      └─ launcher  (python -c ..., started once with a clean environment, no paths on its command
         │          line, no open files but its control socket; torch, the libraries and the
         │          questions' call functions already imported; a child subreaper)
         └─ supervisor  (one per Sandbox: its own session; a PID namespace where the OS allows
            │             one; a subreaper, so nothing its worker starts can escape it)
            └─ worker  (runs the submission: :mod:`companion.grade.worker`)

A worker starts in its own scratch directory (its working directory, removed afterwards) with
``HOME`` there, stdin/stdout/stderr on ``/dev/null`` (it cannot print on the instructor's
console), an address-space limit, the audit hook of :class:`~companion.grade.worker.Guard`, and
two pipes to the grader: one for requests and replies (plain data only, checked by
:func:`decode`), one for flags. Closing a :class:`Sandbox` freezes and kills every process of its
tree (found through ``/proc``: the supervisor's descendants, which include whatever the worker
forked or daemonised), and the launcher kills any orphan that reaches it. The grader also kills
the tree when its resident memory, summed over all its processes, passes the limit.

Part of the graded-exercise system introduced with chapter 1's exercises.
"""

from __future__ import annotations

import io
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from companion.grade.compare import check_plain
from companion.grade.exercise import GRADING_ENV, TESTS_ROOT
from companion.grade.question import Outcome

#: The longest message the grader accepts from a grading process (bytes).
MAX_MESSAGE = 64 * 2**20

_HEADER = struct.Struct("<Q")


@dataclass(frozen=True)
class Limits:
    """What one submission may use.

    Attributes:
        timeout: seconds for each code cell, and for each question's calls.
        memory_mb: memory a submission's processes may use together, on top of what Python and torch use.
        max_restarts: grading processes started again after a cell or a call killed one.
        budget: wall-clock seconds for the whole submission (cells, calls and restarts together);
            what is left when it runs out is not run, with a note (the command line's default is
            10 x ``timeout``).
    """

    timeout: float = 30.0
    memory_mb: int = 2048
    max_restarts: int = 6
    budget: float = 300.0


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
# processes, through /proc


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every process visible in ``/proc``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue
        after = stat.rpartition(b")")[2].split()
        if len(after) > 1:
            found[int(entry)] = int(after[1])
    return found


def descendants(root: int) -> list[int]:
    """The pids below ``root`` in the process tree (children first)."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _private_mb(pids: list[int]) -> float:
    """Memory (MB) that only these processes use (not the pages they share with the launcher)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as file:
                for line in file:
                    if line.startswith(("Private_Clean:", "Private_Dirty:", "SwapPss:")):
                        total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def _anonymous_kb(pid: int) -> int:
    """Resident anonymous memory (KB) of a process, cheaply (``/proc/<pid>/statm``: resident minus shared)."""
    try:
        with open(f"/proc/{pid}/statm") as file:
            fields = file.read().split()
        return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, IndexError, ValueError):
        return 0


def kill_tree(root: int, *, include_root: bool = True) -> None:
    """Stop, then kill, ``root`` and every process below it, until none is left."""
    for _ in range(20):
        pids = descendants(root) + ([root] if include_root else [])
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return
        for sig in (signal.SIGSTOP, signal.SIGKILL):  # frozen first: nothing forks while it is killed
            for pid in alive:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        time.sleep(0.005)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


# --------------------------------------------------------------------------------------------
# framed messages over a socket


def _send_frame(sock: socket.socket, data: bytes, timeout: float | None) -> None:
    sock.settimeout(timeout)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(size - got, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv_frame(sock: socket.socket, limit: int = MAX_MESSAGE) -> bytes:
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    if size > limit:
        raise SandboxError(f"a message of {size} bytes (more than {limit})")
    return _recv_exactly(sock, size)


# --------------------------------------------------------------------------------------------
# the launcher (its own process)


_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36
_CLONE_NEWUSER, _CLONE_NEWPID = 0x10000000, 0x20000000


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _new_pid_namespace(libc: Any) -> bool:
    """Put this process's next child in a new PID namespace (as root, or in a new user namespace)."""
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWPID) == 0:
        return True
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWPID) != 0:
        return False
    try:
        with open("/proc/self/setgroups", "w") as file:
            file.write("deny")
        with open("/proc/self/uid_map", "w") as file:
            file.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as file:
            file.write(f"{gid} {gid} 1")
    except OSError:
        pass
    return True


def _readable_roots() -> tuple[str, ...]:
    """Where the Python libraries live: what a submission may read."""
    import sysconfig

    package = str(Path(TESTS_ROOT).parent)  # the companion package (its checks stay hidden)
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, package}
    roots |= {p for p in sysconfig.get_paths().values() if p}
    for entry in sys.path:  # not a folder that holds the companion package: a repository checkout
        entry = os.path.realpath(entry) if entry else ""  # on PYTHONPATH would open its masters
        if entry and os.path.isdir(entry) and entry != "/" and not package.startswith(entry.rstrip("/") + "/"):
            roots.add(entry)
    return tuple(sorted(roots))


def _worker(sock_fd: int, flags_fd: int, scratch: str, memory_mb: int, hidden: tuple[str, ...],
            specs: dict[str, dict[str, Any]]) -> None:
    """The worker, after its fork: limits, clean descriptors, the audit hook, then the request loop."""
    import resource

    from companion.grade.worker import Guard, serve

    libc = _libc()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        os.setsid()
    except OSError:
        pass
    os.chdir(scratch)
    os.umask(0o077)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    keep = sorted({0, 1, 2, sock_fd, flags_fd})
    for low, high in zip(keep, keep[1:] + [1 << 16]):
        os.closerange(low + 1, high)
    sys.stdout = sys.stderr = io.TextIOWrapper(open(os.devnull, "wb"), write_through=True)
    sys.stdin = io.StringIO()
    sys.argv = [""]
    sys.path[:] = [p for p in sys.path if p not in ("", ".", scratch)]
    os.environ.update({"HOME": scratch, "TMPDIR": scratch, "MPLCONFIGDIR": scratch, "XDG_CACHE_HOME": scratch,
                       "TORCH_HOME": scratch, "MPLBACKEND": "Agg", GRADING_ENV: "1", "PWD": scratch})
    torch.set_num_threads(1)
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        limit = int(fields["VmSize"].split()[0]) * 1024 + memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (memory_mb * 2**20, memory_mb * 2**20))
    except (OSError, ValueError, KeyError):
        pass
    sock = socket.socket(fileno=sock_fd)
    sock.settimeout(None)
    guard = Guard(scratch, _readable_roots(), hidden, flags_fd)
    sys.addaudithook(guard)
    recv, send_frame = _recv_frame, _send_frame

    def send(data: bytes) -> None:
        send_frame(sock, data, None)

    serve(lambda: recv(sock), send, specs, guard)


def _supervise(sock_fd: int, flags_fd: int, status_fd: int, scratch: str, memory_mb: int, hidden: tuple[str, ...],
               specs: dict[str, Any]) -> None:
    """The supervisor: a new PID namespace if it can, a subreaper; below it the worker's tree.

    Its child is the namespace's first process (pid 1 there): it starts the worker, waits for it,
    writes how it ended to the grader's status pipe, and exits, which ends every process left in
    the namespace. Without a namespace, the supervisor, a subreaper, kills what is left.
    """
    libc = _libc()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _new_pid_namespace(libc)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    first = os.fork()
    if first == 0:
        try:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            worker = os.fork()
            if worker == 0:
                try:
                    os.close(status_fd)
                    _worker(sock_fd, flags_fd, scratch, memory_mb, hidden, specs)
                finally:
                    os._exit(0)
            os.close(sock_fd)
            os.close(flags_fd)
            _, status = os.waitpid(worker, 0)
            try:
                os.write(status_fd, str(status).encode())
            except OSError:
                pass
        finally:
            os._exit(0)
    for fd in (sock_fd, flags_fd, status_fd):
        os.close(fd)
    os.waitpid(first, 0)
    kill_tree(os.getpid(), include_root=False)
    os._exit(0)


def _launcher_main() -> None:
    """The launcher's loop: load questions' call functions, and fork supervisors on request (fd 3)."""
    import gc

    control = socket.socket(fileno=int(os.environ.pop("COMPANION_GRADE_FD")))
    import IPython.core.inputtransformer2  # noqa: F401 - every worker needs it
    import torch.profiler
    from torch._C._profiler import _ExperimentalConfig

    import companion.grade.watch  # noqa: F401
    from companion.grade.worker import call_specs

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                experimental_config=_ExperimentalConfig(profile_all_threads=True)):
        torch.zeros(1).add_(1)  # the profiler's first start takes seconds: once, here
    libc = _libc()
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    specs: dict[str, dict[str, Any]] = {}
    supervisors: set[int] = set()
    gc.freeze()  # fewer copied pages in each fork
    scanned = 0.0
    while True:
        ready, _, _ = select.select([control], [], [], 1.0)
        if ready or time.monotonic() - scanned > 2.0:
            _reap(supervisors)
            scanned = time.monotonic()
        if not ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(control, 1 << 16, 8)
        except OSError:
            return
        if not data:
            return
        request = decode(data)
        try:
            if request["op"] == "load":
                for tests in request["tests"]:
                    if tests not in specs:
                        specs[tests] = call_specs(tests)
                gc.collect()
                reply: dict[str, Any] = {"ok": True}
            elif request["op"] == "spawn":
                pid = os.fork()
                if pid == 0:
                    try:
                        control.close()
                        _supervise(fds[0], fds[1], fds[2], request["scratch"], request["memory_mb"],
                                   tuple(request["hidden"]), specs)
                    finally:
                        os._exit(0)
                supervisors.add(pid)
                reply = {"ok": True, "pid": pid}
            else:
                reply = {"ok": False, "error": "unknown request"}
        except Exception as error:  # noqa: BLE001 - reported to the grader
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        finally:
            for fd in fds:
                os.close(fd)
        control.sendall(encode(reply))


def _reap(supervisors: set[int]) -> None:
    """Reap ended children; kill any orphan that was reparented here (not one of our supervisors)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        supervisors.discard(pid)
    me = os.getpid()
    for pid, parent in _parents().items():
        if parent == me and pid not in supervisors:
            kill_tree(pid)


class _Launcher:
    """The grader's handle on the launcher process (one per grader process, started on first use)."""

    _lock = threading.Lock()
    _instance: _Launcher | None = None

    def __init__(self) -> None:
        self.home = tempfile.mkdtemp(prefix="companion-grade-")
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "OMP_NUM_THREADS",
                        "MKL_NUM_THREADS", "PYTHONHASHSEED", "CUDA_VISIBLE_DEVICES")}
        env.update({"HOME": self.home, GRADING_ENV: "1", "MPLBACKEND": "Agg", "CUDA_VISIBLE_DEVICES": "",
                    "OMP_NUM_THREADS": "1", "KINETO_LOG_LEVEL": "5", "PYTHONDONTWRITEBYTECODE": "1"})
        env["COMPANION_GRADE_FD"] = str(theirs.fileno())
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from companion.grade.sandbox import _launcher_main; _launcher_main()"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.home, env=env,
            pass_fds=(theirs.fileno(),), start_new_session=True)
        theirs.close()
        self.control = mine
        self.loaded: set[str] = set()
        self.lock = threading.Lock()

    @classmethod
    def get(cls) -> _Launcher:
        with cls._lock:
            if cls._instance is None or cls._instance.process.poll() is not None:
                if cls._instance is not None:
                    cls._instance.stop()
                cls._instance = cls()
            return cls._instance

    @classmethod
    def reset(cls) -> None:
        """Stop the launcher (a new one starts on the next request)."""
        with cls._lock:
            if cls._instance is not None:
                cls._instance.stop()
                cls._instance = None

    def request(self, message: dict[str, Any], fds: list[int] = (), timeout: float = 120.0) -> dict[str, Any]:
        with self.lock:
            self.control.settimeout(timeout)
            try:
                socket.send_fds(self.control, [encode(message)], list(fds))
                reply = decode(self.control.recv(1 << 16))
            except (OSError, SandboxError) as error:
                raise SandboxError(f"the grader's launcher did not answer ({error})") from None
        if not reply.get("ok"):
            raise SandboxError(f"the grader's launcher failed: {reply.get('error')}")
        return reply

    def stop(self) -> None:
        try:
            kill_tree(self.process.pid)
            self.process.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.control.close()
        shutil.rmtree(self.home, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# the grader's handle on one submission's processes


class Sandbox:
    """One submission's grading process tree (see the module docstring); close it with :meth:`close`.

    Args:
        limits: the time and memory limits.
        tests: the folder of the exercise's test files (whose questions the worker can call).
        hidden: more folders the submission may not read (the submissions, the masters, the output).
    """

    #: Private memory (MB) of the worker's own Python objects, allowed on top of ``limits.memory_mb``.
    BASELINE_MB = 512

    def __init__(self, limits: Limits, tests: str | Path | None = None, hidden: tuple[str, ...] = ()) -> None:
        self.limits = limits
        self.tests = str(Path(tests).resolve()) if tests is not None else None
        self.flags: list[str] = []
        self.pid: int | None = None
        self._status: int | None = None
        self._checked = 0.0
        self.scratch = tempfile.mkdtemp(prefix="submission-")
        os.chmod(self.scratch, 0o700)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        flags_read, flags_write = os.pipe()
        status_read, status_write = os.pipe()
        self._conn, self._flags_fd, self._status_fd = mine, flags_read, status_read
        os.set_blocking(flags_read, False)
        os.set_blocking(status_read, False)
        hidden = [str(TESTS_ROOT), *(str(Path(h).resolve()) for h in hidden)] + ([self.tests] if self.tests else [])
        try:
            launcher = _Launcher.get()
            wanted = [self.tests] if self.tests else [str(p.resolve()) for p in sorted(Path(TESTS_ROOT).iterdir())
                                                      if p.is_dir() and list(p.glob("q*.py"))]
            wanted = [w for w in wanted if w not in launcher.loaded]
            if wanted:
                launcher.request({"op": "load", "tests": wanted}, timeout=600)
                launcher.loaded.update(wanted)
            reply = launcher.request({"op": "spawn", "scratch": self.scratch, "memory_mb": limits.memory_mb,
                                      "hidden": hidden, "tests": self.tests or ""},
                                     [theirs.fileno(), flags_write, status_write])
            self.pid = int(reply["pid"])
            self._base_kb = _anonymous_kb(launcher.process.pid)
        except SandboxError:
            _Launcher.reset()
            raise
        finally:
            theirs.close()
            os.close(flags_write)
            os.close(status_write)

    # -- messages --------------------------------------------------------------------------

    def send(self, message: dict[str, Any], timeout: float | None = None) -> None:
        """Send a request (plain data)."""
        try:
            _send_frame(self._conn, encode(message), timeout if timeout is not None else self.limits.timeout)
        except (OSError, socket.timeout) as error:
            raise SandboxDied(self._ended() if self._ended_status() is not None
                              else f"it stopped reading its requests ({error})") from None

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
            ready, _, _ = select.select([self._conn, self._status_fd], [], [], min(0.25, remaining))
            self._read_flags()
            if self._conn in ready:
                try:
                    self._conn.settimeout(max(1.0, remaining))
                    data = _recv_frame(self._conn)
                except (EOFError, OSError, socket.timeout) as error:
                    time.sleep(0.05)
                    if self._ended_status() is not None:
                        raise SandboxDied(self._ended()) from None
                    raise SandboxDied(f"a broken message ({error})") from None
                message = decode(data)
                if type(message) is not dict:
                    raise SandboxError("the grading process sent back something that is not a dict")
                return message
            if self._ended_status() is not None:
                raise SandboxDied(self._ended())
            if time.monotonic() - self._checked > 0.5 and self.pid is not None:
                self._checked = time.monotonic()
                pids = descendants(self.pid)
                limit = self.limits.memory_mb + self.BASELINE_MB
                # an upper bound first (each process's anonymous memory beyond the launcher's, which it
                # shares until it writes); the exact private memory (slow to read) only when that is over
                if sum(max(0, _anonymous_kb(p) - self._base_kb) for p in pids) / 1024 > limit \
                        and _private_mb(pids) > limit:
                    self.close()
                    raise SandboxMemory(f"it used more than {self.limits.memory_mb} MB of memory")

    def _read_flags(self) -> None:
        try:
            data = os.read(self._flags_fd, 1 << 16)
        except (BlockingIOError, OSError):
            return
        for line in data.decode("utf-8", "replace").splitlines():
            line = "".join(c if c.isprintable() else "?" for c in line.strip())[:200]
            if line and line not in self.flags:
                self.flags.append(line)
        if len(self.flags) > 50:
            self.flags = self.flags[:50]

    def _ended_status(self) -> int | None:
        if self._status is None:
            try:
                data = os.read(self._status_fd, 64)
            except (BlockingIOError, OSError):
                return None
            if data:
                try:
                    self._status = int(data)
                except ValueError:
                    self._status = -1
            elif self.pid is not None and not _alive(self.pid):
                self._status = -1
        return self._status

    def _ended(self) -> str:
        status = self._ended_status()
        if status is None:
            return "the grading process stopped answering"
        if status == -1:
            return "the grading process ended"
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                return f"the process was killed by {signal.Signals(number).name}"
            except ValueError:
                return f"the process was killed by signal {number}"
        return f"the process exited with code {os.WEXITSTATUS(status)}"

    def close(self) -> None:
        """Kill the grading process and everything it started; remove its scratch directory."""
        if self.pid is not None:
            kill_tree(self.pid)
        self._read_flags()
        for fd in (self._flags_fd, self._status_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._flags_fd = self._status_fd = -1
        self._conn.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.pid = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._flags_fd != -1:
            self.close()

    def outcomes(self, question: str, args: list[tuple], timeout: float) -> list[Outcome] | str:
        """Call a question's function on each args tuple; the outcomes, or why the function is missing.

        Args:
            question: the question's name (``"q1"``), or its test file's path.
        """
        name, tests = Path(question).stem, self.tests
        if name != question:  # a test file's path
            tests = str(Path(question).resolve().parent)
        self.send({"kind": "question", "name": name, "tests": tests or "", "args": [list(a) for a in args]})
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
           "decode", "descendants", "encode", "kill_tree"]
