"""PDF publication: the bulletin (考核结果通报), scorecards (成绩单) and feedback (退回意见),
and the office's internal report (office_report.pdf with diagnostics.xlsx, ``kaohe.report.office``).

HTML from Jinja templates (autoescape on for every template), laid out by
WeasyPrint with one stylesheet and the bundled font (``fonts/``). The
Environment, the stylesheet and the font configuration are built once per
process. Rendering is serialised with a lock: WeasyPrint does not promise to
be thread safe, and the font configuration is shared.

The only resources a document may load are files under this package's
``fonts/`` and ``static/`` folders: any other URL (``file:///etc/passwd``,
``http://…``, ``data:``) stops the render with ``ReportError``.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from html import unescape
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from kaohe.catalog import Catalog
from kaohe.errors import Problem, RunError
from kaohe.report import context as C
from kaohe.report import office as O
from kaohe.report.office import write_diagnostics_xlsx
from kaohe.scoring import UnitResult

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
FONTS = HERE / "fonts"
ASSET_ROOTS = (FONTS, STATIC)
FONT_FAMILY = "Kaohe Sans SC"
FONT_FILES = {400: FONTS / "KaoheSansSC-Regular.ttf", 700: FONTS / "KaoheSansSC-Bold.ttf"}

log = logging.getLogger("kaohe.report")

#: WeasyPrint says this once per document and font weight on a machine without HarfBuzz-Subset
#: (Debian's libharfbuzz-subset0, not a pip package): fonts are subset with fontTools instead,
#: the same PDF in about twice the layout time (shared/STACK.md). Dozens of identical English
#: warnings in the office's terminal: kaohe drops them and says it once (:func:`subsetting_note`).
_FONTTOOLS_NOTICE = "Using fontTools instead of HarfBuzz-Subset"


class _DropSubsetNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_FONTTOOLS_NOTICE)


_weasyprint_log = logging.getLogger("weasyprint")
if not any(isinstance(f, _DropSubsetNotice) for f in _weasyprint_log.filters):
    _weasyprint_log.addFilter(_DropSubsetNotice())


@lru_cache(maxsize=1)
def subsetting_note() -> str | None:
    """What to tell the office, once, when WeasyPrint must subset fonts with fontTools (in the
    run log here; ``kaohe run`` also prints it): None when HarfBuzz-Subset is there."""
    try:
        from weasyprint.text.ffi import harfbuzz_subset
    except ImportError:  # pragma: no cover - another WeasyPrint layout
        return None
    if harfbuzz_subset is not None:
        return None
    note = "本机未安装 HarfBuzz 字体子集库(Debian/Ubuntu:apt-get install libharfbuzz-subset0),PDF 排版改用较慢的方式,约慢一倍,结果相同"
    log.info("%s", note)
    return note


class ReportError(RunError):
    """A document could not be rendered (e.g. it asked for a resource outside the package)."""


@dataclass(frozen=True)
class BulletinSettings:
    doc_number: str = ""  # e.g. 示法考〔2026〕1号
    issue_date: str = ""  # e.g. 2026年1月15日 (default: today)
    issuer: str = ""  # default: catalog.issuer
    draws: int = 1000  # rank robustness draws (kaohe run --draws), for the notes on 排名区间

    def resolved(self, catalog: Catalog) -> "BulletinSettings":
        return BulletinSettings(
            doc_number=self.doc_number.strip(),
            issue_date=self.issue_date.strip() or C.chinese_date(date.today()),
            issuer=self.issuer.strip() or catalog.issuer,
            draws=self.draws,
        )


# ------------------------------------------------------------------ fetching


def _asset_path(url: str) -> Path | None:
    """The bundled file a URL names, or None when it is anything else."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost") or parts.query:
        return None
    path = Path(os.path.realpath(url2pathname(unquote(parts.path))))
    for root in ASSET_ROOTS:
        if path.is_relative_to(root) and path.is_file():
            return path
    return None


def _make_fetcher():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class BundledOnlyFetcher(URLFetcher):
        """Serves files under fonts/ and static/; anything else fails the render."""

        def __init__(self):
            super().__init__(fail_on_errors=True, allowed_protocols=("file",))
            self.fetched: list[str] = []

        def fetch(self, url, headers=None):
            path = _asset_path(url)
            if path is None:
                log.error("拒绝加载外部资源:%s", url)
                raise ReportError(f"PDF 模板引用了不允许的资源:{url[:200]}")
            self.fetched.append(url)
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if path.suffix.lower() == ".ttf":
                mime = "font/ttf"
            return URLFetcherResponse(path.as_uri(), body=path.read_bytes(), headers={"Content-Type": mime})

    return BundledOnlyFetcher()


# ------------------------------------------------------- cached environment


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


