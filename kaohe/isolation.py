"""Isolation: read each workbook in a child process with memory and time limits.

Pre-flight (:mod:`kaohe.preflight`) bounds what a file may contain before
openpyxl sees it; isolation bounds what reading it may cost, whatever slips
through: a parser bug that crashes, a pathological file that takes minutes,
one that needs gigabytes. Each becomes that file's problem (P301 crash, P302
timeout, P303 memory) and the batch goes on with the next file.

The pool is small and explicit: ``workers`` child processes, each started
from a fork server that has already imported kaohe's reader (cheap to
start, no threads inherited from the parent; not openpyxl, which the reader
does not use), each with

* ``RLIMIT_AS`` (address space, default 500 MB): allocation beyond it fails
  with ``MemoryError`` in the child, which reports it and exits;
* a wall-clock deadline per file (default 10 s), enforced by the parent,
  which kills the child it started and starts a fresh one;
* ``RLIMIT_CPU`` (deadline + 5 s per file) as a backstop should the parent
  not be scheduled, and ``RLIMIT_CORE`` = 0 (a crash leaves no core file).

A child reads at most ``max_tasks_per_child`` files and never one more after
a failure. Results are returned in the order of the paths, whatever order
the children finish in.
"""

from __future__ import annotations

import gc
import hashlib
import io
import multiprocessing as mp
import os
import pickle
import signal
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterable

from kaohe.catalog import Catalog
from kaohe.errors import Code, Problem
from kaohe.reading import ReadResult, read_workbook, unit_from_filename
from kaohe.registry import Registry

try:
    import resource
except ImportError:  # pragma: no cover - not POSIX: time limits only, enforced by the parent
    resource = None  # type: ignore[assignment]

MB = 1024 * 1024
MEMORY_LIMIT = 500 * MB
TIME_LIMIT = 10.0
MAX_TASKS_PER_CHILD = 50
MAX_WORKERS = 4
#: a reader child freezes what survived its files after every this many (see :func:`_child`), and
#: collects every object, frozen or not, once its address space has grown this much since the last time
FREEZE_EVERY = 20
COLLECT_GROWTH_KB = 64 * 1024
STARTUP_LIMIT = 60.0  # seconds for a child to start and take its file (not counted in the file's time)

Reader = Callable[[Path, Catalog, Registry], ReadResult]
EXPECTED = "考核办下发的 .xlsx 自评表,用 Excel 或 WPS 正常保存"


@dataclass(frozen=True)
class ReadStats:
    """How reading one file went, for the run's log and for measuring the worst case."""

    file: str
    outcome: str  # ok | crash | timeout | memory
    seconds: float  # wall clock, in the child
    #: the child's peak resident set size in KB over its life so far (an upper bound for this file)
    peak_rss_kb: int
    pid: int
    cpu_seconds: float = 0.0  # user + system time the child spent on this file


# ----------------------------------------------------------------- what a child sends

#: objects a child has sent to its parent that it sends again as their number, at most
SHARED_AT_MOST = 50_000


class _Sender:
    """A child's side of its pipe. Objects of the ``shared`` types (immutable values that recur
    from file to file, such as the entries of cells every unit fills alike) go to the parent
    once, with what rebuilds them; after that as their number, and the parent gives back the
    object it rebuilt the first time (:class:`_Receiver`). Everything else is pickled as usual."""

    def __init__(self, conn, shared: tuple[type, ...]):
        self.conn, self.shared = conn, frozenset(shared)
        self.sent: dict[int, tuple[int, object]] = {}  # id → (number, the object, kept alive)

    def send(self, msg) -> None:
        before = len(self.sent)
        buf = io.BytesIO()
        try:
            _SharingPickler(buf, self).dump(msg)
            self.conn.send_bytes(buf.getbuffer())
        except BaseException:
            # what this message numbered never reached the parent: numbered again next time
            for key in [k for k, (number, _) in self.sent.items() if number >= before]:
                del self.sent[key]
            raise


class _SharingPickler(pickle.Pickler):
    def __init__(self, file, sender: _Sender):
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self.shared, self.sent = sender.shared, sender.sent

    def persistent_id(self, obj):
        if type(obj) not in self.shared:
            return None
        found = self.sent.get(id(obj))
        if found is not None and found[1] is obj:
            return found[0]
        rebuild = obj.__reduce__()
        if len(self.sent) >= SHARED_AT_MOST or not isinstance(rebuild, tuple) or len(rebuild) != 2:
            return None
        number = len(self.sent)
        self.sent[id(obj)] = (number, obj)
        # numbered before what rebuilds it is pickled, which may hold shared objects of its own
        # (an Entry's EntryHead): those are numbered after it but rebuilt, on the other side, before it
        return ("new", number, *rebuild)


