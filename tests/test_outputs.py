"""Outputs are safe: unit text never becomes a formula, in xlsx or CSV."""

import csv
import subprocess
from decimal import Decimal
from fractions import Fraction

import pytest
from openpyxl import load_workbook

from helpers import GOLDEN, run_stages, values_by_unit, write_submissions
from kaohe import layout as L
from kaohe.outputs import clean_text, csv_safe, write_items_csv, write_results_csv, write_results_xlsx
from kaohe.registry import load_registry
from kaohe.review import load_components
from kaohe.sample import filled_workbook
from kaohe.template import template_filename

HOSTILE = '=HYPERLINK("http://evil.example","点击")'


def test_unit_text_is_never_a_formula(mini_catalog, tmp_path):
    registry = load_registry(GOLDEN / "registry.csv", mini_catalog)
    values = values_by_unit(GOLDEN / "values.csv")
    unit = registry.get("QX02")
    wb, lay = filled_workbook(mini_catalog, unit, values["QX02"])
    ev = next(a for b in lay.blocks if b.item_id == "A01" for k, _, a in b.inputs() if k == L.EVIDENCE_KEY)
    cell = wb[L.FORM_SHEET][ev]
    cell.value = HOSTILE
    cell.data_type = "s"  # typed as text ('=...), not a formula
    folder = tmp_path / "subs"
    folder.mkdir()
    wb.save(folder / template_filename(unit, 2025))
    others = {u: v for u, v in values.items() if u != "QX02"}
    write_submissions(mini_catalog, registry, others, folder)
    results, intake = run_stages(mini_catalog, registry, sorted(folder.glob("*.xlsx")), components=load_components(GOLDEN / "components.csv", mini_catalog, registry))
    assert intake.file_state[template_filename(unit, 2025)] == "scored"
    write_results_xlsx(tmp_path / "r.xlsx", results, mini_catalog, intake.problems)
    write_items_csv(tmp_path / "items.csv", results)
    write_results_csv(tmp_path / "results.csv", results, mini_catalog)
    ws = load_workbook(tmp_path / "r.xlsx")["指标得分明细"]
    hits = [c for row in ws.iter_rows() for c in row if c.value == HOSTILE]
    assert hits and all(c.data_type == "s" for c in hits)
    assert not any(c.data_type == "f" for sheet in load_workbook(tmp_path / "r.xlsx") for row in sheet.iter_rows() for c in row)
    with (tmp_path / "items.csv").open(encoding="utf-8-sig") as fh:
        evidence = [r["evidence"] for r in csv.DictReader(fh) if r["unit_id"] == "QX02" and r["item_id"] == "A01"]
    assert evidence == ["'" + HOSTILE]


def test_clean_text_and_csv_safe():
    assert clean_text("a\x00b\x1bc") == "abc"
    long = "长" * 5000
    assert len(clean_text(long)) == 1000 and clean_text(long).endswith("…")
    for s in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx"):
        assert csv_safe(s).startswith("'")
    assert csv_safe("正常文字") == "正常文字" and csv_safe(3) == 3


# ------------------------------------------------- results.xlsx, our own SpreadsheetML writer

TRICKY = [  # (value given, value openpyxl reads back, number format)
    ("=1+1", "=1+1", "General"),
    ("+cmd", "+cmd", "General"),
    ("@x", "@x", "General"),
    ("-1", "-1", "General"),  # text stays text: only fmt2's two-decimal form becomes a number
    (HOSTILE, HOSTILE, "General"),
    ("-1.50", -1.5, "0.00"),
    ("12.35", 12.35, "0.00"),
    ("a\x00b\x1bc\x7fd", "abcd", "General"),
    ("\x01\x02", None, None),  # nothing left: no cell
    ("a\ud800b\uffffc", "abc", "General"),  # not representable in XML: dropped
    ("长" * 5000, "长" * 999 + "…", "General"),
    (None, None, None),
    ("", None, None),
    (Decimal("2.5"), 2.5, "0.00"),
    (Decimal("3"), 3, "0.00"),  # whole numbers read back as int, as with openpyxl
    (Fraction(7, 9), 7 / 9, "0.00"),
    (Fraction(-1, 3), -1 / 3, "0.00"),
    (3, 3, "General"),
    (0, 0, "General"),
    (-4, -4, "General"),
    (0.1, 0.1, "0.00"),
    (True, True, "General"),
    ("  leading and trailing  ", "  leading and trailing  ", "General"),
    ("a & b < c > d \"q\" 'x' ]]>", "a & b < c > d \"q\" 'x' ]]>", "General"),
    ("line1\nline2\ttab", "line1\nline2\ttab", "General"),
    ("cr\rlf\r\n", "cr\rlf\r\n", "General"),
    ("🙂 \u3000全角空格", "🙂 \u3000全角空格", "General"),
]


