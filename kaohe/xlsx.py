"""The workbook reader: one bounded pass over the input sheet gives its checks and its values.

Pre-flight (:mod:`kaohe.preflight`) has checked the container: sizes, ratios,
names, macros, links, and that no XML part declares a DOCTYPE. What is left
is the input sheet itself, read here and nowhere else:

* each XML part is parsed with defusedxml's ElementTree (C expat, any
  DOCTYPE or entity refused) into a tree bounded by the part's size and an
  element count taken from the bytes before parsing;
* the sheet's structure is checked (rows and cells in order, no duplicate
  cell, nothing outside the template area, nothing under a merged range,
  valid types, finite numbers) and the cells of the area are kept as the
  XML stores them (:class:`XCell`);
* values are given the way openpyxl gives them (``data_only=False``): an int
  or a float, a shared or inline string, a bool, an error text, a formula as
  ``=…`` with type ``f``, a date-formatted number as type ``d``, with the
  cell's number format resolved through styles.xml.

openpyxl is not used to read submissions: re-applying the template's styles
to its merged cells cost 87 % of a read (issue 8). It stays the writer of
templates, and ``tests/test_reader_oracle.py`` checks this reader against
openpyxl on real workbooks, LibreOffice-saved ones among them.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from dataclasses import dataclass
from typing import Callable
from xml.etree.ElementTree import Element, ParseError, XMLParser


from kaohe.errors import Code, Problem

MAX_ROW, MAX_COL = 1_048_576, 16_384
_REF = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d{1,7})$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_INT = re.compile(r"^\s*[+-]?\d+\s*$")
_NON_FINITE = re.compile(r"^\s*[+-]?(nan|inf|infinity)\s*$", re.IGNORECASE)
#: OOXML escapes (_xHHHH_) of the characters kaohe refuses in text: Excel shows the character,
#: a reader that keeps the literal escape would read different text
_ESCAPED_CONTROL = re.compile(r"_x(00[01][0-8BCEFbcef]|001[0-9A-Fa-f]|007[Ff]|00[89][0-9A-Fa-f]|200[B-Fb-f]|202[A-Ea-e]|206[6-9])_")
_CELL_TYPES = frozenset({"n", "s", "str", "inlineStr", "b", "e", "d"})
#: start tags and empty-element tags: an upper bound of the elements a part holds, from its bytes
_OPEN_TAG = re.compile(rb"<[A-Za-z_]")
_DTD_MARKS = (b"<!DOCTYPE", b"<!ENTITY")
NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_V, _F, _IS, _T, _C, _ROW = (NS_MAIN + t for t in ("v", "f", "is", "t", "c", "row"))


class XmlRefused(Exception):
    """The part declares a DOCTYPE/entity (code P118) or is not well-formed (P119)."""

    def __init__(self, code: Code, line: int = 0, column: int = 0):
        super().__init__(code.value)
        self.code, self.line, self.column = code, line, column


def element_bound(data: bytes) -> int:
    """How many elements the XML ``data`` can hold at most (UTF-8 or UTF-16)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        data = data.decode("utf-16", errors="replace").encode("utf-8")
    return len(_OPEN_TAG.findall(data))


def parse(data: bytes) -> Element:
    """An ElementTree of ``data``; refuses any DOCTYPE (so no entity can be declared or expanded).

    The DOCTYPE check is on the bytes, before any parser runs, so that the C
    parser (``xml.etree.ElementTree.XMLParser``) can build the tree:
    defusedxml's parser subclasses the pure-Python one and was 2.5× slower here.
    Without a DOCTYPE, expat has no entity to expand and nothing external to fetch.
    """
    probe = data.decode("utf-16", errors="replace").encode("utf-8") if data.startswith((b"\xff\xfe", b"\xfe\xff")) else data
    if any(m in probe for m in _DTD_MARKS):
        raise XmlRefused(Code.XML_DTD)
    parser = XMLParser()
    try:
        parser.feed(data)
        return parser.close()
    except ParseError as exc:
        line, col = exc.position if exc.position else (0, 0)
        raise XmlRefused(Code.XML_MALFORMED, line, col) from None


