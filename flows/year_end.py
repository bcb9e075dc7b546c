"""The year-end flow: wires the plain stages of kaohe.pipeline as Prefect tasks.

Retries only on I/O (loading inputs, reading workbooks, writing the run);
the computing stages are deterministic, so retrying them could only repeat
a bug. Results are not cached yet: every run reads every file.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from kaohe import pipeline as P
from kaohe.catalog import Catalog, load_catalog
from kaohe.paths import bundled
from kaohe.registry import Registry, load_registry
from kaohe.outputs import write_watchlist_csv
from kaohe.review import load_components, load_review

IO = dict(retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
PURE = dict(cache_policy=NO_CACHE)


@task(name="load-inputs", **IO)
def load_inputs_task(catalog_path: Path, registry_path: Path, review_path: Path | None, components_path: Path | None):
    catalog = load_catalog(catalog_path)
    registry = load_registry(registry_path, catalog)
    review_rows = load_review(review_path) if review_path else []
    components = load_components(components_path, catalog, registry) if components_path else {}
    return catalog, registry, review_rows, components


@task(name="read", **IO)
def read_task(paths: list[Path], catalog: Catalog, registry: Registry):
    return P.read_stage(paths, catalog, registry)


@task(name="parse", **PURE)
def parse_task(reads, catalog: Catalog, registry: Registry):
    return P.parse_stage(reads, catalog, registry)


@task(name="validate", **PURE)
def validate_task(reads, subs, catalog: Catalog, registry: Registry):
    return P.validate_stage(reads, subs, catalog, registry)


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


@task(name="render", **IO)
def render_task(run: Path, results, catalog: Catalog, intake, settings, previous, watch, previous_catalog):
    """bulletin.pdf, scorecards/, feedback/ PDFs, office_report.pdf and diagnostics.xlsx (WeasyPrint, bundled font)."""
    from kaohe.report.render import render_run

    return render_run(run, results, catalog, intake, settings, previous, watch=watch, previous_catalog=previous_catalog)


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

    db = Path(out) / "kaohe.sqlite"
    if not db.is_file():
        return {}, None, None
    engine = archive.connect(archive.default_url(out))
    pub = archive.current(engine, year - 1)
    if pub is None:
        return {}, None, None
    return archive.published_rows(engine, year - 1), f"{db}#{year - 1}", Path(pub.run_path)


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


@flow(name="kaohe-year-end", log_prints=False, validate_parameters=True)
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
) -> str:
    """Score one year: returns the new run folder."""
    paths = resolve(year, catalog, registry, submissions, review, components)
    cat, reg, review_rows, comps = load_inputs_task(paths["catalog"], paths["registry"], paths["review"], paths["components"])
    if cat.year != year:
        from kaohe.errors import RunError

        raise RunError(f"指标体系 {paths['catalog']} 的年度为 {cat.year},与 --year {year} 不一致")
    files = P.list_submission_files(paths["submissions"])
    reads = read_task(files, cat, reg)
    subs = parse_task(reads, cat, reg)
    intake = validate_task(reads, subs, cat, reg)
    reviewed, changes, notes = review_task(review_rows, intake, cat, reg)
    results = rank_task(score_task(intake, reviewed, changes, comps, cat, reg), cat)
    results, watch = insight_task(results, cat, draws, seed)
    run = P.new_run_folder(out, year)
    write_watchlist_csv(run / "watchlist.csv", watch)
    last_year, last_source, last_run = previous_results(year, out, previous)
    last_catalog, last_catalog_source = previous_catalog(year, last_run) if last_year else (None, None)
    if render:
        from kaohe.report.render import BulletinSettings

        settings = BulletinSettings(doc_number=doc_number, issue_date=issue_date, issuer=issuer, draws=draws)
        render_task(run, results, cat, intake, settings, last_year or None, watch, last_catalog)
    input_files = P.archive_inputs(
        run, {k: v for k, v in paths.items() if k != "submissions"}, files
    )
    params = {"year": year, "out": out, "draws": draws, "seed": seed, "previous_results": last_source,
              "previous_catalog": last_catalog_source,
              "doc_number": doc_number, "issue_date": issue_date, "issuer": issuer, "render": render} | {k: (str(v) if v else None) for k, v in paths.items()}
    manifest = write_task(
        run,
        catalog=cat,
        registry=reg,
        results=results,
        intake=intake,
        params=params,
        input_files=input_files,
        review_notes=notes,
        review_rows=len(review_rows),
        changes=changes,
    )
    summary_task(manifest, results, watch)
    return str(run)


def deployment(name: str = "kaohe-year-end", year: int = 2025, out: str = "outputs"):
    """The year-end flow as a deployment an office triggers from the Prefect UI (parameters editable there)."""
    return year_end.to_deployment(
        name=name,
        parameters={"year": year, "out": str(Path(out).resolve())},
        description="依法行政考核年终计分:读取、校验、审核、计分、排名,写入新的运行目录",
        tags=["kaohe"],
    )