class _Receiver(pickle.Unpickler):
    """The parent's side of one child's messages (:class:`_Sender`): ``received`` holds the
    shared objects that child sent, by number."""

    def __init__(self, data: bytes, received: list):
        super().__init__(io.BytesIO(data))
        self.received = received

    def persistent_load(self, pid):
        if type(pid) is int:
            return self.received[pid]
        _, number, rebuild, args = pid
        obj = rebuild(*args)
        received = self.received
        if number >= len(received):
            received.extend([None] * (number + 1 - len(received)))
        received[number] = obj
        return obj


# ----------------------------------------------------------------- the child


def _limit_self(memory_limit: int | None) -> None:
    if resource is None:  # pragma: no cover
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_limit:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_limit if hard == resource.RLIM_INFINITY else min(memory_limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _cpu_deadline(seconds: float | None) -> None:
    if not seconds or resource is None:
        return
    ru = resource.getrusage(resource.RUSAGE_SELF)
    used = ru.ru_utime + ru.ru_stime
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _cpu() -> float:
    """This process's CPU seconds. Not ``time.process_time()``: once ``RLIMIT_CPU`` is set (as
    in every reader child) Linux reports the process clock at tick granularity (4 ms here),
    which made a file's CPU time read 0 or one tick; ``getrusage`` stays exact."""
    if resource is None:  # pragma: no cover
        return time.process_time()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if resource is not None else 0


_PAGE_KB = (os.sysconf("SC_PAGE_SIZE") // 1024) if hasattr(os, "sysconf") else 4


def _address_space_kb() -> int:
    """This process's address space in KB (what ``RLIMIT_AS`` limits); its peak RSS where there
    is no /proc."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[0]) * _PAGE_KB
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return _peak_rss_kb()



def _child(conn, catalog: Catalog, registry: Registry, reader: Reader, memory_limit: int | None, cpu_seconds: float | None, shared: tuple[type, ...] = ()) -> None:
    _limit_self(memory_limit)
    out_conn = _Sender(conn, shared)
    # what the child holds for its life (catalog, registry, modules) is never garbage: the
    # collector no longer walks it after every few thousand allocations of a file's read
    gc.freeze()
    # Nor does it walk a file's own objects after every 700 allocations (the automatic collections
    # cost ~0.5 ms a file, mostly walking the readers' memos): a young collection after 20,000.
    # Between files, every 20 files, what survived (mostly the memos' new entries) is frozen
    # without a walk: a full collection there found nothing in cycles after any of 1,000
    # workbooks, and cost 0.1 ms a file. Once the address space has grown 64 MB (garbage in cycles
    # that holds much memory in few objects, frozen or not), everything is collected and frozen again.
    gc.set_threshold(20_000, 50, 1000)
    read, collected_at = 0, _address_space_kb()
    first = True
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        if first:  # the parent's clock for our first file starts now, not at our start-up; later
            out_conn.send(("started",))  # files start when it hands them over or when we report the one before
            first = False
        _cpu_deadline(cpu_seconds)
        t0, c0 = time.perf_counter(), _cpu()
        try:
            out: tuple = ("ok", reader(Path(task), catalog, registry))
        except MemoryError:
            out = ("memory", None)
        except Exception as exc:  # noqa: BLE001 - reported as this file's problem
            out = ("crash", type(exc).__name__)
        seconds, cpu = time.perf_counter() - t0, _cpu() - c0
        rss = _peak_rss_kb()
        try:
            out_conn.send(("done", *out, seconds, rss, cpu))
        except MemoryError:
            out_conn.send(("done", "memory", None, seconds, rss, cpu))
        if out[0] != "ok":
            return  # never reuse a child that failed
        read += 1
        if _address_space_kb() - collected_at > COLLECT_GROWTH_KB:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            collected_at = _address_space_kb()
        elif read % FREEZE_EVERY == 0:
            gc.freeze()


# ----------------------------------------------------------------- the parent

_CONTEXT = None


def _context():
    """A fork server that has imported the reader once; spawn where there is none."""
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in mp.get_all_start_methods():
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["__main__", "kaohe.reading", "kaohe.submission", "kaohe.xlsx"])
        else:  # pragma: no cover - not Linux
            ctx = mp.get_context("spawn")
        _CONTEXT = ctx
    return _CONTEXT


def start_fork_server() -> None:
    """Start the fork server now, without waiting for it: it imports kaohe once (~0.3 s), which
    the first reader child would otherwise wait for. ``kaohe run`` calls this before Prefect
    starts its server, so the two start-ups overlap."""
    ctx = _context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


#: files handed to a child ahead of the one it reads: it starts the next as soon as it has sent a
#: result, instead of waiting for this process to wake up and answer
DEPTH = 2


class _Worker:
    def __init__(self, ctx, args: tuple):
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_child, args=(child_conn, *args), daemon=True, name="kaohe-reader")
        self.proc.start()
        child_conn.close()
        self.pid = self.proc.pid or 0
        self.queue: deque[tuple[int, Path]] = deque()  # handed over, in the order the child reads them
        self.since = time.monotonic()  # when the head of the queue became the child's next file
        self.started: float | None = None  # when the child began the head (None: not yet known)
        self.given = 0
        self.done = 0
        self.received: list = []  # the shared objects this child sent, by number (_Receiver)

    def recv(self):
        return _Receiver(self.conn.recv_bytes(), self.received).load()

    @property
    def task(self) -> tuple[int, Path]:
        return self.queue[0]

    def give(self, index: int, path: Path) -> None:
        self.conn.send(str(path))
        if not self.queue:  # idle: a child that has read a file (it has started) takes it at once
            self.since = time.monotonic()
            self.started = self.since if self.given else None
        self.queue.append((index, path))
        self.given += 1

    def next_file(self) -> None:
        """The head is finished: the next one in the queue is now the child's (it began it as
        soon as it had sent the result: no message of its own, one wake-up fewer per file)."""
        self.queue.popleft()
        self.since = time.monotonic()
        self.started = self.since

    def deadline(self, time_limit: float | None) -> float | None:
        if not self.queue:
            return None
        if self.started is None:
            return self.since + STARTUP_LIMIT
        return self.started + time_limit if time_limit else None

    def stop(self, *, kill: bool = False) -> int | None:
        """End this child (only this one: it was started here). Returns its exit code."""
        if not kill:
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()
        code = self.proc.exitcode
        self.proc.close()
        return code


def file_sha256(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
    except OSError:
        pass
    return h.hexdigest(), size


def failed_read(path: Path, registry: Registry, code: Code, message: str, *, name: str | None = None) -> ReadResult:
    """The result for a file whose reading failed: its hash, the unit its name gives, one problem."""
    name = name or path.name
    sha, size = file_sha256(path)
    res = ReadResult(file=name, sha256=sha, size=size)
    res.claimed_unit = unit_from_filename(name, registry)
    res.problems.append(Problem(code, name, message, EXPECTED))
    return res


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "未知"
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"信号 {-exitcode}"
    return f"退出码 {exitcode}"


def _message(code: Code, detail: str, memory_limit: int | None, time_limit: float) -> str:
    if code == Code.READ_TIMEOUT:
        return f"读取工作簿超时(超过 {time_limit:g} 秒),文件内容异常庞大或复杂;请在考核办下发的自评表中重新填报后报送"
    if code == Code.READ_MEMORY:
        limit = f"{memory_limit // MB} MB" if memory_limit else "上限"
        return f"读取工作簿所需内存超过上限({limit}),文件内容异常庞大;请在考核办下发的自评表中重新填报后报送"
    return f"读取工作簿时程序异常退出({detail}),文件可能已损坏或含有异常内容;请用 Excel 或 WPS 重新保存后报送"


def read_isolated(
    paths: Iterable[str | Path],
    catalog: Catalog,
    registry: Registry,
    *,
    reader: Reader = read_workbook,
    workers: int | None = None,
    memory_limit: int | None = MEMORY_LIMIT,
    time_limit: float = TIME_LIMIT,
    max_tasks_per_child: int = MAX_TASKS_PER_CHILD,
    stats: list[ReadStats] | None = None,
    shared: tuple[type, ...] = (),
) -> list[ReadResult]:
    """Read every path in a child process; one result per path, in order, never an exception for a file.

    ``reader`` must be picklable by reference (a module-level function).
    ``stats``, when given, receives one :class:`ReadStats` per file.
    ``shared``: immutable types whose equal objects recur in the results (whose ``__reduce__``
    gives what rebuilds them); each object a child sends again arrives as the same object.
    """
    paths = [Path(p).absolute() for p in paths]
    if not paths:
        return []
    n = max(1, min(workers or min(os.cpu_count() or 1, MAX_WORKERS), len(paths)))
    ctx = _context()
    args = (catalog, registry, reader, memory_limit, time_limit + 5 if time_limit else None, tuple(shared))
    results: list[ReadResult | None] = [None] * len(paths)
    pending = list(reversed(list(enumerate(paths))))  # a stack: the next file is at the end
    workers: list[_Worker] = []

    def record(w: _Worker, outcome: str, seconds: float, rss: int, cpu: float = 0.0) -> None:
        if stats is not None:
            stats.append(ReadStats(w.task[1].name, outcome, round(seconds, 3), rss, w.pid, round(cpu, 3)))

    def fail(w: _Worker, code: Code, detail: str = "") -> None:
        i, path = w.task
        results[i] = failed_read(path, registry, code, _message(code, detail, memory_limit, time_limit))

    def retire(w: _Worker, *, failed: bool, kill: bool) -> None:
        """Stop a child; the files still queued for it (behind the one that failed) go back to
        be read by another."""
        workers.remove(w)
        if failed:
            w.queue.popleft()
        pending.extend(reversed(w.queue))
        w.queue.clear()
        w.stop(kill=kill)

    # the results pile up in this process while the children read: they hold no reference
    # cycles, so the cyclic collector (which would walk all of them again and again) waits
    collecting = gc.isenabled()
    gc.disable()
    try:
        while pending or any(w.queue for w in workers):
            while pending and len(workers) < n:
                workers.append(_Worker(ctx, args))
            for w in list(workers):
                while pending and len(w.queue) < DEPTH and w.given < max_tasks_per_child:
                    i, path = pending.pop()
                    try:
                        w.give(i, path)
                    except OSError:  # the child is gone: put the file back (an idle one is replaced)
                        pending.append((i, path))
                        if not w.queue:
                            retire(w, failed=False, kill=True)
                        break
            busy = [w for w in workers if w.queue]
            if not busy:
                continue
            deadlines = [d for d in (w.deadline(time_limit) for w in busy) if d is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout))
            now = time.monotonic()
            for w in busy:
                if w.conn in ready or w.proc.sentinel in ready:
                    try:
                        msg = w.recv()
                    except (EOFError, OSError):
                        code = w.proc.exitcode
                        w.proc.join(5)
                        code = w.proc.exitcode if code is None else code
                        xcpu = getattr(signal, "SIGXCPU", None)
                        kind = Code.READ_TIMEOUT if xcpu is not None and code == -xcpu else Code.READ_CRASHED
                        record(w, "timeout" if kind == Code.READ_TIMEOUT else "crash", now - (w.started or w.since), 0)
                        fail(w, kind, f"进程被终止:{_signal_name(code)}")
                        retire(w, failed=True, kill=True)
                        continue
                    except Exception as exc:  # noqa: BLE001 - a result this process cannot take in
                        record(w, "crash", now - (w.started or w.since), 0)
                        fail(w, Code.READ_CRASHED, f"读取结果无法接收:{type(exc).__name__}")
                        retire(w, failed=True, kill=True)
                        continue
                    if msg[0] == "started":
                        w.started = now
                        continue
                    _, outcome, payload, seconds, rss, cpu = msg
                    record(w, outcome, seconds, rss, cpu)
                    if outcome == "ok":
                        results[w.task[0]] = payload
                        w.done += 1
                        w.next_file()
                        if w.done >= max_tasks_per_child:
                            retire(w, failed=False, kill=False)
                    else:  # the child exits after a failure: never reused
                        fail(w, Code.READ_MEMORY if outcome == "memory" else Code.READ_CRASHED, str(payload or ""))
                        retire(w, failed=True, kill=False)
                    continue
                limit = w.deadline(time_limit)
                if limit is not None and now >= limit:
                    if w.started is None:
                        record(w, "crash", now - w.since, 0)
                        fail(w, Code.READ_CRASHED, f"读取进程在 {STARTUP_LIMIT:g} 秒内未能启动")
                    else:
                        record(w, "timeout", now - w.started, 0)
                        fail(w, Code.READ_TIMEOUT)
                    retire(w, failed=True, kill=True)
    finally:
        if collecting:
            gc.enable()
        for w in workers:
            w.stop(kill=bool(w.queue))
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def read_in_process(
    paths: Iterable[str | Path], catalog: Catalog, registry: Registry, *, reader: Reader = read_workbook
) -> list[ReadResult]:
    """The same contract without child processes (tests, debugging): no limits, but no exception escapes."""
    out = []
    for p in paths:
        path = Path(p)
        try:
            out.append(reader(path, catalog, registry))
        except MemoryError:
            out.append(failed_read(path, registry, Code.READ_MEMORY, _message(Code.READ_MEMORY, "", None, TIME_LIMIT)))
        except Exception as exc:  # noqa: BLE001 - one file's failure is that file's problem
            out.append(failed_read(path, registry, Code.READ_CRASHED, _message(Code.READ_CRASHED, type(exc).__name__, None, TIME_LIMIT)))
    return out
