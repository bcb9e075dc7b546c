"""The year-end stages as plain functions: read → parse → validate → score → rank → write.

The Prefect flow in ``kaohe.flows.year_end`` only wires these together.
Every submission file ends in exactly one state, recorded in the manifest:
``scored``, ``rejected`` (problems listed), ``duplicate`` (several files for
one unit: all reported, none preferred), ``unknown_unit``, ``not_a_workbook``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from kaohe import __version__
from kaohe.catalog import Catalog
from kaohe.errors import Code, Problem, ReviewError, RunExistsError
from kaohe.outputs import write_feedback_xlsx, write_items_csv, write_results_csv, write_results_xlsx
from kaohe.ranking import rank_all
from kaohe.cache import IngestCache
from kaohe.isolation import file_sha256, read_in_process, read_isolated
from kaohe.preflight import NOT_A_WORKBOOK_CODES
from kaohe.reading import ReadResult
from kaohe.registry import Registry
from kaohe.review import ReviewRow, apply_review, check_components
from kaohe.schemas.validation import validate_submissions
from kaohe.scoring import UnitResult, score_unit, unscored
from kaohe.submission import SHARED, Submission, ingest_file, parse_submission

FILE_STATES = ("scored", "rejected", "duplicate", "unknown_unit", "not_a_workbook")


@dataclass
class Intake:
    """What validation made of the submissions folder."""

    valid: dict[str, Submission] = field(default_factory=dict)  # unit_id → submission
    file_state: dict[str, str] = field(default_factory=dict)  # file → state
    file_unit: dict[str, str] = field(default_factory=dict)  # file → unit_id ("" if none)
    file_sha: dict[str, str] = field(default_factory=dict)
    problems: dict[str, list[Problem]] = field(default_factory=dict)  # file → problems
    rejected_units: dict[str, list[str]] = field(default_factory=dict)  # unit_id → files


def list_submission_files(folder: str | Path) -> list[Path]:
    """Every regular file in the folder (sorted by name), whatever its extension."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.name)


# ----------------------------------------------------------------- stages


def read_stage(
    paths: list[Path], catalog: Catalog, registry: Registry, *, isolate: bool = True, names: list[str] | None = None
) -> list[ReadResult]:
    """One ReadResult per file, in order; a file can fail only as its own problem.

    ``isolate`` (the default, used by the CLI and the flow) reads each workbook in a
    child process with memory and time limits (:mod:`kaohe.isolation`); without it
    files are read in this process, with the same pre-flight checks but no limits.
    ``names``: what to call each file (default: its file name), for files from several
    folders (:func:`display_names`): validation and its messages know a file by this name.
    """
    reads = ingest_stage(paths, catalog, registry, isolate=isolate)
    if names is not None:
        assert len(names) == len(reads) and len(set(names)) == len(names), "one distinct name per file"
        reads = [r if r.file == name else renamed(r, name) for r, name in zip(reads, names)]
    return reads


def display_names(paths: list[Path]) -> list[str]:
    """A name for each of ``paths`` (distinct files), unique among them: its file name, or where
    files from different folders share one, as many of their last folders as tell them apart
    (``A/QX01_….xlsx``, ``B/QX01_….xlsx``). Validation knows a file by its name: two files
    with one name would be taken for one."""
    full = [Path(os.path.abspath(p)).parts for p in paths]
    depth = [1] * len(paths)
    while True:
        names = ["/".join(parts[-d:]) for parts, d in zip(full, depth)]
        clash = {n for n, k in Counter(names).items() if k > 1}
        if not clash:
            return names
        grown = False
        for i, n in enumerate(names):
            if n in clash and depth[i] < len(full[i]):
                depth[i] += 1
                grown = True
        if not grown:
            raise ValueError(f"the same file given twice: {sorted(clash)}")


def renamed(read: ReadResult, name: str) -> ReadResult:
    """``read`` as if its file were called ``name``: the result, its problems and its submission."""
    out = replace(read, file=name, problems=[replace(p, file=name) for p in read.problems])
    sub = read.submission
    if sub is not None:
        out.submission = replace(sub, file=name, problems=[replace(p, file=name) for p in sub.problems])
    return out


