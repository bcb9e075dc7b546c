"""Write each unit's self-assessment template (自评表) as a real .xlsx.

Only the unit's applicable items appear; identity is pre-filled; input cells
are unlocked and highlighted, everything else is protected; dropdowns and
number validation carry each field's choices and bounds; a very hidden sheet
holds the fingerprint that ties a returned workbook to its template.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from kaohe import layout as L
from kaohe.catalog import Catalog, FieldSpec
from kaohe.registry import Registry, Unit

INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")
HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
SECTION_FILL = PatternFill("solid", fgColor="EDEDED")
NA_FILL = PatternFill("solid", fgColor="F2F2F2")
THIN = Side(style="thin", color="808080")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAP = Alignment(wrap_text=True, vertical="center")
CENTER = Alignment(wrap_text=True, vertical="center", horizontal="center")
FONT = Font(name="宋体", size=10)
BOLD = Font(name="宋体", size=10, bold=True)
UNLOCKED = Protection(locked=False)

WIDTHS = {
    L.COL_ID: 8, L.COL_DIM: 11, L.COL_TITLE: 18, L.COL_CRITERION: 42, L.COL_POINTS: 7,
    L.COL_LABEL: 24, L.COL_VALUE: 12, L.COL_UNIT: 6, L.COL_NA: 8, L.COL_NA_REASON: 16,
    L.COL_EVIDENCE: 26,
}

from kaohe.parsing import NO, YES


def sheet_password(catalog: Catalog) -> str:
    """Protection stops accidental edits; integrity is checked by the fingerprint."""
    return hashlib.sha256(f"kaohe:{catalog.content_hash}".encode()).hexdigest()[:12]


def _validation_for(spec: FieldSpec) -> DataValidation:
    hint = L.field_hint(spec)
    common = dict(
        allow_blank=True,
        showErrorMessage=True,
        showInputMessage=True,
        errorTitle="填报内容有误",
        error=f"请按要求填写:{hint}",
        promptTitle=spec.label[:32],
        prompt=hint[:255],
    )
    if spec.type == "yes_no":
        return DataValidation(type="list", formula1=f'"{YES},{NO}"', **common)
    if spec.type == "grade":
        return DataValidation(type="list", formula1='"' + ",".join(spec.choices) + '"', **common)
    if spec.type == "text":
        return DataValidation(type="textLength", operator="lessThanOrEqual", formula1=str(spec.max_length), **common)
    lo = spec.lower if spec.lower is not None else Decimal(0)
    hi = spec.upper if spec.upper is not None else Decimal(999_999_999)
    kind = "whole" if spec.type == "integer" else "decimal"
    return DataValidation(
        type=kind, operator="between", formula1=L.fmt_decimal(lo), formula2=L.fmt_decimal(hi), **common
    )


def _style(ws: Worksheet, addr: str, *, fill=None, font=FONT, align=WRAP, unlocked=False) -> None:
    c = ws[addr]
    c.font = font
    c.alignment = align
    c.border = BORDER
    if fill is not None:
        c.fill = fill
    if unlocked:
        c.protection = UNLOCKED


def _row_height(texts: list[tuple[str, int]]) -> float:
    """Estimate a wrapped row's height: Excel does not refit rows it did not lay out."""
    lines = 1
    for text, width in texts:
        if text:
            # a CJK character is about two width units
            units = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
            lines = max(lines, -(-units // max(1, int(width * 1.1))))
    return max(18.0, 14.0 * lines + 4)


def _write_guide(wb: Workbook, catalog: Catalog, lay: L.Layout, password: str) -> None:
    ws = wb.active
    ws.title = L.GUIDE_SHEET
    unit = lay.unit
    scored = [b for b in lay.blocks if b.item.kind == "scored"]
    total = sum((b.item.points for b in scored), Decimal(0))
    n_bonus = sum(1 for b in lay.blocks if b.item.kind == "bonus")
    n_veto = sum(1 for b in lay.blocks if b.item.kind == "veto")
    lines = [
        (f"{catalog.title}自评表 填报说明", True),
        ("", False),
        (f"填报单位:{unit.unit_name}(单位代码 {unit.unit_id},考核组:{unit.group})", False),
        (
            f"本表共 {len(scored)} 项计分指标,合计 {L.fmt_decimal(total)} 分;"
            f"加分项目 {n_bonus} 项;一票否决事项 {n_veto} 项。",
            False,
        ),
        ("", False),
        ("一、请在“自评表”工作表中填写,黄色单元格为填报区域,其余单元格已锁定,请勿修改。", False),
        ("二、数值请直接填写阿拉伯数字,不要带单位或说明文字;次数、件数、人数须为整数。", False),
        ("三、百分数填写 95 或 95%(均表示百分之九十五);不要填写 0.95。", False),
        ("四、“是/否”和等级请从下拉列表中选择。", False),
        ("五、凡主张得分的指标,须在“佐证材料”栏列明佐证材料的名称、文号或链接,并按要求报送佐证材料。", False),
        ("六、确属不适用的指标(仅限标有“是否不适用”下拉框的指标),选择“是”并填写不适用理由,此时不要填写数值。", False),
        ("七、请勿填写公式,请勿增删行列或工作表,请勿修改指标内容、分值和评分标准;表内设有校验信息,改动将导致退回。", False),
        ("八、本表由考核办统一下发,每个单位一份,请勿使用其他单位的表格。", False),
        (f"九、填报完成后保存为 .xlsx 格式报送{catalog.issuer}。", False),
    ]
    ws.column_dimensions["A"].width = 72
    for r, (text, bold) in enumerate(lines, start=1):
        c = ws.cell(row=r, column=1, value=text)
        c.font = Font(name="宋体", size=14 if r == 1 else 11, bold=bold)
        c.alignment = Alignment(wrap_text=True, vertical="center")
        ws.row_dimensions[r].height = 28 if r == 1 else _row_height([(text, 66)]) + 4
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.protection.sheet = True
    ws.protection.password = password


def _write_form(wb: Workbook, catalog: Catalog, lay: L.Layout, password: str) -> None:
    ws = wb.create_sheet(L.FORM_SHEET)
    for col, width in WIDTHS.items():
        ws.column_dimensions[col].width = width
    ws.merge_cells(f"A1:{L.LAST_COL}1")
    ws["A1"] = f"{catalog.title}自评表"
    ws["A1"].font = Font(name="宋体", size=16, bold=True)
    ws["A1"].alignment = Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[1].height = 30

    for key, (label_addr, label, value_addr) in L.ID_CELLS.items():
        ws[label_addr] = label
        _style(ws, label_addr, font=BOLD, fill=HEADER_FILL, align=CENTER)
        ws[value_addr] = lay.identity_value(key)
        _style(ws, value_addr)
    ws.merge_cells("B2:D2")
    ws.merge_cells("H2:I2")
    for key, (label_addr, label, value_addr) in L.INPUT_IDENTITY.items():
        ws[label_addr] = label
        _style(ws, label_addr, font=BOLD, fill=HEADER_FILL, align=CENTER)
        ws[value_addr].number_format = "@"
        _style(ws, value_addr, fill=INPUT_FILL, unlocked=True)
    ws.merge_cells("B3:D3")
    ws["A4"] = "说明:黄色单元格为填报区域;灰色“—”表示该项无需填写。填报前请阅读“填报说明”工作表。"
    ws["A4"].font = Font(name="宋体", size=9, color="C00000")
    ws.merge_cells(f"A4:{L.LAST_COL}4")

    for col, text in L.HEADERS.items():
        addr = f"{col}{L.HEADER_ROW}"
        ws[addr] = text
        _style(ws, addr, font=BOLD, fill=HEADER_FILL, align=CENTER)
    ws.row_dimensions[L.HEADER_ROW].height = 30

    for sec in lay.sections:
        ws.merge_cells(f"A{sec.row}:{L.LAST_COL}{sec.row}")
        ws[f"A{sec.row}"] = sec.text
        _style(ws, f"A{sec.row}", font=BOLD, fill=SECTION_FILL)
        ws.row_dimensions[sec.row].height = 20

    validations: dict[tuple, DataValidation] = {}

    def validate(spec: FieldSpec, addr: str) -> None:
        dv_key = (spec.type, spec.lower, spec.upper, spec.choices, spec.max_length, spec.label)
        dv = validations.get(dv_key)
        if dv is None:
            dv = validations[dv_key] = _validation_for(spec)
        dv.add(addr)

    for block in lay.blocks:
        first, last = block.first_row, block.last_row
        for addr, text in block.fixed:
            ws[addr] = text
        for col in (L.COL_ID, L.COL_DIM, L.COL_TITLE, L.COL_CRITERION, L.COL_POINTS):
            for r in range(first, last + 1):
                _style(ws, f"{col}{r}", align=CENTER if col in (L.COL_ID, L.COL_POINTS) else WRAP)
            if last > first:
                ws.merge_cells(f"{col}{first}:{col}{last}")
        for fc in block.fields:
            r = int(fc.address[1:])
            _style(ws, f"{L.COL_LABEL}{r}")
            _style(ws, f"{L.COL_UNIT}{r}", align=CENTER)
            _style(ws, fc.address, fill=INPUT_FILL, unlocked=True, align=CENTER)
            if fc.spec.type == "text":
                ws[fc.address].number_format = "@"
            validate(fc.spec, fc.address)
        for col, addr, spec in (
            (L.COL_NA, block.na_flag, L.PSEUDO_SPECS[L.NA_KEY]),
            (L.COL_NA_REASON, block.na_reason, L.PSEUDO_SPECS[L.REASON_KEY]),
            (L.COL_EVIDENCE, block.evidence, L.PSEUDO_SPECS[L.EVIDENCE_KEY]),
        ):
            top = f"{col}{first}"
            for r in range(first, last + 1):
                _style(ws, f"{col}{r}", align=WRAP)
            if last > first:
                ws.merge_cells(f"{col}{first}:{col}{last}")
            if addr:
                _style(ws, top, fill=INPUT_FILL, unlocked=True, align=WRAP)
                if spec.type == "text":
                    ws[top].number_format = "@"
                validate(spec, top)
            else:
                ws[top] = "—"
                _style(ws, top, fill=NA_FILL, align=CENTER)
        # spread the block's text over its rows
        height = _row_height(
            [(block.item.criterion, WIDTHS[L.COL_CRITERION]), (block.item.title, WIDTHS[L.COL_TITLE])]
        )
        per_row = max(20.0, height / (last - first + 1))
        for r in range(first, last + 1):
            label = block.item.fields[r - first].label
            ws.row_dimensions[r].height = max(per_row, _row_height([(label, WIDTHS[L.COL_LABEL])]))

    for dv in validations.values():
        ws.add_data_validation(dv)
    ws.freeze_panes = f"A{L.FIRST_ROW}"
    ws.print_title_rows = f"{L.HEADER_ROW}:{L.HEADER_ROW}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_area = lay.area
    ws.protection.sheet = True
    ws.protection.password = password
    ws.protection.formatCells = False  # let units widen columns / rows to read
    ws.protection.formatColumns = False
    ws.protection.formatRows = False


def _write_meta(wb: Workbook, lay: L.Layout) -> None:
    ws = wb.create_sheet(L.META_SHEET)
    for r, key in enumerate(L.META_KEYS, start=1):
        ws.cell(row=r, column=1, value=key)
        ws.cell(row=r, column=2, value=lay.fingerprint()[key])
    ws.sheet_state = "veryHidden"
    ws.protection.sheet = True


def build_template(catalog: Catalog, unit: Unit) -> tuple[Workbook, L.Layout]:
    """The unit's template as an openpyxl workbook (not yet saved) and its layout."""
    lay = L.layout(catalog, unit)
    password = sheet_password(catalog)
    wb = Workbook()
    _write_guide(wb, catalog, lay, password)
    _write_form(wb, catalog, lay, password)
    _write_meta(wb, lay)
    wb.active = 1  # open on the form
    wb.security.lockStructure = True
    wb.properties.title = f"{catalog.title}自评表"
    wb.properties.subject = unit.unit_name
    wb.properties.creator = catalog.issuer
    return wb, lay


_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def template_filename(unit: Unit, year: int) -> str:
    name = _UNSAFE.sub("_", unit.unit_name)[:60]
    return f"{unit.unit_id}_{name}_{year}自评表.xlsx"


def write_templates(catalog: Catalog, registry: Registry, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for unit in registry:
        wb, _ = build_template(catalog, unit)
        path = out / template_filename(unit, catalog.year)
        wb.save(path)
        paths.append(path)
    return paths
