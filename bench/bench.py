#!/usr/bin/env python
"""kaohe year-end benchmark, measured against the stack's own limits (issue 8).

For each N it

1. generates N filled workbooks with kaohe's sample generator (in parallel,
   deterministic by seed; ``--corpus DIR`` keeps them for the next invocation);
2. runs the year end in the flow's order through the public stage functions
   (``kaohe.pipeline`` + ``kaohe.report.render.render_run``; no Prefect), one
   measured stage each: load → list → ingest → validate → review → score →
   rank → insight → run folder → render → archive_inputs → write_run;
3. measures, in the same process on the same files and the same HTML, the raw
   limits: python-calamine reading every workbook (one process) and WeasyPrint
   laying out every scorecard's HTML (one process, and one per core), plus
   kaohe's own scorecard rate with its layout pool and the bulletin alone;
4. runs the real Prefect flow (``kaohe.flows.year_end.year_end``): one full run
   without caches (the end-to-end figure, Prefect's overhead included), a warm
   run with caches, then one unit fixes its workbook and the timed re-run.

It prints a table per N and the ratios of issue 8, and writes every figure as JSON.

    python bench/bench.py --units 100 --units 300 --json bench.json
    python bench/bench.py --smoke            # CI: N=20, checks only, never timed targets

Exit codes: 0 done (missed targets are reported, never a failure), 1 a check
failed (a unit without a result, a missing PDF, …) or the run raised, 2 a
dependency is missing, 130 interrupted.
"""

from __future__ import annotations

# Module level must stay import-safe and light: kaohe's fork server preloads
# ``__main__`` (this file), and the generation/raw-limit pools import it too.
import argparse
import csv
import ctypes.util
import gc
import hashlib
import json
import math
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # the checkout's kaohe, not some other installed copy
    sys.path.insert(0, str(REPO))

YEAR = 2025
SEED = 2025
MB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: bump when the way the bench generates a corpus changes (a kept --corpus is then regenerated)
GENERATOR_VERSION = 2

# issue 8, "Done when"
TARGETS = {
    "ingest_vs_raw_read": (">=", 0.5),
    "scorecards_vs_raw_render": (">=", 0.9),
    "e2e_vs_raw_half": ("<=", 1.3),
    "flow_e2e_vs_raw_half": ("<=", 1.3),
    "time_3000_over_300": ("<=", 11.0),
    "flow_time_3000_over_300": ("<=", 11.0),
    "rerun_vs_full": ("<=", 0.10),
    "bulletin_s_at_3000": ("<=", 60.0),
    "peak_rss_mb_at_3000": ("<=", 1024.0),
}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ============================================================== memory and CPU