class _Engine:
    """WeasyPrint objects built once per process: fetcher, font configuration, stylesheet."""

    def __init__(self):
        import weasyprint
        from weasyprint.text.fonts import FontConfiguration

        self.weasyprint = weasyprint
        self.fetcher = _make_fetcher()
        self.font_config = FontConfiguration()
        faces = "".join(
            f'@font-face {{ font-family: "{FONT_FAMILY}"; font-weight: {w}; font-style: normal; src: url("{p.as_uri()}") format("truetype"); }}\n'
            for w, p in FONT_FILES.items()
        )
        css_text = faces + (STATIC / "report.css").read_text(encoding="utf-8")
        self.css = weasyprint.CSS(
            string=css_text, base_url=STATIC.as_uri() + "/", url_fetcher=self.fetcher, font_config=self.font_config
        )
        self.lock = threading.Lock()


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def engine() -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        return _ENGINE


@lru_cache(maxsize=1)
def font_characters() -> frozenset[int]:
    """Code points both bundled weights can draw."""
    from fontTools.ttLib import TTFont

    sets = []
    for path in FONT_FILES.values():
        font = TTFont(str(path), lazy=True)
        try:
            sets.append(set(font.getBestCmap()))
        finally:
            font.close()
    return frozenset(set.intersection(*sets))


_TAG = re.compile(r"<[^>]*>")


def uncovered_characters(html: str) -> list[str]:
    """Characters of the document's text that the bundled font lacks (drawn with a system font, or as boxes)."""
    text = unescape(_TAG.sub(" ", html))
    have = font_characters()
    return sorted({ch for ch in text if not ch.isspace() and ord(ch) not in have})


