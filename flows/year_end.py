"""The year-end flow: wires the plain stages of kaohe.pipeline as Prefect tasks.

Per-unit work (reading+parsing workbooks, laying out scorecards and feedback
letters) runs as batch tasks: on local threads, each batch in its own
isolated reader child or in the local layout pool, or with ``--dask ADDRESS``
on a Dask cluster (prefect-dask), each batch in a Dask worker. Batches are
sized so Prefect's per-task cost stays a few percent of the work
(``kaohe.pipeline.batches``). Group-level stages (validate, review, score,
rank, insight, bulletin) run once.

Re-runs are incremental by content (``kaohe.cache``): a workbook whose bytes,
name, catalog, registry and code are unchanged is not read again; a document
whose HTML is unchanged is not laid out again. The manifest's ``work`` says
what was read and what came from the cache.

Retries only on I/O (loading inputs, reading workbooks, rendering and
writing the run); the computing stages are deterministic, so retrying them
could only repeat a bug.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from kaohe import pipeline as P
from kaohe.catalog import Catalog, load_catalog
from kaohe.paths import bundled
from kaohe.progress import current as progress
from kaohe.reading import ReadResult
from kaohe.registry import Registry, load_registry
from kaohe.outputs import write_watchlist_csv
from kaohe.review import load_components, load_review

IO = dict(retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
PURE = dict(cache_policy=NO_CACHE)

# Every argument that holds the year's data (catalog, reads, intake, results, …)
# is passed to a task wrapped in ``Q`` (prefect's ``quote``): without it Prefect
# walks the whole object graph, element by element, to find upstream futures
# — up to three times per task call (task inputs, parent runs, resolution).
# Measured at 1,000 units: 132 s of a 575 s flow run spent between tasks.
# The cost is that the Prefect UI draws no data edges between these tasks; the
# stages run in a fixed order in this file anyway.


class Q(quote):
    """prefect's ``quote``, but one that survives pickling (a Dask worker):
    ``quote`` unpickles as ``quote((value,))`` (tuple subclass, no ``__reduce__``),
    so a task would receive the tuple ``(value,)``."""

    def __reduce__(self):
        return (type(self), (self.unwrap(),))


@task(name="load-inputs", **IO)
def load_inputs_task(catalog_path: Path, registry_path: Path, review_path: Path | None, components_path: Path | None):
    catalog = load_catalog(catalog_path)
    registry = load_registry(registry_path, catalog)
    review_rows = load_review(review_path) if review_path else []
    components = load_components(components_path, catalog, registry) if components_path else {}
    return catalog, registry, review_rows, components


def _may_fork() -> bool:
    """Whether this process may start reader children (a Dask worker's process is daemonic)."""
    import multiprocessing as mp

    return not mp.current_process().daemon


@task(name="ingest-batch", **IO)
def ingest_task(batch: list[tuple[int, Path]], catalog: Catalog, registry: Registry, isolate: bool = True) -> list[tuple[int, ReadResult]]:
    """Read and parse one batch of workbooks (indices kept so results go back in order)."""
    paths = [Path(p) for _, p in batch]
    isolated = isolate and _may_fork()
    if isolate and not isolated:
        get_run_logger().warning("this worker process may not start children: %d workbooks read without isolation limits", len(paths))
    reads = P.ingest_batch(paths, catalog, registry, isolate=isolated)
    return [(i, r) for (i, _), r in zip(batch, reads)]


#: the local layout pool of the flow run in progress (None: lay out in the task's own process, e.g. on Dask)
_POOL = None


@task(name="render-batch", **IO)
def render_batch_task(jobs: list, cache_root: str | None):
    """Lay out one batch of scorecards/feedback letters (PDF cache first)."""
    from kaohe.report import jobs as J

    if _POOL is not None:
        res = _POOL.submit(J.render_batch, jobs, cache_root).result()
        res.relog()
        return res
    return J.render_batch(jobs, cache_root)


@task(name="render-document", **IO)
def render_document_task(kind: str, run: Path, results, catalog: Catalog, settings, previous, watch, previous_catalog, diagnostics) -> Path:
    """The bulletin or the office report: one document over every unit."""
    from kaohe.report import jobs as J
    from kaohe.report.render import render_bulletin, render_office_report

    if kind == "bulletin":
        fn, args = render_bulletin, (results, catalog, settings, run / "bulletin.pdf", previous, previous_catalog)
    else:
        fn, args = render_office_report, (results, catalog, run / "office_report.pdf", list(watch), diagnostics)
    if _POOL is not None:
        path, warnings = _POOL.submit(J.call_collecting, fn, *args).result()
        J.relog(warnings)
        return path
    return fn(*args)


@task(name="validate", **PURE)
def validate_task(reads, catalog: Catalog, registry: Registry):
    return P.validate_stage(reads, P.parse_stage(reads, catalog, registry), catalog, registry)


@task(name="review", **PURE)
def review_task(rows, intake, catalog: Catalog, registry: Registry):
    return P.review_stage(rows, intake, catalog, registry)


@task(name="score", **PURE)
def score_task(intake, reviewed, changes, components, catalog: Catalog, registry: Registry):
    return P.score_stage(intake, reviewed, changes, components, catalog, registry)


@task(name="rank", **PURE)
def rank_task(results, catalog: Catalog):
    return P.rank_stage(results, catalog)


@task(name="insight", **PURE)
def insight_task(results, catalog: Catalog, draws: int, seed: int):
    """METHOD §7: each ranked unit's rank interval and grade stability; the watch list."""
    from kaohe.insight import rank_robustness, watch_list

    robust = rank_robustness(results, catalog, draws=draws, seed=seed)
    for r in results:
        r.robustness = robust.get(r.unit_id)
    return results, watch_list(results, catalog)


def previous_catalog(year: int, last_run: Path | None) -> tuple[Catalog | None, str | None]:
    """Last year's catalog: the copy archived in last year's run folder, else the bundled indicators/<year-1>.yaml."""
    from kaohe.errors import KaoheError

    archived = sorted((last_run / "inputs").glob("catalog.*")) if last_run else []
    paths = archived + [bundled(year - 1).catalog]
    for p in paths:
        if p.is_file():
            try:
                cat = load_catalog(p)
            except KaoheError:
                continue
            if cat.year == year - 1:
                return cat, str(p)
    return None, None


def previous_results(year: int, out: str, previous: str | None) -> tuple[dict[str, dict], str | None, Path | None]:
    """Last year's published rows, where they came from, and their run folder:
    an explicit results.csv, else the archive's publication for year − 1."""
    import csv

    if previous:
        with Path(previous).open(encoding="utf-8-sig", newline="") as fh:
            return {r["unit_id"]: r for r in csv.DictReader(fh)}, str(previous), Path(previous).parent
    from kaohe import archive

    url = archive.resolve_url(out)  # KAOHE_DB (e.g. PostgreSQL), else out/kaohe.sqlite
    db = archive.sqlite_file(url)
    if db is not None and not db.is_file():
        return {}, None, None  # nothing published yet; looking must not create an empty archive
    engine = archive.connect(url)
    try:
        pub = archive.current(engine, year - 1)
        if pub is None:
            return {}, None, None
        source = str(db) if db is not None else archive.display_url(url)
        return archive.published_rows(engine, year - 1), f"{source}#{year - 1}", Path(pub.run_path)
    finally:
        engine.dispose()


@task(name="write-run", **IO)
def write_task(run: Path, **kwargs):
    return P.write_run(run, **kwargs)


def summary_markdown(manifest: dict, results, watch=()) -> str:
    """The run's summary as a markdown table, for the Prefect UI."""
    lines = [
        f"# {manifest['year']} 年度依法行政考核 · 运行 {manifest['run_id']}",
        "",
        f"代码版本 `{manifest['code_version']}` · 指标体系 `{manifest['catalog_hash'][:12]}`",
        "",
        "| 考核组 | 已计分 | 未通过校验 | 未报送 | 优秀 | 良好 | 合格 | 不合格 | 平均分 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    from kaohe.numbers import fmt2

    groups: dict[str, list] = {}
    for r in results:
        groups.setdefault(r.unit.group, []).append(r)
    for group, rs in groups.items():
        scored = [r for r in rs if r.status == "scored" and r.final is not None]
        n = lambda pred: sum(1 for r in rs if pred(r))  # noqa: E731
        avg = fmt2(sum(r.final for r in scored) / len(scored)) if scored else "—"
        lines.append(
            f"| {group} | {len(scored)} | {n(lambda r: r.status == 'rejected')} | {n(lambda r: r.status == 'missing')} | "
            + " | ".join(str(n(lambda r, g=g: r.grade == g and r.status == 'scored')) for g in ("优秀", "良好", "合格", "不合格"))
            + f" | {avg} |"
        )
    states = manifest["file_states"]
    lines += ["", "文件:" + ",".join(f"{k} {v}" for k, v in states.items())]
    if watch:
        lines += ["", "## 发布前请核对(watch list)", "", "| 单位 | 类型 | 说明 |", "|---|---|---|"]
        lines += [f"| {e.unit_id} | {e.kind} | {e.detail_cn.replace('|', '/')} |" for e in watch]
    return "\n".join(lines)


@task(name="summary-artifact", **PURE)
def summary_task(manifest: dict, results, watch) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        summary_markdown(manifest, results, watch), key=f"kaohe-{manifest['year']}-summary", description="考核运行摘要"
    )


def resolve(year: int, catalog: str | None, registry: str | None, submissions: str | None, review: str | None, components: str | None) -> dict[str, Path | None]:
    """Explicit paths, else the bundled inputs of the year (review/components only if present)."""
    b = bundled(year)
    return {
        "catalog": Path(catalog) if catalog else b.catalog,
        "registry": Path(registry) if registry else b.registry,
        "submissions": Path(submissions) if submissions else b.submissions,
        "review": Path(review) if review else (b.review if b.review.is_file() and not submissions else None),
        "components": Path(components) if components else (b.components if b.components.is_file() and not submissions else None),
    }


def _workers() -> int:
    import os

    return max(1, os.cpu_count() or 1)


def _completed(batches: Iterable, submit: Callable, window: int, others: Iterable = ()) -> Iterator:
    """Each task's result as it completes: ``submit(batch)`` for every batch, at most ``window``
    batches in flight (the next submitted as one finishes), and the futures ``others``,
    submitted beforehand, which free no place in the window."""
    todo = iter(batches)
    inflight = list(others)
    batch_futures: set[int] = set()

    def submit_next() -> None:
        batch = next(todo, None)
        if batch is not None:
            fut = submit(batch)
            batch_futures.add(id(fut))
            inflight.append(fut)

    for _ in range(window):
        submit_next()
    while inflight:
        fut = next(iter(as_completed(inflight)))
        inflight.remove(fut)
        res = fut.result()
        if id(fut) in batch_futures:
            batch_futures.discard(id(fut))
            submit_next()
        yield res


def _ingest(files: list[Path], cat: Catalog, reg: Registry, cache, dask: bool) -> tuple[list[ReadResult], dict]:
    """Cache lookups, then the rest in batch tasks; results in the files' order."""
    P.prepare_validation(cat)  # in a thread, while the readers work
    plan = P.ingest_plan(files, cache)
    stage = progress().stage("ingest", "读取并解析自评表", total=len(files), unit="份")
    # equal batches: each starts its own isolated reader child (catalog and registry sent, caches
    # empty), which shrinking batches would multiply (1,000 files: 27 batches instead of 10)
    cut = P.batches(plan.todo, _workers(), shrink=False)
    n_batches = 0
    read: list[tuple[int, ReadResult]] = []
    with stage:
        stage.advance(len(plan.done))
        # locally one batch (one isolated reader child) per core at a time: the runner has more
        # threads than cores, for the layout stage; a Dask cluster takes them all at once
        for got in _completed(cut, lambda batch: ingest_task.submit(batch, Q(cat), Q(reg)), len(cut) if dask else _workers()):
            n_batches += 1
            read.extend(got)
            stage.advance(len(got))
    reads = P.ingest_finish(plan, read, cache)
    work = {"files": len(files), "read": len(plan.todo), "from_cache": len(plan.done), "batches": n_batches}
    get_run_logger().info(
        "ingest: %d files, %d read and parsed in %d batches, %d unchanged (from the cache)",
        len(files), len(plan.todo), n_batches, len(plan.done),
    )
    return reads, work


def _render(run: Path, results, cat: Catalog, intake, settings, previous, watch, previous_catalog, cache_root: str | None, dask: bool) -> dict:
    """Bulletin, office report, scorecards and feedback letters; returns what was laid out.

    Documents are streamed: a batch's HTML is built only when the batch is
    handed to a worker, with at most ``2 × workers`` batches in flight, so the
    run never holds every document's HTML at once (~50 KB a scorecard)."""
    from kaohe.insight import indicator_diagnostics
    from kaohe.report import jobs as J
    from kaohe.report.office import write_diagnostics_xlsx
    from kaohe.report.render import subsetting_note
    from kaohe.report.slim import document_results

    note = subsetting_note()
    if note:
        progress().echo(note)
    global _POOL
    settings = settings.resolved(cat)
    diagnostics = indicator_diagnostics(results, cat)
    doc_results = document_results(results)  # what the bulletin and office report read: ~18x smaller to send
    total, todo = J.job_batches(run, results, cat, intake, settings, _workers())
    n_batches = 0
    stage = progress().stage("render", "生成 PDF(通报、成绩单、退回意见)", total=total + 2, unit="份")
    pool = None if dask else J.local_pool(_workers())
    _POOL = pool
    try:
        with stage:
            documents = [
                render_document_task.submit(kind, run, Q(doc_results), Q(cat), settings, Q(previous), Q(watch), Q(previous_catalog), Q(diagnostics))
                for kind in ("bulletin", "office")
            ]
            laid_out = cached = rendered = 0
            for res in _completed(todo, lambda batch: render_batch_task.submit(Q(batch), cache_root), max(4, 2 * _workers()), documents):
                if isinstance(res, Path):
                    stage.advance(1)
                    continue
                n_batches += 1
                laid_out += res.rendered
                cached += res.cached
                rendered += len(res.paths)
                stage.advance(len(res.paths))
    finally:
        _POOL = None
        if pool is not None:
            pool.shutdown()
    write_diagnostics_xlsx(run / "diagnostics.xlsx", diagnostics, cat)
    get_run_logger().info("render: %d documents laid out, %d unchanged (from the PDF cache)", laid_out + 2, cached)
    return {"documents": rendered + 2, "laid_out": laid_out + 2, "from_cache": cached, "batches": n_batches}


# Two task threads per core: a render task's thread only waits on the layout pool, and with as
# many threads as layout workers a worker idled while its thread reported the finished batch to
# Prefect and started the next task (~6 % of the render stage at 1,000 units). With twice as
# many, the pool always has the next batch queued. Ingest keeps one batch per core in flight.
@flow(name="kaohe-year-end", log_prints=False, validate_parameters=True, task_runner=ThreadPoolTaskRunner(max_workers=2 * _workers()))
def year_end(
    year: int,
    catalog: str | None = None,
    registry: str | None = None,
    submissions: str | None = None,
    review: str | None = None,
    components: str | None = None,
    out: str = "outputs",
    draws: int = 1000,
    seed: int = 2025,
    previous: str | None = None,
    doc_number: str = "",
    issue_date: str = "",
    issuer: str = "",
    render: bool = True,
    cache: bool = True,
    dask: str | None = None,
) -> str:
    """Score one year: returns the new run folder.

    ``cache``: reuse unchanged files' reads and unchanged documents' PDFs from
    ``<out>/.cache``. ``dask``: the Dask scheduler's address when the flow runs
    with a ``DaskTaskRunner`` (``kaohe run --dask``); recorded in the manifest.
    """
    from kaohe.cache import IngestCache

    paths = resolve(year, catalog, registry, submissions, review, components)
    cat, reg, review_rows, comps = load_inputs_task(paths["catalog"], paths["registry"], paths["review"], paths["components"])
    if cat.year != year:
        from kaohe.errors import RunError

        raise RunError(f"指标体系 {paths['catalog']} 的年度为 {cat.year},与 --year {year} 不一致")
    cache_root = Path(out) / ".cache" if cache else None
    files = P.list_submission_files(paths["submissions"])
    reads, ingest_work = _ingest(files, cat, reg, IngestCache(cache_root, cat, reg) if cache_root else None, bool(dask))
    intake = validate_task(Q(reads), Q(cat), Q(reg))
    del reads
    reviewed, changes, notes = review_task(Q(review_rows), Q(intake), Q(cat), Q(reg))
    results = rank_task(Q(score_task(Q(intake), Q(reviewed), Q(changes), Q(comps), Q(cat), Q(reg))), Q(cat))
    # scored: every unit's parsed entries (~150 per unit) are in its result's traces now; the
    # submissions themselves are not read again (render and write use the problems and states)
    del reviewed
    intake = replace(intake, valid={})
    results, watch = insight_task(Q(results), Q(cat), draws, seed)
    run = P.new_run_folder(out, year)
    write_watchlist_csv(run / "watchlist.csv", watch)
    last_year, last_source, last_run = previous_results(year, out, previous)
    last_catalog, last_catalog_source = previous_catalog(year, last_run) if last_year else (None, None)
    render_work: dict = {}
    P.release_memory()  # before the layout workers start: the run's peak is during render
    if render:
        from kaohe.report.render import BulletinSettings

        settings = BulletinSettings(doc_number=doc_number, issue_date=issue_date, issuer=issuer, draws=draws)
        render_work = _render(run, results, cat, intake, settings, last_year or None, watch, last_catalog, str(cache_root) if cache_root else None, bool(dask))
    input_files = P.archive_inputs(
        run, {k: v for k, v in paths.items() if k != "submissions"}, files
    )
    params = {"year": year, "out": out, "draws": draws, "seed": seed, "previous_results": last_source,
              "previous_catalog": last_catalog_source,
              "doc_number": doc_number, "issue_date": issue_date, "issuer": issuer, "render": render,
              "cache": cache, "dask": dask} | {k: (str(v) if v else None) for k, v in paths.items()}
    manifest = write_task(
        run,
        catalog=Q(cat),
        registry=Q(reg),
        results=Q(results),
        intake=Q(intake),
        params=params,
        input_files=Q(input_files),
        review_notes=Q(notes),
        review_rows=len(review_rows),
        changes=Q(changes),
        work={"runner": f"dask {dask}" if dask else f"local, {_workers()} processes", "ingest": ingest_work, "render": render_work},
    )
    summary_task(Q(manifest), Q(results), Q(watch))
    return str(run)


def deployment(name: str = "kaohe-year-end", year: int = 2025, out: str = "outputs"):
    """The year-end flow as a deployment an office triggers from the Prefect UI (parameters editable there)."""
    return year_end.to_deployment(
        name=name,
        parameters={"year": year, "out": str(Path(out).resolve())},
        description="依法行政考核年终计分:读取、校验、审核、计分、排名,写入新的运行目录",
        tags=["kaohe"],
    )
