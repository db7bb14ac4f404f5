"""Work on untrusted input in processes of their own, under hard limits: what a decoder does
with a hostile file - allocate past its estimate, spin for minutes, crash - cannot take the
caller's process down or hold it.

A ``Sandbox`` keeps up to ``workers`` child processes (``python -m facelens.sandbox``), each
serving one call at a time. Before each call the child lowers its own limits to what the
call was granted - address space (``RLIMIT_AS``: its size now plus ``Limits.memory_bytes``)
and CPU time (``RLIMIT_CPU``: the time used so far plus ``Limits.cpu_s``) - and restores them
after. The parent waits at most ``Limits.wall_s`` and asks ``cancelled()`` (a caller that
has gone) every 0.1 s; either ends the call by killing the child, which is replaced on the
next call. A child that runs out of its CPU time is killed by the kernel; one that runs out
of memory fails its allocation (``MemoryError``) or dies. Either way the caller gets an
``ImageTooLargeError`` (over a budget) or an ``InputError`` (the input broke its decoder),
never the child's fate.

Nothing is pickled: a message is a JSON header and raw bytes (the input one way, an array's
bytes the other), and the parent checks the array's declared dtype and shape against what
it reads, so a child subverted by its input cannot make the parent run anything. Only
functions marked with ``@task`` in facelens's own modules can be called.

Example:
    >>> with Sandbox(workers=1) as box:
    ...     header, array = box.call("facelens.sandbox:echo", {"n": 3}, b"abc", Limits())
    >>> header, array.tolist()
    ({'n': 3, 'bytes': 3}, [97, 98, 99])
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from facelens.errors import FacelensError, ImageTooLargeError, InputError, ModelError

__all__ = [
    "Busy",
    "Cancelled",
    "Limits",
    "Sandbox",
    "release_freed_memory",
    "return_large_blocks",
    "task",
]

F = TypeVar("F", bound=Callable[..., Any])
Result = tuple[dict[str, Any], NDArray[Any] | None]

MAX_HEADER = 1 << 20
DTYPES = ("uint8", "uint16", "int32", "float32", "float64")
# what a child may tell the parent it raised, rebuilt there
ERRORS = {"InputError", "ImageTooLargeError", "ModelError"}
POLL_S = 0.1
PIPE_BYTES = 1 << 20  # the most an unprivileged process may ask for by default
TRIM_ABOVE_BYTES = 160 << 20  # a child holding more after a call trims its heap
_CHILD_ENV = {
    # one thread for every numeric library, and a single malloc arena: a child's address
    # space is its heap, not thread stacks and per-thread arenas reserved ahead
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "1",
}


class Busy(Exception):
    """Every child was working for the whole wait: come back later."""


class Cancelled(Exception):
    """The caller went away; the child working for it was stopped."""


@dataclass(frozen=True)
class Limits:
    """What one call may take.

    Attributes:
        memory_bytes: address space the call may add to the child's.
        cpu_s: CPU-seconds it may use.
        wall_s: seconds the parent waits for it (a blocked child is killed after them).
    """

    memory_bytes: int = 512 * 1024 * 1024
    cpu_s: float = 10.0
    wall_s: float = 30.0


def task(fn: F) -> F:
    """Mark ``fn(args: dict, payload: bytes) -> (dict, array | None)`` as callable in a
    sandbox."""
    fn.__facelens_task__ = True  # type: ignore[attr-defined]
    return fn


@task
def echo(args: dict[str, Any], payload: bytes) -> Result:
    """The payload back as a uint8 array, with ``args`` and its length (a test task)."""
    return {**args, "bytes": len(payload)}, np.frombuffer(payload, np.uint8)


@task
def allocate(args: dict[str, Any], payload: bytes) -> Result:
    """Allocate ``args["mib"]`` MiB and touch it, or spin ``args["spin_s"]`` CPU-seconds, or
    die by ``args["signal"]`` (what hostile input can make a decoder do; a test task)."""
    if args.get("signal"):
        os.kill(os.getpid(), int(args["signal"]))
    end = time.process_time() + float(args.get("spin_s", 0))
    while time.process_time() < end:
        pass
    block = np.ones(int(args.get("mib", 0)) << 20, np.uint8)
    return {"sum": int(block.sum())}, None


# -- messages ---------------------------------------------------------------------------------


def _pack(header: dict[str, Any], payload_len: int) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(h)) + h + struct.pack(">Q", payload_len)


class _Channel:
    """Reading a child's stdout without blocking past a deadline or a cancellation."""

    def __init__(
        self, fd: int, deadline: float, cancelled: Callable[[], bool] | None, limit: int
    ) -> None:
        self.fd, self.deadline, self.cancelled, self.limit = fd, deadline, cancelled, limit

    def _wait(self) -> None:
        while True:
            if self.cancelled is not None and self.cancelled():
                raise Cancelled()
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError()
            ready, _, _ = select.select([self.fd], [], [], min(POLL_S, left))
            if ready:
                return

    def read_into(self, view: memoryview) -> None:
        got = 0
        while got < len(view):
            self._wait()
            n = os.readv(self.fd, [view[got:]])
            if n == 0:
                raise EOFError()
            got += n

    def read(self, n: int) -> bytes:
        buf = bytearray(n)
        self.read_into(memoryview(buf))
        return bytes(buf)

    def message(self) -> Result:
        (hlen,) = struct.unpack(">I", self.read(4))
        if hlen > MAX_HEADER:
            raise EOFError()
        header = json.loads(self.read(hlen))
        (plen,) = struct.unpack(">Q", self.read(8))
        if not isinstance(header, dict) or plen > self.limit:
            raise EOFError()
        spec = header.pop("array", None)
        if spec is None:
            if plen:
                raise EOFError()
            return header, None
        dtype, shape = spec.get("dtype"), spec.get("shape")
        if (
            dtype not in DTYPES
            or not isinstance(shape, list)
            or not all(isinstance(d, int) and d >= 0 for d in shape)
        ):
            raise EOFError()
        array = np.empty(shape, dtype)
        if array.nbytes != plen:
            raise EOFError()
        self.read_into(array.reshape(-1).view(np.uint8).data)
        return header, array


