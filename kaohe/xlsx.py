"""The workbook reader: one bounded pass over the input sheet gives its checks and its values.

Pre-flight (:mod:`kaohe.preflight`) has checked the container: sizes, ratios,
names, macros, links, and that no XML part declares a DOCTYPE. What is left
is the input sheet itself, read here and nowhere else, by one of two passes
that leave the same result:

* **the plain pass** (:func:`plain_pass`), for a sheet written the plain way
  Excel, WPS, LibreOffice and openpyxl write it: expat proves the part
  well-formed, then one regular expression takes the rows and cells of
  ``sheetData`` from the bytes and each distinct token is judged once per
  run (a template's cells recur in every file of its layout);
* **the exact pass**, for anything else and whenever the plain pass would
  find a problem: the part is parsed into an ElementTree (C expat, any DOCTYPE
  refused on the bytes first) bounded by its size and an element count taken
  from the bytes, and every check is made and worded cell by cell.

The checks: rows and cells in order, no duplicate cell, nothing outside the
template area, nothing under a merged range, valid types, finite numbers, no
escaped control characters. Values are given the way openpyxl gives them
(``data_only=False``): an int or a float, a shared or inline string, a bool,
an error text, a formula as ``=…`` with type ``f``, a date-formatted number as
type ``d``, with the cell's number format resolved through styles.xml.

openpyxl is not used to read submissions: re-applying the template's styles
to its merged cells cost 87 % of a read (issue 8). It stays the writer of
templates; ``tests/test_reader_oracle.py`` checks this reader against openpyxl
on real workbooks, LibreOffice-saved ones among them, and
``tests/test_plain_pass.py`` checks the two passes against each other on any bytes.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from itertools import compress
from operator import itemgetter, ne
from dataclasses import dataclass
from typing import Callable
from xml.etree.ElementTree import Element, ParseError, XMLParser
from xml.parsers import expat


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


#: digits of a shared-string index at most (the workbook holds at most 100,000 strings)
_INDEX_DIGITS = 18
#: characters of a number's text at most: Excel writes at most 17 significant digits and an
#: exponent; far longer digit strings are not a number any office suite wrote (and int() refuses
#: more than 4,300 digits)
_NUMBER_CHARS = 64


def shared_index(v: str) -> int | None:
    """The shared-string index a cell's text gives (ASCII digits, surrounding spaces allowed), else None."""
    idx = v.strip()
    return int(idx) if idx.isascii() and idx.isdigit() and len(idx) <= _INDEX_DIGITS else None


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


def declares_dtd(data: bytes) -> bool:
    """Whether the bytes hold "<!DOCTYPE" or "<!ENTITY": a search for "!" first (one byte, memchr:
    ~1 µs for a 100 KB sheet, against ~75 µs for the two patterns), and most parts have none."""
    return b"!" in data and any(m in data for m in _DTD_MARKS)


def parse(data: bytes) -> Element:
    """An ElementTree of ``data``; refuses any DOCTYPE (so no entity can be declared or expanded).

    The DOCTYPE check is on the bytes, before any parser runs, so that the C
    parser (``xml.etree.ElementTree.XMLParser``) can build the tree:
    defusedxml's parser subclasses the pure-Python one and was 2.5× slower here.
    Without a DOCTYPE, expat has no entity to expand and nothing external to fetch.
    """
    probe = data.decode("utf-16", errors="replace").encode("utf-8") if data.startswith((b"\xff\xfe", b"\xfe\xff")) else data
    if declares_dtd(probe):
        raise XmlRefused(Code.XML_DTD)
    parser = XMLParser()
    try:
        parser.feed(data)
        return parser.close()
    except ParseError as exc:
        line, col = exc.position if exc.position else (0, 0)
        raise XmlRefused(Code.XML_MALFORMED, line, col) from None
    except LookupError:  # an encoding no codec knows, declared by the part: not XML we can read
        raise XmlRefused(Code.XML_MALFORMED) from None


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
        #: the plain pass's cells inside the area, as its tokens (see :func:`plain_pass`)
        self.raw: dict[tuple[int, int], tuple] = {}
        self.plain = False  # whether the plain pass decided the sheet

    def cell(self, pos: tuple[int, int]) -> "XCell | None":
        """The cell at ``pos`` inside the area (None when the sheet has no element for it)."""
        found = self.cells.get(pos)
        if found is None:
            tok = self.raw.get(pos)
            if tok is not None:
                found = _token_cell(tok)
        return found

    def text(self, pos: tuple[int, int], strings: dict[int, str]) -> str | None:
        """The string a text cell (shared, inline or formula-free ``str``) stores; None for any other
        cell. What :func:`value` gives for such a cell, without building it."""
        tok = self.raw.get(pos)
        if tok is not None:
            kind = tok[6]
            if kind == b"inlineStr":
                return xml_text(tok[8])
            if kind == b"s":
                idx = shared_index(tok[7].decode("ascii", "replace"))
                return strings.get(idx, "") if idx is not None else None
            return None
        cell = self.cells.get(pos)
        if cell is None or cell.formula is not None:
            return None
        if cell.kind == "inlineStr":
            return cell.inline
        if cell.kind == "s":
            idx = shared_index(cell.v)
            return strings.get(idx, "") if idx is not None else None
        return None

    def add(self, code: Code, message: str, cell: str = "") -> None:
        self.problems.append(Problem(code, self.file, message, "考核办下发的自评表,只在黄色单元格中填写", self.sheet, cell))
        if len(self.problems) >= self.limits.max_problems:
            raise _Stop

    # -------------------------------------------------------------- the pass

    def run(self, data: bytes, *, plain: bool = True) -> None:
        """One pass over the sheet's bytes: the plain pass when it can decide (``plain=False``:
        never, the exact pass alone, as the tests compare them)."""
        try:
            # every element starts with "<": the exact bound is only needed for a part that may be too big
            # (and a part shorter than the bound cannot hold more "<": not even counted)
            if len(data) > self.limits.elements and data.count(b"<") > self.limits.elements and element_bound(data) > self.limits.elements:
                self.add(Code.SHEET_ANOMALY, f"工作表内容异常庞大(超过 {self.limits.elements} 个元素),不是正常的自评表")
                return
            if plain and self.area is not None and self.corner is None and _plain_pass_or_false(self, data):
                self.plain = True
                return
            root = parse(data)
            seen_data = False
            for part in root:
                tag = local(part.tag)
                if tag == "sheetData":
                    if seen_data and not self.corner:
                        # a second data block: its cells would silently replace the first one's
                        self.add(Code.SHEET_ANOMALY, "工作表中有不止一个数据区(sheetData),不同软件会读出不同的数值,已拒收")
                        return
                    seen_data = True
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
        elif kind == "n" and len(v.strip()) > _NUMBER_CHARS:
            self.add(Code.SHEET_ANOMALY, f"单元格 {where} 的数值有 {len(v.strip())} 个字符,不是正常的数值,文件结构已损坏", where)
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
            idx = shared_index(v)
            if idx is None:
                self.add(Code.SHEET_ANOMALY, f"单元格 {where} 的共享文字编号“{v.strip()[:20]}”无效,文件结构已损坏", where)
            else:
                self.shared[pos] = idx
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
                # each distinct string is checked once; its cells only when it fails
                bad = {idx for idx, text in found.items() if _ESCAPED_CONTROL.search(text)}
                for pos, idx in sorted(self.shared.items()) if bad else ():
                    self.check_text(pos, found.get(idx, ""))
            self._merges()
        except _Stop:
            pass
        return found

    def _merges(self) -> None:
        events, structural, hidden = _merge_plan(tuple(self.merges), self.area)
        if not structural and hidden.isdisjoint(self.filled):
            return  # the usual case: the template's own merges, nothing typed under them
        for kind, ref, pos in events:
            if kind == "invalid":
                self.add(Code.SHEET_ANOMALY, f"工作表中有无效的合并单元格区域“{ref[:30]}”,文件结构已损坏")
            elif kind == "overlap":
                self.add(Code.SHEET_ANOMALY, f"工作表中的合并单元格区域相互重叠({ref[:30]}),文件结构已损坏")
                return
            elif pos in self.filled:
                self.add(
                    Code.VALUE_UNDER_MERGE,
                    f"单元格 {addr(*pos)} 位于合并单元格 {ref} 之内却有内容(被合并区域遮住,屏幕上看不到),请取消合并后删除该内容",
                    addr(*pos),
                )


