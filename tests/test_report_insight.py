"""Insight in the documents (issue 7): 排名区间 in the bulletin, year-on-year notes, 优势与不足 in
scorecards, the office report (watch list, grade stability, indicator diagnostics) and diagnostics.xlsx.

Runs on the bundled 2025 year with the bundled 2024 catalog as last year's. Every render runs with
WeasyPrint's logger captured: any WARNING fails the test (the pattern of tests/test_report.py; the
module fixture that renders the run checks its own renders, since it is set up before the per-test
capture starts).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import ROOT, read_csv
from kaohe import insight as I
from kaohe import pipeline as P
from kaohe.catalog import load_catalog
from kaohe.outputs import result_row, write_results_csv
from kaohe.registry import load_registry
from kaohe.review import load_components, load_review

weasyprint = pytest.importorskip("weasyprint")

from kaohe.report import context as C  # noqa: E402
from kaohe.report import office as O  # noqa: E402
from kaohe.report import render as R  # noqa: E402
from kaohe.report.text import zh  # noqa: E402
from render_warnings import fail_on_warnings  # noqa: E402

HAVE_POPPLER = shutil.which("pdftotext") is not None
needs_poppler = pytest.mark.skipif(not HAVE_POPPLER, reason="poppler-utils (pdftotext) is not installed")
SETTINGS = R.BulletinSettings(doc_number="示法考〔2026〕1号", issue_date="2026年1月15日")


# ------------------------------------------------------------------ warnings


#: fails when WeasyPrint (or kaohe.report: characters missing from the bundled font) logs a WARNING
no_warnings = contextmanager(fail_on_warnings)


@pytest.fixture(autouse=True)
def no_weasyprint_warnings():
    with no_warnings():
        yield


# ------------------------------------------------------------------ fixtures


#: a subset of the bundled 2025 year keeps this file under 30 s (reading workbooks is the slow part): the first
#: 8 units of each group, with a veto (QX07, ZF04), a rejected file (ZF02), two units that sent nothing (ZH13, ZH14)
SUBSET = {f"QX{n:02d}" for n in range(1, 9)} | {f"ZF{n:02d}" for n in range(1, 9)} | {f"ZH{n:02d}" for n in range(1, 9)} | {"ZH13", "ZH14"}


def _read_stage(files, catalog, registry):
    """Workbooks read in this process when the pipeline offers it (no worker start-up for a test)."""
    if "isolate" in inspect.signature(P.read_stage).parameters:
        return P.read_stage(files, catalog, registry, isolate=False)
    return P.read_stage(files, catalog, registry)


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    """Part of the bundled 2025 year through the real stages, with rank robustness and the watch list."""
    catalog = load_catalog(ROOT / "indicators" / "2025.yaml")
    inputs = ROOT / "inputs" / "2025"
    folder = tmp_path_factory.mktemp("insight-inputs")

    def subset(name: str) -> Path:  # the rows of a unit_id-first CSV for the units of SUBSET
        lines = (inputs / name).read_text(encoding="utf-8-sig").splitlines()
        (folder / name).write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in SUBSET]) + "\n", encoding="utf-8")
        return folder / name

    registry = load_registry(subset("registry.csv"), catalog)
    files = [f for f in P.list_submission_files(inputs / "submissions") if f.name.split("_")[0] in SUBSET]
    reads = _read_stage(files, catalog, registry)
    subs = P.parse_stage(reads, catalog, registry)
    intake = P.validate_stage(reads, subs, catalog, registry)
    review = load_review(subset("review.csv"))
    reviewed, changes, _ = P.review_stage(review, intake, catalog, registry)
    components = load_components(subset("components.csv"), catalog, registry)
    results = P.rank_stage(P.score_stage(intake, reviewed, changes, components, catalog, registry), catalog)
    assert sum(r.rank is not None for r in results) >= 20, "the bundled year should have ranked units"
    assert {r.status for r in results} == {"scored", "missing", "rejected"}
    robust = I.rank_robustness(results, catalog, draws=1000, seed=2025)
    for r in results:
        r.robustness = robust.get(r.unit_id)
    return catalog, results, intake, I.watch_list(results, catalog)


@pytest.fixture(scope="module")
def last_year(year):
    """Last year's rows as the archive gives them: one 2025 unit is new, one 2024 unit was dropped."""
    catalog, results, _, _ = year
    rows = {r.unit_id: result_row(r, catalog) for r in results}
    new = next(r for r in results if r.rank is not None and r.unit.group == "市直执法部门")
    del rows[new.unit_id]
    rows["ZH15"] = {"unit_id": "ZH15", "unit_name": "示范市机关事务管理局", "group": "市直综合部门", "final": "88.00", "rank": "5", "grade": "良好"}
    for uid, row in rows.items():
        if row.get("final") and uid != "ZH15":
            row["final"] = f"{float(row['final']) - 1.25:.2f}"  # everyone 1.25 points better than last year
    return rows, new, load_catalog(ROOT / "indicators" / "2024.yaml")