def render_html(html: str, out_pdf: Path) -> Path:
    """Lay out one HTML document with the bundled stylesheet and font; write the PDF."""
    from weasyprint.urls import FatalURLFetchingError

    missing = uncovered_characters(html)
    if missing:
        log.warning("%s:内置字体缺少字符 %s\uff0c这些字符将以系统字体显示\uff08系统也没有时显示为方框\uff09", Path(out_pdf).name, " ".join(missing[:50]))
    eng = engine()
    out_pdf = Path(out_pdf)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_pdf.with_name(out_pdf.name + ".part")
    with eng.lock:
        try:
            doc = eng.weasyprint.HTML(string=html, base_url=STATIC.as_uri() + "/", url_fetcher=eng.fetcher)
            doc.write_pdf(tmp, stylesheets=[eng.css], font_config=eng.font_config)
        except FatalURLFetchingError as exc:
            tmp.unlink(missing_ok=True)
            cause = exc.__cause__
            raise ReportError(str(cause) if isinstance(cause, ReportError) else f"PDF 生成失败:{exc}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, out_pdf)
    return out_pdf


def render_template(name: str, ctx: dict) -> str:
    return environment().get_template(name).render(**ctx)


# --------------------------------------------------------------- public API


def render_bulletin(
    results: list[UnitResult],
    catalog: Catalog,
    settings: BulletinSettings,
    out_pdf: Path,
    previous: dict[str, dict] | None = None,
    previous_catalog: Catalog | None = None,
) -> Path:
    """The ranked bulletin. ``results`` is ``rank_all``'s output; ``previous`` maps unit_id → last year's row.

    Each ranked unit's 排名区间 comes from ``r.robustness`` (``kaohe.insight.rank_robustness``; '—' when
    absent). With ``previous``, the bulletin names new and dropped units; with ``previous_catalog`` too,
    it lists what changed in the catalog (``kaohe.insight.catalog_changes``), so a change in score is
    not read as progress when the ruler moved.
    """
    ctx = C.bulletin_context(results, catalog, settings.resolved(catalog), previous, previous_catalog)
    # laid out in parts (front matter, the ranking annex in parts, the method annex), painted into one
    # PDF with continuous page numbers: memory bounded by the largest part, time linear in the units
    return C.render_parts(C.bulletin_parts(ctx), out_pdf)


def render_scorecard(
    result: UnitResult,
    group_results: list[UnitResult],
    catalog: Catalog,
    settings: BulletinSettings,
    out_pdf: Path,
) -> Path:
    """One scored unit's scorecard; ``group_results`` are the results of its group (others are ignored)."""
    ctx = C.scorecard_context(result, group_results, catalog, settings.resolved(catalog))
    return render_html(render_template("scorecard.html", ctx), out_pdf)


def render_feedback(
    file: str,
    unit_label: str,
    problems: list[Problem],
    catalog: Catalog,
    settings: BulletinSettings,
    out_pdf: Path,
) -> Path:
    """The 退回意见 for one rejected workbook: every problem with sheet and cell."""
    ctx = C.feedback_context(file, unit_label, problems, catalog, settings.resolved(catalog))
    return render_html(render_template("feedback.html", ctx), out_pdf)


def feedback_name(file: str, unit_id: str, known: bool) -> str:
    """Same naming as the 退回意见 workbooks: <unit_id>_<stem>_退回意见 (the prefix only when missing)."""
    stem = Path(file).stem
    prefix = f"{unit_id}_" if known and not stem.startswith(f"{unit_id}_") else ""
    return f"{prefix}{stem}_退回意见.pdf"


def render_office_report(results: list[UnitResult], catalog: Catalog, out_pdf: Path, watch, diagnostics) -> Path:
    """The office's internal report (内部工作材料, not for publication).

    Page 1: the watch list (``kaohe.insight.watch_list``) grouped by kind; then the units whose grade
    is least stable under the weight draws; then the indicator diagnostics
    (``kaohe.insight.indicator_diagnostics``) as a chart and a table.
    """
    ctx = O.office_context(results, catalog, list(watch), list(diagnostics))
    # laid out like the bulletin (kaohe.report.context.render_parts): the watch list grows with the units
    return C.render_parts(O.office_parts(ctx), out_pdf)


def render_run(
    run_dir: Path,
    results: list[UnitResult],
    catalog: Catalog,
    intake,
    settings: BulletinSettings,
    previous: dict[str, dict] | None = None,
    watch=None,
    previous_catalog: Catalog | None = None,
    *,
    workers: int | None = None,
    cache_root: str | Path | None = None,
    on_done=None,
) -> list[Path]:
    """Every document of a run: bulletin.pdf, scorecards/<unit_id>.pdf, feedback/<…>_退回意见.pdf;
    with ``watch`` (the run's watch list) also office_report.pdf and diagnostics.xlsx.

    Layout runs in ``workers`` processes (default: one per core; ``workers=0`` renders
    in this process). The bulletin and the office report go first, each in its own
    worker, while the scorecards and feedback letters follow in batches. With
    ``cache_root``, a scorecard or letter whose HTML is unchanged since an earlier
    run is copied from the PDF cache. ``on_done(n)`` is called as documents finish.
    """
    subsetting_note()
    from collections import deque
    from itertools import islice

    from kaohe.report import jobs as J

    run_dir = Path(run_dir)
    settings = settings.resolved(catalog)
    t0 = time.perf_counter()
    cache = str(cache_root) if cache_root else None
    done = on_done or (lambda n: None)
    out: list[Path] = []
    diagnostics = None
    if watch is not None:
        from kaohe.insight import indicator_diagnostics

        diagnostics = indicator_diagnostics(results, catalog)
    stats = {"rendered": 0, "cached": 0}

    def take(res: J.BatchResult, relog: bool) -> None:
        if relog:
            res.relog()
        out.extend(res.paths)
        stats["rendered"] += res.rendered
        stats["cached"] += res.cached
        done(len(res.paths))

    if workers == 0:
        out.append(render_bulletin(results, catalog, settings, run_dir / "bulletin.pdf", previous, previous_catalog))
        done(1)
        if diagnostics is not None:
            out.append(render_office_report(results, catalog, run_dir / "office_report.pdf", watch, diagnostics))
            done(1)
        for batch in J.job_batches(run_dir, results, catalog, intake, settings, 1)[1]:
            take(J.render_batch(batch, cache), relog=False)
    else:
        from kaohe.report.slim import document_results

        n = workers or J.workers_default()
        slim = document_results(results)  # what the two documents read: pickled to their workers
        with J.local_pool(n) as pool:
            big = [pool.submit(J.call_collecting, render_bulletin, slim, catalog, settings, run_dir / "bulletin.pdf", previous, previous_catalog)]
            if diagnostics is not None:
                big.append(pool.submit(J.call_collecting, render_office_report, slim, catalog, run_dir / "office_report.pdf", list(watch), diagnostics))
            # batches streamed: HTML built as a batch is handed over, at most 2 per worker in flight
            _, todo = J.job_batches(run_dir, results, catalog, intake, settings, n)
            small = deque(pool.submit(J.render_batch, b, cache) for b in islice(todo, 2 * n))
            while small:
                res = small.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    small.append(pool.submit(J.render_batch, nxt, cache))
                take(res, relog=True)
            first = []
            for f in big:
                path, warnings = f.result()
                J.relog(warnings)
                first.append(path)
                done(1)
            out[0:0] = first  # bulletin (and office report) first, as without workers
    if diagnostics is not None:
        out.append(write_diagnostics_xlsx(run_dir / "diagnostics.xlsx", diagnostics, catalog))
    log.info(
        "rendered %d PDF files in %.1f s (%d laid out, %d from the PDF cache)",
        len(out), time.perf_counter() - t0, stats["rendered"], stats["cached"],
    )
    return out


__all__ = [
    "BulletinSettings",
    "ReportError",
    "render_bulletin",
    "render_scorecard",
    "render_feedback",
    "render_run",
    "render_office_report",
    "write_diagnostics_xlsx",
    "render_html",
]
