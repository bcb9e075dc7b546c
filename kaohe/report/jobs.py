"""Rendering many documents: HTML built once in the parent, laid out in parallel workers.

A scorecard or a feedback letter is a :class:`Job`: its HTML (Jinja, cheap,
built in the run's process, which has every unit's result and its group)
and where its PDF goes. Layout (WeasyPrint, ~0.35 s a page) is the cost, so
jobs go in batches to worker processes (:func:`local_pool`: a fork server
that has imported WeasyPrint; each worker builds the font configuration and
the stylesheet once, then lays out batch after batch) or, with ``--dask``,
to Dask workers as Prefect tasks. Either way a batch is
:func:`render_batch`, which first looks in the PDF cache: a document whose
exact HTML was rendered before with the same stylesheet, fonts and
WeasyPrint is copied, not laid out again.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from kaohe.catalog import Catalog
from kaohe.scoring import UnitResult


@dataclass(frozen=True)
class Job:
    kind: str  # scorecard | feedback
    out_pdf: Path
    html: str


@lru_cache(maxsize=1)
def style_fingerprint() -> str:
    """What besides the HTML decides a PDF's bytes: stylesheet, fonts, WeasyPrint's version."""
    import weasyprint

    from kaohe.report.render import FONT_FILES, STATIC

    h = hashlib.sha256(f"weasyprint {weasyprint.__version__}\n".encode())
    for p in [STATIC / "report.css", *FONT_FILES.values()]:
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def has_scorecard(r: UnitResult) -> bool:
    """A scored unit with a final score gets a scorecard."""
    return r.status == "scored" and r.final is not None


def scorecard_jobs(run_dir: Path, results: list[UnitResult], catalog: Catalog, settings) -> Iterator[Job]:
    """One job per scored unit: scorecards/<unit_id>.pdf (``settings`` already resolved)."""
    from kaohe.report import context as C
    from kaohe.report.render import render_template

    stats = C.run_group_stats(results, catalog)  # each group's averages once, not once per unit
    for r in results:
        if has_scorecard(r):
            html = render_template("scorecard.html", C.scorecard_context(r, None, catalog, settings, stats[r.unit.group]))
            yield Job("scorecard", run_dir / "scorecards" / f"{r.unit_id}.pdf", html)


def feedback_jobs(run_dir: Path, results: list[UnitResult], catalog: Catalog, intake, settings) -> Iterator[Job]:
    """One job per file with problems: feedback/<…>_退回意见.pdf."""
    from kaohe.report import context as C
    from kaohe.report.render import feedback_name, render_template

    units = {r.unit_id: r.unit for r in results}
    for file, problems in sorted(intake.problems.items()):
        if not problems:
            continue
        uid = intake.file_unit.get(file, "")
        unit = units.get(uid) if uid else None
        label = f"{unit.unit_name}({uid})" if unit else "未能识别"
        html = render_template("feedback.html", C.feedback_context(file, label, problems, catalog, settings))
        yield Job("feedback", run_dir / "feedback" / feedback_name(file, uid, unit is not None), html)


def document_count(results: list[UnitResult], intake) -> int:
    """How many jobs :func:`scorecard_jobs` and :func:`feedback_jobs` yield together."""
    return sum(1 for r in results if has_scorecard(r)) + sum(1 for ps in intake.problems.values() if ps)


def job_batches(run_dir: Path, results: list[UnitResult], catalog: Catalog, intake, settings, workers: int) -> tuple[int, Iterator[list[Job]]]:
    """(documents, the batches): every scorecard and feedback letter in batches sized by
    ``pipeline.batches`` (2–25) for :func:`document_count` documents, each batch's HTML
    built only when the batch is taken, so a caller that keeps a few batches in flight
    never holds every document's HTML. Never empty batches."""
    from itertools import chain, islice

    from kaohe.pipeline import batches

    total = document_count(results, intake)
    sizes = [len(b) for b in batches(list(range(total)), workers, smallest=2, largest=25)] or [1]
    jobs = chain(scorecard_jobs(run_dir, results, catalog, settings), feedback_jobs(run_dir, results, catalog, intake, settings))

    def gen() -> Iterator[list[Job]]:
        i = 0
        while batch := list(islice(jobs, sizes[min(i, len(sizes) - 1)])):
            yield batch
            i += 1

    return total, gen()


#: loggers whose warnings a worker sends back to the run (tests fail on any WeasyPrint warning)
LOGGERS = ("weasyprint", "fontTools", "kaohe.report")


@dataclass(frozen=True)
class BatchResult:
    paths: list[Path]
    rendered: int  # laid out by WeasyPrint
    cached: int  # copied from the PDF cache
    warnings: tuple[tuple[str, int, str], ...] = ()  # (logger, level, message) logged while rendering

    def relog(self) -> None:
        """Re-emit the worker's warnings in this process, under the same loggers."""
        for name, level, message in self.warnings:
            logging.getLogger(name).log(level, "%s", message)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record):
        self.records.append((record.name, record.levelno, record.getMessage()))


def render_batch(jobs: list[Job], cache_root: str | None = None) -> BatchResult:
    """Lay out a batch of jobs in this process (PDF cache first when ``cache_root`` is given)."""
    from kaohe.cache import PdfCache
    from kaohe.report.render import render_html

    cache = PdfCache(cache_root, style_fingerprint()) if cache_root else None
    out: list[Path] = []
    collect = _Collect()
    loggers = [logging.getLogger(n) for n in LOGGERS]
    for lg in loggers:
        lg.addHandler(collect)
    try:
        for job in jobs:
            key = cache.key(job.html) if cache else ""
            if cache is not None and cache.fetch(key, job.out_pdf):
                out.append(job.out_pdf)
                continue
            render_html(job.html, job.out_pdf)
            if cache is not None:
                cache.store(key, job.out_pdf)
            out.append(job.out_pdf)
    finally:
        for lg in loggers:
            lg.removeHandler(collect)
    return BatchResult(out, cache.misses if cache else len(jobs), cache.hits if cache else 0, tuple(collect.records))


def call_collecting(fn, *args, **kwargs) -> tuple[object, tuple[tuple[str, int, str], ...]]:
    """``fn(*args, **kwargs)`` with the warnings it logged (for a call made in a worker process)."""
    collect = _Collect()
    loggers = [logging.getLogger(n) for n in LOGGERS]
    for lg in loggers:
        lg.addHandler(collect)
    try:
        return fn(*args, **kwargs), tuple(collect.records)
    finally:
        for lg in loggers:
            lg.removeHandler(collect)


def relog(warnings: tuple[tuple[str, int, str], ...]) -> None:
    for name, level, message in warnings:
        logging.getLogger(name).log(level, "%s", message)


def _warm() -> None:
    """Pool initializer: fonts and stylesheet once per worker, not once per document."""
    from kaohe.report.render import engine, font_characters

    engine()
    font_characters()


def workers_default() -> int:
    return max(1, os.cpu_count() or 1)


def local_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """Worker processes for layout, started from a fork server that has imported WeasyPrint."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["__main__", "kaohe.report.render", "kaohe.report.jobs", "weasyprint"])
    else:  # pragma: no cover - not Linux
        ctx = mp.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers or workers_default(), mp_context=ctx, initializer=_warm)