def _tricky_book(path):
    from kaohe.outputs import _XlsxStream

    book = _XlsxStream(path)
    book.sheet("甲'表", ["编号", "值", "=头"], ([k, v, "尾"] for k, (v, _, _) in enumerate(TRICKY, start=1)), {2: 40})
    book.sheet("空表", ["a", "b"], iter(()))
    book.close()


def test_xlsx_writer_reads_back_in_openpyxl_with_the_same_values_and_types(tmp_path):
    _tricky_book(tmp_path / "t.xlsx")
    wb = load_workbook(tmp_path / "t.xlsx")
    assert wb.sheetnames == ["甲'表", "空表"]
    ws = wb["甲'表"]
    assert [c.value for c in ws[1]] == ["编号", "值", "=头"]
    assert all(c.font.b and c.fill.fgColor.rgb.endswith("D9E1F2") and c.alignment.wrap_text and c.data_type == "s" for c in ws[1])
    assert ws.max_row == len(TRICKY) + 1 and ws.max_column == 3
    for k, (given, expected, fmt) in enumerate(TRICKY, start=2):
        cell = ws.cell(k, 2)
        assert (cell.value, type(cell.value)) == (expected, type(expected)), (given, cell.value)
        if isinstance(expected, str):
            assert cell.data_type == "s"
        if fmt:
            assert cell.number_format == fmt
        assert ws.cell(k, 1).value == k - 1 and ws.cell(k, 3).value == "尾"
    assert not any(c.data_type == "f" for row in ws.iter_rows() for c in row)
    assert ws.freeze_panes == "C2" and ws.print_title_rows == "$1:$1" and ws.auto_filter.ref == f"A1:C{len(TRICKY) + 1}"
    assert ws.column_dimensions["B"].width == 40 and ws.column_dimensions["A"].width == 12
    assert ws.page_setup.orientation == "landscape" and int(ws.page_setup.paperSize) == 9 and ws.sheet_properties.pageSetUpPr.fitToPage
    assert int(ws.page_setup.fitToWidth) == 1 and int(ws.page_setup.fitToHeight) == 0
    empty = wb["空表"]
    assert [c.value for c in empty[1]] == ["a", "b"] and empty.max_row == 1 and empty.auto_filter.ref == "A1:B1"


def test_xlsx_writer_stores_what_openpyxl_put_stores(tmp_path):
    """The oracle: the same values through openpyxl's ``put`` (the feedback workbooks' writer)."""
    from openpyxl import Workbook

    from kaohe.outputs import put

    wb = Workbook()
    for k, (given, _, _) in enumerate(TRICKY, start=1):
        if not (isinstance(given, str) and ("\ud800" in given or "\r" in given)):  # openpyxl cannot write these faithfully
            put(wb.active, k, 1, given)
    wb.save(tmp_path / "oracle.xlsx")
    _tricky_book(tmp_path / "t.xlsx")
    oracle, ours = load_workbook(tmp_path / "oracle.xlsx").active, load_workbook(tmp_path / "t.xlsx")["甲'表"]
    compared = 0
    for k, (given, _, _) in enumerate(TRICKY, start=1):
        if isinstance(given, str) and ("\ud800" in given or "\r" in given):
            continue
        a, b = oracle.cell(k, 1), ours.cell(k + 1, 2)
        assert (a.value, type(a.value)) == (b.value, type(b.value)), given
        compared += 1
    assert compared >= 20