@lru_cache(maxsize=64)
def _merge_plan(merges: tuple[str, ...], area: tuple[int, int, int, int]) -> tuple[tuple, bool, frozenset]:
    """What the merged ranges mean for the area, in the order they are checked: ("invalid", ref, None)
    for a range that does not parse, ("overlap", ref, None) where ranges overlap (the check stops
    there), ("hidden", ref, pos) for each cell a range covers other than its top-left one.

    A sheet's merges are its template's, the same for every file of a layout: computed once.
    """
    r1, c1, r2, c2 = area
    covered: set[tuple[int, int]] = set()
    budget = (r2 - r1 + 1) * (c2 - c1 + 1)
    events: list[tuple[str, str, tuple[int, int] | None]] = []
    structural = False
    for ref in merges:
        rng = parse_range(ref)
        if rng is None:
            events.append(("invalid", ref, None))
            structural = True
            continue
        top = (rng[0], rng[1])
        for r in range(max(rng[0], r1), min(rng[2], r2) + 1):
            for c in range(max(rng[1], c1), min(rng[3], c2) + 1):
                budget -= 1
                if budget < 0 or (r, c) in covered:
                    events.append(("overlap", ref, None))
                    return tuple(events), True, frozenset(p for k, _, p in events if k == "hidden")
                covered.add((r, c))
                if (r, c) != top:
                    events.append(("hidden", ref, (r, c)))
    return tuple(events), structural, frozenset(p for k, _, p in events if k == "hidden")


# ------------------------------------------------------------------ the plain pass
#
# Excel, WPS, LibreOffice and openpyxl all write a sheet the same plain way: one
# line, no comments or CDATA, rows as <row r="N" ...>, cells as <c r="A1" s="3"
# t="s"> holding one <v> or one inline <is><t>. For such a sheet the structure
# checks and the cells come from the bytes with one regular expression, once
# expat has proved the part well-formed. What a piece of it means (the rows
# between two "</row>", each cell) is judged once per process and remembered by
# its bytes: most rows of a template are the same in every file of its layout,
# so a file costs about what its units typed (issue 8). Well-formedness is
# proved the same way: the part outside sheetData once per distinct bytes, the
# rows not seen before together, in the root's namespace context. Whatever is not plain, or any check that
# fails, sends the sheet to the exact pass above, which then decides and words
# every problem: the plain pass never accepts a sheet the exact pass would refuse,
# and what it keeps is what the exact pass keeps (tests/test_plain_pass.py runs
# both on every test workbook and on mutated sheets).