def batches(items: list, workers: int, *, smallest: int = 10, largest: int = 100, shrink: bool = True) -> list[list]:
    """``items`` cut into consecutive batches between ``smallest`` and ``largest`` long (the last
    one may be shorter), about a quarter of each worker's share: large enough that a task's
    fixed cost (Prefect ~10 ms per task, more on Dask) stays small.

    ``shrink`` (guided self-scheduling): each batch is a quarter of each worker's share of what
    *remains*, so batches shrink as the work runs out and the workers finish together instead
    of one waiting for another's last big batch. Without it every batch is a quarter of each
    worker's share of the whole (for batches that each pay a start-up, like a reader child)."""
    smallest, largest = max(1, smallest), max(1, smallest, largest)
    out: list[list] = []
    start, n, per = 0, len(items), 4 * max(1, workers)
    while start < n:
        size = max(smallest, min(largest, math.ceil((n - start if shrink else n) / per)))
        out.append(items[start : start + size])
        start += size
    return out


@dataclass
class IngestPlan:
    """Which files must be read and which come from the cache (by content)."""

    files: list[Path]
    done: dict[int, ReadResult] = field(default_factory=dict)  # index → cached result
    todo: list[tuple[int, Path]] = field(default_factory=list)


def ingest_plan(paths: list[Path], cache: IngestCache | None) -> IngestPlan:
    plan = IngestPlan(list(paths))
    for i, p in enumerate(plan.files):
        hit = None
        if cache is not None:
            sha, _size = file_sha256(p)
            hit = cache.get(p.name, sha)
        if hit is not None:
            plan.done[i] = hit
        else:
            plan.todo.append((i, p))
    return plan


def ingest_batch(paths: list[Path], catalog: Catalog, registry: Registry, *, isolate: bool = True) -> list[ReadResult]:
    """Read and parse a batch of workbooks, one isolated child for the batch (reused file after
    file, replaced after a failure); results in order, each with its ``submission``."""
    if isolate:
        return read_isolated(paths, catalog, registry, reader=ingest_file, workers=1, max_tasks_per_child=max(1, len(paths)), shared=SHARED)
    return read_in_process(paths, catalog, registry, reader=ingest_file)


def ingest_finish(plan: IngestPlan, read: list[tuple[int, ReadResult]], cache: IngestCache | None) -> list[ReadResult]:
    """Cached and freshly read results in the files' order; fresh ones go into the cache."""
    out: dict[int, ReadResult] = dict(plan.done)
    for i, r in read:
        out[i] = r
        if cache is not None:
            cache.put(r)
    assert len(out) == len(plan.files)
    return [out[i] for i in range(len(plan.files))]


#: files one reader child reads in ingest_stage before a fresh one takes over
READS_PER_CHILD = 500


def ingest_stage(
    paths: list[Path], catalog: Catalog, registry: Registry, *, cache: IngestCache | None = None, workers: int | None = None, isolate: bool = True
) -> list[ReadResult]:
    """Every file read and parsed, in order, without Prefect (the flow runs the same steps as
    tasks): cache lookups, then the rest in ``workers`` isolated children."""
    prepare_validation(catalog)
    plan = ingest_plan(paths, cache)
    todo = [p for _, p in plan.todo]
    n = workers or min(os.cpu_count() or 1, 4)
    if isolate:
        # a fresh child every 500 files (~0.1 s each): what a child remembers between files
        # (kaohe.xlsx, reading, submission) stays well under its memory limit
        fresh = read_isolated(todo, catalog, registry, reader=ingest_file, workers=n, max_tasks_per_child=READS_PER_CHILD, shared=SHARED)
    else:
        fresh = read_in_process(todo, catalog, registry, reader=ingest_file)
    return ingest_finish(plan, [(i, r) for (i, _), r in zip(plan.todo, fresh)], cache)


def parse_stage(reads: list[ReadResult], catalog: Catalog, registry: Registry) -> list[Submission]:
    """Each read's submission (already parsed when it was ingested)."""
    subs = []
    for r in reads:
        s = r.submission if r.submission is not None else parse_submission(r, catalog, registry)
        if s is not None:
            subs.append(s)
    return subs


#: validation being prepared in a thread, by catalog content (see :func:`prepare_validation`)
_PREPARING: dict[str, threading.Thread] = {}


def prepare_validation(catalog: Catalog) -> None:
    """Start paying validation's one-time costs (pandera's first use) in a thread of this
    process, while the reader children work and this process mostly waits on them;
    :func:`validate_stage` waits for it. Once per catalog and process."""
    from kaohe.schemas import validation as V

    key = catalog.content_hash
    if key in _PREPARING or key in V._SCHEMAS:  # being prepared, or validation has run here
        return

    def run() -> None:
        try:
            V.prepare(catalog)
        except Exception:  # noqa: BLE001 - validation itself reports whatever is wrong
            pass

    t = _PREPARING[key] = threading.Thread(target=run, name="kaohe-prepare-validation", daemon=True)
    t.start()


