#!/usr/bin/env python
"""kaohe year-end benchmark, measured against the stack's own limits (issue 8).

For each N it generates N filled workbooks (``kaohe.sample.generate``), runs the
year-end stages exactly in the flow's order through the public stage functions
of ``kaohe.pipeline`` (no Prefect), renders the bulletin and every scorecard
with ``kaohe.report.render``, and then, in the same process on the same files
and the same HTML, measures the raw limits:

* raw read: python-calamine opening every workbook and reading the form sheet;
* raw render: ``weasyprint.HTML(...).write_pdf()`` of every unit's scorecard
  HTML (built once with the report's own context and template), with the
  report's fetcher, stylesheet and font configuration; one process, and with
  as many processes as kaohe renders with when kaohe renders in parallel
  (or always with ``--raw-parallel``).

It prints a table per N, the ratios of issue 8 and writes every figure as JSON.

    python bench/bench.py --units 100 --units 300 --json bench.json
    python bench/bench.py --smoke            # CI: N=20, checks, no timing targets

Exit codes: 0 done (targets missed are reported, never a failure), 1 a check
failed (a unit without a result, a missing PDF, …), 2 bad arguments or the
bench itself could not run.
"""

from __future__ import annotations

# Module level must stay import-safe: kaohe.isolation starts a fork server that
# preloads ``__main__`` (this file), and the raw-limit pools import it too.
import argparse
import csv
import ctypes.util
import gc
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # the checkout's kaohe, not some other installed copy
    sys.path.insert(0, str(REPO))

YEAR = 2025
SEED = 2025
MB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# issue 8, "Done when"
TARGETS = {
    "ingest_vs_raw_read": (">=", 0.5),
    "scorecards_vs_raw_render": (">=", 0.9),
    "e2e_vs_raw_half": ("<=", 1.3),
    "time_3000_over_300": ("<=", 11.0),
    "bulletin_s_at_3000": ("<=", 60.0),
    "peak_rss_mb_at_3000": ("<=", 1024.0),
}


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