def test_results_xlsx_matches_results_csv(mini_catalog, tmp_path):
    """Every published figure in results.xlsx is the one in results.csv (as a number), and every
    scored item has its row."""
    registry = load_registry(GOLDEN / "registry.csv", mini_catalog)
    folder = tmp_path / "subs"
    folder.mkdir()
    write_submissions(mini_catalog, registry, values_by_unit(GOLDEN / "values.csv"), folder)
    results, intake = run_stages(mini_catalog, registry, sorted(folder.glob("*.xlsx")), components=load_components(GOLDEN / "components.csv", mini_catalog, registry))
    write_results_xlsx(tmp_path / "r.xlsx", results, mini_catalog, {f: ps for f, ps in intake.problems.items() if ps})
    write_results_csv(tmp_path / "results.csv", results, mini_catalog)
    wb = load_workbook(tmp_path / "r.xlsx")
    assert wb.sheetnames == ["考核结果", "指标得分明细", "校验问题"]
    with (tmp_path / "results.csv").open(encoding="utf-8-sig") as fh:
        rows = {r["unit_id"]: r for r in csv.DictReader(fh)}
    sheet = wb["考核结果"]
    seen = 0
    for values in sheet.iter_rows(min_row=2, values_only=True):
        row = rows[values[0]]
        for got, key in zip(values[6:10], ("final", "assessed", "weighted", "bonus")):
            assert got == (float(row[key]) if row[key] else None), (values[0], key)
        assert values[4] == (row["rank"] or None)  # rank stays text, as before
        seen += 1
    assert seen == len(results)
    items = list(wb["指标得分明细"].iter_rows(min_row=2, values_only=True))
    assert len(items) == sum(len(r.items) for r in results if r.status == "scored")
    assert all(isinstance(v[6], (int, float)) for v in items if v[8] == "是" and v[5] is not None)


def test_results_xlsx_falls_back_to_zip64_for_huge_sheets(mini_catalog, tmp_path, monkeypatch):
    import zipfile

    registry = load_registry(GOLDEN / "registry.csv", mini_catalog)
    folder = tmp_path / "subs"
    folder.mkdir()
    write_submissions(mini_catalog, registry, values_by_unit(GOLDEN / "values.csv"), folder)
    results, intake = run_stages(mini_catalog, registry, sorted(folder.glob("*.xlsx")), components=load_components(GOLDEN / "components.csv", mini_catalog, registry))
    write_results_xlsx(tmp_path / "small.xlsx", results, mini_catalog, {})
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 5000)  # every sheet is "over the limit" now
    write_results_xlsx(tmp_path / "big.xlsx", results, mini_catalog, {})
    a, b = load_workbook(tmp_path / "small.xlsx"), load_workbook(tmp_path / "big.xlsx")
    for sa, sb in zip(a, b):
        assert list(sa.iter_rows(values_only=True)) == list(sb.iter_rows(values_only=True))


def test_fast_fmt2_is_fmt2():
    import random

    from kaohe.numbers import fmt2
    from kaohe.outputs import _fmt2

    rng = random.Random(7)
    cases = [Fraction(n, d) for n in range(-1000, 1001, 7) for d in (1, 2, 3, 8, 200, 400, 999)]
    cases += [Fraction(rng.randint(-10**9, 10**9), rng.randint(1, 10**6)) for _ in range(3000)]
    cases += [Fraction(8999, 100) + Fraction(1, 200), Fraction(-1, 200), Fraction(-1, 201), Fraction(1, 200), 0, 7, -3, Decimal("89.995"), Decimal("-0.005"), None]
    for x in cases:
        assert _fmt2(x) == fmt2(x), x


@pytest.mark.soffice
def test_results_xlsx_opens_in_libreoffice(tmp_path):
    """LibreOffice reads our SpreadsheetML: a re-save keeps every value, text stays text."""
    _tricky_book(tmp_path / "t.xlsx")
    dst = tmp_path / "resaved"
    dst.mkdir()
    subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}", "--headless", "--convert-to", "xlsx", "--outdir", str(dst), str(tmp_path / "t.xlsx")],
        check=True, capture_output=True, timeout=240,
    )
    ws = load_workbook(dst / "t.xlsx")["甲'表"]
    # LibreOffice itself writes a boolean as the formula TRUE(): every other cell is no formula
    assert [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"] == [f"B{2 + [v for v, _, _ in TRICKY].index(True)}"]
    for k, (given, expected, _) in enumerate(TRICKY, start=2):
        got = ws.cell(k, 2).value
        if isinstance(expected, float):
            assert got == pytest.approx(expected), given
        elif expected is True:
            assert got == "=TRUE()", given
        elif isinstance(expected, str) and "\r" in expected:
            assert got == expected.replace("\r\n", "\n").replace("\r", "\n"), given  # LibreOffice normalises line ends
        else:
            assert got == expected, given
