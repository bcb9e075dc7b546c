"""PDF publication (issue 4): bulletin, scorecards, feedback.

Every render in this module runs with WeasyPrint's logger captured: any
WARNING fails the test (``no_weasyprint_warnings``). PDFs are checked with
poppler (``pdffonts``, ``pdftotext``; those checks are skipped when poppler
is absent) and the extracted text against the bundled font's cmap.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import GOLDEN, ROOT, read_csv, run_stages, values_by_unit, write_submissions
from kaohe import pipeline as P
from kaohe.catalog import load_catalog
from kaohe.outputs import result_row, write_results_csv
from kaohe.registry import load_registry
from kaohe.review import load_components, load_review

weasyprint = pytest.importorskip("weasyprint")

from kaohe.report import context as C  # noqa: E402
from kaohe.report import render as R  # noqa: E402
from kaohe.report.text import zh  # noqa: E402
from render_warnings import captured  # noqa: E402

HAVE_POPPLER = shutil.which("pdffonts") is not None and shutil.which("pdftotext") is not None
needs_poppler = pytest.mark.skipif(not HAVE_POPPLER, reason="poppler-utils (pdffonts, pdftotext) is not installed")
SETTINGS = R.BulletinSettings(doc_number="示法考〔2026〕1号", issue_date="2026年1月15日")


# ------------------------------------------------------------------ warnings


def weasyprint_warnings():
    """Collects every WARNING (or worse) WeasyPrint logs inside the block."""
    return captured("weasyprint")


def allow_weasyprint_warnings(fn):
    """Opt a test out of ``no_weasyprint_warnings`` (only the test of the capture itself)."""
    fn.allow_weasyprint_warnings = True
    return fn


@pytest.fixture(autouse=True)
def no_weasyprint_warnings(request):
    """Any WeasyPrint warning during a test fails it."""
    if getattr(request.function, "allow_weasyprint_warnings", False):
        yield
        return
    with weasyprint_warnings() as records:
        yield
    if records:
        pytest.fail("WeasyPrint warnings: " + "; ".join(f"{r.levelname}: {r.getMessage()[:200]}" for r in records))


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def golden(mini_catalog, tmp_path_factory):
    registry = load_registry(GOLDEN / "registry.csv", mini_catalog)
    folder = tmp_path_factory.mktemp("golden") / "submissions"
    files = write_submissions(mini_catalog, registry, values_by_unit(GOLDEN / "values.csv"), folder)
    results, intake = run_stages(
        mini_catalog, registry, files, load_review(GOLDEN / "review.csv"), load_components(GOLDEN / "components.csv", mini_catalog, registry)
    )
    return mini_catalog, results, intake


def _restamped(src: Path, dst: Path, catalog, registry) -> list[Path]:
    """The bundled submissions, re-stamped with the current catalog hash if it changed.

    The bundled workbooks carry the catalog's content hash; when the hash
    definition changes they go stale (every file W105) until they are
    regenerated. The report tests need scored units, so they copy the files
    and put the current hash into the hidden fingerprint; the intake tests
    (test_e2e) still see the real files.
    """
    from kaohe.reading import read_workbook

    files = P.list_submission_files(src)
    old = ""
    for f in files:
        old = read_workbook(f, catalog, registry).fingerprint.get("catalog_hash", "")
        if old:
            break
    if not old or old == catalog.content_hash:
        return files
    dst.mkdir(parents=True)
    out = []
    for f in files:
        target = dst / f.name
        try:
            with zipfile.ZipFile(f) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
                for info in zin.infolist():
                    data = zin.read(info.filename)
                    if info.filename.endswith(".xml"):
                        data = data.replace(old.encode(), catalog.content_hash.encode())
                    zout.writestr(info, data)
        except zipfile.BadZipFile:
            shutil.copy2(f, target)
        out.append(target)
    return out


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """The bundled 2025 year (44 units) through the real stages."""
    catalog = load_catalog(ROOT / "indicators" / "2025.yaml")
    inputs = ROOT / "inputs" / "2025"
    registry = load_registry(inputs / "registry.csv", catalog)
    files = _restamped(inputs / "submissions", tmp_path_factory.mktemp("bundled") / "submissions", catalog, registry)
    results, intake = run_stages(
        catalog, registry, files, load_review(inputs / "review.csv"), load_components(inputs / "components.csv", catalog, registry)
    )
    assert sum(r.status == "scored" for r in results) >= 30, "the bundled year should have scored units"
    return catalog, results, intake


@pytest.fixture(scope="module")
def font_cmap():
    from fontTools.ttLib import TTFont

    cmaps = {}
    for weight, path in R.FONT_FILES.items():
        font = TTFont(str(path), lazy=True)
        cmaps[weight] = set(font.getBestCmap())
        font.close()
    return cmaps[400] & cmaps[700]


# ------------------------------------------------------------------ PDF checks


def pdf_text(pdf: Path, *args: str) -> str:
    return subprocess.run(["pdftotext", *args, "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def assert_pdf_ok(pdf: Path, cmap: set[int]) -> str:
    """The Kaohe font embedded (and no other font); every character of the text in its cmap."""
    assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-"
    if not HAVE_POPPLER:
        return ""
    out = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    fonts = [line.split() for line in out.splitlines()[2:] if line.strip()]
    assert fonts, f"{pdf.name}: no fonts"
    for cols in fonts:
        name = cols[0]
        assert "Kaohe-Sans-SC" in name, f"{pdf.name}: unexpected font {name}"
        # name type encoding emb sub uni object ID
        assert cols[-5] == "yes", f"{pdf.name}: font {name} is not embedded"
    text = pdf_text(pdf, "-raw")  # content-stream order: a wrapped cell's lines stay together
    missing = sorted({ch for ch in text if not ch.isspace() and ch != "\f" and ord(ch) not in cmap})
    assert not missing, f"{pdf.name}: characters missing from the bundled font: {missing}"
    return text


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


# ---------------------------------------------------------------- the bulletin


@needs_poppler
def test_bulletin_lists_every_unit_with_its_published_final(bundled, font_cmap, tmp_path):
    catalog, results, _ = bundled
    scored = [r for r in results if r.status == "scored"]
    previous = {scored[0].unit_id: {"final": "80.00", "rank": "9", "grade": "良好"}, scored[1].unit_id: {"final": "", "rank": "", "grade": "不合格"}}
    pdf = R.render_bulletin(results, catalog, SETTINGS, tmp_path / "bulletin.pdf", previous)
    text = assert_pdf_ok(pdf, font_cmap)
    layout = pdf_text(pdf, "-layout")
    write_results_csv(tmp_path / "results.csv", results, catalog)
    csv_rows = {row["unit_id"]: row for row in read_csv(tmp_path / "results.csv")}
    assert len(csv_rows) == len(results)
    for r in results:
        row = csv_rows[r.unit_id]
        name = re.escape(row["unit_name"])
        if row["final"]:
            # one table row: rank, name, final (exactly as results.csv), grade
            pattern = rf"^\s*{row['rank']}\s+{name}\s+{re.escape(row['final'])}\s+{row['grade']}(\s|$)"
        else:
            pattern = rf"^\s*—\s+{name}\s+—\s+不合格(\s|$)"
        assert re.search(pattern, layout, re.M), f"row of {row['unit_name']} (final {row['final'] or '—'}) not found"
    flat = squash(text)
    assert squash(f"{catalog.city}{catalog.year}年度依法行政考核结果通报") in flat
    assert "示法考〔2026〕1号" in flat and "2026年1月15日" in flat and catalog.issuer in flat
    # 较上年: a known change, and a dash where last year had no final
    delta = C.change_text(result_row(scored[0], catalog)["final"], previous[scored[0].unit_id])
    assert delta.startswith(("+", "-")) and delta in text
    # the method annex comes from the catalog: every item id and title is in it
    for item in catalog.items:
        assert item.id in text and squash(zh(item.title)) in flat, item.id
    for g, bands in catalog.group_bands.items():
        assert g in flat
    # 不合格 units are listed with 责令限期整改; 未报送 and 未通过校验 are named
    assert "责令限期整改" in flat
    for r in results:
        if r.status in ("missing", "rejected"):
            assert f"{r.unit.unit_name}\uff08{r.unit.group}" in flat


def test_bulletin_context_numbers_come_from_result_row(golden):
    catalog, results, _ = golden
    ctx = C.bulletin_context(results, catalog, SETTINGS.resolved(catalog), None)
    rows = [row for g in ctx["groups"] for row in g.rows]
    assert [r.unit_id for r in rows] == [r.unit_id for r in results]  # bulletin order is rank_all's order
    by_id = {r.unit_id: r for r in results}
    for row in rows:
        csv_row = result_row(by_id[row.unit_id], catalog)
        assert row.final == (csv_row["final"] or C.DASH)
        assert row.rank == (csv_row["rank"] or C.DASH)
        if csv_row["status"] == "scored":
            assert [t for t, _ in row.rates] == [csv_row[f"rate_{d.id}"] or C.DASH for d in catalog.dimensions]
    assert all(row.change == C.DASH for row in rows)
    failing = {f["name"] for f in ctx["failing"]}
    assert failing == {r.unit.unit_name for r in results if r.status == "scored" and r.grade == "不合格"}
    assert {m["name"] for m in ctx["missing"]} == {"市机关事务管理局"}
    assert {m["name"] for m in ctx["rejected"]} == {"市统计局"}


def test_change_against_last_year():
    assert C.change_text("90.50", {"final": "88.25"}) == "+2.25"
    assert C.change_text("88.25", {"final": "90.50"}) == "-2.25"
    assert C.change_text("90.00", {"final": "90"}) == "0.00"
    assert C.change_text("90.00", None) == C.DASH
    assert C.change_text("90.00", {"final": ""}) == C.DASH
    assert C.change_text("", {"final": "90.00"}) == C.DASH


def test_rule_text_covers_every_rule_type(mini_catalog):
    texts = {it.rule.type: C.rule_text(it) for it in mini_catalog.items}
    assert set(texts) == {"yes_no", "ratio", "count_target", "deduct_per_event", "checklist", "graded", "bonus", "veto"}
    a02 = C.rule_text(mini_catalog.item("A02"))
    assert "达到100%得满分" in a02 and "不高于60%不得分" in a02 and "分母为0时本项不适用" in a02
    assert "“行政处罚决定公开率”" in C.rule_text(mini_catalog.item("B03"))
    assert "扣5分" in texts["count_target"]
    assert "最多扣12分" in texts["deduct_per_event"]
    assert "较好80%" in texts["graded"]
    assert "最多加2分" in texts["bonus"]
    assert "一票否决" in C.rule_text(mini_catalog.item("V01")) and "不得评为优秀" in C.rule_text(mini_catalog.item("V02"))
    annex = C.method_annex(mini_catalog)
    assert annex["quota"] == "30%" and annex["tie_break"] == ["行政执法", "依法决策"]
    assert [b["group"] for b in annex["bands"]][1:] == ["区县政府"] and annex["bands"][1]["cells"] == ["88", "78", "60"]


# ---------------------------------------------------------------- scorecards


@needs_poppler
def test_scorecard_shows_items_review_and_rank(golden, font_cmap, tmp_path):
    catalog, results, _ = golden
    r = next(x for x in results if x.unit_id == "QX05")
    group = [x for x in results if x.unit.group == r.unit.group]
    pdf = R.render_scorecard(r, results, catalog, SETTINGS, tmp_path / "QX05.pdf")
    text = assert_pdf_ok(pdf, font_cmap)
    flat = squash(text)
    row = result_row(r, catalog)
    n = sum(1 for x in group if x.rank is not None)
    assert f"第 {r.rank} 名 / 共 {n} 个单位" in text
    assert row["final"] in text and r.grade in flat and r.unit.unit_name in flat
    a02 = next(ir for ir in r.items if ir.item.id == "A02")
    change = a02.changes[0]
    assert squash(change.reason) in flat and change.reviewer in flat
    assert "核查不实" in flat
    for ir in r.items:
        if ir.item.kind == "scored" and ir.applicable == "yes":
            assert ir.item.id in text
        if ir.evidence:
            assert squash(ir.evidence) in flat


def test_scorecard_rectify_order_and_unscored_units(golden):
    catalog, results, _ = golden
    for r in results:
        if r.status != "scored":
            with pytest.raises(ValueError):
                C.scorecard_context(r, results, catalog, SETTINGS)
            continue
        ctx = C.scorecard_context(r, results, catalog, SETTINGS)
        rates = [float(x["rate"]) for x in ctx["rectify"]]
        assert rates == sorted(rates) and all(float(x["lost"]) > 0 for x in ctx["rectify"])
        assert ctx["row"] == result_row(r, catalog)


# ---------------------------------------------------------------- feedback


@needs_poppler
def test_feedback_lists_each_problem_with_sheet_and_cell(golden, font_cmap, tmp_path):
    catalog, _, intake = golden
    file, problems = next((f, ps) for f, ps in intake.problems.items() if ps)
    pdf = R.render_feedback(file, "市统计局(ZH05)", problems, catalog, SETTINGS, tmp_path / "fb.pdf")
    text = assert_pdf_ok(pdf, font_cmap)
    flat = squash(text)
    for p in problems:
        assert p.cell in text and p.sheet in flat and p.code.value in text
        assert squash(zh(p.message))[:20] in flat


def test_render_run_writes_every_pdf(golden, tmp_path):
    catalog, results, intake = golden
    # one group keeps the test fast: its scored units, its rejected file, its missing unit
    results = [r for r in results if r.unit.group == "市直综合部门"]
    intake = copy.copy(intake)
    intake.problems = {f: ps for f, ps in intake.problems.items() if intake.file_unit.get(f, "").startswith("ZH")}
    paths = R.render_run(tmp_path, results, catalog, intake, SETTINGS)
    names = sorted(str(p.relative_to(tmp_path)) for p in paths)
    scored = [f"scorecards/{r.unit_id}.pdf" for r in results if r.status == "scored"]
    assert len(scored) == 4
    assert names == sorted(["bulletin.pdf", *scored, "feedback/ZH05_市统计局_2025自评表_退回意见.pdf"])
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.pdf")) == names  # nothing else, no .part left
    assert R.feedback_name("报送材料.xlsx", "QX01", True) == "QX01_报送材料_退回意见.pdf"
    assert R.feedback_name("x.xlsx", "", False) == "x_退回意见.pdf"


# ---------------------------------------------------------------- safety


@needs_poppler
def test_markup_in_unit_text_is_text_and_fetches_nothing(golden, font_cmap, tmp_path):
    catalog, results, _ = golden
    attack = '<img src="file:///etc/passwd">'
    r = copy.copy(next(x for x in results if x.status == "scored"))
    r.unit = dataclasses.replace(r.unit, unit_name="城关区<b>人民政府</b>")
    r.items = tuple(
        dataclasses.replace(ir, evidence=attack) if ir.applicable == "yes" and ir.item.kind == "scored" else ir for ir in r.items
    )
    fetcher = R.engine().fetcher
    calls: list[str] = []
    original = fetcher.fetch

    def spy(url, headers=None):
        calls.append(url)
        return original(url, headers)

    fetcher.fetch = spy
    try:
        pdf = R.render_scorecard(r, results, catalog, SETTINGS, tmp_path / "attack.pdf")
    finally:
        del fetcher.fetch
    assert calls == []  # the fonts were loaded with the stylesheet, once per process; nothing else
    text = assert_pdf_ok(pdf, font_cmap)
    assert attack in text
    assert "城关区<b>人民政府</b>" in text
    html = R.render_template("scorecard.html", C.scorecard_context(r, results, catalog, SETTINGS))
    assert "<img" not in html and "&lt;img src=&#34;file:///etc/passwd&#34;&gt;" in html


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://example.com/x.png",
        "https://example.com/font.ttf",
        "data:text/plain,hello",
        "ftp://example.com/a",
        (R.FONTS / ".." / ".." / ".." / "pyproject.toml").as_uri(),
        "file://otherhost" + str(R.FONT_FILES[400]),
    ],
)
def test_fetcher_refuses_anything_but_bundled_assets(url):
    with pytest.raises(R.ReportError):
        R.engine().fetcher.fetch(url)


def test_fetcher_serves_the_bundled_font():
    response = R.engine().fetcher.fetch(R.FONT_FILES[400].as_uri())
    try:
        assert response.read(4) == b"\x00\x01\x00\x00"
    finally:
        response.close()


def test_a_forbidden_resource_fails_the_render(tmp_path):
    out = tmp_path / "x.pdf"
    with pytest.raises(R.ReportError, match="不允许"):
        R.render_html('<html><body><p>正文</p><img src="file:///etc/passwd"></body></html>', out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_every_template_autoescapes():
    env = R.environment()
    for name in env.list_templates():
        assert env.get_template(name).environment.autoescape is True
    assert env is R.environment()  # cached: built once per process


@allow_weasyprint_warnings
def test_weasyprint_warnings_are_caught(tmp_path):
    """The capture behind ``no_weasyprint_warnings``: a bad CSS declaration is a warning, and it is seen."""
    with weasyprint_warnings() as records:
        R.render_html('<html><body><p style="colour: red">正文</p></body></html>', tmp_path / "w.pdf")
    assert records and any("colour" in r.getMessage() for r in records)


def test_templates_use_chinese_punctuation():
    """Literal template text uses full-width ,;:() next to Chinese (typography of an official document)."""
    split = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|<[^>]*>)", re.S)
    bad = re.compile(r"[\u4e00-\u9fff][,;:()]|[,;:()][\u4e00-\u9fff]")
    for path in sorted(R.TEMPLATES.glob("*.html")):
        parts = split.split(path.read_text(encoding="utf-8"))
        texts = [p for i, p in enumerate(parts) if i % 2 == 0]
        for t in texts:
            assert not bad.search(t), f"{path.name}: {t.strip()[:60]!r}"


def test_zh_punctuation():
    assert zh("制度建设(规范性文件)") == "制度建设\uff08规范性文件\uff09"
    assert zh("共44个单位,其中") == "共44个单位\uff0c其中"
    assert zh("file:///etc/passwd") == "file:///etc/passwd"
    assert zh("12:30, ok (a)") == "12:30, ok (a)"


@allow_weasyprint_warnings
def test_characters_missing_from_the_font_are_reported(caplog, tmp_path):
    assert R.uncovered_characters("<p>城关区&lt;喆堃&gt;😀 䶮</p>") == ["䶮", "😀"]
    assert R.uncovered_characters("<p>示范市2025年度(一)①—“是”〔2026〕</p>") == []
    with caplog.at_level(logging.WARNING, logger="kaohe.report"), weasyprint_warnings() as records:
        R.render_html("<html><body><p>单位名称:䶮</p></body></html>", tmp_path / "x.pdf")
    assert any("䶮" in r.getMessage() for r in caplog.records if r.name == "kaohe.report")
    # WeasyPrint says so too on a machine where no system font has the character (it draws a
    # box), and nothing else
    assert all(".notdef glyph" in r.getMessage() and "䶮" in r.getMessage() for r in records), [r.getMessage() for r in records]


@needs_poppler
def test_renders_on_a_machine_without_any_system_font(tmp_path):
    """No system fonts at all (WeasyPrint 70 segfaults without any font): the bundled @font-face is enough."""
    conf = tmp_path / "fonts.conf"
    conf.write_text(
        f'<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig><cachedir>{tmp_path / "fc"}</cachedir></fontconfig>',
        encoding="utf-8",
    )
    out = tmp_path / "x.pdf"
    code = f"from kaohe.report.render import render_html; render_html('<p>示范市<b>依法行政</b>考核 92.50</p>', {str(out)!r})"
    env = {**os.environ, "FONTCONFIG_FILE": str(conf)}
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True, check=True).stdout.splitlines()[2:]
    assert fonts and all("Kaohe-Sans-SC" in line for line in fonts)


@allow_weasyprint_warnings
def test_weasyprint_fonttools_notice_is_dropped_and_said_once_in_chinese(monkeypatch):
    """Without HarfBuzz-Subset WeasyPrint warns once per document and weight (54 lines in one
    bundled run): kaohe drops that notice, and only that one, and says it once, in Chinese."""
    import weasyprint.text.ffi as ffi

    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = seen.append  # type: ignore[method-assign]
    weasy = logging.getLogger("weasyprint")
    weasy.addHandler(handler)
    try:
        weasy.warning('Using fontTools instead of HarfBuzz-Subset for font "%s". This will be unsupported', "Kaohe Sans SC")
        weasy.warning("another warning")
    finally:
        weasy.removeHandler(handler)
    assert [r.getMessage() for r in seen] == ["another warning"]
    R.subsetting_note.cache_clear()
    monkeypatch.setattr(ffi, "harfbuzz_subset", None)
    note = R.subsetting_note()
    assert note and "libharfbuzz-subset0" in note and "结果相同" in note
    R.subsetting_note.cache_clear()
    monkeypatch.setattr(ffi, "harfbuzz_subset", object())
    assert R.subsetting_note() is None
    R.subsetting_note.cache_clear()