# -- the parent's side ------------------------------------------------------------------------


class _Child:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "facelens.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **_CHILD_ENV},
            close_fds=True,
            start_new_session=True,  # a signal meant for the server's group is not its
        )
        for f in (self.proc.stdin, self.proc.stdout):  # fewer, larger copies (Linux)
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # type: ignore[union-attr]

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

    def call(
        self,
        name: str,
        args: dict[str, Any],
        payload: bytes,
        limits: Limits,
        cancelled: Callable[[], bool] | None,
    ) -> Result:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        header = {
            "task": name,
            "args": args,
            "memory": int(limits.memory_bytes),
            "cpu": float(limits.cpu_s),
        }
        self.proc.stdin.write(_pack(header, len(payload)))
        self.proc.stdin.write(payload)
        self.proc.stdin.flush()
        channel = _Channel(
            self.proc.stdout.fileno(),
            time.monotonic() + limits.wall_s,
            cancelled,
            int(limits.memory_bytes) + MAX_HEADER,
        )
        return channel.message()


class Sandbox:
    """Up to ``workers`` limited child processes; a call waits ``wait_s`` at most for one.

    Args:
        workers: children working at once (each is started on first need).
        wait_s: how long a call waits for a free child before ``Busy``.
        recycle_rss_bytes: a child holding more than this after a call is replaced.
    """

    def __init__(
        self, workers: int = 2, wait_s: float = 2.0, recycle_rss_bytes: int = 256 << 20
    ) -> None:
        self.workers, self.wait_s, self.recycle_rss_bytes = workers, wait_s, recycle_rss_bytes
        self._slots = threading.BoundedSemaphore(workers)
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False
        self.calls = 0
        self.killed = 0

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every idle child (a busy one is stopped when its call ends)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for c in idle:
            c.kill()

    @contextlib.contextmanager
    def _child(self) -> Iterator[list[_Child]]:
        if not self._slots.acquire(timeout=self.wait_s):
            raise Busy()
        try:
            with self._lock:
                child = self._idle.pop() if self._idle else None
            held = [child or _Child()]
            yield held
            with self._lock:
                if held and not self._closed:
                    self._idle.append(held[0])
                    held.clear()
            for c in held:
                c.kill()
        finally:
            self._slots.release()

    def call(
        self,
        name: str,
        args: dict[str, Any],
        payload: bytes,
        limits: Limits,
        cancelled: Callable[[], bool] | None = None,
        source: str = "input",
    ) -> Result:
        """Run task ``name`` (``module:function``, marked ``@task``) on ``payload``.

        Raises:
            Busy: no child was free within ``wait_s``.
            Cancelled: ``cancelled()`` said the caller has gone.
            ImageTooLargeError: the task passed its memory, CPU or time limit.
            InputError: the task failed on the input (its own error, or it died).
            ModelError: the task's own.
        """
        with self._child() as held:
            child = held[0]
            self.calls += 1
            try:
                header, array = child.call(name, args, payload, limits, cancelled)
            except (Cancelled, TimeoutError, EOFError, OSError, ValueError) as e:
                held.clear()
                self.killed += 1
                child.kill()
                raise self._failure(e, child, limits, source) from None
            if header.get("rss", 0) > self.recycle_rss_bytes:
                held.clear()
                child.kill()
        if header.get("ok"):
            return dict(header.get("result", {})), array
        raise _rebuilt(header, source, limits)

    @staticmethod
    def _failure(e: Exception, child: _Child, limits: Limits, source: str) -> Exception:
        if isinstance(e, Cancelled):
            return e
        if isinstance(e, TimeoutError):
            return ImageTooLargeError(
                source,
                f"took longer than {limits.wall_s:g} s to read",
                actual=int(limits.wall_s),
                limit=int(limits.wall_s),
            )
        code = child.proc.returncode
        if code == -signal.SIGXCPU:
            return ImageTooLargeError(
                source,
                f"reading it took more than {limits.cpu_s:g} CPU-seconds",
                actual=int(limits.cpu_s) + 1,
                limit=int(limits.cpu_s),
            )
        return InputError(source, "its decoder failed on it (the file is malformed)")