_TOKENS = re.compile(
    rb'(<row r="([0-9]{1,7})"([^<>]*?)(/?)>'  # 1 whole, 2 row number, 3 other attributes, 4 "/" if empty
    rb'|</row>'
    rb'|<c r="([A-Z]{1,3}[0-9]{1,7})"(?: s="([0-9]{1,9})")?(?: t="([a-zA-Z]{1,9})")?'  # 5 ref, 6 style, 7 type
    rb'(?:[ \t\n]*/>|>(?:<v>([^<]*)</v>|<is><t(?: xml:space="preserve")?>([^<]*)</t></is>)?</c>))'  # 8 <v>, 9 inline text
)
_PROLOG = re.compile(rb'(?:\xef\xbb\xbf)?(?:<\?xml(?P<decl>[^<>]*)\?>)?[ \t\r\n]*(?P<root><worksheet(?P<attrs>(?:[ \t\r\n]+[^\s=<>]+[ \t\r\n]*=[ \t\r\n]*(?:"[^"<]*"|\'[^\'<]*\'))*)[ \t\r\n]*>)')
_ATTR = re.compile(rb'([^\s=<>]+)[ \t\r\n]*=[ \t\r\n]*(?:"([^"<]*)"|\'([^\'<]*)\')')
#: one tag (quoted attribute values may hold ">") or a run of text: what a segment outside sheetData is made of
_TAG_OR_TEXT = re.compile(rb'<(/?)[A-Za-z_][^\s/<>]*(?:[ \t\r\n]+[^\s=<>]+[ \t\r\n]*=[ \t\r\n]*(?:"[^"<]*"|\'[^\'<]*\'))*[ \t\r\n]*(/?)>|[^<]+')
_MERGE = re.compile(rb'<mergeCell ref="([^"<&\r\n\t]*)"[ \t\n]*/>')
_NUMBER_B = re.compile(rb"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|amp|lt|gt|quot|apos);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
#: first bytes of a UTF-8 text that may be whitespace to str.strip() (U+0085, U+00A0, U+1680,
#: U+2000-U+200A, U+2028/9, U+202F, U+205F, U+3000) or a character reference
_MAYBE_SPACE = frozenset(bytes([b]) for b in (0xC2, 0xE1, 0xE2, 0xE3, ord("&")))
_ROW_ATTRS: dict[bytes, bool] = {}
_POS: dict[bytes, tuple[int, int] | None] = {}


def _entity(m: re.Match) -> str:
    name = m.group(1)
    if name[0] == "#":
        return chr(int(name[2:], 16) if name[1] == "x" else int(name[1:]))
    return _NAMED[name]


def xml_text(raw: bytes | None) -> str:
    """The text of a plain element's bytes, as an XML parser gives it (the part is well-formed UTF-8)."""
    if not raw:
        return ""
    text = raw.decode("utf-8")
    return _ENTITY.sub(_entity, text) if "&" in text else text


def _token_cell(tok: tuple) -> XCell:
    _, _, _, _, _ref, s, t, v, inline = tok
    return XCell(t.decode("ascii") if t else "n", xml_text(v), xml_text(inline), None, int(s) if s else 0)


def _depth_change(segment: bytes) -> int | None:
    """Start tags minus end tags in a segment of a well-formed part; None unless it is tags and text only."""
    depth = pos = 0
    for m in _TAG_OR_TEXT.finditer(segment):
        if m.start() != pos:
            return None
        pos = m.end()
        if m.group(0)[:1] == b"<" and not m.group(2):
            depth += -1 if m.group(1) else 1
    return depth if pos == len(segment) else None


def _well_formed(data: bytes) -> bool:
    """Whether expat (with namespaces, as ElementTree's parser) takes the whole part."""
    parser = expat.ParserCreate(namespace_separator="}")
    try:
        parser.Parse(data, True)
    except expat.ExpatError:
        return False
    return True


def _row_attrs_plain(attrs: bytes) -> bool:
    """A row's other attributes (height, spans, ...) can change nothing a reader sees: no namespace
    declaration (a default namespace on a row would move its cells' children out of the sheet's)."""
    ok = _ROW_ATTRS.get(attrs)
    if ok is None:
        ok = b"xmlns" not in attrs and (not attrs or attrs[:1] in b" \t\n")
        if len(_ROW_ATTRS) < 4096:
            _ROW_ATTRS[attrs] = ok
    return ok


def _blank(raw: bytes) -> bool:
    """Whether an element's text is whitespace only, as ``str.strip`` judges the parsed text; from the
    bytes unless they start with what may be a Unicode space or a character reference."""
    lead = raw.lstrip()[:1]
    return not lead or (lead in _MAYBE_SPACE and not xml_text(raw).strip())


def _pos(ref: bytes) -> tuple[int, int] | None:
    found = _POS.get(ref)
    if found is None:
        found = parse_ref(ref.decode("ascii"))
        if found is not None and not (1 <= found[0] <= MAX_ROW and 1 <= found[1] <= MAX_COL):
            found = None
        if len(_POS) < 1 << 16:
            _POS[ref] = found
    return found


_CLOSE_ROW = (0, -1)
#: per area, what each cell of a plain sheet means, by its bytes after "<c " (:func:`_cell_part`):
#: a template's cells recur in every file of its layout, so most are judged once per run
_MEMOS: dict[tuple[int, int, int, int], dict[bytes, tuple | bool]] = {}
_MEMO_SIZE = 20_000
#: what each head of a piece (its rows before the first cell) means (:func:`_head`)
_HEADS: dict[bytes, tuple | bool] = {}


def _judge(tok: tuple, area: tuple[int, int, int, int]) -> tuple | bool:
    """What one token means, or False when the exact pass must decide the sheet.

    A row: (number, 0, empty). ``</row>``: (0, -1). A cell: (row, column, inside the
    area, position, filled, shared-string index or None), after the checks the exact
    pass makes on a filled cell (a value outside the area, a number that is not one or
    not finite, an invalid shared-string index or logical value, an unknown type, an
    escaped control character): any of them is False here.
    """
    whole, n, attrs, empty, ref, _s, kind, v, inline = tok
    if whole == b"</row>":
        return _CLOSE_ROW
    if not ref:
        if not _row_attrs_plain(attrs):
            return False
        number = int(n)
        return (number, 0, bool(empty)) if 1 <= number <= MAX_ROW else False
    pos = _pos(ref)
    if pos is None:
        return False
    r1, c1, r2, c2 = area
    inside = r1 <= pos[0] <= r2 and c1 <= pos[1] <= c2
    if (not v or _blank(v)) and (not inline or _blank(inline)):
        return (pos[0], pos[1], inside, pos, False, None)  # empty (whitespace is not a value)
    if not inside:
        return False  # a value outside the area: the exact pass words the problem
    idx = None
    kind = kind or b"n"
    if kind == b"n":
        if len(v) > _NUMBER_CHARS or not _NUMBER_B.match(v) or not math.isfinite(float(v)):
            return False
    elif kind == b"s":
        idx = shared_index(v.decode("ascii", "replace"))
        if idx is None:
            return False
    elif kind == b"inlineStr":
        if (b"_x" in inline or b"&" in inline) and _ESCAPED_CONTROL.search(xml_text(inline)):
            return False
    elif kind == b"str":
        if (b"_x" in v or b"&" in v) and _ESCAPED_CONTROL.search(xml_text(v)):
            return False
    elif kind == b"b":
        if v.strip() not in (b"0", b"1"):
            return False
    elif kind not in (b"e", b"d"):
        return False
    return (pos[0], pos[1], True, pos, True, idx)


def remembered(memo: dict, key, compute: Callable[[], object], *, at_most: int = 64):
    """``compute()``, kept in ``memo`` under ``key`` (emptied once it holds ``at_most`` entries):
    the one way kaohe's readers remember what recurs from file to file. A result of None is
    not kept."""
    found = memo.get(key)
    if found is None:
        found = compute()
        if len(memo) >= at_most:
            memo.clear()
        memo[key] = found
    return found


#: per (area, root start tag), what each piece of sheetData between two "</row>" means
#: (:func:`_piece`), for pieces proved well-formed in that root's namespace context
_PIECE_MEMOS: dict[tuple, dict[bytes, tuple]] = {}
_PIECES = 5_000
#: what a reader child remembers is bounded in bytes, not only in entries, so that what it read
#: before can never take the room the next file needs: pieces, cells and heads, the parts
#: outside sheetData (and its merges) above these sizes are judged every time
_KEPT_PIECE_BYTES = 16 * 1024
_KEPT_PART_BYTES = 512
_KEPT_OUTSIDE_BYTES = 256 * 1024
#: the pieces kept, all memos together (their bytes; what a piece means costs about as much again)
_KEPT_PIECES_BYTES = 8 * 1024 * 1024
_PIECE_BYTES = 0
#: hashes of the pieces seen once (see :func:`plain_pass`)
_SIGHTED: set[int] = set()
#: per (area, root start tag), the first piece proved for each piece head, with its parts: what
#: later pieces with that head are judged from (:func:`_by_reference`); counted in _PIECE_BYTES
_REFS: dict[tuple, dict[bytes, tuple]] = {}
#: the parts of a sheet outside sheetData (before it, after it) found well-formed
_OUTSIDE: dict[tuple[bytes, bytes], bool] = {}
#: the refs of each mergeCells content seen (:func:`_merge_refs`)
_MERGES: dict[bytes, tuple[bytes, ...]] = {}


def _per_root(memos: dict, area: tuple[int, int, int, int], root: bytes) -> dict[bytes, tuple]:
    """The memo of ``memos`` (_PIECE_MEMOS, _REFS) for a sheet's area and root start tag."""
    if len(root) > 4096:
        return {}  # an outlandish root tag: nothing remembered under it
    return remembered(memos, (area, root), dict)


def _cell_memo(area: tuple[int, int, int, int]) -> dict[bytes, tuple | bool]:
    memo = _MEMOS.get(area)
    if memo is None or len(memo) > _MEMO_SIZE:
        memo = _MEMOS[area] = {}
    return memo


def _judged(part: bytes, memo: dict, area: tuple[int, int, int, int]) -> tuple | bool:
    """:func:`_cell_part`, kept in the area's cell memo (a long typed text does not recur)."""
    cell = _cell_part(part, area)
    if len(part) <= _KEPT_PART_BYTES:
        memo[part] = cell
    return cell


def _outside_well_formed(head: bytes, tail: bytes) -> bool:
    """Whether the part with an empty sheetData (``head`` ends with "<sheetData>", ``tail`` starts
    with "</sheetData>") is well-formed: with its rows proved well-formed in the root's context,
    so is the whole part (nothing between the root and sheetData is left open, and sheetData has
    no attributes, so its rows see exactly the root's namespace declarations)."""
    if len(head) + len(tail) > _KEPT_OUTSIDE_BYTES:
        return _well_formed(head + tail)
    return remembered(_OUTSIDE, (head, tail), lambda: _well_formed(head + tail))


def _piece(parts: list[bytes], area: tuple[int, int, int, int], *, closed: bool) -> tuple | bool:
    """What one piece of a plain sheetData means, or False when the exact pass must decide.

    A piece is what lies between two "</row>" tags: rows that are empty ("<row .../>"), then,
    when ``closed`` (a "</row>" follows), one open row and its cells. Its meaning: (first row,
    last row, cells, the area's cells as {position: token}, the filled ones, {position:
    shared-string index}, what each cell means), after the checks of :func:`_judge` on every
    token and the order of its rows and cells; whether rows are in order across pieces is the
    caller's.

    ``parts`` is the piece cut at each "<c ": the head holds its rows, every other part is one
    whole cell token (a token holds no "<c ", its texts no "<"); each part is judged once per
    run (a template's cells recur in every file of its layout).
    """
    memo = _cell_memo(area)
    head = _HEADS.get(parts[0])
    if head is None:
        head = _head(parts[0])
        if len(parts[0]) <= _KEPT_PART_BYTES:
            if len(_HEADS) > _MEMO_SIZE:
                _HEADS.clear()
            _HEADS[parts[0]] = head
    if not head or head[2] != closed or (len(parts) > 1 and not closed):
        return False
    first, row = head[0], head[1]
    get = memo.get
    raw: dict[tuple[int, int], tuple] = {}
    filled: list[tuple[int, int]] = []
    shared: dict[tuple[int, int], int] = {}
    last_col = 0
    cells: list[tuple] = []
    for part in parts[1:]:
        cell = get(part)
        if cell is None:
            cell = _judged(part, memo, area)
        if not cell:
            return False
        cells.append(cell)
        j = cell[0]
        if j[0] != row or j[1] <= last_col:  # a cell: in its row, after the one before
            return False
        last_col = j[1]
        if j[2]:
            raw[j[3]] = cell[1]
            if j[4]:
                filled.append(j[3])
                if j[5] is not None:
                    shared[j[3]] = j[5]
    return (first, row, len(parts) - 1, raw, frozenset(filled), shared, tuple(cells))


def _by_reference(parts: list[bytes], ref: tuple, area: tuple[int, int, int, int]) -> tuple | bool | None:
    """What a piece means, judged from a proved piece with the same head (``ref``: its parts,
    meaning and size) when the two differ only in some cells, each still at its position: a row of the
    template holding what another unit typed. (meaning, the changed cell tokens), those yet to be
    proved well-formed: each is one whole cell token, whose well-formedness depends on its own
    bytes alone (no prefix but ``xml:``), so the piece is well-formed where its reference was.
    False when a changed cell fails the checks of :func:`_judge` (the exact pass decides); None
    when the piece differs otherwise (:func:`_piece` judges it).
    """
    ref_parts, (first, row, n, raw, filled, shared, cells), _size = ref
    if len(parts) != len(ref_parts):
        return None
    changed = list(compress(range(len(parts)), map(ne, parts, ref_parts)))
    memo = _cell_memo(area)
    raw, shared, cells = dict(raw), dict(shared), list(cells)
    moved: set[tuple[int, int]] = set()
    now_filled: list[tuple[int, int]] = []
    for i in changed:
        cell = memo.get(parts[i])
        if cell is None:
            cell = _judged(parts[i], memo, area)
        if not cell:
            return False
        j = cell[0]
        if j[3] != cells[i - 1][0][3]:
            return None  # a cell at another position: the order of cells is to be judged again
        cells[i - 1] = cell
        pos = j[3]
        moved.add(pos)
        shared.pop(pos, None)
        if j[2]:
            raw[pos] = cell[1]
            if j[4]:
                now_filled.append(pos)
                if j[5] is not None:
                    shared[pos] = j[5]
    filled = (filled - moved).union(now_filled) if moved else filled
    return (first, row, n, raw, filled, shared, tuple(cells)), [parts[i] for i in changed]


def _head(head: bytes) -> tuple | bool:
    """A piece's rows before its first cell: (first row, last row, whether the last one is open),
    or False. Empty rows ("<row .../>") in order, at most one open row, and that one last."""
    tokens = _TOKENS.findall(head)
    if sum(map(len, map(itemgetter(0), tokens))) != len(head) or not tokens:
        return False
    first, row, is_open = 0, 0, False
    for tok in tokens:
        if is_open or not tok[1]:
            return False  # a row after the open one, a cell or "</row>": not a plain head
        j = _judge(tok, (1, 1, 0, 0))
        if not j or j[0] <= row:
            return False
        row, is_open = j[0], not j[2]
        first = first or row
    return first, row, is_open


def _cell_part(part: bytes, area: tuple[int, int, int, int]) -> tuple | bool:
    """("<c " + part) as one cell token: (its meaning (:func:`_judge`), the token), or False."""
    m = _TOKENS.fullmatch(b"<c " + part)
    if m is None:
        return False
    tok = m.groups(b"")  # as findall gives them: b"" for a group that took no part
    j = _judge(tok, area)
    return (j, tok) if j else False


def _merge_refs(inner: bytes) -> tuple[bytes, ...] | None:
    """The refs of a plain mergeCells' content (nothing but <mergeCell ref="..."/>), else None.
    A sheet's merges are its template's: the same bytes in every file of a layout (remembered
    up to 256 KB of them)."""
    if len(inner) <= _KEPT_OUTSIDE_BYTES:
        return remembered(_MERGES, inner, lambda: _refs(inner))
    return _refs(inner)


def _refs(inner: bytes) -> tuple[bytes, ...] | None:
    refs, covered = [], 0
    for mm in _MERGE.finditer(inner):
        refs.append(mm.group(1))
        covered += mm.end() - mm.start()
    return tuple(refs) if covered == len(inner) else None


@lru_cache(maxsize=64)
def _merge_texts(refs: tuple[bytes, ...]) -> tuple[str, ...]:
    return tuple(x.decode("utf-8") for x in refs)


def _remember(area: tuple[int, int, int, int], root: bytes, novel: list[tuple[bytes, tuple]], refs: list[tuple[bytes, list[bytes], tuple]]) -> None:
    """Keep new pieces proved well-formed, from their second sighting on: most hold what one
    unit typed and never recur, a template's rows recur in every file (a first sighting costs
    its hash only); and, as the reference for its head, the first piece proved with that head
    (``refs``: the piece, its parts and meaning). Bounded in entries per memo and in bytes over
    all of them."""
    global _PIECE_BYTES
    if _PIECE_BYTES > _KEPT_PIECES_BYTES:
        _PIECE_MEMOS.clear()
        _REFS.clear()
        _PIECE_BYTES = 0
    known = _per_root(_REFS, area, root)
    if len(known) + len(refs) > _PIECES:
        _PIECE_BYTES -= sum(size for _, _, size in known.values())
        known.clear()
    for piece, parts, j in refs:
        if parts[0] not in known and len(piece) <= _KEPT_PIECE_BYTES:
            known[parts[0]] = (parts, j, len(piece))
            _PIECE_BYTES += len(piece)
    memo = _per_root(_PIECE_MEMOS, area, root)
    if len(memo) + len(novel) > _PIECES:
        _PIECE_BYTES -= sum(map(len, memo))
        memo.clear()
    if len(_SIGHTED) > 4 * _PIECES:
        _SIGHTED.clear()
    for piece, j in novel:
        if len(piece) > _KEPT_PIECE_BYTES:
            continue
        h = hash(piece)
        if h in _SIGHTED:
            memo[piece] = j
            _PIECE_BYTES += len(piece)
        else:
            _SIGHTED.add(h)


def forget() -> None:
    """Drop what the plain pass has learnt in this process (tests compare it warm and cold)."""
    global _PIECE_BYTES, _SST_PROVED_BYTES
    _PIECE_BYTES = _SST_PROVED_BYTES = 0
    for memo in (_MEMOS, _HEADS, _PIECE_MEMOS, _REFS, _OUTSIDE, _MERGES, _POS, _ROW_ATTRS, _SIGHTED, _FORMATS, _SST_PROVED, _ITEM_TEXTS):
        memo.clear()
    for cached in (_merge_texts, _merge_plan):
        cached.cache_clear()


def _plain_pass_or_false(scan: SheetScan, data: bytes) -> bool:
    """:func:`plain_pass`, False where it met bytes that are not UTF-8: it reads a cell's text
    (a non-breaking space, an escape) before expat has proved the piece, and the exact pass
    words that problem with its cell (P119), not the reader as a damaged file."""
    try:
        return plain_pass(scan, data)
    except UnicodeDecodeError:
        return False


def plain_pass(scan: SheetScan, data: bytes) -> bool:
    """The input sheet's checks and cells from its bytes, when it is plain and passes every check.

    True: ``scan`` holds the sheet (its cells as tokens in ``scan.raw``), exactly as the
    exact pass would leave it, and no problem. False: nothing was changed; run the exact pass.
    """
    # (a one-byte search first: "!" and "?" are rare in a sheet, and memchr is ten times faster)
    if (b"!" in data and b"<!" in data) or (data.find(b"?", 6) >= 0 and data.find(b"<?", 6) >= 0):
        return False  # comments, CDATA, DOCTYPE, processing instructions: not plain
    m = _PROLOG.match(data)
    if m is None:
        return False
    decl = m.group("decl") or b""
    enc = re.search(rb'encoding[ \t\n]*=[ \t\n]*["\']([^"\']*)["\']', decl)
    if enc is not None and enc.group(1).lower() not in (b"utf-8", b"utf8"):
        return False
    for name, dq, sq in _ATTR.findall(m.group("attrs")):
        if name == b"xmlns" and (dq or sq) != NS_MAIN[1:-1].encode():
            return False  # elements in another default namespace: the exact pass decides
    # exactly one sheetData, a child of the root
    if data.count(b"sheetData") != 2:
        return False
    start, end = data.find(b"<sheetData>"), data.find(b"</sheetData>")
    if start < 0 or end < start or _depth_change(data[m.end():start]) != 0:
        return False
    body = data[start + 11 : end]
    if b"\r" in body:
        return False  # a parser turns CR LF in text into LF (Excel's CR LF after the declaration is fine)
    # merged ranges: at most one mergeCells, a child of the root after sheetData, holding only mergeCell
    merges: tuple[bytes, ...] = ()
    n_merge = data.count(b"mergeCell")
    if n_merge:
        open_at = data.find(b"<mergeCells", end)
        close_at = data.find(b"</mergeCells>", end)
        if open_at < 0 or close_at < open_at or _depth_change(data[end + 12 : open_at]) != 0:
            return False
        inner_at = data.find(b">", open_at) + 1
        head = data[open_at:inner_at]
        if head != b"<mergeCells>" and re.fullmatch(rb'<mergeCells count="[0-9]{1,9}">', head) is None:
            return False
        found = _merge_refs(data[inner_at:close_at])
        if found is None or n_merge != len(found) + 2 or len(found) > scan.limits.merges:
            return False
        merges = found
    root = m.group("root")
    if not _outside_well_formed(data[: start + 11], data[end:]):
        return False
    # sheetData row by row: the pieces between "</row>" tags, each judged once per run (most rows
    # of a template are the same bytes in every file of its layout; only rows holding what a unit
    # typed differ), the novel ones proved well-formed together in the root's namespace context
    pieces = body.split(b"</row>")
    last = pieces[-1]  # after the last "</row>": empty rows at most, judged in every file
    closed = len(pieces) - 1
    memo = _per_root(_PIECE_MEMOS, scan.area, root)
    refs = _per_root(_REFS, scan.area, root)
    raw: dict[tuple[int, int], tuple] = {}
    filled: set[tuple[int, int]] = set()
    shared: dict[tuple[int, int], int] = {}
    novel: list[tuple[bytes, tuple]] = []  # judged and proved here
    new_refs: list[tuple[bytes, list[bytes], tuple]] = []  # novel pieces whose head has no reference
    derived: list[tuple[bytes, tuple]] = []  # judged from their reference, proved by their changed cells
    changed: list[bytes] = []
    row, n_cells = 0, 0
    for i, piece in enumerate(pieces if last else pieces[:closed]):
        j = memo.get(piece) if i < closed else None
        if j is None:
            parts = piece.split(b"<c ")
            ref = refs.get(parts[0]) if i < closed else None
            found = _by_reference(parts, ref, scan.area) if ref is not None else None
            if found is False:
                return False
            if found is not None:
                j = found[0]
                changed.extend(found[1])
                derived.append((piece, j))
            else:
                j = _piece(parts, scan.area, closed=i < closed)
                if j and i < closed:
                    novel.append((piece, j))
                    if ref is None:
                        new_refs.append((piece, parts, j))
        if not j or j[0] <= row:
            return False
        row = j[1]
        n_cells += j[2]
        raw.update(j[3])
        filled.update(j[4])
        shared.update(j[5])
    if n_cells > scan.limits.cells:
        return False
    if novel or last:
        rows = b"".join([piece + b"</row>" for piece, _ in novel])
        if not _well_formed(b"".join((root, b"<sheetData>", rows, last, b"</sheetData></worksheet>"))):
            return False
    if changed and not _well_formed(b"".join((b"<x><c ", b"<c ".join(changed), b"</x>"))):
        return False
    if novel or derived:
        _remember(scan.area, root, novel + derived, new_refs)
    texts = _merge_texts(merges)
    _events, structural, hidden = _merge_plan(texts, scan.area)
    if structural or not hidden.isdisjoint(filled):
        return False
    scan.raw, scan.filled, scan.shared, scan.merges = raw, filled, shared, list(texts)
    return True


# ------------------------------------------------------------------ strings and styles


class SharedStrings:
    """A shared-strings part (sharedStrings.xml, already bounded), read once: the text of any
    string item by its index, each built when first asked for.

    A workbook saved by Excel, WPS or LibreOffice keeps all its texts there, the template's and
    the unit's (~180 KB for a form; after LibreOffice the template's texts are rich-text runs).
    Most items are the same bytes in every unit's file, so a plain part is not built into a tree:
    once expat has proved it well-formed, it is cut into its ``<si>`` items by their bytes, an
    item ``<t>text</t>`` is read from its bytes, and any other item is parsed alone, its text
    remembered by its bytes (issue 8). A part that is not plain (a prefixed element, comments,
    CDATA, carriage returns, another encoding, an item that is not ``<si>...</si>``, anything
    between the items) is parsed whole, as before; both ways give :func:`_text` of each item
    (``tests/test_shared_strings.py`` holds them equal on every kind of item and on mutations)."""

    def __init__(self, data: bytes):
        plain = _plain_items(data)
        self._root, self._blocks = plain if plain is not None else (b"", None)
        self._items: list[Element] = []
        if self._blocks is None:
            root = parse(data)  # refuses a DOCTYPE or a part that is not well-formed
            self._items = [el for el in root if local(el.tag) == "si"]
        self._texts: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._blocks) if self._blocks is not None else len(self._items)

    def get(self, wanted: set[int]) -> dict[int, str]:
        """The texts of the string items with the given indices (those the part has)."""
        texts, out, n = self._texts, {}, len(self)
        for i in wanted:
            if 0 <= i < n:
                text = texts.get(i)
                if text is None:
                    text = texts[i] = _item_text(self._root, self._blocks[i]) if self._blocks is not None else _text(self._items[i])
                out[i] = text
        return out


