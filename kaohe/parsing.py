"""Turn one raw input cell into one typed value, by the field's own rule.

Every parser is explicit about what it accepts, and records what it read
(``note``) when it had to interpret the cell, e.g. a percent-formatted 0.95
read as 95%. Formulas, error cells, dates and booleans in input cells are
rejected: a formula's cached value can be forged and the others are never
what a field asks for.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from kaohe.catalog import FieldSpec
from kaohe.errors import Code

YES, NO = "是", "否"
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class RawCell:
    """A cell as the workbook stores it, before any interpretation."""

    address: str
    value: Any
    data_type: str = "n"  # openpyxl's: n s b d e f
    number_format: str = "General"

    @property
    def text(self) -> str:
        """The raw value as a person would read it, for the audit trail."""
        v = self.value
        if v is None:
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)


@dataclass(frozen=True)
class Parsed:
    value: Decimal | str | None
    note: str = ""


@dataclass(frozen=True)
class Rejected:
    code: Code
    message: str


def normalize_text(text: str) -> str:
    """NFKC (full-width digits, letters and spaces become ASCII) and trim."""
    return unicodedata.normalize("NFKC", text).strip()


def _precheck(cell: RawCell) -> Rejected | Parsed | None:
    v = cell.value
    if cell.data_type == "f" or (isinstance(v, str) and cell.data_type == "f"):
        return Rejected(Code.FORMULA, f":单元格含有公式({str(v)[:40]}),填报值不得使用公式")
    if type(v).__name__ in ("ArrayFormula", "DataTableFormula"):
        return Rejected(Code.FORMULA, ":单元格含有数组公式,填报值不得使用公式")
    if cell.data_type == "e":
        return Rejected(Code.ERROR_CELL, f":单元格为错误值 {v}")
    if cell.data_type == "d" or isinstance(v, (dt.datetime, dt.date, dt.time, dt.timedelta)):
        return Rejected(Code.DATE_CELL, ":单元格为日期或时间格式,此处不应填写日期")
    if isinstance(v, bool) or cell.data_type == "b":
        return Rejected(Code.BOOL_CELL, ":单元格为逻辑值(TRUE/FALSE)")
    if v is None:
        return Parsed(None)
    if isinstance(v, str):
        if _CONTROL.search(v):
            return Rejected(Code.CONTROL_CHARS, ":单元格含有不可见的控制字符")
        if not normalize_text(v):
            return Parsed(None)
    if isinstance(v, float) and not math.isfinite(v):
        return Rejected(Code.NOT_FINITE, ":单元格数值无效(非有限数)")
    return None


def _number(cell: RawCell) -> tuple[Decimal | None, bool, str]:
    """(number, had_percent_sign, cleaned text). None if not a number."""
    v = cell.value
    if isinstance(v, int):
        return Decimal(v), False, str(v)
    if isinstance(v, float):
        return Decimal(repr(v)), False, repr(v)
    text = normalize_text(str(v)).replace(" ", "")
    pct = text.endswith("%")
    if pct:
        text = text[:-1]
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    if not _NUMBER.match(text):
        return None, pct, text
    try:
        return Decimal(text), pct, text
    except InvalidOperation:  # pragma: no cover - the regex admits only valid numbers
        return None, pct, text


def parse_integer(cell: RawCell, spec: FieldSpec) -> Parsed | Rejected:
    n, pct, _ = _number(cell)
    if n is None or pct:
        return Rejected(Code.NOT_A_NUMBER, f":“{cell.text}”不是数字")
    if n != n.to_integral_value():
        return Rejected(Code.NOT_AN_INTEGER, f":“{cell.text}”不是整数")
    return Parsed(Decimal(int(n)))


def parse_decimal(cell: RawCell, spec: FieldSpec) -> Parsed | Rejected:
    n, pct, _ = _number(cell)
    if n is None or pct:
        return Rejected(Code.NOT_A_NUMBER, f":“{cell.text}”不是数字")
    return Parsed(plain(n))


def parse_percent(cell: RawCell, spec: FieldSpec) -> Parsed | Rejected:
    """Percent points 0–100. 95, '95', '95%' and a %-formatted 0.95 all mean 95%.

    A bare number between 0 and 1 (exclusive of 0) in a cell without percent
    format is ambiguous (0.95 could be 95% or 0.95%): rejected.
    """
    n, pct, _ = _number(cell)
    if n is None:
        return Rejected(Code.NOT_A_NUMBER, f":“{cell.text}”不是百分数")
    if pct:
        return Parsed(plain(n), f"按“{cell.text}”读取为 {_pct(n)}")
    if isinstance(cell.value, (int, float)) and is_percent_format(cell.number_format):
        value = n * 100
        return Parsed(plain(value), f"单元格为百分比格式,{cell.text} 读取为 {_pct(value)}")
    if n == 0 or n > 1:
        return Parsed(plain(n), "" if n == 0 else f"{cell.text} 读取为 {_pct(n)}")
    if n < 0:
        return Parsed(n)  # out of bounds: validation reports it with the bounds
    return Rejected(
        Code.PERCENT_AMBIGUOUS,
        f":“{cell.text}”无法判断是 {_pct(n * 100)} 还是 {_pct(n)}",
    )


_QUOTED = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]')


def is_percent_format(number_format: str | None) -> bool:
    r"""True when Excel scales the value by 100 for display (a bare % in the format).

    A quoted ("%"), escaped (\%) or bracketed % is only a printed sign.
    """
    return "%" in _QUOTED.sub("", number_format or "")


def plain(d: Decimal) -> Decimal:
    """The same number without an exponent: 1E+2 → 100, 42.50 → 42.5."""
    if d == d.to_integral_value():
        return d.quantize(Decimal(1))
    return d.normalize()


def _pct(n: Decimal) -> str:
    return f"{format(plain(n), 'f')}%"


def parse_yes_no(cell: RawCell, spec: FieldSpec) -> Parsed | Rejected:
    text = normalize_text(str(cell.value))
    if text in (YES, NO):
        return Parsed(text)
    return Rejected(Code.NOT_A_CHOICE, f":“{cell.text}”不是“是”或“否”")


def parse_grade(cell: RawCell, spec: FieldSpec) -> Parsed | Rejected:
    text = normalize_text(str(cell.value))
    if text in spec.choices:
        return Parsed(text)
    return Rejected(Code.NOT_A_CHOICE, f":“{cell.text}”不是可选等级({'/'.join(spec.choices)})")


def parse_text(cell: RawCell, spec: FieldSpec) -> Parsed | Rejected:
    v = cell.value
    text = cell.text if isinstance(v, (int, float)) else unicodedata.normalize("NFC", str(v)).strip()
    if len(text) > spec.max_length:
        return Rejected(Code.TEXT_TOO_LONG, f":文字长度 {len(text)} 超过 {spec.max_length} 字")
    return Parsed(text)


PARSERS = {
    "integer": parse_integer,
    "decimal": parse_decimal,
    "percent": parse_percent,
    "yes_no": parse_yes_no,
    "grade": parse_grade,
    "text": parse_text,
}


def parse_cell(cell: RawCell, spec: FieldSpec) -> Parsed | Rejected:
    """What a cell's stored value means for its field. A pure function of the value (with its
    type), data type, number format and field: the same ones (是/否, a grade, a count) recur in
    thousands of files, so each is parsed once per process."""
    v = cell.value
    if isinstance(v, str) and len(v) > 256:
        return _parse_cell(cell, spec)  # a long text does not recur: not remembered
    # the field by identity (its pydantic hash walks every attribute); the entry keeps the field
    # itself, so the id cannot be reused by another one while the entry exists
    key = (v, type(v), cell.data_type, cell.number_format, id(spec))
    try:
        found = _PARSED.get(key)
    except TypeError:  # an unhashable value (none of openpyxl's or kaohe's readers gives one)
        return _parse_cell(cell, spec)
    if found is None or found[0] is not spec:
        if len(_PARSED) >= 20_000:
            _PARSED.clear()
        found = _PARSED[key] = (spec, _parse_cell(cell, spec))
    return found[1]


_PARSED: dict[tuple, "tuple[FieldSpec, Parsed | Rejected]"] = {}


def _parse_cell(cell: RawCell, spec: FieldSpec) -> Parsed | Rejected:
    early = _precheck(cell)
    if early is not None:
        return early
    return PARSERS[spec.type](cell, spec)


def parse_text_value(text: str, spec: FieldSpec, address: str = "") -> Parsed | Rejected:
    """Parse a value typed outside a workbook (the review sheet) by the same rules."""
    return parse_cell(RawCell(address, text, "s"), spec)