class Sampler:
    """Samples this process's descendants from /proc (psutil-free).

    kaohe's reader children and the render pools hang off a fork server, so they
    are grandchildren: RUSAGE_CHILDREN never sees them. The sampler walks the
    process tree every ``interval`` seconds and keeps, per stage: the largest
    descendant VmHWM, the largest sum of VmRSS over the whole tree (this process
    included), the number of descendants seen and their CPU time.
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.me = os.getpid()
        self.lock = threading.Lock()
        self.cpu_seen: dict[tuple[int, str], int] = {}  # (pid, starttime) → last ticks
        self.reset()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.child_hwm_kb = 0
            self.tree_rss_kb = 0
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

    def sample(self) -> None:
        table = _proc_table()
        kids: dict[int, list[int]] = {}
        for pid, (ppid, _st, _cpu) in table.items():
            kids.setdefault(ppid, []).append(pid)
        desc, todo = [], list(kids.get(self.me, []))
        while todo:
            p = todo.pop()
            desc.append(p)
            todo.extend(kids.get(p, []))
        tree = _status_kb("self", "VmRSS")
        hwm = 0
        for p in desc:
            tree += _status_kb(p, "VmRSS")
            hwm = max(hwm, _status_kb(p, "VmHWM"))
        with self.lock:
            self.tree_rss_kb = max(self.tree_rss_kb, tree)
            self.child_hwm_kb = max(self.child_hwm_kb, hwm)
            for p in desc:
                key = (p, table[p][1])
                self.children_seen.add(key)
                self.cpu_seen[key] = max(self.cpu_seen.get(key, 0), table[p][2])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - measuring must never break the run
                pass


# ===================================================================== stages


@dataclass
class Stage:
    name: str
    wall_s: float
    units: int  # what units/s counts (files, units, documents); 0: not a per-unit stage
    cpu_s: float  # this process + descendants
    peak_rss_self_mb: float  # VmHWM during the stage (reset before it), or ru_maxrss so far
    peak_rss_children_mb: float  # the largest descendant's VmHWM seen during the stage
    peak_rss_tree_mb: float  # largest sampled sum of RSS: this process + all descendants
    ru_maxrss_self_mb: float  # getrusage(RUSAGE_SELF).ru_maxrss after the stage (process lifetime)
    ru_maxrss_children_mb: float  # getrusage(RUSAGE_CHILDREN).ru_maxrss after the stage (reaped children only)
    processes: int  # descendants seen during the stage
    loadavg_1m: float = 0.0  # the machine's load when the stage started (a shared machine's timings need it)
    in_e2e: bool = True

    @property
    def rate(self) -> float | None:
        return self.units / self.wall_s if self.units and self.wall_s > 0 else None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["units_per_s"] = None if self.rate is None else round(self.rate, 3)
        d["cpu_over_wall"] = round(self.cpu_s / self.wall_s, 2) if self.wall_s >= 0.05 else None  # too short to mean anything
        for k in ("wall_s", "cpu_s"):
            d[k] = round(d[k], 4)
        return d


class Meter:
    """Times stages: wall clock, CPU of the process tree, peak RSS."""

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
        kid0 = self.sampler.child_cpu_s()
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        wall = time.perf_counter() - t0
        self.sampler.sample()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        rc1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # descendants' CPU from /proc; direct children that were reaped in between only in RUSAGE_CHILDREN
        kid = max(self.sampler.child_cpu_s() - kid0, (rc1.ru_utime + rc1.ru_stime) - (rc0.ru_utime + rc0.ru_stime))
        cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime) + kid
        hwm = _status_kb("self", "VmHWM") if self.hwm_resettable else ru1.ru_maxrss
        with self.sampler.lock:
            child_hwm, tree, seen = self.sampler.child_hwm_kb, self.sampler.tree_rss_kb, len(self.sampler.children_seen)
        self.stages.append(
            Stage(
                name=name,
                wall_s=wall,
                units=units,
                cpu_s=cpu,
                peak_rss_self_mb=round(hwm / 1024, 1),
                peak_rss_children_mb=round(child_hwm / 1024, 1),
                peak_rss_tree_mb=round(max(tree, hwm) / 1024, 1),
                ru_maxrss_self_mb=round(ru1.ru_maxrss / 1024, 1),
                ru_maxrss_children_mb=round(rc1.ru_maxrss / 1024, 1),
                processes=seen,
                loadavg_1m=round(load, 2),
                in_e2e=in_e2e,
            )
        )
        return out

    def get(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)


# ============================================================ raw-limit workers
# Module-level functions: the pools pickle them by reference.

_W: dict = {}


def _calamine_read(path: str, sheet: str) -> int:
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(path).get_sheet_by_name(sheet).to_python()
    return len(rows)


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


def _read_worker_init(ready, path: str, sheet: str) -> None:
    _calamine_read(path, sheet)
    ready.put(os.getpid())


def _mp_context():
    import multiprocessing as mp

    return mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")


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


def _pool_map(pool, fn, items: list, procs: int) -> list:
    chunk = max(1, min(16, len(items) // (procs * 8) or 1))
    return pool.map(fn, items, chunksize=chunk)


# ==================================================================== one N


def write_components(registry, path: Path, seed: int) -> None:
    """Deterministic 群众满意度 / 日常考核 scores for the synthetic units (the run needs them: never zero)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["unit_id", "component", "score"])
        for u in registry:
            w.writerow([u.unit_id, "satisfaction", f"{rng.uniform(78, 98):.1f}"])
            w.writerow([u.unit_id, "daily", f"{rng.uniform(72, 98):.1f}"])


def scorecard_html(result, group_results, catalog, settings) -> str:
    """The scorecard HTML exactly as render_scorecard builds it (the report's context and template)."""
    from kaohe.report import render as R

    for name in ("scorecard_html", "build_scorecard_html"):  # if the report grows a public helper, use it
        fn = getattr(R, name, None)
        if callable(fn):
            return fn(result, group_results, catalog, settings)
    from kaohe.report import context as C

    return R.render_template("scorecard.html", C.scorecard_context(result, group_results, catalog, settings))


class CheckFailed(Exception):
    pass