_SST_HEAD = re.compile(
    rb'(?:\xef\xbb\xbf)?(?:<\?xml(?P<decl>[^<>]*)\?>)?[ \t\r\n]*'
    rb'(?P<root><sst(?:[ \t\r\n]+[^\s=<>]+[ \t\r\n]*=[ \t\r\n]*(?:"[^"<]*"|\'[^\'<]*\'))*[ \t\r\n]*>)'
)
_SST_TAIL = re.compile(rb"[ \t\n]*</sst>[ \t\n]*")
_ENCODING = re.compile(rb'encoding[ \t\r\n]*=[ \t\r\n]*["\']([^"\']*)["\']')
_ITEM_PLAIN = re.compile(rb'<t(?: xml:space="preserve")?>([^<]*)</t>')
#: an item of rich-text runs, each a plain <t> after optional properties that are empty elements
#: (as Excel, WPS and LibreOffice write them; LibreOffice splits a text by script into runs)
_ITEM_RUNS = re.compile(
    rb'(?:<r>(?:<rPr>(?:<[A-Za-z]+(?:[ \t\n]+[A-Za-z]+[ \t\n]*=[ \t\n]*"[^"<]*")*[ \t\n]*/>)*</rPr>)?'
    rb'<t(?: xml:space="preserve")?>[^<]*</t></r>)+'
)
#: an item's text by its bytes, for items that are not one plain <t> (the template's rich texts:
#: the same bytes in every file its writer saved)
_ITEM_TEXTS: dict[bytes, str] = {}
_ITEM_KEPT_BYTES = 2048


