"""Long documents (issue: performance): the bulletin and the office report for many units.

A synthetic year of a few hundred units (``bench/scale_docs.py``: the real catalog, the real
stages, no workbooks) rendered with small parts, so the bulletin is several WeasyPrint documents
painted into one PDF (``kaohe.report.context.render_parts``). The PDF must read as one document:
every unit's row exactly once with its published final, pages numbered 1…N of N, the running
header on every page but the first, no empty page, one embedded subset per font. Every render
runs with WeasyPrint's and kaohe.report's loggers captured: any WARNING fails the test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from helpers import scale_year
from kaohe.outputs import result_row

weasyprint = pytest.importorskip("weasyprint")

from kaohe.report import charts  # noqa: E402
from kaohe.report import context as C  # noqa: E402
from kaohe.report import office as O  # noqa: E402
from kaohe.report import render as R  # noqa: E402
from kaohe.report.text import zh  # noqa: E402
from render_warnings import captured, fail_on_warnings  # noqa: E402

HAVE_POPPLER = all(shutil.which(t) for t in ("pdftotext", "pdffonts", "pdfinfo"))
needs_poppler = pytest.mark.skipif(not HAVE_POPPLER, reason="poppler-utils (pdftotext, pdffonts, pdfinfo) is not installed")
SETTINGS = R.BulletinSettings(doc_number="示法考〔2026〕1号", issue_date="2026年1月15日")
UNITS = 200
FOOTER = r"第\s*(\d+)\s*页\s*/\s*共\s*(\d+)\s*页"  # pdftotext -layout may drop the spaces
ROWS_PER_PART = 40  # small parts: the 200 units' ranking annex is laid out as five documents or so


@pytest.fixture(autouse=True)
def no_warnings():
    yield from fail_on_warnings()


@pytest.fixture(scope="module")
def year():
    return scale_year(UNITS, seed=7)


@pytest.fixture(scope="module")
def bulletin(year, tmp_path_factory):
    out = tmp_path_factory.mktemp("scale") / "bulletin.pdf"
    with pytest.MonkeyPatch.context() as mp, captured("weasyprint", "kaohe.report") as records:
        mp.setattr(C, "RANK_ROWS_PER_PART", ROWS_PER_PART)
        R.render_bulletin(year["results"], year["catalog"], SETTINGS, out, year["previous"], year["previous_catalog"])
    assert not records, [r.getMessage() for r in records]
    return out


def pdf_text(pdf: Path, *args: str) -> str:
    return subprocess.run(["pdftotext", *args, "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def pdf_pages(pdf: Path) -> list[tuple[float, float]]:
    """(width, height) in points of every page."""
    out = subprocess.run(["pdfinfo", "-f", "1", "-l", "100000", str(pdf)], capture_output=True, text=True, check=True).stdout
    return [(float(w), float(h)) for w, h in re.findall(r"^Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", out, re.M)]


# ------------------------------------------------------------------ the parts


def test_bulletin_parts_hold_every_row_once_in_order(year):
    catalog, results = year["catalog"], year["results"]
    ctx = C.bulletin_context(results, catalog, SETTINGS.resolved(catalog), year["previous"], year["previous_catalog"])
    parts = list(C.bulletin_parts(ctx, rows_per_part=ROWS_PER_PART))  # as first cut (no layout)
    assert parts[0].template == "bulletin.html" and parts[0].page is None
    ranks = parts[1:]
    assert len(ranks) >= 4 and all(p.template == "_bulletin_ranks.html" and p.page == "wide" for p in ranks)
    assert [p.context["first_part"] for p in ranks] == [True] + [False] * (len(ranks) - 1)
    assert [p.context["last_part"] for p in ranks] == [False] * (len(ranks) - 1) + [True]
    rows = [r.unit_id for p in ranks for b in p.context["blocks"] for r in b.rows]
    assert rows == [r.unit_id for g in ctx["groups"] for r in g.rows] == [r.unit_id for r in results]
    for p in ranks:
        blocks = p.context["blocks"]
        assert sum(len(b.rows) for b in blocks) <= ROWS_PER_PART + ROWS_PER_PART // 4
        assert all(all(r in b.group.rows for r in b.rows) for b in blocks)  # one group per table
    # a group's first block has its heading; a group split over parts continues in the next
    for g in ctx["groups"]:
        blocks = [b for p in ranks for b in p.context["blocks"] if b.group is g]
        assert [b.first for b in blocks] == [True] + [False] * (len(blocks) - 1)
        assert [b.last for b in blocks] == [False] * (len(blocks) - 1) + [True]


def test_join_parts_is_one_document():
    a = "<html><head><title>t</title></head><body><p>甲</p></body></html>"
    b = "<html><head><title>t</title></head><body class='x'><section>乙</section></body></html>"
    joined = C.join_parts([a, b, b])
    assert joined.count("<body") == 1 and joined.count("</body>") == 1
    assert joined.index("甲") < joined.index("乙") and joined.count("乙") == 2


# ------------------------------------------------------------------ the PDF


@needs_poppler
def test_bulletin_in_parts_lists_every_unit_once_with_its_final(year, bulletin):
    catalog, results = year["catalog"], year["results"]
    # content-stream order: a row's cells in order, a long name's lines together
    flat = re.sub(r"\s+", "", pdf_text(bulletin, "-raw"))
    for r in results:
        row = result_row(r, catalog)
        cells = f"{row['rank']}{row['unit_name']}{row['final']}{row['grade']}" if row["final"] else f"—{row['unit_name']}—不合格"
        assert flat.count(cells) == 1, f"{row['unit_name']}: {flat.count(cells)} rows with final {row['final'] or '—'}"
    for k, g in enumerate(year["catalog"].groups, start=1):  # each group's heading once, though in several parts
        assert flat.count(f"{k}.{g}（共") == 1, g
    assert flat.index("附件1") < flat.rindex("附件2")  # the method annex after the ranking annex


@needs_poppler
def test_bulletin_in_parts_numbers_pages_continuously(bulletin, year):
    sizes = pdf_pages(bulletin)
    n = len(sizes)
    assert n > 10
    title = f"{year['catalog'].city}{year['catalog'].year}年度依法行政考核结果通报"
    pages = pdf_text(bulletin, "-layout").split("\f")[:n]
    for k, text in enumerate(pages, start=1):
        assert re.findall(FOOTER, text) == [(str(k), str(n))], f"page {k}"
        body = re.sub(FOOTER, "", text)
        if k > 1:  # the running header: title and document number on every page but the first
            assert title in body and SETTINGS.doc_number in body, f"page {k} has no running header"
            body = body.replace(title, "").replace(SETTINGS.doc_number, "")
        assert body.strip(), f"page {k} is empty"
    # front matter portrait, the ranking annex landscape, the method annex portrait
    kinds = "".join("L" if w > h else "P" for w, h in sizes)
    assert re.fullmatch(r"P+L+P+", kinds), kinds
    # parts join seamlessly: a part's last page goes to the next part, so every landscape page but
    # the ones that end a group or the annex is full (the same number of rows as the fullest)
    rows = [len(re.findall(r"^\s*(?:\d+|—)\s+示范市", text, re.M)) for text, kind in zip(pages, kinds) if kind == "L"]
    assert sum(r >= max(rows) - 3 for r in rows) >= len(rows) - len(year["catalog"].groups) - 1, rows


@needs_poppler
def test_bulletin_in_parts_embeds_one_subset_per_font(bulletin):
    out = subprocess.run(["pdffonts", str(bulletin)], capture_output=True, text=True, check=True).stdout
    fonts = [line.split() for line in out.splitlines()[2:] if line.strip()]
    assert sorted(re.sub(r"^[A-Z]{6}\+", "", f[0]) for f in fonts) == ["Kaohe-Sans-SC", "Kaohe-Sans-SC-Bold"]
    assert all(f[-5] == "yes" for f in fonts)  # embedded
    text = pdf_text(bulletin, "-raw")
    assert not [ch for ch in set(text) if not ch.isspace() and ord(ch) not in R.font_characters()]


# ------------------------------------------------------------------ charts and the office report


def test_strip_plot_is_a_histogram_for_large_groups():
    bands = (("优秀", Decimal(90)), ("良好", Decimal(80)), ("合格", Decimal(60)))
    small = [charts.StripRow("甲组", tuple(charts.Dot(Decimal(70 + k % 30), "良好") for k in range(40)), bands)]
    big = [charts.StripRow("甲组", tuple(charts.Dot(Decimal(60) + Decimal(k % 400) / 10, "良好") for k in range(3000)), bands)]
    assert not charts.strip_binned(small) and charts.strip_binned(big)
    assert str(charts.strip_plot(small)).count("<circle") == 40 + len(charts.GRADE_ORDER)  # the dots and the legend
    svg = str(charts.strip_plot(big))
    assert "<circle" not in svg and svg.count("<rect") < 200  # bounded, whatever the number of units
    assert "3000 个单位" in svg


def test_office_report_lists_large_ties_as_blocks(year, monkeypatch):
    catalog, results, watch = year["catalog"], year["results"], year["watch"]
    monkeypatch.setattr(O, "TIE_DETAIL_MAX", 3)  # 200 units have a few tied units; 3,000 have a thousand
    ctx = O.office_context(results, catalog, watch, year["diagnostics"])
    ties = next(g for g in ctx["watch"] if g["kind"] == "tie")
    tied = [e.unit_id for e in watch if e.kind == "tie"]
    assert len(tied) > O.TIE_DETAIL_MAX and ties["blocks"]
    listed = [r["id"] for b in ties["blocks"] for r in b["rows"]]
    assert Counter(listed) == Counter(dict.fromkeys(tied, 1))  # every tied unit once
    by_id = {r.unit_id: r for r in results}
    for b in ties["blocks"]:
        members = [by_id[r["id"]] for r in b["rows"]]
        assert len({(m.unit.group, result_row(m, catalog)["final"]) for m in members}) == 1 and b["n"] == len(members) >= 2
        assert [m.rank for m in members] == sorted(m.rank for m in members)
        assert b["rows"][0]["how"] == "" and all(r["how"] for r in b["rows"][1:])
    html = R.render_template("office.html", ctx)
    assert "按同分组列出" in html and html.count("个单位同分") == len(ties["blocks"])


def test_office_parts_hold_every_entry_once(year, monkeypatch):
    catalog, results, watch = year["catalog"], year["results"], year["watch"]
    monkeypatch.setattr(O, "TIE_DETAIL_MAX", 3)
    ctx = O.office_context(results, catalog, watch, year["diagnostics"])
    parts = list(O.office_parts(ctx, rows_per_part=20))  # as first cut (no layout)
    assert len(parts) > 5 and all(p.template == "office.html" and p.page is None for p in parts)
    assert [p.context["part_head"] for p in parts] == [True] + [False] * (len(parts) - 1)
    assert [p.context["part_diag"] for p in parts] == [False] * (len(parts) - 1) + [True]
    entries = []
    for p in parts:
        for piece in p.context["watch_pieces"]:
            g = piece["group"]
            ids = [r["id"] for b in piece["blocks"] for r in b["rows"]] if g["blocks"] else [r["id"] for r in piece["rows"]]
            entries += [(g["kind"], uid) for uid in ids]
    assert Counter(entries) == Counter((e.kind, e.unit_id) for e in watch)
    unstable = [u["id"] for p in parts if p.context["unstable_piece"] for u in p.context["unstable_piece"]["rows"]]
    assert unstable == [u["id"] for u in ctx["unstable"]]


@needs_poppler
def test_office_report_in_parts_renders_every_watch_unit(year, tmp_path, monkeypatch):
    catalog, results, watch = year["catalog"], year["results"], year["watch"]
    monkeypatch.setattr(O, "TIE_DETAIL_MAX", 3)
    monkeypatch.setattr(O, "OFFICE_ROWS_PER_PART", 40)
    pdf = R.render_office_report(results, catalog, tmp_path / "office.pdf", watch, year["diagnostics"])
    n = len(pdf_pages(pdf))
    pages = pdf_text(pdf, "-layout").split("\f")[:n]
    for k, text in enumerate(pages, start=1):
        assert re.findall(FOOTER, text) == [(str(k), str(n))], f"page {k}"
        assert "内部工作材料" in text, f"page {k}"  # the running header (the first page: its own mark)
    text = pdf_text(pdf, "-raw")  # content-stream order: a wrapped cell's lines stay together
    flat = re.sub(r"\s+", "", text)
    assert "按同分组列出" in flat
    for uid in {e.unit_id for e in watch}:
        assert uid in text, uid
    # every entry once, though laid out in parts (the rows of a part's last page go to the next part)
    for e in watch:
        if e.kind != "tie":
            detail = re.sub(r"\s+", "", zh(e.detail_cn))[:24]
            assert flat.count(detail) >= 1, detail
    ids = Counter(re.findall(r"（([A-Z]{2}\d{2}(?:-\d+)?)）", text))
    ties = [e.unit_id for e in watch if e.kind == "tie"]
    unstable = [u["id"] for u in O.office_context(results, catalog, watch, year["diagnostics"])["unstable"]]
    assert all(ids[uid] == ties.count(uid) + unstable.count(uid) for uid in ties), "a tied unit listed twice or not at all"


@needs_poppler
def test_without_the_weasyprint_internals_the_parts_are_one_document(year, tmp_path, monkeypatch):
    """Another WeasyPrint (no PartsPdf): the parts joined into one HTML document, rendered as before."""
    catalog, results, watch = year["catalog"], year["results"], year["watch"]
    monkeypatch.setattr(C, "parts_supported", lambda: False)
    monkeypatch.setattr(O, "OFFICE_ROWS_PER_PART", 40)
    pdf = R.render_office_report(results, catalog, tmp_path / "office.pdf", watch, year["diagnostics"])
    n = len(pdf_pages(pdf))
    pages = pdf_text(pdf, "-layout").split("\f")[:n]
    assert [re.findall(FOOTER, t) for t in pages] == [[(str(k), str(n))] for k in range(1, n + 1)]
    flat = re.sub(r"\s+", "", pdf_text(pdf, "-raw"))
    for e in watch:
        assert re.sub(r"\s+", "", zh(e.detail_cn))[:24] in flat, e.unit_id