def bench_one(n: int, args, sampler: Sampler, work: Path, out_root: Path) -> dict:
    from kaohe import pipeline as P
    from kaohe.catalog import load_catalog
    from kaohe.insight import rank_robustness, watch_list
    from kaohe.layout import FORM_SHEET
    from kaohe.outputs import write_watchlist_csv
    from kaohe.paths import bundled
    from kaohe.registry import load_registry
    from kaohe.report import render as R
    from kaohe.review import load_components
    from kaohe.sample import generate

    b = bundled(YEAR)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if not args.quiet else (lambda *a: None)
    data = work / f"units-{n}"
    gen = Meter(sampler)

    # ---------------------------------------------------- 1. generation (not timed as the run)
    log(f"[N={n}] generating {n} workbooks …")
    cat0 = load_catalog(b.catalog)
    base = load_registry(b.registry, cat0)
    registry0, _planted = gen.run(
        "generate",
        lambda: generate(cat0, base, data, units=n, seed=args.seed, with_mistakes=args.mistakes > 0, mistakes=args.mistakes or None),
        units=n,
        in_e2e=False,
    )
    write_components(registry0, data / "components.csv", args.seed)
    files_all = P.list_submission_files(data / "submissions")
    if len(files_all) != n:
        raise CheckFailed(f"N={n}: generate wrote {len(files_all)} workbooks, expected {n}")

    # ---------------------------------------------------- 2. the year end, in the flow's order
    m = Meter(sampler)
    paths = {"catalog": b.catalog, "registry": data / "registry.csv", "review": None, "components": data / "components.csv"}

    def load_inputs():
        catalog = load_catalog(paths["catalog"])
        registry = load_registry(paths["registry"], catalog)
        return catalog, registry, [], load_components(paths["components"], catalog, registry)

    log(f"[N={n}] year end: read → parse → validate → review → score → rank → insight → render → archive → write")
    t_e2e = time.perf_counter()
    catalog, registry, review_rows, components = m.run("load_inputs", load_inputs)
    files = m.run("list_files", P.list_submission_files, data / "submissions", units=n)
    reads = m.run("read", P.read_stage, files, catalog, registry, units=n)
    subs = m.run("parse", P.parse_stage, reads, catalog, registry, units=n)
    intake = m.run("validate", P.validate_stage, reads, subs, catalog, registry, units=n)
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
        run = P.new_run_folder(out_root, YEAR)
        write_watchlist_csv(run / "watchlist.csv", watch)
        return run

    run = m.run("run_folder", run_folder)
    settings = R.BulletinSettings(draws=args.draws)
    n_scored = sum(1 for r in results if r.status == "scored" and r.final is not None)
    n_feedback = sum(1 for ps in intake.problems.values() if ps)
    docs = m.run("render", R.render_run, run, results, catalog, intake, settings, None, units=1 + n_scored + n_feedback)
    input_files = m.run("archive_inputs", P.archive_inputs, run, {k: v for k, v in paths.items()}, files, units=n)
    params = {"year": YEAR, "out": str(out_root), "draws": args.draws, "seed": args.seed, "bench_units": n}
    manifest = m.run(
        "write_run",
        P.write_run,
        run,
        catalog=catalog,
        registry=registry,
        results=results,
        intake=intake,
        params=params,
        input_files=input_files,
        review_notes=notes,
        review_rows=len(review_rows),
        changes=changes,
        units=n,
    )
    e2e = time.perf_counter() - t_e2e

    # ---------------------------------------------------- checks: a result for every unit
    problems = []
    if len(results) != len(registry):
        problems.append(f"{len(results)} results for {len(registry)} units")
    if not args.mistakes and n_scored != n:
        bad = [f"{r.unit_id}:{r.status}" for r in results if r.status != "scored"][:10]
        problems.append(f"only {n_scored}/{n} units scored ({', '.join(bad)})")
    with (run / "results.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if {r.get("unit_id") for r in rows} != {u.unit_id for u in registry}:
        problems.append(f"results.csv has {len(rows)} rows, not one per unit")
    pdfs = sorted((run / "scorecards").glob("*.pdf")) if (run / "scorecards").is_dir() else []
    if len(pdfs) != n_scored or any(p.stat().st_size == 0 for p in pdfs):
        problems.append(f"{len(pdfs)} scorecard PDFs for {n_scored} scored units")
    if not (run / "bulletin.pdf").is_file() or (run / "bulletin.pdf").stat().st_size == 0:
        problems.append("no bulletin.pdf")
    if manifest.get("units", {}).get("scored") != n_scored:
        problems.append(f"manifest counts {manifest.get('units')}")
    if problems:
        raise CheckFailed(f"N={n}: " + "; ".join(problems))
    log(f"[N={n}] run ok: {n_scored} scored, {len(docs)} documents in {run}")

    # ---------------------------------------------------- bulletin alone (outside e2e)
    scratch = work / f"scratch-{n}"
    scratch.mkdir(exist_ok=True)
    m.run("bulletin", R.render_bulletin, results, catalog, settings, scratch / "bulletin.pdf", None, units=1, in_e2e=False)
    render_st, bull_st = m.get("render"), m.get("bulletin")
    card_s = max(1e-9, render_st.wall_s - bull_st.wall_s)  # render_run = bulletin + scorecards + feedback PDFs
    render_parallel = render_st.cpu_s / render_st.wall_s if render_st.wall_s else 0.0

    # ---------------------------------------------------- 3a. raw read: python-calamine
    log(f"[N={n}] raw limits: python-calamine read of {len(files)} files …")
    sheet = FORM_SHEET
    strs = [str(p) for p in files]
    rows_read = m.run("raw_read", lambda: [_calamine_read(p, sheet) for p in strs], units=n, in_e2e=False)
    if any(r == 0 for r in rows_read):
        raise CheckFailed(f"N={n}: python-calamine read an empty form sheet")
    cores = os.cpu_count() or 1
    raw_read_par = None
    if args.raw_parallel is True and cores > 1:
        pool, start = _warm_pool(cores, _read_worker_init, (strs[0], sheet))
        try:
            m.run(f"raw_read_{cores}p", lambda: _pool_map(pool, _calamine_read_star, [(p, sheet) for p in strs], cores), units=n, in_e2e=False)
        finally:
            pool.close()
            pool.join()
        raw_read_par = {"processes": cores, "startup_s": round(start, 3)}

    # ---------------------------------------------------- 3b. raw render: WeasyPrint on the same HTML
    by_group: dict = {}
    for r in results:
        by_group.setdefault(r.unit.group, []).append(r)
    resolved = settings.resolved(catalog)
    cards = [r for r in results if r.status == "scored" and r.final is not None]
    html = m.run("html_build", lambda: [scorecard_html(r, by_group[r.unit.group], catalog, resolved) for r in cards], units=len(cards), in_e2e=False)
    log(f"[N={n}] raw limits: WeasyPrint write_pdf of {len(html)} scorecards, 1 process …")
    pdf_bytes = m.run("raw_render_1p", lambda: [_raw_render(h) for h in html], units=len(html), in_e2e=False)
    if any(x == 0 for x in pdf_bytes):
        raise CheckFailed(f"N={n}: an empty raw PDF")
    # parallel raw render: with as many processes as kaohe renders with (or all cores when asked)
    par_procs = 0
    if args.raw_parallel is True:
        par_procs = cores
    elif args.raw_parallel == "auto" and render_parallel > 1.3:
        par_procs = max(2, min(cores, round(render_parallel)))
    raw_render_par = None
    if par_procs > 1 and html:
        log(f"[N={n}] raw limits: WeasyPrint write_pdf, {par_procs} processes …")
        pool, start = _warm_pool(par_procs, _render_worker_init, (html[0],))
        try:
            m.run(f"raw_render_{par_procs}p", lambda: _pool_map(pool, _raw_render, html, par_procs), units=len(html), in_e2e=False)
        finally:
            pool.close()
            pool.join()
        raw_render_par = {"processes": par_procs, "startup_s": round(start, 3)}

    # ---------------------------------------------------- figures
    st = {s.name: s for s in m.stages}
    ingest_s = st["read"].wall_s + st["parse"].wall_s + st["validate"].wall_s
    ingest_rate = n / ingest_s
    raw_read_rate = st["raw_read"].rate
    card_docs = len(cards) + n_feedback  # with --mistakes the feedback PDFs are in the same interval
    card_rate = card_docs / card_s if cards else None
    raw1 = st["raw_render_1p"]
    rawp = st.get(f"raw_render_{par_procs}p") if raw_render_par else None
    # "on the same cores": against the raw rate with kaohe's number of render processes
    same = rawp if (rawp and render_parallel > 1.3) else raw1
    half = (st["raw_read"].wall_s + raw1.wall_s) / 2  # the issue's (raw read + raw render) / 2, two cores
    pipeline_stages = [s for s in m.stages if s.in_e2e]
    peak_tree = max(s.peak_rss_tree_mb for s in pipeline_stages)
    ratios = {
        "ingest_vs_raw_read": round(ingest_rate / raw_read_rate, 4),
        "scorecards_vs_raw_render": round(card_rate / same.rate, 4) if card_rate and same.rate else None,
        "scorecards_vs_raw_render_1p": round(card_rate / raw1.rate, 4) if card_rate and raw1.rate else None,
        "scorecards_vs_raw_render_np": round(card_rate / rawp.rate, 4) if card_rate and rawp and rawp.rate else None,
        "e2e_vs_raw_half": round(e2e / half, 4),
    }
    # the same ratios from CPU seconds (this process + descendants): steadier on a shared, loaded machine
    def per(stage_names, count):
        cpu = sum(st[x].cpu_s for x in stage_names)
        return cpu / count if count else None

    ingest_cpu, raw_read_cpu = per(["read", "parse", "validate"], n), per(["raw_read"], n)
    card_cpu = (render_st.cpu_s - bull_st.cpu_s) / card_docs if cards else None
    raw_card_cpu = per(["raw_render_1p"], len(html))
    ratios_cpu = {
        "ingest_vs_raw_read": round(raw_read_cpu / ingest_cpu, 4) if ingest_cpu else None,
        "scorecards_vs_raw_render": round(raw_card_cpu / card_cpu, 4) if card_cpu and raw_card_cpu else None,
        "cpu_s_per_file_ingest": round(ingest_cpu, 5),
        "cpu_s_per_file_raw_read": round(raw_read_cpu, 5),
        "cpu_s_per_scorecard_kaohe": round(card_cpu, 4) if card_cpu else None,
        "cpu_s_per_scorecard_raw": round(raw_card_cpu, 4) if raw_card_cpu else None,
        "note": "rates per CPU second, not per wall second: what the ratios would be on an idle machine with one core per process",
    }
    return {
        "units": n,
        "files": len(files),
        "scored": n_scored,
        "feedback_documents": n_feedback,
        "documents": len(docs),
        "generation": gen.stages[0].as_dict(),
        "stages": [s.as_dict() for s in m.stages],
        "e2e_s": round(e2e, 3),
        "e2e_units_per_s": round(n / e2e, 3),
        "ingest": {"seconds": round(ingest_s, 3), "units_per_s": round(ingest_rate, 3)},
        "scorecards": {"seconds": round(card_s, 3), "count": len(cards), "feedback_pdfs": n_feedback,
                       "units_per_s": round(card_rate, 4) if card_rate else None,
                       "note": "render_run wall − the bulletin rendered alone; per document (scorecards + feedback PDFs)"},
        "render_cpu_over_wall": round(render_parallel, 2),
        "kaohe_renders_in_parallel": render_parallel > 1.3,
        "bulletin_s": round(bull_st.wall_s, 3),
        "raw": {
            "read_files_per_s": round(raw_read_rate, 2),
            "read_s": round(st["raw_read"].wall_s, 3),
            "read_parallel": raw_read_par and raw_read_par | {"files_per_s": round(st[f"raw_read_{cores}p"].rate, 2), "s": round(st[f"raw_read_{cores}p"].wall_s, 3)},
            "render_1p_units_per_s": round(raw1.rate, 4) if raw1.rate else None,
            "render_1p_s": round(raw1.wall_s, 3),
            "render_s_per_unit": round(raw1.wall_s / max(1, len(html)), 4),
            "render_parallel": raw_render_par and raw_render_par | {"units_per_s": round(rawp.rate, 4), "s": round(rawp.wall_s, 3)},
            "html_build_s": round(st["html_build"].wall_s, 3),
            "pdf_kb_mean": round(sum(pdf_bytes) / max(1, len(pdf_bytes)) / 1024, 1),
        },
        "ratios": ratios,
        "ratios_cpu": ratios_cpu,
        "peak_rss_mb": {
            "tree": peak_tree,
            "self": max(s.peak_rss_self_mb for s in pipeline_stages),
            "largest_child": max(s.peak_rss_children_mb for s in pipeline_stages),
            "ru_maxrss_self": max(s.ru_maxrss_self_mb for s in m.stages),
            "ru_maxrss_children": max(s.ru_maxrss_children_mb for s in m.stages),
        },
        "run_folder": str(run),
    }


def _calamine_read_star(a):
    return _calamine_read(*a)


# ================================================================== reporting


def fmt_table(res: dict) -> str:
    n = res["units"]
    lines = [f"\n=== N = {n} units ({res['scored']} scored, {res['documents']} documents) ==="]
    lines.append(f"{'stage':<16}{'wall s':>10}{'units/s':>10}{'cpu/wall':>9}{'RSS self':>10}{'child':>8}{'tree MB':>9}{'procs':>6}{'load':>6}")
    g = res["generation"]
    rows = [g | {"name": "(generate)"}] + res["stages"]
    for s in rows:
        rate = "" if s["units_per_s"] is None else f"{s['units_per_s']:.1f}"
        mark = "" if s.get("in_e2e", False) and s["name"] != "(generate)" else " *"
        cw = "" if s["cpu_over_wall"] is None else f"{s['cpu_over_wall']:.2f}"
        lines.append(
            f"{s['name'] + mark:<16}{s['wall_s']:>10.3f}{rate:>10}{cw:>9}"
            f"{s['peak_rss_self_mb']:>10.0f}{s['peak_rss_children_mb']:>8.0f}{s['peak_rss_tree_mb']:>9.0f}{s['processes']:>6}{s.get('loadavg_1m', 0):>6.1f}"
        )
    lines.append("(* not part of the end-to-end time; RSS in MB: this process's peak during the stage, the largest child's, the whole tree's; load: 1-min load average at the stage's start)")
    r, raw = res["ratios"], res["raw"]
    lines.append(f"end to end: {res['e2e_s']:.1f} s ({res['e2e_units_per_s']:.2f} units/s); ingest (read+parse+validate) {res['ingest']['seconds']:.1f} s = {res['ingest']['units_per_s']:.1f} files/s")
    lines.append(f"raw read (calamine, 1 process): {raw['read_files_per_s']:.1f} files/s" + (f"; {raw['read_parallel']['processes']} processes: {raw['read_parallel']['files_per_s']:.1f} files/s" if raw["read_parallel"] else ""))
    par = raw["render_parallel"]
    lines.append(
        f"scorecards: kaohe {res['scorecards']['units_per_s'] or 0:.3f} units/s (cpu/wall {res['render_cpu_over_wall']}); raw WeasyPrint 1 process {raw['render_1p_units_per_s'] or 0:.3f} units/s ({raw['render_s_per_unit']:.2f} s/unit)"
        + (f", {par['processes']} processes {par['units_per_s']:.3f} units/s" if par else "")
    )
    lines.append(f"bulletin alone: {res['bulletin_s']:.1f} s; peak RSS: tree {res['peak_rss_mb']['tree']:.0f} MB, this process {res['peak_rss_mb']['self']:.0f} MB, largest child {res['peak_rss_mb']['largest_child']:.0f} MB")
    lines.append("issue 8 ratios:")
    for key, label in (
        ("ingest_vs_raw_read", "ingest+validate rate / raw calamine rate"),
        ("scorecards_vs_raw_render", "scorecard rate / raw WeasyPrint rate (kaohe's process count)"),
        ("e2e_vs_raw_half", "end to end / ((raw read + raw render) / 2)"),
    ):
        lines.append(f"  {label:<62} {fmt_ratio(key, r.get(key))}")
    c = res["ratios_cpu"]
    lines.append(
        f"  by CPU seconds (steadier on a loaded machine): ingest {c['cpu_s_per_file_ingest'] * 1000:.1f} ms/file vs raw read {c['cpu_s_per_file_raw_read'] * 1000:.2f} ms/file "
        f"= {c['ingest_vs_raw_read']}; scorecard {c['cpu_s_per_scorecard_kaohe'] or 0:.3f} s vs raw {c['cpu_s_per_scorecard_raw'] or 0:.3f} s = {c['scorecards_vs_raw_render']}"
    )
    if r.get("scorecards_vs_raw_render_np") is not None:
        lines.append(f"  {'scorecard rate / raw WeasyPrint rate on all cores':<62} {fmt_ratio('scorecards_vs_raw_render', r['scorecards_vs_raw_render_np'])}")
    return "\n".join(lines)


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


def scaling(runs: list[dict]) -> dict:
    """time(3000)/time(300) when both ran; otherwise an extrapolation from the two largest N (labelled)."""
    by_n = {r["units"]: r for r in runs}
    out: dict = {}
    if 3000 in by_n and 300 in by_n:
        out["time_3000_over_300"] = round(by_n[3000]["e2e_s"] / by_n[300]["e2e_s"], 3)
    ns = sorted(by_n)
    if len(ns) < 2:
        return out
    n1, n2 = ns[-2], ns[-1]
    a, b = by_n[n1], by_n[n2]
    out["fit_from"] = [n1, n2]

    def project(t1: float, t2: float, target: int) -> dict:
        """Three extrapolations from (n1, t1), (n2, t2); the estimate is the largest (conservative):
        a load that changed between the two runs easily makes a linear cost look sublinear."""
        slope = (t2 - t1) / (n2 - n1)
        linear = t2 + slope * (target - n2)
        k = math.log(t2 / t1) / math.log(n2 / n1) if t1 > 0 and t2 > 0 else 1.0
        power = t2 * (target / n2) ** k
        proportional = t2 * target / n2  # the per-unit cost at the largest N, no fixed part
        return {"linear_s": round(linear, 1), "power_s": round(power, 1), "proportional_s": round(proportional, 1),
                "exponent": round(k, 3), "estimate_s": round(max(linear, power, proportional), 1)}

    stages_a = {s["name"]: s["wall_s"] for s in a["stages"]}
    stages_b = {s["name"]: s["wall_s"] for s in b["stages"]}
    est = {name: project(stages_a[name], stages_b[name], 3000) for name in stages_b if name in stages_a and stages_b[name] > 0.01}
    e2e = project(a["e2e_s"], b["e2e_s"], 3000)
    t300 = by_n[300]["e2e_s"] if 300 in by_n else project(a["e2e_s"], b["e2e_s"], 300)["estimate_s"]
    raw_half = project(
        (a["raw"]["read_s"] + a["raw"]["render_1p_s"]) / 2, (b["raw"]["read_s"] + b["raw"]["render_1p_s"]) / 2, 3000
    )["proportional_s"]
    out["estimate_3000"] = {
        "note": "extrapolated from the two largest N (the largest of a linear, a power-law and a proportional "
                "projection): an estimate, not a measurement; time_3000_over_300 uses the linear fit",
        "e2e": e2e,
        "time_3000_over_300": round(max(e2e["linear_s"], e2e["power_s"]) / t300, 2),
        "e2e_vs_raw_half": round(e2e["estimate_s"] / raw_half, 3),
        "bulletin": est.get("bulletin"),
        "stages": est,
        # RSS is a large fixed part plus a per-unit part: the linear fit only
        "peak_rss_tree_mb": round(project(a["peak_rss_mb"]["tree"], b["peak_rss_mb"]["tree"], 3000)["linear_s"]),
    }
    return out


def environment_info() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "libharfbuzz_subset": bool(ctypes.util.find_library("harfbuzz-subset")),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("weasyprint", "python-calamine", "openpyxl", "pydyf", "numpy"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = None
    try:
        from kaohe.pipeline import code_version

        info["kaohe"] = code_version()
    except Exception:  # noqa: BLE001
        pass
    return info


# ======================================================================= main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="kaohe year-end benchmark against the raw limits of python-calamine and WeasyPrint (issue 8)")
    p.add_argument("--units", type=int, action="append", help="number of units (repeatable; default 100)")
    p.add_argument("--out", help="put the run folders here (kept); default: a temporary folder")
    p.add_argument("--json", help="write every figure to this JSON file")
    p.add_argument("--keep", action="store_true", help="keep the temporary folders (generated workbooks, run folders)")
    p.add_argument("--smoke", action="store_true", help="CI smoke test: N=20 (unless --units), checks that every unit got a result; no targets")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--draws", type=int, default=1000, help="rank robustness draws (kaohe run's default)")
    p.add_argument("--mistakes", type=int, default=0, help="plant this many kinds of mistakes (exercises feedback documents)")
    p.add_argument("--raw-parallel", choices=("auto", "yes", "no"), default="auto",
                   help="raw limits with all cores too: auto = only when kaohe's render is seen to use several processes")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    a.raw_parallel = {"auto": "auto", "yes": True, "no": False}[a.raw_parallel]
    if a.smoke:
        a.units = a.units or [20]
        if a.raw_parallel == "auto":
            a.raw_parallel = False
    a.units = a.units or [100]
    if any(n < 1 for n in a.units):
        p.error("--units must be ≥ 1")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # nothing here starts Prefect; just in case
    try:
        import python_calamine  # noqa: F401
        import weasyprint  # noqa: F401
    except ImportError as exc:
        print(f"bench: missing dependency ({exc}); install python-calamine and weasyprint", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="kaohe-bench-"))
    out_root = Path(args.out) if args.out else work / "outputs"
    out_root.mkdir(parents=True, exist_ok=True)
    sampler = Sampler().start()
    report = {"kind": "kaohe-bench", "issue": 8, "targets": {k: f"{op} {v:g}" for k, (op, v) in TARGETS.items()},
              "environment": environment_info(), "args": {k: v for k, v in vars(args).items()}, "runs": []}
    code = 0
    try:
        for n in args.units:
            res = bench_one(n, args, sampler, work, out_root)
            report["runs"].append(res)
            print(fmt_table(res), flush=True)
            if not args.keep and not args.out:
                shutil.rmtree(Path(res["run_folder"]), ignore_errors=True)
            if not args.keep:
                shutil.rmtree(work / f"units-{n}", ignore_errors=True)
                shutil.rmtree(work / f"scratch-{n}", ignore_errors=True)
            gc.collect()
        report["scaling"] = scaling(report["runs"])
        if report["scaling"]:
            s = report["scaling"]
            print("\n=== scaling ===")
            if "time_3000_over_300" in s:
                print(f"time(3000)/time(300) = {s['time_3000_over_300']:.2f}   target <= 11: {verdict('time_3000_over_300', s['time_3000_over_300'])}")
            if "estimate_3000" in s:
                e = s["estimate_3000"]
                print(f"ESTIMATE for 3,000 units from N={s['fit_from']} (not measured): end to end ≈ {e['e2e']['estimate_s']:.0f} s "
                      f"(linear fit {e['e2e']['linear_s']:.0f} s, per-unit {e['e2e']['proportional_s']:.0f} s), time(3000)/time(300) ≈ {e['time_3000_over_300']}, "
                      f"e2e/((raw read+raw render)/2) ≈ {e['e2e_vs_raw_half']}, bulletin ≈ {(e['bulletin'] or {}).get('estimate_s', '—')} s "
                      f"(exponent {(e['bulletin'] or {}).get('exponent', '—')}), peak tree RSS ≈ {e['peak_rss_tree_mb']} MB (linear)")
                top = sorted(e["stages"].items(), key=lambda kv: -kv[1]["estimate_s"])[:4]
                print("  largest stages at 3,000: " + ", ".join(f"{k} ≈ {v['estimate_s']:.0f} s" for k, v in top))
        if args.smoke:
            print(f"\nsmoke: ok ({', '.join(str(r['units']) for r in report['runs'])} units, every unit scored and rendered)")
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
        report["environment"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
            print(f"figures written to {args.json}", file=sys.stderr)
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