@pytest.fixture(scope="module")
def run_dir(year, last_year, tmp_path_factory):
    """render_run with the watch list and last year: bulletin, office report and diagnostics (scorecards stubbed)."""
    catalog, results, intake, watch = year
    previous, _, previous_catalog = last_year
    out = tmp_path_factory.mktemp("insight-run")

    from kaohe.report import jobs as J

    with pytest.MonkeyPatch.context() as mp, no_warnings():
        mp.setattr(J, "scorecard_jobs", lambda *a: iter(()))  # rendered for real in the scorecard test
        mp.setattr(J, "feedback_jobs", lambda *a: iter(()))
        paths = R.render_run(out, results, catalog, intake, SETTINGS, previous, watch=watch, previous_catalog=previous_catalog, workers=0)
    names = {str(p.relative_to(out)) for p in paths}
    assert {"bulletin.pdf", "office_report.pdf", "diagnostics.xlsx"} <= names
    return out


def pdf_text(pdf: Path, *args: str) -> str:
    return subprocess.run(["pdftotext", *args, "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def in_font(text: str) -> list[str]:
    have = R.font_characters()
    return sorted({ch for ch in text if not ch.isspace() and ch != "\f" and ord(ch) not in have})


# ---------------------------------------------------------------- the bulletin


def test_interval_text():
    assert C.interval_text({"rank_p05": "3", "rank_p95": "6"}) == "3–6"
    assert C.interval_text({"rank_p05": "1", "rank_p95": "1"}) == "1"
    assert C.interval_text({"rank_p05": "", "rank_p95": ""}) == C.DASH
    assert C.stability_text({"grade_stability": "0.87"}) == "87%" and C.stability_text({"grade_stability": ""}) == C.DASH
    m = C.robustness_method(1000)
    assert (m["draws"], m["low"], m["high"], m["spread"]) == ("1,000", "0.8", "1.2", "20")


@needs_poppler
def test_bulletin_shows_each_ranked_units_interval_as_in_results(year, run_dir, tmp_path):
    catalog, results, _, _ = year
    layout = pdf_text(run_dir / "bulletin.pdf", "-layout")
    write_results_csv(tmp_path / "results.csv", results, catalog)
    rows = read_csv(tmp_path / "results.csv")
    ranked = [row for row in rows if row["rank"]]
    assert ranked and all(row["rank_p05"] and row["rank_p95"] for row in ranked)
    assert any(row["rank_p05"] != row["rank_p95"] for row in ranked), "the bundled year should have a wide interval"
    for row in ranked:
        interval = row["rank_p05"] if row["rank_p05"] == row["rank_p95"] else f"{row['rank_p05']}–{row['rank_p95']}"
        # one table row: rank, name, final, grade, 排名区间, 较上年
        pattern = rf"^\s*{row['rank']}\s+{re.escape(row['unit_name'])}\s+{re.escape(row['final'])}\s+{row['grade']}\s+{re.escape(interval)}\s"
        assert re.search(pattern, layout, re.M), f"{row['unit_name']}: 排名区间 {interval} not in its row"
    for row in rows:
        if not row["rank"]:
            assert re.search(rf"^\s*—\s+{re.escape(row['unit_name'])}\s+—\s+不合格\s+—\s", layout, re.M), row["unit_name"]
    flat = squash(layout)
    assert "排名区间：将各一级指标的权重分别乘以在0.8至1.2之间随机抽取的系数" in flat and "共模拟1,000次" in flat and "5%至95%分位数" in flat


@needs_poppler
def test_bulletin_year_on_year_lists_catalog_changes_new_and_dropped_units(year, last_year, run_dir):
    catalog, results, _, _ = year
    previous, new, previous_catalog = last_year
    text = pdf_text(run_dir / "bulletin.pdf")
    flat = squash(text)
    changes = I.catalog_changes(previous_catalog, catalog)
    added = [c for c in changes if c.kind == "added"]
    assert {c.item_id for c in added} == {"D05", "G08"}
    for c in added:
        assert squash(f"新增指标 {c.item_id} {zh(c.title)}") in flat
    assert squash("指标 D02 行政执法案卷评查 分值由 4 分调整为 3 分") in flat
    assert f"本年度指标体系较上年度有{len(changes)}处调整" in flat and "不宜简单视为工作进步或退步" in flat
    assert f"新增考核单位1个：{new.unit.unit_name}（{new.unit.group}）" in flat
    assert "1个单位本年度不再参加考核：示范市机关事务管理局（市直综合部门）" in flat
    # 较上年 from last year's rows: +1.25 for every unit ranked both years
    assert text.count("+1.25") >= sum(1 for r in results if r.rank is not None) - 1


def test_year_on_year_context_without_changes_or_catalog(year, last_year):
    catalog, results, _, _ = year
    previous, new, _ = last_year
    same = C.bulletin_context(results, catalog, SETTINGS.resolved(catalog), previous, catalog)["yoy"]
    assert same["catalog_changes"] == [] and same["n_changes"] == 0
    html = R.render_template("bulletin.html", C.bulletin_context(results, catalog, SETTINGS.resolved(catalog), previous, catalog))
    assert "本年度指标体系与上年度相同" in html
    unknown = C.bulletin_context(results, catalog, SETTINGS.resolved(catalog), previous, None)
    assert unknown["yoy"]["catalog_changes"] is None and unknown["yoy"]["new"] == [f"{new.unit.unit_name}（{new.unit.group}）"]
    html = R.render_template("bulletin.html", unknown)
    assert "指标体系较上年度有" not in html and "指标体系与上年度相同" not in html
    assert C.bulletin_context(results, catalog, SETTINGS.resolved(catalog), None, catalog)["yoy"] is None


# ---------------------------------------------------------------- scorecards


@needs_poppler
def test_scorecard_strengths_weaknesses_and_rank_interval(year, tmp_path):
    catalog, results, _, _ = year
    seen = {"strengths": 0, "weaknesses": 0}
    picked = [
        r for r in results
        if r.rank is not None and all(I.strengths_weaknesses(r, results, catalog)) and r.robustness.rank_p05 < r.robustness.rank_p95
    ][:1]
    assert picked, "a unit with strengths, weaknesses and a wide interval"
    for r in picked:
        group = [x for x in results if x.unit.group == r.unit.group]
        sw = I.strengths_weaknesses(r, group, catalog)
        pdf = R.render_scorecard(r, group, catalog, SETTINGS, tmp_path / f"{r.unit_id}.pdf")
        text = pdf_text(pdf, "-raw")  # content-stream order: a wrapped cell's lines stay together
        flat = squash(text)
        assert not in_font(text)
        assert "优势与不足" in flat
        ctx = C.scorecard_context(r, group, catalog, SETTINGS)
        for key, gaps in (("strengths", sw.strengths), ("weaknesses", sw.weaknesses)):
            assert [g["name"] for g in ctx[key]] == [zh(g.name) for g in gaps]  # no gap under 0.01 in these units
            for g in ctx[key]:
                seen[key] += 1
                assert squash(f"{g['name']}：得分率{g['rate']}，组平均{g['avg']}，{'高' if key == 'strengths' else '低'}{g['gap']}") in flat
                assert (key == "strengths") == g["above"]
        row = result_row(r, catalog)
        assert squash(f"第 {row['rank_p05']}–{row['rank_p95']} 名") in flat
        assert squash(f"等次稳定度 {C.stability_text(row)}") in flat
    assert seen["strengths"] and seen["weaknesses"]


def test_scorecard_without_robustness_has_no_interval(year):
    catalog, results, _, _ = year
    r = next(x for x in results if x.rank is not None)
    bare = dataclasses.replace(r, robustness=None)
    ctx = C.scorecard_context(bare, results, catalog, SETTINGS)
    assert ctx["robust"] is None and ctx["has_sw"]
    html = R.render_template("scorecard.html", ctx)
    assert "等次稳定度" not in html and "优势与不足" in html


# ---------------------------------------------------------------- office report


@needs_poppler
def test_office_report_has_every_watch_unit_and_every_diagnosed_item(year, run_dir):
    catalog, results, _, watch = year
    text = pdf_text(run_dir / "office_report.pdf", "-raw")
    flat = squash(text)
    assert not in_font(text)
    assert "内部工作材料" in flat and "不对外公开" in flat
    assert watch, "the bundled year should have a watch list"
    names = {r.unit_id: r.unit.unit_name for r in results}
    for e in watch:
        assert e.unit_id in text and names[e.unit_id] in flat, e.unit_id
    titles = {k: t for k, t, _ in O.WATCH_KINDS}
    for kind in {e.kind for e in watch}:
        assert titles[kind] in flat
    # the watch list is on page 1
    assert titles[watch[0].kind] in squash(pdf_text(run_dir / "office_report.pdf", "-f", "1", "-l", "1"))
    diagnostics = I.indicator_diagnostics(results, catalog)
    for d in diagnostics:
        assert d.item_id in text and squash(zh(d.title)) in flat, d.item_id
    never = [d for d in diagnostics if not d.separates]
    for d in never:
        assert squash(f"{d.item_id} {zh(d.title)}") in flat


def test_office_context_groups_by_kind_and_splits_long_charts(year):
    catalog, results, _, watch = year
    ctx = O.office_context(results, catalog, watch, I.indicator_diagnostics(results, catalog))
    kinds = [g["kind"] for g in ctx["watch"]]
    assert kinds == [k for k, _, _ in O.WATCH_KINDS if k in {e.kind for e in watch}]
    assert sum(len(g["rows"]) for g in ctx["watch"]) == len(watch)
    assert len(ctx["charts"]) == 1
    many = I.indicator_diagnostics(results, catalog) * 3
    assert len(O.office_context(results, catalog, [], many)["charts"]) == -(-len(many) // O.CHART_ROWS)
    empty = R.render_template("office.html", O.office_context(results, catalog, [], many[:3]))
    assert "本次运行没有需要特别核对的单位" in empty
    assert all(u["stability_value"] < O.STABILITY_LINE for u in ctx["unstable"])


def test_diagnostics_xlsx_one_row_per_scored_item(year, run_dir, tmp_path):
    from openpyxl import load_workbook

    catalog, results, _, _ = year
    diagnostics = I.indicator_diagnostics(results, catalog)
    wb = load_workbook(run_dir / "diagnostics.xlsx")
    ws = wb["指标诊断"]
    assert [c.value for c in ws[1]] == O.DIAG_HEADERS
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    scored = [i.id for i in catalog.items if i.kind == "scored"]
    assert [r[0] for r in rows] == scored == [d.item_id for d in diagnostics]
    for r, d in zip(rows, diagnostics):
        assert r[4] == d.n_units and r[10] == ("是" if d.separates else "否")
        assert r[5] == pytest.approx(d.share_full) and r[9] == pytest.approx(d.effective_weight)
    assert ws.cell(row=2, column=6).number_format == "0.00%"
    # text is never a formula
    hostile = [dataclasses.replace(diagnostics[0], title="=HYPERLINK(\"http://x\",\"y\")")]
    R.write_diagnostics_xlsx(tmp_path / "d.xlsx", hostile, catalog)
    cell = load_workbook(tmp_path / "d.xlsx")["指标诊断"].cell(row=2, column=2)
    assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")