def _plain_items(data: bytes) -> tuple[bytes, list[bytes]] | None:
    """A plain part's root start tag and the contents of its ``<si>`` items in order; None when
    the part is not plain or not well-formed (then :class:`SharedStrings` parses it whole, and
    refuses it as before).

    Plain: after the root tag no markup but elements (no comment, CDATA, processing instruction
    or DOCTYPE), no carriage return (a parser turns CR LF into LF), UTF-8, well-formed, and the
    root's content is ``<si>...</si>`` items and nothing else. An item cannot hold another
    ``</si>`` (it would close it), so the items are the pieces between their end tags."""
    head = _SST_HEAD.match(data)
    if head is None:
        return None
    pos = head.end()
    if data.find(b"<!", pos) >= 0 or data.find(b"<?", pos) >= 0 or data.find(b"\r", pos) >= 0 or declares_dtd(data):
        return None
    enc = _ENCODING.search(head.group("decl") or b"")
    if enc is not None and enc.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    pieces = data[pos:].split(b"</si>")
    if not _SST_TAIL.fullmatch(pieces.pop()):
        return None
    items = []
    for piece in pieces:
        if piece[:4] != b"<si>":
            return None  # something between two items (whitespace, another element, a prefixed si)
        items.append(piece[4:])
    root = head.group("root")
    if not _items_well_formed(data[:pos], root, pieces):
        return None
    return root, items