def _rebuilt(header: dict[str, Any], source: str, limits: Limits) -> Exception:
    kind, reason = header.get("error"), str(header.get("reason", ""))[:500]
    where = str(header.get("source", source))[:200]
    if kind == "MemoryError":
        mib = limits.memory_bytes >> 20
        return ImageTooLargeError(
            where,
            f"reading it would take more than the {mib} MiB it was allowed",
            actual=limits.memory_bytes + 1,
            limit=limits.memory_bytes,
        )
    if kind == "ImageTooLargeError":
        return ImageTooLargeError(
            where, reason, actual=int(header.get("actual", 0)), limit=int(header.get("limit", 0))
        )
    if kind == "ModelError":
        return ModelError(where, reason)
    if kind == "InputError":
        return InputError(where, reason)
    return InputError(where, "its decoder failed on it")


# -- the child's side -------------------------------------------------------------------------


@functools.cache
def _libc() -> Any:
    """glibc, looked up once (``ctypes.util.find_library`` runs ``ldconfig``: far too slow
    for every request)."""
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def release_freed_memory() -> None:
    """Hand memory freed by a large piece of work back to the system (glibc keeps freed heap
    pages otherwise: a 36 MP photo left ~260 MB resident after its answer)."""
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(AttributeError):  # a libc without malloc_trim
            libc.malloc_trim(0)


# glibc's mallopt parameters
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def return_large_blocks(threshold: int = 1 << 20) -> None:
    """Make glibc serve every allocation of ``threshold`` bytes or more from its own
    mapping, returned to the system when freed. By default the threshold rises to the
    largest block freed so far (up to 32 MiB): after one large image, the buffers of later
    work come from the heap and stay resident (a worker kept ~75 MB after a 36 MP image).
    Fixing it costs a mapping per large block (microseconds)."""
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(AttributeError):
            libc.mallopt(M_MMAP_THRESHOLD, threshold)
            libc.mallopt(M_TRIM_THRESHOLD, 2 * threshold)


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _resolve(name: str) -> Callable[[dict[str, Any], bytes], Result]:
    module, _, attr = name.partition(":")
    if not (module == "facelens" or module.startswith("facelens.")) or not attr:
        raise PermissionError(name)
    fn = getattr(importlib.import_module(module), attr, None)
    if fn is None or not getattr(fn, "__facelens_task__", False):
        raise PermissionError(name)
    return fn  # type: ignore[no-any-return]


