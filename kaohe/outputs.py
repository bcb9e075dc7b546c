"""Write a run's tables: results.csv, items.csv, results.xlsx, feedback workbooks.

CSV files are UTF-8 with BOM (Excel opens them correctly). Text a unit or the
office typed is never written where a spreadsheet would evaluate it: in xlsx
every string is stored as a string cell, and in CSV a text cell starting
with = + - @ (or a tab / carriage return) gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Iterable

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet
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
    text = _CONTROL.sub("", "" if value is None else str(value))
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def csv_safe(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


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
        "assessed": fmt2(r.assessed),
        "weighted": fmt2(r.weighted),
        "bonus": fmt2(r.bonus),
        "final": fmt2(r.final),
        "rank": "" if r.rank is None else str(r.rank),
        "grade": r.grade,
        "veto": r.veto or "",
        "grade_note": r.grade_note,
        "file": r.file,
    }
    for d in catalog.dimensions:
        row[f"rate_{d.id}"] = fmt2(r.rates.get(d.id)) if r.status == "scored" else ""
    rb = r.robustness
    row["rank_p05"] = str(rb.rank_p05) if rb else ""
    row["rank_p50"] = str(rb.rank_p50) if rb else ""
    row["rank_p95"] = str(rb.rank_p95) if rb else ""
    row["grade_stability"] = fmt2(rb.grade_stability) if rb else ""
    for c in catalog.components:
        if c.id != "assessed":
            row[f"component_{c.id}"] = fmt2(r.components.get(c.id)) if r.status == "scored" else ""
    return row


def _write_csv(path: Path, columns: list[str], rows: Iterable[dict]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="raise")
        w.writeheader()
        for row in rows:
            w.writerow({k: csv_safe(v) for k, v in row.items()})


def write_results_csv(path: Path, results: list[UnitResult], catalog: Catalog) -> None:
    _write_csv(path, results_columns(catalog), (result_row(r, catalog) for r in results))


# ------------------------------------------------------------------- items

ITEM_COLUMNS = [
    "unit_id", "item_id", "dimension", "rule", "points", "score", "lost", "applicable",
    "score_exact", "self_score", "penalty", "bonus", "veto",
    "cells", "raw", "self_values", "reviewed_values", "review_reason", "reviewer",
    "evidence", "na_reason", "explain", "file",
]


def item_rows(r: UnitResult) -> Iterable[dict]:
    for ir in r.items:
        item = ir.item
        scored = item.kind == "scored" and ir.applicable == "yes"
        yield {
            "unit_id": r.unit_id,
            "item_id": item.id,
            "dimension": item.dimension,
            "rule": item.rule.type,
            "points": fmt_decimal(item.points) if item.kind == "scored" else "",
            "score": fmt2(ir.score) if scored else "",
            "lost": fmt2(ir.lost) if scored else "",
            "applicable": ir.applicable,
            "score_exact": exact_text(ir.score) if scored else "",
            "self_score": exact_text(ir.self_score) if scored and ir.changes else "",
            "penalty": exact_text(ir.penalty) if ir.penalty else "",
            "bonus": exact_text(ir.bonus) if item.kind == "bonus" and ir.applicable == "yes" else "",
            "veto": ir.veto or "",
            "cells": ";".join(f"{t.key}@{t.cell}" for t in ir.fields if t.cell),
            "raw": clean_text(";".join(f"{t.key}={t.raw}" for t in ir.fields if t.cell)),
            "self_values": clean_text(";".join(f"{t.key}={_show(t.self_value)}" for t in ir.fields if t.cell)),
            "reviewed_values": clean_text(";".join(f"{c.key}={_show(c.reviewed_value)}" for c in ir.changes)),
            "review_reason": clean_text(";".join(c.reason for c in ir.changes)),
            "reviewer": clean_text(";".join(sorted({c.reviewer for c in ir.changes if c.reviewer}))),
            "evidence": clean_text(ir.evidence),
            "na_reason": clean_text(ir.na_reason),
            "explain": clean_text(ir.explain),
            "file": r.file,
        }


def write_items_csv(path: Path, results: list[UnitResult]) -> None:
    _write_csv(path, ITEM_COLUMNS, (row for r in results if r.status == "scored" for row in item_rows(r)))


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


def _value(value):
    """What ``put`` stores for a value (numbers as numbers, text cleaned), without a cell."""
    if isinstance(value, (Fraction, Decimal)):
        return float(value)
    if isinstance(value, str):
        text = clean_text(value)
        return float(text) if re.fullmatch(r"-?\d+\.\d\d", text) else text
    return value


def _stream_sheet(wb: Workbook, title: str, headers: list[str], rows, widths: dict[int, int] | None = None) -> None:
    """A sheet of a write-only workbook: rows streamed to disk as they come (flat memory at
    any number of units); the same look and the same formula safety as :func:`_sheet`."""
    from openpyxl.cell import WriteOnlyCell

    ws = wb.create_sheet(title)
    for c in range(1, len(headers) + 1):
        ws.column_dimensions[get_column_letter(c)].width = (widths or {}).get(c, 12)
    ws.freeze_panes = "C2"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = "1:1"
    head_fill = PatternFill("solid", fgColor="D9E1F2")
    bold = Font(bold=True)
    centre = Alignment(horizontal="center", vertical="center", wrap_text=True)

    def cell(v, head: bool = False):
        c = WriteOnlyCell(ws, value=_value(v))
        if isinstance(c.value, str):
            c.data_type = "s"  # openpyxl would otherwise store '=…' as a formula
        elif isinstance(c.value, float):
            c.number_format = "0.00"
        if head:
            c.font, c.fill, c.alignment = bold, head_fill, centre
        return c

    def plain(v):
        """Most values need no cell object (3× faster): text that cannot be read as a formula, ints."""
        v = _value(v)
        if v is None or isinstance(v, int) or (isinstance(v, str) and not v.startswith(("=", "+", "-", "@"))):
            return v
        return cell(v)

    ws.append([cell(h, head=True) for h in headers])
    n = 0
    for values in rows:
        ws.append([plain(v) for v in values])
        n += 1
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(1, n + 1)}"


def write_results_xlsx(path: Path, results: list[UnitResult], catalog: Catalog, problems: dict[str, list[Problem]]) -> None:
    """results.xlsx: results, every item's score (one row per unit and item) and the validation problems."""
    wb = Workbook(write_only=True)
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

    _stream_sheet(wb, "考核结果", heads, result_rows(), {1: 10, 2: 36, 3: 14, 4: 11, 6: 8, len(heads): 18})
    item_heads = ["单位代码", "指标编号", "一级指标", "考核内容", "规则", "分值", "得分", "失分", "适用", "来源单元格", "填报原文", "审核修改", "审核理由", "计分说明", "佐证材料", "不适用理由"]
    names = catalog.dimension_names

    def item_rows_():
        for r in results:
            if r.status != "scored":
                continue
            for row, ir in zip(item_rows(r), r.items):
                yield [r.unit_id, ir.item.id, names[ir.item.dimension], ir.item.title, row["rule"], row["points"], row["score"], row["lost"],
                       {"yes": "是", "no": "否", "na": "不适用"}[ir.applicable], row["cells"], row["raw"], row["reviewed_values"], row["review_reason"], row["explain"],
                       row["evidence"], row["na_reason"]]

    _stream_sheet(wb, "指标得分明细", item_heads, item_rows_(), {2: 9, 3: 12, 4: 22, 10: 16, 11: 20, 14: 60, 15: 40, 16: 20})
    prob_heads = ["文件", "单位代码", "问题代码", "工作表", "单元格", "问题", "应填写"]
    prob_rows = ([file, "", p.code.value, p.sheet, p.cell, p.message, p.expected] for file, ps in problems.items() for p in ps)
    _stream_sheet(wb, "校验问题", prob_heads, prob_rows, {1: 36, 6: 60, 7: 30})
    wb.save(path)


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