#: per namespace context of a shared-strings part (its root start tag with only its namespace
#: declarations), the items (``<si>`` and its content, without ``</si>``) proved well-formed in it:
#: the template's texts are the same bytes in every file one writer saved (LibreOffice: ~460
#: rich-text items a form), only a unit's own texts are new
_SST_PROVED: dict[bytes, set[bytes]] = {}
_SST_PROVED_BYTES = 0
_SST_KEPT_BYTES = 8 * 1024 * 1024


def _namespace_root(root: bytes) -> bytes:
    """``<sst ...>`` with only its namespace declarations, in their order: the context in which an
    item is well-formed exactly when it is in ``root`` (the other attributes, such as the counts
    that change from file to file, bind no prefix). ``root`` itself is well-formed."""
    kept = []
    for name, dq, sq in _ATTR.findall(root[4:]):
        if name == b"xmlns" or name.startswith(b"xmlns:"):
            kept.append(b" " + name + (b"='" + sq + b"'" if sq else b'="' + dq + b'"'))
    return b"<sst" + b"".join(kept) + b">"


def _items_well_formed(head: bytes, root: bytes, pieces: list[bytes]) -> bool:
    """Whether the part ``head`` + the pieces, each closed by ``</si>``, + ``</sst>`` is
    well-formed, as expat (with namespaces) judges it whole: its head (declaration and root start
    tag) closed at once, and each ``<si>`` item inside the root's namespace declarations, the
    items not proved before in one parse. Content is well-formed when each of its elements is,
    and the pieces hold nothing but whole items (the caller checked that each starts with
    ``<si>``, that no comment, CDATA or processing instruction could hold a "</si>" of its own,
    and that nothing but the end tag follows the last); the cuts are at ASCII bytes, never inside a
    UTF-8 character."""
    global _SST_PROVED_BYTES
    if not _well_formed(head + b"</sst>"):  # (its counts change from file to file: not remembered)
        return False
    context = _namespace_root(root)
    kept = len(context) <= 4096  # an outlandish root: nothing remembered under it
    proved = _SST_PROVED.setdefault(context, set()) if kept else set()
    novel = [p for p in pieces if p not in proved]
    if novel and not _well_formed(b"".join((context, b"</si>".join(novel), b"</si></sst>"))):
        return False
    if not kept:
        return True
    size = sum(map(len, novel))
    if _SST_PROVED_BYTES + size > _SST_KEPT_BYTES:
        _SST_PROVED.clear()
        _SST_PROVED_BYTES = 0
        proved = _SST_PROVED[context] = set()
    proved.update(novel)
    _SST_PROVED_BYTES += size
    return True