@contextlib.contextmanager
def _limited(memory: int, cpu: float) -> Iterator[None]:
    import resource

    as_soft, as_hard = resource.getrlimit(resource.RLIMIT_AS)
    cpu_soft, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu_now = used.ru_utime + used.ru_stime
    want_as = _status_bytes("VmSize") + memory
    want_cpu = int(cpu_now + cpu) + 1
    if as_hard != resource.RLIM_INFINITY:
        want_as = min(want_as, as_hard)
    if cpu_hard != resource.RLIM_INFINITY:
        want_cpu = min(want_cpu, cpu_hard)
    resource.setrlimit(resource.RLIMIT_AS, (want_as, as_hard))
    resource.setrlimit(resource.RLIMIT_CPU, (want_cpu, cpu_hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (as_soft, as_hard))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_soft, cpu_hard))


def _reply(out: Any, header: dict[str, Any], array: NDArray[Any] | None) -> None:
    if array is not None:
        array = np.ascontiguousarray(array)
        header = {**header, "array": {"dtype": str(array.dtype), "shape": list(array.shape)}}
    out.write(_pack(header, 0 if array is None else array.nbytes))
    if array is not None:
        out.write(array.reshape(-1).view(np.uint8).data)
    out.flush()


def _read_exact(f: Any, n: int) -> bytes | None:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            return None
        got += k
    return bytes(buf)


def _error(e: BaseException) -> dict[str, Any]:
    if isinstance(e, MemoryError):
        return {"ok": False, "error": "MemoryError"}
    out: dict[str, Any] = {"ok": False, "error": type(e).__name__, "reason": str(e)[:500]}
    if isinstance(e, InputError):
        out |= {"source": e.source, "reason": e.reason}
    if isinstance(e, ImageTooLargeError):
        out |= {"actual": e.actual, "limit": e.limit}
    if isinstance(e, ModelError):
        out |= {"source": e.model}
    if not isinstance(e, FacelensError) or type(e).__name__ not in ERRORS:
        out["error"] = "failed"
    return out


def _serve() -> None:
    """The child: read calls from stdin, answer on stdout, until stdin closes."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    stdin = sys.stdin.buffer
    # the replies go to a private copy of stdout; fd 1 itself is pointed at stderr, so a
    # library that prints cannot corrupt a reply
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    while True:
        raw = _read_exact(stdin, 4)
        if raw is None:
            return
        (hlen,) = struct.unpack(">I", raw)
        header = json.loads(_read_exact(stdin, hlen) or b"{}")
        (plen,) = struct.unpack(">Q", _read_exact(stdin, 8) or b"\0" * 8)
        payload = (_read_exact(stdin, plen) or b"") if plen else b""
        array: NDArray[Any] | None = None
        try:
            fn = _resolve(str(header["task"]))
            with _limited(int(header["memory"]), float(header["cpu"])):
                result, array = fn(header.get("args", {}), payload)
            reply: dict[str, Any] = {"ok": True, "result": result}
        except BaseException as e:  # the parent decides what it means
            array, reply = None, _error(e)
        del payload
        # freed heap back to the system only after large work: trimming after every call
        # doubled a small photo's decode (9 -> 17 ms: its pages faulted in again each time);
        # no gc.collect either (20 ms a call, and arrays have no cycles)
        reply["rss"] = _status_bytes("VmRSS")
        if reply["rss"] > TRIM_ABOVE_BYTES:
            release_freed_memory()
            reply["rss"] = _status_bytes("VmRSS")
        _reply(out, reply, array)


if __name__ == "__main__":
    _serve()