def validate_stage(reads: list[ReadResult], subs: list[Submission], catalog: Catalog, registry: Registry) -> Intake:
    pending = _PREPARING.pop(catalog.content_hash, None)
    if pending is not None:
        pending.join()
    intake = Intake()
    # pandera and pandas allocate ~10^5 short-lived, acyclic objects here; the collector's passes
    # over this process's ~2 x 10^5 live ones (the reads) cost 15-20 % of validation at 1,000
    # units and find nothing: paused for the call, whatever it raises
    paused = gc.isenabled()
    gc.disable()
    try:
        by_file = validate_submissions(subs, catalog, registry)
    finally:
        if paused:
            gc.enable()
    for r in reads:
        intake.file_sha[r.file] = r.sha256
        intake.file_unit[r.file] = r.unit_id or r.claimed_unit or r.fingerprint.get("unit_id", "")
        if r.unit_id is None:
            intake.problems[r.file] = list(r.problems)
            codes = {p.code for p in r.problems}
            if codes & NOT_A_WORKBOOK_CODES:
                intake.file_state[r.file] = "not_a_workbook"
            elif Code.UNIT_UNKNOWN in codes:
                intake.file_state[r.file] = "unknown_unit"
            else:
                intake.file_state[r.file] = "rejected"
    for s in subs:
        intake.problems[s.file] = by_file[s.file]
        intake.file_state[s.file] = "rejected" if by_file[s.file] else "scored"
    for file, (uid, group) in duplicate_files(reads, subs).items():
        intake.problems[file] = intake.problems.get(file, []) + [
            Problem(Code.DUPLICATE_UNIT, file, f"单位 {uid} 报送了多份自评表({'、'.join(group)}),无法确定以哪一份为准", "每个单位只报送一份自评表")
        ]
        intake.file_state[file] = "duplicate"
        intake.file_unit[file] = uid
    for s in subs:
        if intake.file_state[s.file] == "scored":
            intake.valid[s.unit_id] = s
    # every file that names a registered unit but was not scored (rejected, duplicate, wrong year,
    # old template, corrupt, the wrong unit's template) marks that unit 未通过校验, not 未报送
    for r in reads:
        uid = intake.file_unit.get(r.file, "")
        if intake.file_state[r.file] != "scored" and uid in registry and uid not in intake.valid:
            intake.rejected_units.setdefault(uid, []).append(r.file)
    return intake


def duplicate_files(reads: list[ReadResult], subs: list[Submission]) -> dict[str, tuple[str, list[str]]]:
    """file → (unit, all of that unit's files) for every unit that sent more than one file.

    A unit's files are those read as its template, and those verifiably its own template but
    refused before their cells were read (pre-flight): none of them is preferred.
    """
    files: dict[str, set[str]] = {}
    for s in subs:
        files.setdefault(s.unit_id, set()).add(s.file)
    for r in reads:
        if r.unit_id is None and r.template_unit:
            files.setdefault(r.template_unit, set()).add(r.file)
    out: dict[str, tuple[str, list[str]]] = {}
    for uid, group in files.items():
        if len(group) > 1:
            for f in group:
                out[f] = (uid, sorted(group))
    return out


def review_stage(
    rows: list[ReviewRow], intake: Intake, catalog: Catalog, registry: Registry
) -> tuple[dict[str, Submission], dict, list[str]]:
    reviewed, changes, notes = apply_review(rows, catalog, registry, intake.valid)
    # reviewed values must pass the same cross-field checks as the units' own
    again = validate_submissions([reviewed[u] for u in sorted(changes)], catalog, registry)
    errors = [p.render() for ps in again.values() for p in ps]
    if errors:
        raise ReviewError("应用审核意见后数据不符合校验规则,未进行计分", details=errors)
    return reviewed, changes, notes


def score_stage(
    intake: Intake,
    reviewed: dict[str, Submission],
    changes: dict,
    components: dict,
    catalog: Catalog,
    registry: Registry,
) -> list[UnitResult]:
    check_components(components, catalog, sorted(intake.valid))
    results = []
    for unit in registry:
        if unit.unit_id in intake.valid:
            results.append(
                score_unit(catalog, unit, reviewed[unit.unit_id], intake.valid[unit.unit_id], changes.get(unit.unit_id, {}), components.get(unit.unit_id, {}))
            )
        elif unit.unit_id in intake.rejected_units:
            files = intake.rejected_units[unit.unit_id]
            probs = tuple(p for f in files for p in intake.problems.get(f, []))
            results.append(unscored(unit, "rejected", ";".join(files), probs))
        else:
            results.append(unscored(unit, "missing"))
    return results