def _item_text(root: bytes, block: bytes) -> str:
    """:func:`_text` of one ``<si>`` item of a plain part, from its bytes: a plain ``<t>`` directly,
    any other item parsed inside the part's own root tag (its namespace declarations), once per
    distinct bytes (the text depends on the item's bytes alone: local names, no prefixes)."""
    m = _ITEM_PLAIN.fullmatch(block)
    if m is not None:
        return xml_text(m.group(1))
    if len(block) > _ITEM_KEPT_BYTES:
        return _rich_text(root, block)
    return remembered(_ITEM_TEXTS, block, lambda: _rich_text(root, block), at_most=4096)


def _rich_text(root: bytes, block: bytes) -> str:
    if _ITEM_RUNS.fullmatch(block):  # the runs' texts (their properties hold none)
        return "".join(xml_text(t) for t in _ITEM_PLAIN.findall(block))
    return _text(parse(root + b"<si>" + block + b"</si></sst>")[0])


def shared_strings(data: bytes, wanted: set[int]) -> dict[int, str]:
    """The shared strings with the given indices (``data``: sharedStrings.xml, already bounded)."""
    if not wanted:
        return {}
    return SharedStrings(data).get(wanted)


#: Excel's built-in number formats (ECMA-376 18.8.30), as openpyxl 3.1 gives them
#: (``openpyxl.styles.numbers.BUILTIN_FORMATS``, MIT licence). Kept here rather than imported:
#: importing openpyxl pulls in numpy, ~0.25 s of every reader fork server's start, for one table.
#: ``tests/test_xlsx_formats.py`` holds this table and :func:`is_date_format` equal to openpyxl's.
BUILTIN_FORMATS: dict[int, str] = {
    0: "General",
    1: "0",
    2: "0.00",
    3: "#,##0",
    4: "#,##0.00",
    5: '"$"#,##0_);("$"#,##0)',
    6: '"$"#,##0_);[Red]("$"#,##0)',
    7: '"$"#,##0.00_);("$"#,##0.00)',
    8: '"$"#,##0.00_);[Red]("$"#,##0.00)',
    9: "0%",
    10: "0.00%",
    11: "0.00E+00",
    12: "# ?/?",
    13: "# ??/??",
    14: "mm-dd-yy",
    15: "d-mmm-yy",
    16: "d-mmm",
    17: "mmm-yy",
    18: "h:mm AM/PM",
    19: "h:mm:ss AM/PM",
    20: "h:mm",
    21: "h:mm:ss",
    22: "m/d/yy h:mm",
    37: "#,##0_);(#,##0)",
    38: "#,##0_);[Red](#,##0)",
    39: "#,##0.00_);(#,##0.00)",
    40: "#,##0.00_);[Red](#,##0.00)",
    41: r'_(* #,##0_);_(* \(#,##0\);_(* "-"_);_(@_)',
    42: r'_("$"* #,##0_);_("$"* \(#,##0\);_("$"* "-"_);_(@_)',
    43: r'_(* #,##0.00_);_(* \(#,##0.00\);_(* "-"??_);_(@_)',
    44: r'_("$"* #,##0.00_)_("$"* \(#,##0.00\)_("$"* "-"??_)_(@_)',
    45: "mm:ss",
    46: "[h]:mm:ss",
    47: "mmss.0",
    48: "##0.0E+0",
    49: "@",
}