_CELL_START = re.compile(rb'<(?:[A-Za-z_][\w.\-]*:)?c\s[^>]*?\br="([A-Za-z]{1,3}[0-9]{1,7})"')


def cell_at(data: bytes, line: int, column: int) -> str:
    """The address of the cell whose XML holds (line, column), from a parse error's position; '' if none."""
    if line <= 0:
        return ""
    offset = 0
    for _ in range(line - 1):
        offset = data.find(b"\n", offset) + 1
        if offset == 0:
            return ""
    end = data.find(b"\n", offset)
    line_bytes = data[offset : end if end >= 0 else len(data)]
    # expat counts columns in characters: back to bytes through the line's text
    upto = offset + len(line_bytes.decode("utf-8", errors="replace")[: column + 1].encode("utf-8"))
    last = None
    for last in _CELL_START.finditer(data, 0, upto):
        pass
    return last.group(1).decode("ascii").upper() if last else ""


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def col_index(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n


def col_letters(n: int) -> str:
    out = ""
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out


@lru_cache(maxsize=1 << 16)
def parse_ref(ref: str) -> tuple[int, int] | None:
    letters = ref.rstrip("0123456789")
    digits = ref[len(letters):]
    if 0 < len(letters) <= 3 and 0 < len(digits) <= 7 and letters.isascii() and letters.isupper() and letters.isalpha() and digits.isascii():
        return int(digits), col_index(letters)
    m = _REF.match(ref.strip())
    if not m:
        return None
    return int(m.group(2)), col_index(m.group(1))


def parse_range(ref: str) -> tuple[int, int, int, int] | None:
    a, _, b = ref.partition(":")
    p, q = parse_ref(a), parse_ref(b or a)
    if p is None or q is None:
        return None
    return min(p[0], q[0]), min(p[1], q[1]), max(p[0], q[0]), max(p[1], q[1])


@lru_cache(maxsize=1 << 16)
def addr(row: int, col: int) -> str:
    return f"{col_letters(col)}{row}"


def _text(el: Element) -> str:
    """Plain text of a string item (<si> or <is>): its <t>, or its runs' <t>; phonetic runs left out."""
    if len(el) == 1 and el[0].tag == _T:  # the usual case: one plain <t>
        return el[0].text or ""
    out: list[str] = []
    for child in el:
        tag = local(child.tag)
        if tag == "t":
            out.append(child.text or "")
        elif tag == "r":
            for t in child:
                if local(t.tag) == "t":
                    out.append(t.text or "")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class XCell:
    """One cell as the sheet XML stores it."""

    kind: str  # the t attribute: n s str inlineStr b e d
    v: str  # text of <v>
    inline: str  # text of <is> (inline strings)
    formula: str | None  # text of <f>, None when there is no <f>
    style: int  # the s attribute (index into cellXfs)

    @property
    def filled(self) -> bool:
        return self.formula is not None or bool(self.v.strip()) or bool(self.inline.strip())


class _Stop(Exception):
    pass


@dataclass
class SheetLimits:
    elements: int
    cells: int
    merges: int
    max_problems: int


class SheetScan:
    """The input sheet's structure checks and its cells inside ``area``.

    ``area=None`` with ``corner=(rows, cols)``: keep the cells of that corner only, no
    checks beyond order and duplicates (the hidden fingerprint sheet).
    """

    def __init__(self, file: str, sheet: str, area: tuple[int, int, int, int] | None, limits: SheetLimits, corner: tuple[int, int] | None = None):
        self.file, self.sheet, self.area, self.limits, self.corner = file, sheet, area, limits, corner
        self.problems: list[Problem] = []
        self.cells: dict[tuple[int, int], XCell] = {}
        self.filled: set[tuple[int, int]] = set()  # non-empty cells inside the area
        self.shared: dict[tuple[int, int], int] = {}  # in-area cells holding a shared string
        self.merges: list[str] = []

    def add(self, code: Code, message: str, cell: str = "") -> None:
        self.problems.append(Problem(code, self.file, message, "考核办下发的自评表,只在黄色单元格中填写", self.sheet, cell))
        if len(self.problems) >= self.limits.max_problems:
            raise _Stop

    # -------------------------------------------------------------- the pass

    def run(self, data: bytes) -> None:
        try:
            if element_bound(data) > self.limits.elements:
                self.add(Code.SHEET_ANOMALY, f"工作表内容异常庞大(超过 {self.limits.elements} 个元素),不是正常的自评表")
                return
            root = parse(data)
            for part in root:
                tag = local(part.tag)
                if tag == "sheetData":
                    self._rows(part)
                    if self.corner:
                        return
                elif tag == "mergeCells" and self.area is not None:
                    for m in part:
                        if local(m.tag) == "mergeCell":
                            if len(self.merges) >= self.limits.merges:
                                self.add(Code.SHEET_ANOMALY, f"工作表中合并单元格过多(超过 {self.limits.merges} 处),不是正常的自评表")
                                return
                            self.merges.append(m.get("ref", ""))
        except _Stop:
            pass

    def _rows(self, sheet_data: Element) -> None:
        row = 0
        rows_seen = 0
        seen: set[tuple[int, int]] = set()
        r1, c1, r2, c2 = self.area or (0, 0, -1, -1)
        self._empties: dict[str, XCell] = {}
        for row_el in sheet_data:
            if row_el.tag != _ROW and local(row_el.tag) != "row":
                continue
            r = row_el.get("r")
            if r is None:
                n = row + 1
            else:
                try:
                    f = float(r)
                except ValueError:
                    f = 0.0
                if not f.is_integer() or not 1 <= f <= MAX_ROW:
                    self.add(Code.SHEET_ANOMALY, f"工作表中有无效的行号“{str(r)[:20]}”,文件结构已损坏")
                    raise _Stop
                n = int(f)
            if rows_seen and n <= row:
                what = "重复出现" if n == row else f"出现在第 {row} 行之后"
                self.add(Code.ROWS_OUT_OF_ORDER, f"工作表中第 {n} 行的记录{what}(行顺序错乱),不同软件会读出不同的数值,已拒收", cell=f"A{n}")
            rows_seen += 1
            row, col = n, 0
            if self.corner and n > self.corner[0]:
                return
            for c in row_el:
                if c.tag != _C and local(c.tag) != "c":
                    continue
                ref = c.get("r")
                if ref is None:
                    pos = (row, col + 1)
                else:
                    pos = parse_ref(ref)
                    if pos is None or not (1 <= pos[0] <= MAX_ROW and 1 <= pos[1] <= MAX_COL):
                        self.add(Code.SHEET_ANOMALY, f"工作表中有无效的单元格引用“{str(ref)[:20]}”,文件结构已损坏")
                        raise _Stop
                if len(seen) >= self.limits.cells:
                    self.add(Code.SHEET_ANOMALY, f"工作表中单元格过多(超过 {self.limits.cells} 个),不是正常的自评表")
                    raise _Stop
                if pos in seen:
                    where = addr(*pos)
                    self.add(Code.DUPLICATE_CELL, f"单元格 {where} 在文件中出现了不止一次,不同软件会读出不同的数值,已拒收", where)
                elif pos[0] != row:
                    where = addr(*pos)
                    self.add(Code.ROWS_OUT_OF_ORDER, f"单元格 {where} 被记录在第 {row} 行中(行列位置不一致),不同软件会读出不同的数值,已拒收", where)
                elif pos[1] <= col:
                    where = addr(*pos)
                    self.add(Code.ROWS_OUT_OF_ORDER, f"单元格 {where} 的记录顺序错乱(出现在 {addr(row, col)} 之后),已拒收", where)
                seen.add(pos)
                col = pos[1]
                if not len(c) and "t" not in c.attrib:
                    # an empty, maybe styled cell (most of the template): nothing to check
                    if self.area is not None and r1 <= pos[0] <= r2 and c1 <= pos[1] <= c2:
                        self.cells[pos] = self._empty(c.get("s", "0"))
                    continue
                self._cell(pos, c)

    def _empty(self, s: str) -> "XCell":
        cell = self._empties.get(s)
        if cell is None:
            try:
                style = int(s)
            except ValueError:
                style = -1
            cell = self._empties[s] = XCell("n", "", "", None, style)
        return cell

    def _cell(self, pos: tuple[int, int], c: Element) -> None:
        v, inline, formula = "", "", None
        for child in c:
            tag = child.tag
            if tag == _V:
                v = child.text or ""
            elif tag == _F:
                formula = child.text or ""
            elif tag == _IS:
                inline = _text(child)
            elif tag[0] != "{":  # a sheet without the main namespace: compare local names
                tag = local(tag)
                if tag == "v":
                    v = child.text or ""
                elif tag == "f":
                    formula = child.text or ""
                elif tag == "is":
                    inline = _text(child)
        try:
            style = int(c.get("s", "0"))
        except ValueError:
            style = -1
        cell = XCell(c.get("t", "n"), v, inline, formula, style)
        if self.corner:
            if pos[0] <= self.corner[0] and pos[1] <= self.corner[1]:
                self.cells[pos] = cell
            return
        if self.area is None:
            return
        r1, c1, r2, c2 = self.area
        inside = r1 <= pos[0] <= r2 and c1 <= pos[1] <= c2
        if inside:
            self.cells[pos] = cell  # empty ones too: their number format is part of the cell
        if not cell.filled:
            return
        where = addr(*pos)
        if not inside:
            self.add(
                Code.CELL_OUTSIDE_AREA,
                f"单元格 {where} 在自评表的填报范围({addr(r1, c1)}:{addr(r2, c2)})之外却有内容,请删除表格范围以外的内容",
                where,
            )
            return
        self.filled.add(pos)
        if formula is not None:
            return  # reported with its cell by the parser (a formula's cached value is never used)
        kind = cell.kind
        if kind not in _CELL_TYPES:
            self.add(Code.SHEET_ANOMALY, f"单元格 {where} 的类型标记“{kind[:10]}”无效,文件结构已损坏", where)
        elif kind == "n" and not _NUMBER.match(v):
            if _NON_FINITE.match(v):
                self.add(Code.NOT_FINITE, f"单元格 {where} 的数值“{v.strip()[:20]}”不是有限数(NaN 或无穷大)", where)
            else:
                self.add(Code.SHEET_ANOMALY, f"单元格 {where} 记录为数值,内容“{v.strip()[:20]}”却不是数字,文件结构已损坏", where)
        elif kind == "n" and not math.isfinite(float(v)):
            self.add(Code.NOT_FINITE, f"单元格 {where} 的数值“{v.strip()[:20]}”超出范围(无穷大)", where)
        elif kind == "b" and v.strip() not in ("0", "1"):
            self.add(Code.SHEET_ANOMALY, f"单元格 {where} 记录为逻辑值,内容“{v.strip()[:20]}”却不是 0 或 1,文件结构已损坏", where)
        elif kind == "s":
            if not v.strip().isdigit():
                self.add(Code.SHEET_ANOMALY, f"单元格 {where} 的共享文字编号“{v.strip()[:20]}”无效,文件结构已损坏", where)
            else:
                self.shared[pos] = int(v)
        elif kind in ("inlineStr", "str"):
            self.check_text(pos, inline if kind == "inlineStr" else v)

    def check_text(self, pos: tuple[int, int], text: str) -> None:
        m = _ESCAPED_CONTROL.search(text)
        if m:
            where = addr(*pos)
            self.add(Code.CONTROL_CHARS, f"单元格 {where} 的文字中含有转义的控制字符({m.group(0)}),在 Excel 中显示为不可见字符,请删除", where)

    def finish(self, strings: Callable[[set[int]], dict[int, str]] | None) -> dict[int, str]:
        """After the pass: the input cells' shared strings checked (and returned), values under merges."""
        found: dict[int, str] = {}
        if self.area is None:
            return found
        try:
            if self.shared and strings is not None:
                found = strings(set(self.shared.values()))
                for pos, idx in sorted(self.shared.items()):
                    self.check_text(pos, found.get(idx, ""))
            self._merges()
        except _Stop:
            pass
        return found

    def _merges(self) -> None:
        r1, c1, r2, c2 = self.area
        covered: dict[tuple[int, int], str] = {}
        budget = (r2 - r1 + 1) * (c2 - c1 + 1)
        for ref in self.merges:
            rng = parse_range(ref)
            if rng is None:
                self.add(Code.SHEET_ANOMALY, f"工作表中有无效的合并单元格区域“{ref[:30]}”,文件结构已损坏")
                continue
            top = (rng[0], rng[1])
            for r in range(max(rng[0], r1), min(rng[2], r2) + 1):
                for c in range(max(rng[1], c1), min(rng[3], c2) + 1):
                    budget -= 1
                    if budget < 0 or (r, c) in covered:
                        self.add(Code.SHEET_ANOMALY, f"工作表中的合并单元格区域相互重叠({ref[:30]}),文件结构已损坏")
                        return
                    covered[(r, c)] = ref
                    if (r, c) != top and (r, c) in self.filled:
                        self.add(
                            Code.VALUE_UNDER_MERGE,
                            f"单元格 {addr(r, c)} 位于合并单元格 {ref} 之内却有内容(被合并区域遮住,屏幕上看不到),请取消合并后删除该内容",
                            addr(r, c),
                        )


# ------------------------------------------------------------------ strings and styles


def shared_strings(data: bytes, wanted: set[int]) -> dict[int, str]:
    """The shared strings with the given indices (``data``: sharedStrings.xml, already bounded)."""
    if not wanted:
        return {}
    out: dict[int, str] = {}
    top = max(wanted)
    i = -1
    for si in parse(data):
        if local(si.tag) != "si":
            continue
        i += 1
        if i in wanted:
            out[i] = _text(si)
        if i >= top:
            break
    return out


#: Excel's built-in number formats that matter here (openpyxl.styles.numbers.BUILTIN_FORMATS)
def _builtin_formats() -> dict[int, str]:
    from openpyxl.styles.numbers import BUILTIN_FORMATS

    return dict(BUILTIN_FORMATS)


_BUILTIN: dict[int, str] | None = None


def number_formats(data: bytes | None) -> list[str]:
    """The number format of each cell style (cellXfs order), from styles.xml; [] when there is none."""
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = _builtin_formats()
    if not data:
        return []
    root = parse(data)
    custom: dict[int, str] = {}
    xfs: list[int] = []
    for part in root:
        tag = local(part.tag)
        if tag == "numFmts":
            for nf in part:
                try:
                    custom[int(nf.get("numFmtId", ""))] = nf.get("formatCode", "General")
                except ValueError:
                    continue
        elif tag == "cellXfs":
            for xf in part:
                try:
                    xfs.append(int(xf.get("numFmtId", "0")))
                except ValueError:
                    xfs.append(0)
    return [custom.get(i) or _BUILTIN.get(i, "General") for i in xfs]


@lru_cache(maxsize=256)
def is_date_format(fmt: str) -> bool:
    from openpyxl.styles.numbers import is_date_format as _is_date

    return bool(_is_date(fmt))


def value(cell: XCell | None, strings: dict[int, str], formats: list[str]) -> tuple[object, str, str]:
    """(value, data type, number format) as openpyxl gives them with ``data_only=False``."""
    if cell is None:
        return None, "n", "General"
    fmt = formats[cell.style] if 0 <= cell.style < len(formats) else "General"
    if cell.formula is not None:
        return "=" + cell.formula, "f", fmt
    kind, v = cell.kind, cell.v
    if kind == "s":
        idx = v.strip()
        return (strings.get(int(idx), "") if idx.isdigit() else ""), "s", fmt
    if kind == "inlineStr":
        return cell.inline, "s", fmt
    if kind == "str":
        return v, "s", fmt
    if kind == "b":
        return v.strip() not in ("", "0"), "b", fmt
    if kind == "e":
        return v, "e", fmt
    if kind == "d":
        return v, "d", fmt
    if not v.strip():
        return None, "n", fmt
    number: int | float = int(v) if _INT.match(v) else float(v)
    if fmt != "General" and is_date_format(fmt):
        return number, "d", fmt
    return number, "n", fmt
