"""Write a run's tables: results.csv, items.csv, results.xlsx, feedback workbooks.

CSV files are UTF-8 with BOM (Excel opens them correctly). Text a unit or the
office typed is never written where a spreadsheet would evaluate it: in xlsx
every string is stored as a string cell, and in CSV a text cell starting
with = + - @ (or a tab / carriage return) gets a leading apostrophe.

results.xlsx is written by a small SpreadsheetML writer of our own
(:class:`_XlsxStream`: zipfile, inline strings, rows streamed straight into
the compressed part, flat memory), not by openpyxl: for 3,000 units (176,000
item rows) openpyxl's write-only mode took 34 s of CPU, XlsxWriter's
constant_memory mode ~15 s, this writer 2.8 s. It has no formula cell type at
all: a string can only become an inline-string cell.
"""

from __future__ import annotations

import csv
import re
import zipfile
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Iterable

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from kaohe.catalog import Catalog
from kaohe.errors import Problem
from kaohe.layout import fmt_decimal
from kaohe.numbers import exact_text, fmt2
from kaohe.scoring import UnitResult

STATUS_CN = {"scored": "已计分", "missing": "未报送", "rejected": "未通过校验"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_TEXT = 1000


def clean_text(value: object) -> str:
    """Unit-supplied text for output: control characters dropped, over-long text cut with a mark."""
    text = "" if value is None else value if type(value) is str else str(value)
    if not text.isprintable():  # fast path: printable text has no control characters
        text = _CONTROL.sub("", text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


_CSV_RISKY = frozenset(("=", "+", "-", "@", "\t", "\r"))


def csv_safe(value: object) -> object:
    if isinstance(value, str) and value[:1] in _CSV_RISKY:
        return "'" + value
    return value


def _cents_text(num: int, den: int) -> str:
    """``fmt2`` of num/den (den > 0) in integer arithmetic: half away from zero, two decimals."""
    q, r = divmod(abs(num) * 100, den)
    if 2 * r >= den:
        q += 1
    return f"{'-' if num < 0 and q else ''}{q // 100}.{q % 100:02d}"


def _fmt2(x: Fraction | Decimal | None) -> str:
    """Exactly :func:`kaohe.numbers.fmt2`, ~10× faster for Fractions and ints (millions of calls at scale)."""
    if x is None:
        return ""
    if type(x) is Fraction:
        return _cents_text(x.numerator, x.denominator)
    if type(x) is int:
        return _cents_text(x, 1)
    return fmt2(x)


def _show(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return fmt_decimal(v)
    return str(v)


# ----------------------------------------------------------------- results


def results_columns(catalog: Catalog) -> list[str]:
    cols = ["unit_id", "unit_name", "group", "status", "assessed", "weighted", "bonus", "final", "rank", "grade", "veto"]
    cols += [f"rate_{d.id}" for d in catalog.dimensions]
    cols += ["rank_p05", "rank_p50", "rank_p95", "grade_stability"]
    cols += [f"component_{c.id}" for c in catalog.components if c.id != "assessed"]
    cols += ["grade_note", "file"]
    return cols


def result_row(r: UnitResult, catalog: Catalog) -> dict[str, str]:
    row = {
        "unit_id": r.unit_id,
        "unit_name": r.unit.unit_name,
        "group": r.unit.group,
        "status": r.status,
        "assessed": _fmt2(r.assessed),
        "weighted": _fmt2(r.weighted),
        "bonus": _fmt2(r.bonus),
        "final": _fmt2(r.final),
        "rank": "" if r.rank is None else str(r.rank),
        "grade": r.grade,
        "veto": r.veto or "",
        "grade_note": r.grade_note,
        "file": r.file,
    }
    for d in catalog.dimensions:
        row[f"rate_{d.id}"] = _fmt2(r.rates.get(d.id)) if r.status == "scored" else ""
    rb = r.robustness
    row["rank_p05"] = str(rb.rank_p05) if rb else ""
    row["rank_p50"] = str(rb.rank_p50) if rb else ""
    row["rank_p95"] = str(rb.rank_p95) if rb else ""
    row["grade_stability"] = _fmt2(rb.grade_stability) if rb else ""
    for c in catalog.components:
        if c.id != "assessed":
            row[f"component_{c.id}"] = _fmt2(r.components.get(c.id)) if r.status == "scored" else ""
    return row


def _write_csv(path: Path, columns: list[str], rows: Iterable[dict | tuple | list]) -> None:
    """Rows as dicts (as ``csv.DictWriter``: a missing key is empty, an unknown key an error) or as
    sequences in ``columns`` order; every value through :func:`csv_safe`."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        keys = set(columns)
        for row in rows:
            if isinstance(row, dict):
                if not keys.issuperset(row):
                    raise ValueError(f"dict contains fields not in fieldnames: {sorted(set(row) - keys)}")
                row = [row.get(k, "") for k in columns]
            w.writerow(["'" + v if isinstance(v, str) and v[:1] in _CSV_RISKY else v for v in row])


def write_results_csv(path: Path, results: list[UnitResult], catalog: Catalog) -> None:
    _write_csv(path, results_columns(catalog), (result_row(r, catalog) for r in results))


# ------------------------------------------------------------------- items

ITEM_COLUMNS = [
    "unit_id", "item_id", "dimension", "rule", "points", "score", "lost", "applicable",
    "score_exact", "self_score", "penalty", "bonus", "veto",
    "cells", "raw", "self_values", "reviewed_values", "review_reason", "reviewer",
    "evidence", "na_reason", "explain", "file",
]


def _item_info(item, cache: dict) -> tuple:
    """What every row of one catalog item shares: computed once per item, not once per unit."""
    info = cache.get(id(item))
    if info is None:
        scored = item.kind == "scored"
        p = Fraction(item.points) if scored else Fraction(0)
        info = cache[id(item)] = (item, item.id, item.dimension, item.rule.type, fmt_decimal(item.points) if scored else "", item.kind, p.numerator, p.denominator)
    return info


def _item_values(r: UnitResult, ir, cache: dict, audit: bool = True) -> tuple:
    """One items.csv row, in ``ITEM_COLUMNS`` order. ``audit=False`` (results.xlsx): the
    columns only items.csv has (exact values, own values, reviewer) are left empty."""
    _, item_id, dimension, rule, points, kind, pn, pd = _item_info(ir.item, cache)
    scored = kind == "scored" and ir.applicable == "yes"
    if scored:
        s = ir.score
        sn, sd = s.numerator, s.denominator
        score, lost, score_exact = _cents_text(sn, sd), _cents_text(pn * sd - sn * pd, pd * sd), exact_text(s) if audit else ""
    else:
        score = lost = score_exact = ""
    fields = [t for t in ir.fields if t.cell]
    changes = ir.changes
    return (
        r.unit.unit_id,
        item_id,
        dimension,
        rule,
        points,
        score,
        lost,
        ir.applicable,
        score_exact,
        exact_text(ir.self_score) if audit and scored and changes else "",
        exact_text(ir.penalty) if audit and ir.penalty else "",
        exact_text(ir.bonus) if audit and kind == "bonus" and ir.applicable == "yes" else "",
        ir.veto or "",
        ";".join(f"{t.key}@{t.cell}" for t in fields),
        clean_text(";".join(f"{t.key}={t.raw}" for t in fields)),
        clean_text(";".join(f"{t.key}={_show(t.self_value)}" for t in fields)) if audit else "",
        clean_text(";".join(f"{c.key}={_show(c.reviewed_value)}" for c in changes)) if changes else "",
        clean_text(";".join(c.reason for c in changes)) if changes else "",
        clean_text(";".join(sorted({c.reviewer for c in changes if c.reviewer}))) if audit and changes else "",
        clean_text(ir.evidence),
        clean_text(ir.na_reason),
        clean_text(ir.explain),
        r.file,
    )


def item_rows(r: UnitResult, cache: dict | None = None) -> Iterable[dict]:
    cache = {} if cache is None else cache
    for ir in r.items:
        yield dict(zip(ITEM_COLUMNS, _item_values(r, ir, cache)))


def write_items_csv(path: Path, results: list[UnitResult]) -> None:
    cache: dict = {}
    _write_csv(path, ITEM_COLUMNS, (_item_values(r, ir, cache) for r in results if r.status == "scored" for ir in r.items))


# -------------------------------------------------------------------- xlsx


def put(ws, row: int, col: int, value) -> Cell:
    """Write one cell; strings are always stored as strings, never formulas."""
    cell = ws.cell(row=row, column=col)
    if isinstance(value, (Fraction, Decimal)):
        value = float(value)
    if isinstance(value, str):
        text = clean_text(value)
        try:
            cell.value = float(text) if re.fullmatch(r"-?\d+\.\d\d", text) else text
        except ValueError:  # pragma: no cover
            cell.value = text
        if isinstance(cell.value, str):
            cell.data_type = "s"  # openpyxl would otherwise store '=…' as a formula
    else:
        cell.value = value
    return cell


def _sheet(wb: Workbook, title: str, headers: list[str], rows: list[list], widths: dict[int, int] | None = None):
    ws = wb.create_sheet(title)
    head_fill = PatternFill("solid", fgColor="D9E1F2")
    for c, h in enumerate(headers, start=1):
        cell = put(ws, 1, c, h)
        cell.font = Font(bold=True)
        cell.fill = head_fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for r, values in enumerate(rows, start=2):
        for c, v in enumerate(values, start=1):
            cell = put(ws, r, c, v)
            if isinstance(cell.value, float):
                cell.number_format = "0.00"
    for c in range(1, len(headers) + 1):
        ws.column_dimensions[get_column_letter(c)].width = (widths or {}).get(c, 12)
    ws.freeze_panes = "C2"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = "1:1"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(1, len(rows) + 1)}"
    return ws


def write_watchlist_csv(path: Path, entries) -> None:
    """Units the office should look at before publishing (kaohe.insight.watch_list)."""
    _write_csv(path, ["unit_id", "kind", "detail"], ({"unit_id": e.unit_id, "kind": e.kind, "detail": e.detail_cn} for e in entries))


_NUMBER_TEXT = re.compile(r"-?\d+\.\d\d")
# what XML 1.0 cannot carry, on top of clean_text's control characters: lone surrogates, U+FFFE, U+FFFF
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def _number(f: float) -> str:
    """A finite float as SpreadsheetML text: shortest round-trip form, whole numbers without
    '.0' (as openpyxl writes them, so reading back gives the same int / float types)."""
    text = repr(f)
    return text[:-2] if text.endswith(".0") else text


def _xml_escape(text: str) -> str:
    """Text for an XML element or attribute value (no control characters left by now)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:  # a parser would read a raw CR as LF
        text = text.replace("\r", "&#13;")
    return text


_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_WS = frozenset(" \t\n\r\u3000")
# cellXfs: 0 plain, 1 header (bold, filled, centred, wrapped), 2 number "0.00" (built-in format 2)
_STYLES = (
    _XML_DECL + f'<styleSheet xmlns="{_NS_MAIN}">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="00D9E1F2"/><bgColor indexed="64"/></patternFill></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1" applyAlignment="1">'
    '<alignment horizontal="center" vertical="center" wrapText="1"/></xf>'
    '<xf numFmtId="2" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_ROW_BATCH = 256  # rows joined and compressed at a time: memory stays flat


class _XlsxStream:
    """A minimal xlsx package written in one pass: each sheet's rows go straight into its
    compressed zip entry, so memory stays flat at any number of rows.

    The same cells as openpyxl would write through :func:`put`: text cleaned
    (:func:`clean_text`) and stored as an inline string (there is no formula
    cell type here at all), text that reads as a two-decimal number (what
    ``fmt2`` produces) and Fractions / Decimals / floats as numbers shown
    ``0.00``, ints as numbers, None and empty text as no cell. Each sheet:
    bold filled header row, column widths, panes frozen at C2, an auto filter,
    A4 landscape fitted to one page wide, the header row repeated on every page.
    """

    def __init__(self, path: Path, *, zip64: bool = False, compresslevel: int = 1):
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel)
        self.zip64 = zip64
        self.sheets: list[tuple[str, str, int]] = []  # title, last column letter, last row

    def sheet(self, title: str, headers: list[str], rows: Iterable, widths: dict[int, int] | None = None) -> None:
        ncol = len(headers)
        letters = [get_column_letter(c) for c in range(1, ncol + 1)]
        cols = "".join(f'<col min="{c}" max="{c}" width="{(widths or {}).get(c, 12)}" customWidth="1"/>' for c in range(1, ncol + 1))
        head = (
            _XML_DECL + f'<worksheet xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">'
            '<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>'
            '<sheetViews><sheetView workbookViewId="0">'
            '<pane xSplit="2" ySplit="1" topLeftCell="C2" activePane="bottomRight" state="frozen"/>'
            '<selection pane="topRight"/><selection pane="bottomLeft"/><selection pane="bottomRight" activeCell="C2" sqref="C2"/>'
            '</sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>'
            f"<cols>{cols}</cols><sheetData>"
            '<row r="1">'
            + "".join(f'<c r="{c}1" s="1" t="inlineStr"><is><t>{_xml_escape(clean_text(h))}</t></is></c>' for c, h in zip(letters, headers))
            + "</row>"
        )
        n = 1
        number_text, not_xml, ws, cut = _NUMBER_TEXT.fullmatch, _NOT_XML.sub, _WS, MAX_TEXT
        with self.zip.open(f"xl/worksheets/sheet{len(self.sheets) + 1}.xml", "w", force_zip64=self.zip64) as fh:
            fh.write(head.encode("utf-8"))
            out: list[str] = []
            for values in rows:
                n += 1
                out.append(f'<row r="{n}">')
                for col, v in zip(letters, values):
                    t = type(v)
                    if t is not str:
                        if v is None:
                            continue
                        if t is int:
                            out.append(f'<c r="{col}{n}"><v>{v}</v></c>')
                            continue
                        if t is float or t is Fraction or t is Decimal:
                            f = float(v)
                            if f - f == 0:  # finite; NaN and ±inf: no cell, as openpyxl
                                out.append(f'<c r="{col}{n}" s="2"><v>{_number(f)}</v></c>')
                            continue
                        if t is bool:
                            out.append(f'<c r="{col}{n}" t="b"><v>{int(v)}</v></c>')
                            continue
                        else:
                            v = str(v)
                    # text: cleaned like clean_text, then a number if it reads as one, else an inline string
                    if not v.isprintable():
                        v = not_xml("", v)
                    if not v:
                        continue
                    if len(v) > cut:
                        v = v[: cut - 1] + "…"
                    elif v[-3:-2] == "." and number_text(v):
                        out.append(f'<c r="{col}{n}" s="2"><v>{_number(float(v))}</v></c>')
                        continue
                    preserve = v[0] in ws or v[-1] in ws
                    if "&" in v or "<" in v or ">" in v or "\r" in v:
                        v = _xml_escape(v)
                    if preserve:
                        out.append(f'<c r="{col}{n}" t="inlineStr"><is><t xml:space="preserve">{v}</t></is></c>')
                    else:
                        out.append(f'<c r="{col}{n}" t="inlineStr"><is><t>{v}</t></is></c>')
                out.append("</row>")
                if n % _ROW_BATCH == 0:
                    fh.write("".join(out).encode("utf-8"))
                    out.clear()
            out.append(
                f'</sheetData><autoFilter ref="A1:{letters[-1]}{n}"/>'
                '<pageMargins left="0.75" right="0.75" top="1" bottom="1" header="0.5" footer="0.5"/>'
                '<pageSetup paperSize="9" orientation="landscape" fitToWidth="1" fitToHeight="0"/></worksheet>'
            )
            fh.write("".join(out).encode("utf-8"))
        self.sheets.append((title, letters[-1], n))

    def close(self) -> None:
        sheets = "".join(f'<sheet name="{_xml_escape(t)}" sheetId="{k}" r:id="rId{k}"/>' for k, (t, _, _) in enumerate(self.sheets, start=1))
        names = []
        for k, (title, last, n) in enumerate(self.sheets):
            q = _xml_escape("'" + title.replace("'", "''") + "'")
            names.append(f'<definedName name="_xlnm._FilterDatabase" localSheetId="{k}" hidden="1">{q}!$A$1:${last}${n}</definedName>')
            names.append(f'<definedName name="_xlnm.Print_Titles" localSheetId="{k}">{q}!$1:$1</definedName>')
        files = {
            "[Content_Types].xml": _XML_DECL + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
            '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
            + "".join(
                f'<Override PartName="/xl/worksheets/sheet{k}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                for k in range(1, len(self.sheets) + 1)
            )
            + "</Types>",
            "_rels/.rels": _XML_DECL + f'<Relationships xmlns="{_NS_PKG_REL}">'
            f'<Relationship Id="rId1" Type="{_NS_REL}/officeDocument" Target="xl/workbook.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>'
            f'<Relationship Id="rId3" Type="{_NS_REL}/extended-properties" Target="docProps/app.xml"/>'
            "</Relationships>",
            "docProps/core.xml": _XML_DECL + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f'<dc:creator>kaohe</dc:creator><dcterms:created xsi:type="dcterms:W3CDTF">{datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}</dcterms:created>'
            "</cp:coreProperties>",
            "docProps/app.xml": _XML_DECL + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
            "<Application>kaohe</Application></Properties>",
            "xl/_rels/workbook.xml.rels": _XML_DECL + f'<Relationships xmlns="{_NS_PKG_REL}">'
            + "".join(f'<Relationship Id="rId{k}" Type="{_NS_REL}/worksheet" Target="worksheets/sheet{k}.xml"/>' for k in range(1, len(self.sheets) + 1))
            + f'<Relationship Id="rId{len(self.sheets) + 1}" Type="{_NS_REL}/styles" Target="styles.xml"/>'
            "</Relationships>",
            "xl/workbook.xml": _XML_DECL + f'<workbook xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}"><workbookPr/>'
            f'<bookViews><workbookView activeTab="0"/></bookViews><sheets>{sheets}</sheets>'
            f'<definedNames>{"".join(names)}</definedNames><calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>',
            "xl/styles.xml": _STYLES,
        }
        for name, text in files.items():
            self.zip.writestr(name, text.encode("utf-8"))
        self.zip.close()

    def abort(self) -> None:
        self.zip.close()


def write_results_xlsx(path: Path, results: list[UnitResult], catalog: Catalog, problems: dict[str, list[Problem]]) -> None:
    """results.xlsx: results, every item's score (one row per unit and item) and the validation problems."""
    try:
        _write_results_xlsx(path, results, catalog, problems, zip64=False)
    except RuntimeError as e:  # a sheet over 2 GiB (tens of thousands of units): again, with Zip64 entries
        if "zip64" not in str(e).lower():
            raise
        _write_results_xlsx(path, results, catalog, problems, zip64=True)


def _write_results_xlsx(path: Path, results: list[UnitResult], catalog: Catalog, problems: dict[str, list[Problem]], *, zip64: bool) -> None:
    book = _XlsxStream(path, zip64=zip64)
    try:
        dims = catalog.dimensions
        heads = ["单位代码", "单位名称", "考核组", "状态", "考核排名", "等次", "最终得分", "审核得分", "加权得分", "加分", "否决"]
        heads += [f"{d.name}得分率" for d in dims] + ["排名区间(5%–95%)", "等次稳定度", "等次说明"]

        def result_rows():
            for r in results:
                row = result_row(r, catalog)
                yield (
                    [r.unit_id, r.unit.unit_name, r.unit.group, STATUS_CN[r.status], row["rank"], r.grade, row["final"], row["assessed"], row["weighted"], row["bonus"],
                     {"fail": "一票否决", "cap": "不得评优"}.get(r.veto or "", "")]
                    + [row[f"rate_{d.id}"] for d in dims]
                    + [f"{row['rank_p05']}–{row['rank_p95']}" if row["rank_p05"] else "", row["grade_stability"], r.grade_note]
                )

        book.sheet("考核结果", heads, result_rows(), {1: 10, 2: 36, 3: 14, 4: 11, 6: 8, len(heads): 18})
        item_heads = ["单位代码", "指标编号", "一级指标", "考核内容", "规则", "分值", "得分", "失分", "适用", "来源单元格", "填报原文", "审核修改", "审核理由", "计分说明", "佐证材料", "不适用理由"]
        names = catalog.dimension_names
        applicable_cn = {"yes": "是", "no": "否", "na": "不适用"}
        cache: dict = {}

        def item_rows_():
            for r in results:
                if r.status != "scored":
                    continue
                for ir in r.items:
                    v = _item_values(r, ir, cache, audit=False)
                    item = ir.item
                    # unit, item, dimension, title, rule, points, score, lost, applicable, cells, raw, reviewed values, review reason, explain, evidence, n/a reason
                    yield (v[0], v[1], names[v[2]], item.title, v[3], v[4], v[5], v[6], applicable_cn[v[7]], v[13], v[14], v[16], v[17], v[21], v[19], v[20])

        book.sheet("指标得分明细", item_heads, item_rows_(), {2: 9, 3: 12, 4: 22, 10: 16, 11: 20, 14: 60, 15: 40, 16: 20})
        prob_heads = ["文件", "单位代码", "问题代码", "工作表", "单元格", "问题", "应填写"]
        prob_rows = ([file, "", p.code.value, p.sheet, p.cell, p.message, p.expected] for file, ps in problems.items() for p in ps)
        book.sheet("校验问题", prob_heads, prob_rows, {1: 36, 6: 60, 7: 30})
    except BaseException:
        book.abort()
        raise
    book.close()


def write_feedback_xlsx(path: Path, file: str, unit_label: str, problems: list[Problem], catalog: Catalog) -> None:
    """One workbook per rejected file, for the office to send back to the unit."""
    wb = Workbook()
    ws = wb.active
    ws.title = "退回意见"
    put(ws, 1, 1, f"{catalog.title}自评表退回意见").font = Font(bold=True, size=14)
    put(ws, 2, 1, f"单位:{unit_label}")
    put(ws, 3, 1, f"文件:{file}")
    put(ws, 4, 1, f"共发现 {len(problems)} 处问题,请逐项修改后重新报送。")
    heads = ["序号", "工作表", "单元格", "指标", "填报项目", "填报内容", "问题", "应填写", "问题代码"]
    for c, h in enumerate(heads, start=1):
        cell = put(ws, 6, c, h)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="D9E1F2")
    for n, p in enumerate(problems, start=1):
        for c, v in enumerate([n, p.sheet, p.cell, p.item_id, p.field, p.value, p.message, p.expected, p.code.value], start=1):
            cell = put(ws, 6 + n, c, v)
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for c, w in zip(range(1, 10), (6, 10, 8, 9, 18, 16, 60, 30, 9)):
        ws.column_dimensions[get_column_letter(c)].width = w
    ws.freeze_panes = "A7"
    wb.save(path)