_FORMATS: dict[bytes, tuple[str, ...]] = {}


def number_formats(data: bytes | None) -> tuple[str, ...]:
    """The number format of each cell style (cellXfs order), from styles.xml; () when there is none.

    The files of one run come from a few templates and office suites: a styles part seen
    before (the same bytes) is not parsed again.
    """
    if not data:
        return ()
    if len(data) > _KEPT_OUTSIDE_BYTES:
        return tuple(_number_formats(data))  # not remembered: a styles part this large is no template's
    return remembered(_FORMATS, data, lambda: tuple(_number_formats(data)))


def _number_formats(data: bytes) -> list[str]:
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
    return [custom.get(i) or BUILTIN_FORMATS.get(i, "General") for i in xfs]


#: what openpyxl's ``is_date_format`` strips before it looks for date letters: quoted literals and
#: bracketed parts (colours, locales, conditions) except elapsed-time ``[h]``/``[mm]``/``[s]``
_FORMAT_IGNORED = re.compile(r'".*?"|\[(?!hh?\]|mm?\]|ss?\])[^\]]*\]')
_DATE_LETTER = re.compile(r"(?<![_\\])[dmhysDMHYS]")


@lru_cache(maxsize=256)
def is_date_format(fmt: str) -> bool:
    """True when openpyxl reads a number in this format as a date or time: the first section,
    literals and bracketed parts removed, holds a date/time letter not escaped by ``\\`` or ``_``."""
    first = fmt.split(";")[0]
    return _DATE_LETTER.search(_FORMAT_IGNORED.sub("", first)) is not None


def value(cell: XCell | None, strings: dict[int, str], formats: tuple[str, ...]) -> tuple[object, str, str]:
    """(value, data type, number format) as openpyxl gives them with ``data_only=False``."""
    if cell is None:
        return None, "n", "General"
    fmt = formats[cell.style] if 0 <= cell.style < len(formats) else "General"
    if cell.formula is not None:
        return "=" + cell.formula, "f", fmt
    kind, v = cell.kind, cell.v
    if kind == "s":
        idx = v.strip()
        found = shared_index(idx)
        return (strings.get(found, "") if found is not None else ""), "s", fmt
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