def rank_stage(results: list[UnitResult], catalog: Catalog) -> list[UnitResult]:
    return rank_all(results, catalog)


# ------------------------------------------------------------- run folder


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def code_version() -> str:
    """kaohe's version plus the git commit when running from a checkout."""
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    if not commit:
        return __version__
    return f"{__version__}+g{commit}{'.dirty' if dirty else ''}"


def new_run_folder(out: str | Path, year: int) -> Path:
    """A fresh folder outputs/<year>/<run id>; an existing run is never written into."""
    base = Path(out) / str(year)
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        run = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            run.mkdir()
            return run
        except FileExistsError:
            continue
    raise RunExistsError(f"无法在 {base} 下创建新的运行目录")


def archive_inputs(run: Path, inputs: dict[str, Path | None], submissions: list[Path]) -> dict[str, dict]:
    """Copy every input into run/inputs/ (the archive is what was scored) with its sha256."""
    dest = run / "inputs"
    (dest / "submissions").mkdir(parents=True)
    files: dict[str, dict] = {}
    for role, path in inputs.items():
        if path is None:
            continue
        target = dest / f"{role}{path.suffix}"
        shutil.copy2(path, target)
        files[role] = {"path": str(path), "archived": str(target.relative_to(run)), "sha256": sha256_file(target)}
    for p in submissions:
        target = dest / "submissions" / p.name
        shutil.copy2(p, target)
    return files


def write_run(
    run: Path,
    *,
    catalog: Catalog,
    registry: Registry,
    results: list[UnitResult],
    intake: Intake,
    params: dict,
    input_files: dict[str, dict],
    review_notes: list[str],
    review_rows: int,
    changes: dict,
    work: dict | None = None,
) -> dict:
    """results.csv, items.csv, results.xlsx, feedback workbooks and manifest.json.

    ``work`` says what the run actually did (files read vs taken from the cache,
    documents laid out vs copied, where: local processes or a Dask cluster)."""
    write_results_csv(run / "results.csv", results, catalog)
    write_items_csv(run / "items.csv", results)
    write_results_xlsx(run / "results.xlsx", results, catalog, {f: ps for f, ps in intake.problems.items() if ps})
    feedback = run / "feedback"
    for file, ps in sorted(intake.problems.items()):
        if not ps:
            continue
        feedback.mkdir(exist_ok=True)
        uid = intake.file_unit.get(file, "")
        unit = registry.get(uid) if uid else None
        label = f"{unit.unit_name}({uid})" if unit else "未能识别"
        stem = Path(file).stem
        prefix = f"{uid}_" if unit and not stem.startswith(f"{uid}_") else ""
        write_feedback_xlsx(feedback / f"{prefix}{stem}_退回意见.xlsx", file, label, ps, catalog)
    counts = {s: 0 for s in FILE_STATES}
    for state in intake.file_state.values():
        counts[state] += 1
    manifest = {
        "kind": "kaohe-run",
        "year": catalog.year,
        "run_id": run.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "catalog_hash": catalog.content_hash,
        "parameters": params,
        "inputs": input_files,
        "submissions": [
            {
                "file": f,
                "sha256": intake.file_sha[f],
                "state": intake.file_state[f],
                "unit_id": intake.file_unit.get(f, ""),
                "problems": [p.render() for p in intake.problems.get(f, [])],
            }
            for f in sorted(intake.file_state)
        ],
        "file_states": counts,
        "units": {
            s: sum(1 for r in results if r.status == s) for s in ("scored", "missing", "rejected")
        },
        "work": work or {},
        "review": {"rows": review_rows, "changed_values": sum(len(c) for u in changes.values() for c in u.values()), "not_applied": review_notes},
        "outputs": sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and "inputs" not in p.relative_to(run).parts),
    }
    (run / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return manifest


def release_memory() -> None:
    """Return what the stages before let go (the reads, the submissions, the validation frame) to the
    system before the layout workers start: glibc keeps freed heap pages for reuse by this process
    and ``malloc_trim`` gives them back (25 MB of the run process at 3,000 units). No-op elsewhere."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (ImportError, OSError, AttributeError, TypeError):  # pragma: no cover - not glibc
        pass


def environment_defaults() -> None:
    """Prefect settings for a run with no server configured (see shared/STACK.md)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