def _status_kb(pid: int | str, key: str) -> int:
    """VmRSS / VmHWM of a process in KB (0 when it is gone or the field is absent)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reset_hwm() -> bool:
    """Reset this process's peak RSS (VmHWM) so the next stage's peak is its own (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid → (ppid, starttime, utime+stime ticks) for every process we can see."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2 :].split()  # fields after "(comm)"
        try:
            out[int(name)] = (int(rest[1]), rest[19], int(rest[11]) + int(rest[12]))
        except (IndexError, ValueError):
            continue
    return out


def _is_prefect_server(pid: int) -> bool:
    """Prefect's temporary API server (a uvicorn child of the first process that runs a flow)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"prefect.server.api.server:create_app" in fh.read()
    except OSError:
        return False


def _subtree(kids: dict[int, list[int]], root: int) -> list[int]:
    """``root`` and every process below it, from a pid → children map."""
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


class Sampler:
    """Samples this process's descendants from /proc (psutil-free).

    kaohe's reader children and layout workers hang off a fork server, so they
    are grandchildren: RUSAGE_CHILDREN never sees them. The sampler walks the
    process tree every ``interval`` seconds and keeps, per stage: the largest
    descendant VmHWM, the largest sum of VmRSS over the whole tree (this process
    included), the descendants seen and their CPU time. Prefect's temporary API
    server (a child once a flow has run) is kept apart: its RSS and CPU are
    recorded on their own, not in the tree, so the stage figures of a later N do
    not carry it.
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.me = os.getpid()
        self.lock = threading.Lock()
        self.cpu_seen: dict[tuple[int, str], int] = {}  # (pid, starttime) → last ticks (kaohe's descendants)
        self.server_cpu: dict[tuple[int, str], int] = {}  # the same for Prefect's server
        self.server_keys: dict[tuple[int, str], bool] = {}
        #: a child process whose own tree is measured apart (``focus_rss_kb``): `kaohe run` in a
        #: fresh process, without this benchmark's fork server and pools
        self.focus: int | None = None
        self.reset()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.child_hwm_kb = 0
            self.tree_rss_kb = 0
            self.focus_rss_kb = 0  # the same sum over the focused child's tree alone (a run in a child process)
            self.server_rss_kb = 0
            self.children_seen: set[tuple[int, str]] = set()

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def child_cpu_s(self) -> float:
        with self.lock:
            return sum(self.cpu_seen.values()) / TICKS

    def server_cpu_s(self) -> float:
        with self.lock:
            return sum(self.server_cpu.values()) / TICKS

    def sample(self) -> None:
        table = _proc_table()
        kids: dict[int, list[int]] = {}
        for pid, (ppid, _st, _cpu) in table.items():
            kids.setdefault(ppid, []).append(pid)
        desc = _subtree(kids, self.me)[1:]
        tree = _status_kb("self", "VmRSS")
        focus = set(_subtree(kids, self.focus)) if self.focus is not None else set()
        hwm = server = in_focus = 0
        ours, servers = [], []
        for p in desc:
            key = (p, table[p][1])
            is_server = self.server_keys.get(key)
            if is_server is None:
                is_server = self.server_keys[key] = _is_prefect_server(p)
            (servers if is_server else ours).append((p, key))
        for p, _ in ours:
            rss = _status_kb(p, "VmRSS")
            tree += rss
            in_focus += rss if p in focus else 0
            hwm = max(hwm, _status_kb(p, "VmHWM"))
        for p, _ in servers:
            server += _status_kb(p, "VmRSS")
        with self.lock:
            self.tree_rss_kb = max(self.tree_rss_kb, tree)
            self.focus_rss_kb = max(self.focus_rss_kb, in_focus)
            self.child_hwm_kb = max(self.child_hwm_kb, hwm)
            self.server_rss_kb = max(self.server_rss_kb, server)
            for p, key in ours:
                self.children_seen.add(key)
                self.cpu_seen[key] = max(self.cpu_seen.get(key, 0), table[p][2])
            for p, key in servers:
                self.server_cpu[key] = max(self.server_cpu.get(key, 0), table[p][2])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - measuring must never break the run
                pass


@dataclass
class Stage:
    name: str
    wall_s: float
    units: int  # what units/s counts (files, units, documents); 0: not a per-unit stage
    cpu_s: float  # this process + descendants (Prefect's server apart)
    peak_rss_self_mb: float  # VmHWM during the stage (reset before it), or ru_maxrss so far
    peak_rss_children_mb: float  # the largest descendant's VmHWM seen during the stage
    peak_rss_tree_mb: float  # largest sampled sum of RSS: this process + all descendants (Prefect's server apart)
    processes: int  # descendants seen during the stage
    loadavg_1m: float = 0.0  # the machine's 1-min load when the stage started
    loadavg_1m_end: float = 0.0  # … and when it ended
    in_e2e: bool = True
    prefect_server_rss_mb: float = 0.0  # Prefect's temporary server, when running
    peak_rss_focus_mb: float = 0.0  # largest sampled sum of RSS of a focused child's tree (Sampler.focus; server apart)
    prefect_server_cpu_s: float = 0.0

    @property
    def rate(self) -> float | None:
        return self.units / self.wall_s if self.units and self.wall_s > 0 else None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["units_per_s"] = None if self.rate is None else round(self.rate, 3)
        d["cpu_over_wall"] = round(self.cpu_s / self.wall_s, 2) if self.wall_s >= 0.05 else None  # too short to mean anything
        for k in ("wall_s", "cpu_s", "prefect_server_cpu_s"):
            d[k] = round(d[k], 4)
        return d


class Meter:
    """Times stages: wall clock, CPU of the process tree, peak RSS, load."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.stages: list[Stage] = []
        self.hwm_resettable = _reset_hwm()

    def run(self, name: str, fn, *args, units: int = 0, in_e2e: bool = True, **kwargs):
        gc.collect()
        _reset_hwm()
        self.sampler.sample()
        self.sampler.reset()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        rc0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        kid0, srv0 = self.sampler.child_cpu_s(), self.sampler.server_cpu_s()
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        wall = time.perf_counter() - t0
        self.sampler.sample()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        rc1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # descendants' CPU from /proc; direct children reaped between two samples only in RUSAGE_CHILDREN
        kid = max(self.sampler.child_cpu_s() - kid0, (rc1.ru_utime + rc1.ru_stime) - (rc0.ru_utime + rc0.ru_stime))
        cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime) + kid
        hwm = _status_kb("self", "VmHWM") if self.hwm_resettable else ru1.ru_maxrss
        with self.sampler.lock:
            child_hwm, tree, seen, server, focus = (self.sampler.child_hwm_kb, self.sampler.tree_rss_kb,
                                                   len(self.sampler.children_seen), self.sampler.server_rss_kb, self.sampler.focus_rss_kb)
        self.stages.append(
            Stage(
                name=name,
                wall_s=wall,
                units=units,
                cpu_s=cpu,
                peak_rss_self_mb=round(hwm / 1024, 1),
                peak_rss_children_mb=round(child_hwm / 1024, 1),
                peak_rss_tree_mb=round(max(tree, hwm) / 1024, 1),
                processes=seen,
                loadavg_1m=round(load, 2),
                loadavg_1m_end=round(os.getloadavg()[0], 2),
                in_e2e=in_e2e,
                prefect_server_rss_mb=round(server / 1024, 1),
                peak_rss_focus_mb=round(focus / 1024, 1),
                prefect_server_cpu_s=max(0.0, self.sampler.server_cpu_s() - srv0),
            )
        )
        return out

    def get(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)


# ======================================================== pool workers
# Module-level functions: the pools pickle them by reference.

_W: dict = {}


def _gen_init(catalog_path: str, registry_path: str, seed: int, subs_dir: str) -> None:
    from kaohe.catalog import load_catalog
    from kaohe.registry import load_registry

    cat = load_catalog(catalog_path)
    _W["gen"] = (cat, load_registry(registry_path, cat), seed, Path(subs_dir))


def _gen_units(indices: list[int]) -> int:
    """Write the workbooks of these units: kaohe.sample's values and filled template, one rng per unit."""
    from kaohe.sample import filled_workbook, unit_values
    from kaohe.template import template_filename

    cat, reg, seed, subs = _W["gen"]
    for i in indices:
        unit = reg.units[i]
        rng = random.Random(f"kaohe-bench:{seed}:{unit.unit_id}")  # str seeds are hashed with sha512: stable
        wb, _ = filled_workbook(cat, unit, unit_values(cat, unit, rng))
        wb.save(subs / template_filename(unit, cat.year))
    return len(indices)


def _sample(items: list, k: int) -> list:
    """Every len/k-th item (deterministic, spread over the groups and the ranking)."""
    if k <= 0 or k >= len(items):
        return list(items)
    step = len(items) / k
    return [items[int(i * step)] for i in range(k)]


def _calamine_read(path: str, sheet: str) -> int:
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(path).get_sheet_by_name(sheet).to_python()
    return len(rows)


def _calamine_read_star(a):
    return _calamine_read(*a)


def _raw_engine():
    """The report's own WeasyPrint objects (fetcher, stylesheet with the @font-face rules, font
    configuration) and the base URL render_html uses."""
    from kaohe.report import render as R

    return R.engine(), R.STATIC.as_uri() + "/"


def _raw_render(html: str) -> int:
    """The raw WeasyPrint call for one document, as render_html makes it, without kaohe's own work."""
    eng, base = _W.get("engine") or _raw_engine()
    _W["engine"] = (eng, base)
    doc = eng.weasyprint.HTML(string=html, base_url=base, url_fetcher=eng.fetcher)
    pdf = doc.write_pdf(stylesheets=[eng.css], font_config=eng.font_config)
    return len(pdf)


def _render_worker_init(ready, warm_html: str) -> None:
    _W["engine"] = _raw_engine()
    _raw_render(warm_html)  # font loading and first-layout costs are paid before the clock starts
    ready.put(os.getpid())


def _kaohe_warm(job) -> int:
    """One document laid out by kaohe's own batch function in a layout worker; its pid."""
    from kaohe.report import jobs as J

    J.render_batch([job], None)
    return os.getpid()


def _read_worker_init(ready, path: str, sheet: str) -> None:
    _calamine_read(path, sheet)
    ready.put(os.getpid())


def _mp_context(method: str = "forkserver"):
    """forkserver (kaohe's own, already started by its stages), else spawn."""
    import multiprocessing as mp

    return mp.get_context(method if method in mp.get_all_start_methods() else "spawn")


def _warm_pool(procs: int, init, initargs: tuple):
    """A pool whose workers have all run ``init`` (imports, fonts, a warm-up); returns (pool, startup seconds)."""
    ctx = _mp_context()
    ready = ctx.Queue()
    t0 = time.perf_counter()
    pool = ctx.Pool(procs, initializer=init, initargs=(ready, *initargs))
    try:
        for _ in range(procs):
            ready.get(timeout=300)
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    return pool, time.perf_counter() - t0


def _pool_map(pool, fn, items: list, procs: int, *, chunked: bool = True) -> list:
    """``pool.map``; ``chunked=False`` hands items over one at a time (documents of ~0.5 s: the
    IPC is nothing, and the workers finish together)."""
    chunk = max(1, min(16, len(items) // (procs * 8) or 1)) if chunked else 1
    return pool.map(fn, items, chunksize=chunk)


# ================================================================== snapshot


def snapshot_tree(dest: Path) -> dict:
    """Copy the checkout's code and bundled inputs to ``dest`` and import kaohe from there.

    Other people edit the same working tree while a long benchmark runs: an edit in the middle
    would make the stages, the flow runs and (through the code and PDF cache keys) the re-run
    measure different code. The copy has the installed layout (flows/ and schemas/ as
    ``kaohe.flows`` and ``kaohe.schemas``); every child (fork server, pools) imports it through
    ``PYTHONPATH``.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "kaohe", dest / "kaohe", ignore=ignore)
    for sub in ("flows", "schemas"):
        shutil.copytree(REPO / sub, dest / "kaohe" / sub, ignore=ignore)
    for sub in ("indicators", "inputs"):
        if (REPO / sub).is_dir():
            shutil.copytree(REPO / sub, dest / sub, ignore=ignore)
    h = hashlib.sha256()
    for f in sorted(p for p in dest.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(dest)).encode() + b"\0" + f.read_bytes() + b"\0")
    if "kaohe" in sys.modules:
        raise RuntimeError("kaohe was imported before the snapshot")
    # Compiled as an installed kaohe is after its first run: a process that finds no bytecode
    # compiles every module it imports (~0.1 s in each reader fork server, run and layout
    # worker), and where PYTHONDONTWRITEBYTECODE is set (this sandbox) it does so in every
    # process of every run. compileall writes the bytecode whatever that variable says.
    import compileall

    compiled = compileall.compile_dir(str(dest / "kaohe"), quiet=1, workers=1)
    sys.path.insert(0, str(dest))
    # ... and in every process started from here: on Python 3.11 a fork server neither runs
    # __main__ nor takes this process's sys.path (multiprocessing drops both), so the readers'
    # and the layout workers' fork server imported the installed kaohe, not this copy
    os.environ["PYTHONPATH"] = str(dest) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    # and it starts with "python -c", whose sys.path begins with the working directory: run from
    # the checkout, that is the checkout's kaohe (the command line's paths were made absolute)
    os.chdir(dest)
    return {"path": str(dest), "sha256": h.hexdigest()[:16], "bytecode": "compiled" if compiled else "compile failed"}


def checkout_state() -> dict:
    """The checkout's commit and whether it had uncommitted changes when the bench started."""
    import subprocess

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True, timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "kaohe", "flows", "schemas")
    return {"commit": git("rev-parse", "--short=12", "HEAD"), "uncommitted_code_files": dirty.splitlines()}


# ==================================================================== corpus


def _generator_fingerprint() -> str:
    """What the generated workbooks depend on besides N and the seed."""
    import kaohe
    from kaohe import layout as L
    from kaohe.paths import bundled

    h = hashlib.sha256(f"bench-generator {GENERATOR_VERSION} layout {L.LAYOUT_VERSION}\n".encode())
    b = bundled(YEAR)
    pkg = Path(kaohe.__file__).resolve().parent
    for p in (b.catalog, b.registry, pkg / "sample.py", pkg / "template.py", pkg / "layout.py"):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def write_components(registry, path: Path, seed: int) -> None:
    """Deterministic 群众满意度 / 日常考核 scores for the synthetic units (the run needs them)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["unit_id", "component", "score"])
        for u in registry:
            w.writerow([u.unit_id, "satisfaction", f"{rng.uniform(78, 98):.1f}"])
            w.writerow([u.unit_id, "daily", f"{rng.uniform(72, 98):.1f}"])


def generate_corpus(n: int, args, dest: Path) -> dict:
    """registry.csv, components.csv and submissions/ for N units into ``dest`` (created here).

    Without mistakes: the synthetic registry of ``kaohe.sample`` and each unit's workbook from
    ``kaohe.sample.unit_values`` + ``filled_workbook`` (what ``kaohe sample`` writes), with one
    rng per unit seeded by (seed, unit id), so the units are written by a process pool and the
    corpus is the same whatever the number of processes. With ``--mistakes``: ``kaohe.sample.generate``
    itself (one process), which plants the mistakes.
    """
    from kaohe.catalog import load_catalog
    from kaohe.paths import bundled
    from kaohe.registry import load_registry, write_registry
    from kaohe.sample import generate, synthetic_registry

    b = bundled(YEAR)
    cat = load_catalog(b.catalog)
    base = load_registry(b.registry, cat)
    subs = dest / "submissions"
    subs.mkdir(parents=True)
    procs = 1
    if args.mistakes:
        registry, _planted = generate(cat, base, dest, units=n, seed=args.seed, with_mistakes=True, mistakes=args.mistakes)
    else:
        registry = synthetic_registry(base, n)
        write_registry(registry, dest / "registry.csv")
        procs = max(1, min(args.gen_workers or os.cpu_count() or 1, n // 10 or 1))
        idx = list(range(n))
        if procs == 1:
            _gen_init(str(b.catalog), str(dest / "registry.csv"), args.seed, str(subs))
            _gen_units(idx)
        else:
            # spawn, not kaohe's fork server: the fork server must first be started by kaohe's own
            # stages (with kaohe's preload list), exactly as in `kaohe run`
            chunks = [idx[i : i + 10] for i in range(0, n, 10)]
            with _mp_context("spawn").Pool(procs, initializer=_gen_init,
                                            initargs=(str(b.catalog), str(dest / "registry.csv"), args.seed, str(subs))) as pool:
                assert sum(pool.imap_unordered(_gen_units, chunks)) == n
    write_components(registry, dest / "components.csv", args.seed)
    return {"processes": procs, "method": "kaohe.sample.generate" if args.mistakes else "kaohe.sample.unit_values+filled_workbook, one rng per unit"}


def ensure_corpus(n: int, args, work: Path, meter: Meter, log) -> tuple[Path, dict]:
    """The corpus for N: reused from ``--corpus DIR`` when its marker matches, else generated."""
    key = {"units": n, "seed": args.seed, "mistakes": args.mistakes, "generator": _generator_fingerprint()}
    root = Path(args.corpus) if args.corpus else work
    dest = root / f"units-{n}-seed{args.seed}-m{args.mistakes}"
    marker = dest / "corpus.json"
    if marker.is_file():
        try:
            have = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            have = {}
        if {k: have.get(k) for k in key} == key and len(list((dest / "submissions").iterdir())) == n:
            log(f"[N={n}] corpus reused: {dest}")
            return dest, {"reused": True, "path": str(dest), **have}
        shutil.rmtree(dest, ignore_errors=True)
    log(f"[N={n}] generating {n} workbooks …")
    tmp = root / f".gen-{n}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    try:
        info = meter.run("generate", generate_corpus, n, args, tmp, units=n, in_e2e=False)
        (tmp / "corpus.json").write_text(json.dumps(key | info, indent=2), encoding="utf-8")
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    st = meter.get("generate")
    return dest, {"reused": False, "path": str(dest), **key, **info, "stage": st.as_dict()}


# ==================================================================== checks


class CheckFailed(Exception):
    pass


def check_run(run: Path, n: int, registry, args, label: str) -> dict:
    """Every unit has a result (scored unless mistakes were planted), in results.csv and in the
    manifest; a scorecard PDF per scored unit; the bulletin. Raises CheckFailed."""
    problems = []
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    with (run / "results.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = {u.unit_id for u in registry}
    if {r.get("unit_id") for r in rows} != ids or len(rows) != len(ids):
        problems.append(f"results.csv has {len(rows)} rows, not one per unit ({len(ids)})")
    scored = manifest.get("units", {}).get("scored")
    if not args.mistakes and scored != n:
        problems.append(f"manifest: {scored}/{n} units scored ({manifest.get('units')})")
    if len(manifest.get("submissions", [])) != n:
        problems.append(f"manifest lists {len(manifest.get('submissions', []))} submissions for {n} files")
    elif not args.mistakes and any(s["state"] != "scored" for s in manifest["submissions"]):
        bad = [f"{s['file']}:{s['state']}" for s in manifest["submissions"] if s["state"] != "scored"][:5]
        problems.append("manifest: files not scored: " + ", ".join(bad))
    pdfs = sorted((run / "scorecards").glob("*.pdf")) if (run / "scorecards").is_dir() else []
    if scored is None or len(pdfs) != scored or any(p.stat().st_size == 0 for p in pdfs):
        problems.append(f"{len(pdfs)} scorecard PDFs for {scored} scored units")
    if not (run / "bulletin.pdf").is_file() or (run / "bulletin.pdf").stat().st_size == 0:
        problems.append("no bulletin.pdf")
    if problems:
        raise CheckFailed(f"N={n} {label}: " + "; ".join(problems))
    return manifest


def fix_one_unit(files: list[Path], catalog, registry) -> dict:
    """One unit corrects its workbook: a different evidence text in a cell that had one
    (as tests/test_e2e.py::test_rerun_after_one_fix_redoes_only_that_unit). A new file, the same scores."""
    from openpyxl import load_workbook

    from kaohe import layout as L
    from kaohe.reading import read_workbook
    from kaohe.template import template_filename

    by_name = {template_filename(u, catalog.year): u for u in registry}
    path = files[len(files) // 2]
    unit = by_name[path.name]
    wb = load_workbook(path)
    ws = wb[L.FORM_SHEET]
    addr = next(a for blk in L.layout(catalog, unit).blocks for k, _, a in blk.inputs() if k == L.EVIDENCE_KEY and ws[a].value)
    before = ws[addr].value
    ws[addr].value = f"{before}(补充佐证,更正后)"
    wb.save(path)
    res = read_workbook(path, catalog, registry)
    if res.problems:
        raise CheckFailed(f"the fixed workbook {path.name} has problems: {[p.render() for p in res.problems][:3]}")
    return {"file": path.name, "unit_id": unit.unit_id, "cell": f"{L.FORM_SHEET}!{addr}"}


# ==================================================================== one N


def bench_one(n: int, args, sampler: Sampler, work: Path, out_root: Path, state: dict, log) -> dict:
    from kaohe import pipeline as P
    from kaohe.catalog import load_catalog
    from kaohe.insight import rank_robustness, watch_list
    from kaohe.layout import FORM_SHEET
    from kaohe.outputs import write_watchlist_csv
    from kaohe.paths import bundled
    from kaohe.registry import load_registry
    from kaohe.report import jobs as J
    from kaohe.report import render as R
    from kaohe.review import load_components

    b = bundled(YEAR)
    cores = os.cpu_count() or 1
    res: dict = {"units": n, "loadavg_start": loadavg()}
    gen = Meter(sampler)
    data, res["corpus"] = ensure_corpus(n, args, work, gen, log)

    # ---------------------------------------------------- 1. the year end, stage by stage, in the flow's order
    m = Meter(sampler)
    paths = {"catalog": b.catalog, "registry": data / "registry.csv", "review": None, "components": data / "components.csv"}
    out_stages = out_root / f"stages-{n}"

    def load_inputs():
        catalog = load_catalog(paths["catalog"])
        registry = load_registry(paths["registry"], catalog)
        return catalog, registry, [], load_components(paths["components"], catalog, registry)

    log(f"[N={n}] year end by stages: ingest ({cores} workers) → validate → review → score → rank → insight → render ({cores} workers) → archive → write")
    t_e2e = time.perf_counter()
    from kaohe.isolation import start_fork_server

    start_fork_server()  # as `kaohe run` does first: the readers' fork server imports kaohe meanwhile
    catalog, registry, review_rows, components = m.run("load_inputs", load_inputs)
    files = m.run("list_files", P.list_submission_files, data / "submissions", units=n)
    if len(files) != n:
        raise CheckFailed(f"N={n}: the corpus has {len(files)} workbooks, expected {n}")
    reads = m.run("ingest", P.ingest_stage, files, catalog, registry, cache=None, workers=cores, units=n)
    intake = m.run("validate", lambda: P.validate_stage(reads, P.parse_stage(reads, catalog, registry), catalog, registry), units=n)
    reviewed, changes, notes = m.run("review", P.review_stage, review_rows, intake, catalog, registry, units=n)
    scored = m.run("score", P.score_stage, intake, reviewed, changes, components, catalog, registry, units=n)
    results = m.run("rank", P.rank_stage, scored, catalog, units=n)

    def insight():
        robust = rank_robustness(results, catalog, draws=args.draws, seed=args.seed)
        for r in results:
            r.robustness = robust.get(r.unit_id)
        return watch_list(results, catalog)

    watch = m.run("insight", insight, units=n)

    def run_folder():
        run = P.new_run_folder(out_stages, YEAR)
        write_watchlist_csv(run / "watchlist.csv", watch)
        return run

    run = m.run("run_folder", run_folder)
    settings = R.BulletinSettings(draws=args.draws)
    n_scored = sum(1 for r in results if r.status == "scored" and r.final is not None)
    n_feedback = sum(1 for ps in intake.problems.values() if ps)
    docs = m.run("render", R.render_run, run, results, catalog, intake, settings, None, watch, None,
                 workers=cores, cache_root=None, units=2 + n_scored + n_feedback)
    input_files = m.run("archive_inputs", P.archive_inputs, run, dict(paths), files, units=n)
    params = {"year": YEAR, "out": str(out_stages), "draws": args.draws, "seed": args.seed, "bench_units": n}
    m.run("write_run", P.write_run, run, catalog=catalog, registry=registry, results=results, intake=intake, params=params,
          input_files=input_files, review_notes=notes, review_rows=len(review_rows), changes=changes,
          work={"runner": f"bench stages (no Prefect), {cores} processes"}, units=n)
    e2e = time.perf_counter() - t_e2e
    check_run(run, n, registry, args, "stages")
    log(f"[N={n}] stages ok: {n_scored} scored, {len(docs)} files in {e2e:.1f} s")
    res.update(files=len(files), scored=n_scored, feedback_documents=n_feedback, documents=len(docs), e2e_s=round(e2e, 3))
    del reads, reviewed, scored

    # ---------------------------------------------------- 2. reference stages (not in the end to end)
    x = Meter(sampler)
    scratch = work / f"scratch-{n}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    x.run("bulletin", R.render_bulletin, results, catalog, settings, scratch / "bulletin.pdf", None, units=1, in_e2e=False)

    def scorecard_todo() -> list:
        """The documents kaohe's layout is timed on: with --sample K the same K scorecards the raw
        render lays out, else every scorecard and feedback letter. Their HTML is built here, before
        the clock, as the raw render's is (html_build times it)."""
        s = settings.resolved(catalog)
        todo = list(J.scorecard_jobs(scratch, results, catalog, s))
        if args.sample:
            return _sample(todo, args.sample)
        return todo + list(J.feedback_jobs(scratch, results, catalog, intake, s))

    def kaohe_pool(pool, todo: list) -> float:
        """Warm jobs.local_pool(cores) like the raw render's pool: every worker (told apart by
        its pid) has laid out one document before the clock starts. Returns the start-up seconds."""
        t0 = time.perf_counter()
        warm, pids = scratch / "warm", set()
        for _round in range(8):
            futs = [pool.submit(_kaohe_warm, J.Job(todo[0].kind, warm / f"{len(pids)}-{i}.pdf", todo[0].html)) for i in range(cores)]
            pids.update(f.result() for f in futs)
            if len(pids) >= cores:
                break
        return time.perf_counter() - t0

    def kaohe_scorecards(pool, todo: list):
        """kaohe's layout of ``todo``: jobs.render_batch on batches cut by pipeline.batches
        (2–25, shrinking towards the end), as render_run cuts them; all submitted at once
        (render_run keeps two per worker in flight, to bound the HTML it holds)."""
        futs = [pool.submit(J.render_batch, batch, None) for batch in P.batches(todo, cores, smallest=2, largest=25)]
        return [p for f in futs for p in f.result().paths]

    raw: dict = {}
    html: list[str] = []
    if args.raw:
        resolved = settings.resolved(catalog)
        html = x.run("html_build", lambda: [j.html for j in J.scorecard_jobs(scratch, results, catalog, resolved)], units=n_scored, in_e2e=False)
        if args.sample:
            html = _sample(html, args.sample)
            raw["sample"] = {"scorecards": len(html), "of": n_scored,
                             "note": "kaohe's and the raw layout measured on the same sample (every k-th scorecard); "
                                     "raw render time for the end-to-end ratio = the sample's per-document time x all scorecards"}
        raw["html_kb_mean"] = round(sum(len(h.encode()) for h in html) / max(1, len(html)) / 1024, 1)
    if not args.smoke:
        log(f"[N={n}] kaohe's scorecards alone ({cores} layout workers) …")
        todo = scorecard_todo()
        if todo:
            pool = J.local_pool(cores)
            try:
                raw["scorecards_startup_s"] = round(kaohe_pool(pool, todo), 3)
                x.run("scorecards", kaohe_scorecards, pool, todo, units=len(todo), in_e2e=False)
            finally:
                pool.shutdown()
        del todo
    if args.raw and html:
        # raw layout right after kaohe's (the machine's load drifts), in pool workers forked from the same
        # fork server as kaohe's layout workers, each warmed (engine, fonts, one document) before the clock
        for procs in sorted({cores, 1}, reverse=True):
            log(f"[N={n}] raw limits: WeasyPrint write_pdf of {len(html)} scorecards, {procs} process(es) …")
            pool, start = _warm_pool(procs, _render_worker_init, (html[0],))
            try:
                pdf_bytes = x.run(f"raw_render_{procs}p", lambda: _pool_map(pool, _raw_render, html, procs, chunked=False), units=len(html), in_e2e=False)
            finally:
                pool.close()
                pool.join()
            raw[f"render_{procs}p_startup_s"] = round(start, 3)
            if any(v == 0 for v in pdf_bytes):
                raise CheckFailed(f"N={n}: an empty raw PDF")
        raw["pdf_kb_mean"] = round(sum(pdf_bytes) / max(1, len(pdf_bytes)) / 1024, 1)
    del html
    if args.raw:
        log(f"[N={n}] raw limits: python-calamine read of {len(files)} files …")
        strs = [str(p) for p in files]
        rows_read = x.run("raw_read", lambda: [_calamine_read(p, FORM_SHEET) for p in strs], units=n, in_e2e=False)
        if any(r == 0 for r in rows_read):
            raise CheckFailed(f"N={n}: python-calamine read an empty form sheet")
        if args.raw_read_parallel and cores > 1:
            pool, start = _warm_pool(cores, _read_worker_init, (strs[0], FORM_SHEET))
            try:
                x.run(f"raw_read_{cores}p", lambda: _pool_map(pool, _calamine_read_star, [(p, FORM_SHEET) for p in strs], cores), units=n, in_e2e=False)
            finally:
                pool.close()
                pool.join()
            raw["read_parallel_startup_s"] = round(start, 3)
    del results, intake
    gc.collect()

    # ---------------------------------------------------- 3. the real Prefect flow: full, warm, one fix, re-run
    flow: dict = {}
    f = Meter(sampler)
    if args.flow:
        flow = run_flow(n, args, data, out_root, f, state, catalog, registry, run, log)
    if args.flow_process:
        flow["process"] = run_flow_process(n, args, data, out_root, f, registry, run, log)

    res["stages"] = [s.as_dict() for s in m.stages]
    res["reference_stages"] = [s.as_dict() for s in x.stages]
    res["flow_stages"] = [s.as_dict() for s in f.stages]
    res["flow"] = flow
    res["raw"] = raw
    res["run_folder"] = str(run)
    res["loadavg_end"] = loadavg()
    res.update(figures(n, m, x, f, res, cores))
    return res


def run_flow(n: int, args, data: Path, out_root: Path, f: Meter, state: dict, catalog, registry, stage_run: Path, log) -> dict:
    """The real flow (kaohe.flows.year_end.year_end), as `kaohe run` calls it."""
    from kaohe import pipeline as P
    from kaohe.paths import bundled

    P.environment_defaults()
    from kaohe.flows.year_end import year_end

    if not state.get("prefect_started"):
        from prefect import flow as prefect_flow

        @prefect_flow(name="bench-prefect-start")
        def _start() -> int:
            return 1

        log("Prefect: starting the temporary server (once per process) …")
        f.run("prefect_start", _start, in_e2e=False)
        state["prefect_started"] = True

    subs = out_root / f"flow-{n}" / "submissions"
    shutil.rmtree(subs.parent, ignore_errors=True)
    shutil.copytree(data / "submissions", subs)  # the fix must not touch the (kept) corpus
    kw = dict(year=YEAR, catalog=str(bundled(YEAR).catalog), registry=str(data / "registry.csv"), submissions=str(subs),
              components=str(data / "components.csv"), draws=args.draws, seed=args.seed)
    out_full, out_inc = subs.parent / "full", subs.parent / "incremental"
    info: dict = {}

    def manifest(run: str) -> dict:
        return json.loads((Path(run) / "manifest.json").read_text(encoding="utf-8"))

    def timed(label: str, out: Path, cache: bool) -> str:
        state = f.run(label, year_end, out=str(out), cache=cache, return_state=True, units=n, in_e2e=False, **kw)
        run = state.result()
        info.setdefault("tasks", {})[label] = flow_breakdown(state)
        return run

    if args.flow_runs == "all":
        log(f"[N={n}] flow: full run without caches …")
        full = timed("flow_full_nocache", out_full, False)
        check_run(Path(full), n, registry, args, "flow (no cache)")
        info["full_work"] = manifest(full)["work"]
    log(f"[N={n}] flow: first run with caches, empty (fills {out_inc}/.cache) …")
    warm = timed("flow_warm_cache", out_inc, True)
    check_run(Path(warm), n, registry, args, "flow (warm)")
    info["warm_work"] = manifest(warm)["work"]
    if args.flow_runs != "all":
        full = warm
    info["same_results_as_stages"] = (Path(full) / "results.csv").read_bytes() == (stage_run / "results.csv").read_bytes()
    info["fixed"] = fix_one_unit(P.list_submission_files(subs), catalog, registry)
    log(f"[N={n}] flow: re-run after one unit's fix ({info['fixed']['file']}) …")
    again = timed("flow_rerun_one_fix", out_inc, True)
    check_run(Path(again), n, registry, args, "flow (re-run)")
    w = info["rerun_work"] = manifest(again)["work"]
    info["rerun_read_only_the_fix"] = w.get("ingest", {}).get("read") == 1
    info["rerun_laid_out"] = w.get("render", {}).get("laid_out")
    info["rerun_same_results"] = (Path(again) / "results.csv").read_bytes() == (Path(full) / "results.csv").read_bytes()
    info["runs"] = {"full": full, "warm": warm, "rerun": again}
    return info


def run_flow_process(n: int, args, data: Path, out_root: Path, f: Meter, registry, stage_run: Path, log) -> dict:
    """`kaohe run` exactly as an office runs it: a fresh ``python -m kaohe.cli run`` process on the
    corpus's workbooks (no cache), its process tree sampled like every stage. Its memory is the
    run's own: the in-process flow runs carry this benchmark's residue (the stages' and reference
    passes' objects, ~600 MB at 3,000 units), this one starts from nothing."""
    import subprocess

    from kaohe.paths import bundled

    out = (out_root / f"flow-{n}" / "process").resolve()
    shutil.rmtree(out, ignore_errors=True)
    data = data.resolve()
    # -P: the working directory does not go on sys.path (a kaohe/ folder there would shadow the code)
    cmd = [sys.executable, "-P", "-m", "kaohe.cli", "run", "--year", str(YEAR), "--catalog", str(bundled(YEAR).catalog),
           "--registry", str(data / "registry.csv"), "--submissions", str(data / "submissions"),
           "--components", str(data / "components.csv"), "--draws", str(args.draws), "--seed", str(args.seed),
           "--out", str(out), "--no-cache", "--quiet"]
    env = dict(os.environ)  # with a snapshot, PYTHONPATH names it (snapshot_tree): the same code as the stages
    log(f"[N={n}] flow: `kaohe run` in a fresh process …")

    def kaohe_run() -> tuple[int, str, str]:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        f.sampler.focus = proc.pid  # its own tree only: not this process's fork server or pools
        try:
            stdout, stderr = proc.communicate()
        finally:
            f.sampler.sample()
            f.sampler.focus = None
        return proc.returncode, stdout, stderr

    rc, stdout, stderr = f.run("flow_process", kaohe_run, units=n, in_e2e=False)
    if rc != 0:
        raise CheckFailed(f"N={n}: kaohe run exited {rc}: {stderr[-2000:]}")
    run = Path(stdout.strip().splitlines()[-1])
    check_run(run, n, registry, args, "kaohe run (fresh process)")
    stage = f.get("flow_process")
    return {"run": str(run), "command": " ".join(cmd[1:]), "wall_s": round(stage.wall_s, 3),
            "peak_rss_tree_mb": stage.peak_rss_focus_mb, "prefect_server_rss_mb": stage.prefect_server_rss_mb,
            "same_results_as_stages": (run / "results.csv").read_bytes() == (stage_run / "results.csv").read_bytes()}


def flow_breakdown(state) -> dict:
    """Where a flow run's time went, from Prefect's own records: the flow run's start → end, and per
    task name the number of task runs, the sum of their run times and their span (first start → last
    end). Read after the timed call; never fails the bench."""
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        fid = state.state_details.flow_run_id
        flt = FlowRunFilter(id=FlowRunFilterId(any_=[fid]))
        with get_client(sync_client=True) as client:
            runs: list = []
            previous = -1
            for _ in range(20):  # task run states reach the server asynchronously
                runs, offset = [], 0
                while True:
                    page = client.read_task_runs(flow_run_filter=flt, limit=200, offset=offset)
                    runs += page
                    offset += len(page)
                    if len(page) < 200:
                        break
                if len(runs) == previous and all(r.end_time for r in runs):
                    break
                previous = len(runs)
                time.sleep(0.5)
            fr = client.read_flow_run(fid)
        groups: dict[str, dict] = {}
        for r in runs:
            g = groups.setdefault(r.name.rsplit("-", 1)[0], {"count": 0, "run_s": 0.0, "start": None, "end": None})
            g["count"] += 1
            g["run_s"] += r.total_run_time.total_seconds()
            if r.start_time and (g["start"] is None or r.start_time < g["start"]):
                g["start"] = r.start_time
            if r.end_time and (g["end"] is None or r.end_time > g["end"]):
                g["end"] = r.end_time
        t0 = fr.start_time
        tasks = {
            k: {"count": g["count"], "run_s": round(g["run_s"], 2),
                "span_s": round((g["end"] - g["start"]).total_seconds(), 2) if g["start"] and g["end"] else None,
                "starts_at_s": round((g["start"] - t0).total_seconds(), 2) if g["start"] and t0 else None}
            for k, g in sorted(groups.items(), key=lambda kv: kv[1]["start"] or t0)
        }
        # the flow run's time inside no task at all: the flow function's own work between tasks
        # (listing, cache look-ups, building HTML, archiving) and Prefect's per-task cost (creating the
        # task run, visiting its parameters for futures, recording states)
        spans = sorted((r.start_time, r.end_time) for r in runs if r.start_time and r.end_time)
        busy, cur_s, cur_e = 0.0, None, None
        for a, b in spans:
            if cur_e is None or a > cur_e:
                if cur_e is not None:
                    busy += (cur_e - cur_s).total_seconds()
                cur_s, cur_e = a, b
            else:
                cur_e = max(cur_e, b)
        if cur_e is not None:
            busy += (cur_e - cur_s).total_seconds()
        flow_s = fr.total_run_time.total_seconds()
        return {"flow_run_s": round(flow_s, 2), "task_runs": len(runs), "outside_tasks_s": round(flow_s - busy, 2), "tasks": tasks}
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}


# ================================================================== figures


def figures(n: int, m: Meter, x: Meter, f: Meter, res: dict, cores: int) -> dict:
    st = {s.name: s for s in m.stages + x.stages + f.stages}
    ingest_s = st["ingest"].wall_s + st["validate"].wall_s
    e2e = res["e2e_s"]
    out: dict = {"ingest": {"seconds": round(ingest_s, 3), "units_per_s": round(n / ingest_s, 2),
                            "note": "ingest (read+parse, isolated, one worker per core) + validate"},
                 "render_all": {"seconds": round(st["render"].wall_s, 3), "documents": res["documents"],
                                "cpu_over_wall": round(st["render"].cpu_s / st["render"].wall_s, 2)},
                 "bulletin_s": round(st["bulletin"].wall_s, 3)}
    pipeline = [s for s in m.stages if s.in_e2e]
    flow_runs = [st[k] for k in ("flow_full_nocache", "flow_warm_cache", "flow_rerun_one_fix") if k in st]
    out["peak_rss_mb"] = {
        "stages_tree": max(s.peak_rss_tree_mb for s in pipeline),
        "stages_self": max(s.peak_rss_self_mb for s in pipeline),
        "stages_largest_child": max(s.peak_rss_children_mb for s in pipeline),
        "stages_tree_by_stage": {s.name: s.peak_rss_tree_mb for s in pipeline},
        "flow_tree": max((s.peak_rss_tree_mb for s in flow_runs), default=None),
        "flow_prefect_server": max((s.prefect_server_rss_mb for s in flow_runs), default=None),
        "kaohe_run_process_tree": st["flow_process"].peak_rss_focus_mb if "flow_process" in st else None,
        "note": "tree = this process + every descendant (readers, layout workers, the fork server), sampled every 0.1 s; "
                "Prefect's temporary server apart (flow_prefect_server)",
    }
    ratios: dict = {}
    cpu: dict = {}
    if "raw_read" in st:
        raw_read = st["raw_read"]
        ratios["ingest_vs_raw_read"] = round((n / ingest_s) / raw_read.rate, 4)
        ing_cpu = (st["ingest"].cpu_s + st["validate"].cpu_s) / n
        cpu["cpu_s_per_file_ingest"] = round(ing_cpu, 5)
        cpu["cpu_s_per_file_raw_read"] = round(raw_read.cpu_s / n, 5)
        cpu["ingest_vs_raw_read"] = round(raw_read.cpu_s / n / ing_cpu, 4) if ing_cpu else None
    raw1 = st.get("raw_render_1p")
    rawp = st.get(f"raw_render_{cores}p") or raw1
    cards = st.get("scorecards")
    if cards and raw1 and cards.rate:
        ratios["scorecards_vs_raw_render"] = round(cards.rate / rawp.rate, 4)  # same cores: kaohe's pool vs raw on every core
        ratios["scorecards_vs_raw_render_1p"] = round(cards.rate / raw1.rate, 4)
        cpu["cpu_s_per_scorecard_kaohe"] = round(cards.cpu_s / cards.units, 4)
        cpu["cpu_s_per_scorecard_raw"] = round(raw1.cpu_s / raw1.units, 4)
        cpu["scorecards_vs_raw_render"] = round(raw1.cpu_s / raw1.units / (cards.cpu_s / cards.units), 4)
    # the flow's full run: without caches, else (--flow-runs lean) the first run with an empty cache
    full = st.get("flow_full_nocache") or st.get("flow_warm_cache")
    if raw1 and "raw_read" in st:
        raw_render_s = raw1.wall_s
        if raw1.units < res.get("scored", raw1.units):  # a sample: per-document time x every scorecard
            raw_render_s = raw1.wall_s / raw1.units * res["scored"]
            out["raw_render_1p_extrapolated_s"] = round(raw_render_s, 3)
        half = (st["raw_read"].wall_s + raw_render_s) / 2
        out["raw_half_s"] = round(half, 3)
        ratios["e2e_vs_raw_half"] = round(e2e / half, 4)
        if full:
            ratios["flow_e2e_vs_raw_half"] = round(full.wall_s / half, 4)
    if full:
        out["flow_e2e_s"] = round(full.wall_s, 3)
        out["flow_full_run"] = full.name
    if full and "flow_rerun_one_fix" in st:
        ratios["rerun_vs_full"] = round(st["flow_rerun_one_fix"].wall_s / full.wall_s, 4)
        out["flow_rerun_s"] = round(st["flow_rerun_one_fix"].wall_s, 3)
    if cpu:
        cpu["note"] = "per CPU second, not per wall second: steadier on a shared machine"
    out["ratios"] = ratios
    out["ratios_cpu"] = cpu
    return out


# ================================================================== reporting


def verdict(key: str, value) -> str | None:
    if value is None or key not in TARGETS:
        return None
    op, t = TARGETS[key]
    ok = value >= t if op == ">=" else value <= t
    return "ok" if ok else "MISSED"


def fmt_ratio(key: str, value) -> str:
    if value is None:
        return "—"
    op, t = TARGETS[key]
    return f"{value:8.3f}   target {op} {t:g}: {verdict(key, value)}"


def _stage_rows(rows: list[dict], mark: str = "") -> list[str]:
    lines = []
    for s in rows:
        rate = "" if s["units_per_s"] is None else f"{s['units_per_s']:.2f}"
        cw = "" if s["cpu_over_wall"] is None else f"{s['cpu_over_wall']:.2f}"
        lines.append(
            f"{s['name'] + mark:<22}{s['wall_s']:>10.2f}{rate:>10}{cw:>9}"
            f"{s['peak_rss_self_mb']:>9.0f}{s['peak_rss_children_mb']:>8.0f}{s['peak_rss_tree_mb']:>9.0f}{s['processes']:>6}"
            f"{s['loadavg_1m']:>6.1f}{s['loadavg_1m_end']:>6.1f}"
        )
    return lines


def fmt_table(res: dict) -> str:
    n = res["units"]
    lines = [f"\n=== N = {n} units ({res['scored']} scored, {res['documents']} files rendered) — load {res['loadavg_start']} → {res['loadavg_end']} ==="]
    c = res["corpus"]
    lines.append(f"corpus: {'reused ' + c['path'] if c.get('reused') else 'generated in %.1f s (%s processes)' % (c['stage']['wall_s'], c.get('processes'))}")
    lines.append(f"{'stage':<22}{'wall s':>10}{'units/s':>10}{'cpu/wall':>9}{'RSS self':>9}{'child':>8}{'tree MB':>9}{'procs':>6}{'load':>6}{'→':>6}")
    lines += _stage_rows(res["stages"])
    lines.append(f"{'= end to end (stages)':<22}{res['e2e_s']:>10.2f}{n / res['e2e_s']:>10.2f}")
    lines += _stage_rows(res["reference_stages"], " *")
    lines += _stage_rows(res["flow_stages"], " F")
    lines.append("(* reference, not in the end to end; F the real Prefect flow; RSS MB: this process's peak, the largest child's, the whole tree's "
                 "(Prefect's server apart); load: 1-min load average at the stage's start and end)")
    r, p = res["ratios"], res["peak_rss_mb"]
    lines.append(f"ingest+validate: {res['ingest']['seconds']:.2f} s = {res['ingest']['units_per_s']:.1f} files/s; bulletin alone {res['bulletin_s']:.1f} s; "
                 f"peak RSS stages tree {p['stages_tree']:.0f} MB (self {p['stages_self']:.0f}, largest child {p['stages_largest_child']:.0f})"
                 + (f", flow tree {p['flow_tree']:.0f} MB + Prefect server {p['flow_prefect_server']:.0f} MB" if p.get("flow_tree") else ""))
    fl = res.get("flow") or {}
    if fl.get("process"):
        fp = fl["process"]
        lines.append(f"kaohe run (fresh process, no cache): {fp['wall_s']:.1f} s, tree peak {fp['peak_rss_tree_mb']:.0f} MB "
                     f"(+ Prefect server {fp['prefect_server_rss_mb']:.0f} MB); same results.csv as the stages: {fp['same_results_as_stages']}")
    if fl.get("fixed"):
        lines.append(f"flow: same results.csv as the stages: {fl['same_results_as_stages']}; re-run after fixing {fl['fixed']['file']} ({fl['fixed']['cell']}): "
                     f"ingest {fl['rerun_work'].get('ingest')}, render {fl['rerun_work'].get('render')}; same results.csv: {fl['rerun_same_results']}")
        for label, b in (fl.get("tasks") or {}).items():
            if "tasks" in b:
                parts = ", ".join(f"{k} ×{t['count']} span {t['span_s']} s (from {t['starts_at_s']} s)" for k, t in b["tasks"].items())
                lines.append(f"  {label}: Prefect's flow run {b['flow_run_s']} s, of which in no task {b.get('outside_tasks_s')} s; {parts}")
    if not r:
        return "\n".join(lines)
    lines.append("issue 8 ratios:")
    for key, label in (
        ("ingest_vs_raw_read", "ingest+validate rate / raw calamine rate (1 process)"),
        ("scorecards_vs_raw_render", "kaohe scorecard rate (pool) / raw WeasyPrint rate, same cores"),
        ("e2e_vs_raw_half", "end to end (stages) / ((raw read + raw render 1p) / 2)"),
        ("flow_e2e_vs_raw_half", "end to end (Prefect flow) / ((raw read + raw render 1p) / 2)"),
        ("rerun_vs_full", "re-run after one fix / full run (flow)"),
    ):
        lines.append(f"  {label:<64} {fmt_ratio(key, r.get(key))}")
    if r.get("scorecards_vs_raw_render_1p") is not None:
        lines.append(f"  {'(kaohe scorecard rate with its pool / raw WeasyPrint on 1 process)':<64} {r['scorecards_vs_raw_render_1p']:8.3f}")
    cp = res["ratios_cpu"]
    if cp:
        lines.append(
            f"  by CPU seconds: ingest {cp.get('cpu_s_per_file_ingest', 0) * 1000:.1f} ms/file vs raw read {cp.get('cpu_s_per_file_raw_read', 0) * 1000:.2f} ms/file "
            f"= {cp.get('ingest_vs_raw_read')}; scorecard {cp.get('cpu_s_per_scorecard_kaohe') or 0:.3f} s vs raw {cp.get('cpu_s_per_scorecard_raw') or 0:.3f} s = {cp.get('scorecards_vs_raw_render')}"
        )
    return "\n".join(lines)


def scaling(runs: list[dict]) -> dict:
    """time(3000)/time(300) for the stages and the flow, when both were measured (in this or an
    earlier invocation given with --with-json); the per-stage growth between the two largest N."""
    by_n: dict[int, dict] = {}
    for r in runs:
        if "e2e_s" in r:
            by_n[r["units"]] = r  # later (this invocation's) runs win
    out: dict = {}
    if 3000 in by_n and 300 in by_n:
        a, b = by_n[300], by_n[3000]
        out["time_3000_over_300"] = round(b["e2e_s"] / a["e2e_s"], 3)
        if a.get("flow_e2e_s") and b.get("flow_e2e_s"):
            out["flow_time_3000_over_300"] = round(b["flow_e2e_s"] / a["flow_e2e_s"], 3)
    ns = sorted(by_n)
    if len(ns) >= 2:
        n1, n2 = ns[-2], ns[-1]
        s1 = {s["name"]: s["wall_s"] for s in by_n[n1]["stages"] + by_n[n1].get("reference_stages", []) + by_n[n1].get("flow_stages", [])}
        s2 = {s["name"]: s["wall_s"] for s in by_n[n2]["stages"] + by_n[n2].get("reference_stages", []) + by_n[n2].get("flow_stages", [])}
        out["growth"] = {
            "from": [n1, n2],
            "note": "time(n2)/time(n1) per stage and its exponent log(ratio)/log(n2/n1): 1 is linear, above 1 grows faster than the units",
            "stages": {k: {"ratio": round(s2[k] / s1[k], 2), "exponent": round(math.log(s2[k] / s1[k]) / math.log(n2 / n1), 2)}
                       for k in s2 if k in s1 and s1[k] > 0.05 and s2[k] > 0},
        }
    return out


def environment_info() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": loadavg(),
        "mem_total_mb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB) if hasattr(os, "sysconf") else None,
        "libharfbuzz_subset": bool(ctypes.util.find_library("harfbuzz-subset")),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("weasyprint", "python-calamine", "openpyxl", "pydyf", "prefect"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = None
    try:
        from kaohe.pipeline import code_version

        import kaohe

        info["kaohe"] = code_version()
        info["kaohe_imported_from"] = str(Path(kaohe.__file__).resolve().parent)
    except Exception:  # noqa: BLE001
        pass
    return info


def fork_server_kaohe() -> str | None:
    """Where the readers' fork server (which the layout workers share) imported kaohe from:
    asked after the runs, so that no stage finds the server started by this question."""
    try:
        from kaohe.isolation import _context

        with _context().Pool(1) as pool:
            return str(Path(pool.apply(eval, ("__import__('kaohe').__file__",))).resolve().parent)
    except Exception:  # noqa: BLE001
        return None


# ======================================================================= main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="kaohe year-end benchmark against the raw limits of python-calamine and WeasyPrint (issue 8)")
    p.add_argument("--units", type=int, action="append", help="number of units (repeatable; default 100)")
    p.add_argument("--out", help="put the run folders here (kept); default: a temporary folder")
    p.add_argument("--json", help="write every figure to this JSON file (rewritten after each N)")
    p.add_argument("--corpus", help="keep generated workbooks here and reuse them (same N, seed, mistakes and generator)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (workbooks, run folders) and print its path")
    p.add_argument("--smoke", action="store_true", help="CI smoke test: N=20 (unless --units), checks only: no raw limits, no flow, no targets")
    p.add_argument("--no-raw", dest="raw", action="store_false", help="skip the raw python-calamine / WeasyPrint limits")
    p.add_argument("--no-flow", dest="flow", action="store_false", help="skip the Prefect flow runs (full, warm, re-run after a fix)")
    p.add_argument("--sample", type=int, default=0,
                   help="lay out only K scorecards (every k-th) for the reference passes (kaohe alone, raw WeasyPrint); "
                        "rates per document, raw render time extrapolated to every scorecard (large N)")
    p.add_argument("--flow-runs", choices=("all", "lean"), default="all",
                   help="all: without caches, with an empty cache, re-run after a fix; lean: the run with an empty cache "
                        "is the full run (no cache-free run)")
    p.add_argument("--flow-process", action="store_true",
                   help="also run `kaohe run` in a fresh process (no cache) and take its tree's peak RSS as the run's")
    p.add_argument("--raw-read-parallel", action="store_true", help="also read with python-calamine in one process per core")
    p.add_argument("--gen-workers", type=int, default=0, help="processes writing the workbooks (default: one per core)")
    p.add_argument("--with-json", action="append", default=[], help="an earlier bench JSON whose runs count for time(3000)/time(300)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--draws", type=int, default=1000, help="rank robustness draws (kaohe run's default)")
    p.add_argument("--mistakes", type=int, default=0, help="plant this many kinds of mistakes (kaohe.sample.generate, one process)")
    p.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                   help="import kaohe from the checkout itself, not from a copy taken at the start (edits during the run then count)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    # absolute: with a snapshot the benchmark runs in the snapshot's folder (snapshot_tree)
    for name in ("out", "json", "corpus"):
        if getattr(a, name):
            setattr(a, name, os.path.abspath(getattr(a, name)))
    a.with_json = [os.path.abspath(x) for x in a.with_json]
    if a.smoke:
        a.units = a.units or [20]
        a.raw = a.flow = False
    a.units = a.units or [100]
    if any(n < 1 for n in a.units):
        p.error("--units must be ≥ 1")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import weasyprint  # noqa: F401

        if args.raw:
            import python_calamine  # noqa: F401
    except ImportError as exc:
        print(f"bench: missing dependency ({exc}); pip install python-calamine (or run with --no-raw)", file=sys.stderr)
        return 2
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if not args.quiet else (lambda *a: None)
    work = Path(tempfile.mkdtemp(prefix="kaohe-bench-"))
    # Prefect keeps its state in PREFECT_HOME: a throwaway one unless the caller chose one
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect-home"))
    out_root = Path(args.out) if args.out else work / "outputs"
    out_root.mkdir(parents=True, exist_ok=True)
    checkout = checkout_state()
    snap = snapshot_tree(work / "code") if args.snapshot else None
    sampler = Sampler().start()
    report = {"kind": "kaohe-bench", "issue": 8, "targets": {k: f"{op} {v:g}" for k, (op, v) in TARGETS.items()},
              "environment": environment_info() | {"checkout": checkout, "snapshot": snap},
              "args": {k: v for k, v in vars(args).items()}, "runs": []}
    if snap:
        log(f"bench: kaohe imported from a copy of the checkout ({checkout['commit']}, "
            f"{len(checkout['uncommitted_code_files'])} uncommitted code files) taken at the start: {snap['path']}")
    earlier = []
    for path in args.with_json:
        for r in json.loads(Path(path).read_text(encoding="utf-8")).get("runs", []):
            earlier.append(r | {"source": path})

    def write_json():
        if args.json:
            report["environment"]["loadavg_end"] = loadavg()
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")

    code = 0
    state: dict = {"snapshot": snap}
    try:
        for n in args.units:
            res = bench_one(n, args, sampler, work, out_root, state, log)
            report["runs"].append(res)
            print(fmt_table(res), flush=True)
            if not args.keep and not args.out:
                for sub in (f"stages-{n}", f"flow-{n}"):
                    shutil.rmtree(out_root / sub, ignore_errors=True)
            if not args.keep:
                shutil.rmtree(work / f"scratch-{n}", ignore_errors=True)
            write_json()
            gc.collect()
        report["environment"]["kaohe_imported_from_fork_server"] = found = fork_server_kaohe()
        if snap and found is not None and Path(found) != (Path(snap["path"]) / "kaohe").resolve():
            raise CheckFailed(f"the readers' fork server imported kaohe from {found}, not from the snapshot {snap['path']}")
        report["scaling"] = scaling(earlier + report["runs"])
        summary = summarise(report["runs"] + [r for r in earlier if r["units"] not in {x["units"] for x in report["runs"]}], report["scaling"])
        report["summary"] = summary
        if not args.smoke:
            print(fmt_summary(summary), flush=True)
        else:
            print(f"\nsmoke: ok ({', '.join(str(r['units']) for r in report['runs'])} units: every unit scored, in results.csv and the manifest, "
                  f"a scorecard per scored unit, the bulletin)")
    except CheckFailed as exc:
        print(f"\nbench: CHECK FAILED: {exc}", file=sys.stderr)
        report["error"] = str(exc)
        code = 1
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        report["error"] = "interrupted"
        code = 130
    except Exception as exc:  # noqa: BLE001 - any failure of the run is a failed bench
        traceback.print_exc()
        report["error"] = f"{type(exc).__name__}: {exc}"
        code = 1
    finally:
        sampler.stop()
        write_json()
        if args.json:
            print(f"figures written to {args.json}", file=sys.stderr)
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return code


def summarise(runs: list[dict], scale: dict) -> dict:
    """Every issue-8 target against the figure that decides it (the N the issue names where it names one)."""
    by_n = {r["units"]: r for r in runs}
    out: dict = {}
    for key in ("ingest_vs_raw_read", "scorecards_vs_raw_render", "e2e_vs_raw_half", "flow_e2e_vs_raw_half"):
        vals = {n: r["ratios"].get(key) for n, r in sorted(by_n.items()) if r["ratios"].get(key) is not None}
        if vals:
            out[key] = {"by_n": vals, "verdict_at_largest_n": verdict(key, vals[max(vals)])}
    if by_n.get(1000, {}).get("ratios", {}).get("rerun_vs_full") is not None:
        v = by_n[1000]["ratios"]["rerun_vs_full"]
        out["rerun_vs_full_at_1000"] = {"value": v, "verdict": verdict("rerun_vs_full", v)}
    for key in ("time_3000_over_300", "flow_time_3000_over_300"):
        if key in scale:
            out[key] = {"value": scale[key], "verdict": verdict(key, scale[key])}
    if 3000 in by_n:
        r = by_n[3000]
        out["bulletin_s_at_3000"] = {"value": r["bulletin_s"], "verdict": verdict("bulletin_s_at_3000", r["bulletin_s"])}
        p = r["peak_rss_mb"]
        if p.get("kaohe_run_process_tree"):
            # `kaohe run` in its own process: the real run's figure (the in-process flow's carries
            # the benchmark's own residue; see run_flow_process)
            peak, what = max(p["stages_tree"], p["kaohe_run_process_tree"]), "the stages' tree and `kaohe run`'s (a fresh process)"
        else:
            peak, what = max(p["stages_tree"], p.get("flow_tree") or 0), "the stages' and the in-process flow's"
        out["peak_rss_mb_at_3000"] = {"value": peak, "verdict": verdict("peak_rss_mb_at_3000", peak),
                                      "note": f"the larger of {what} tree peak (Prefect's server apart)"}
    return out


def fmt_summary(summary: dict) -> str:
    lines = ["\n=== issue 8 targets ==="]
    for key, v in summary.items():
        if "by_n" in v:
            vals = ", ".join(f"N={n}: {x:.3f}" for n, x in v["by_n"].items())
            lines.append(f"{key:<28} {vals}   target {TARGETS[key][0]} {TARGETS[key][1]:g}: {v['verdict_at_largest_n']} (at the largest N)")
        else:
            k = "rerun_vs_full" if key.startswith("rerun") else key
            lines.append(f"{key:<28} {v['value']:.3f}   target {TARGETS[k][0]} {TARGETS[k][1]:g}: {v['verdict']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
