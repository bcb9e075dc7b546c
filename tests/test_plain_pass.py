"""The plain pass (``kaohe.xlsx.plain_pass``) against the exact pass, on any bytes.

``SheetScan.run(data)`` first tries a regex pass over the sheet's bytes and falls
back to the ElementTree pass when that one cannot decide. The contract checked
here, for every sheet: whatever the plain pass does, nothing observable differs
from ``run(data, plain=False)`` — the same exception (type and code), the same
problems after ``run`` and after ``finish``, the same shared strings asked for,
the same ``cell``/``text`` at every position of the area, the same ``filled``,
``shared`` and ``merges`` — and the plain pass never accepts a sheet on which the
exact pass reports a problem (it may only be more cautious).

Sheets: the openpyxl-written templates (golden units, the bundled years, a
workbook with every storage type), an Excel-like rewrite (shared strings, CR LF
after the declaration, ``spans``/``x14ac`` rows), a LibreOffice re-save, ~200
hand-written hostile edits, and hypothesis-mutated sheets.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from test_hostile import (
    FORM,
    UNIT,
    after_cell,
    inline,
    make_ctx,
    rezip,
    set_cell,
    swap_rows,
)

from kaohe import layout as L
from kaohe import xlsx as X
from kaohe.catalog import load_catalog
from kaohe.errors import Code
from kaohe.paths import bundled
from kaohe.preflight import LIMITS, open_package
from kaohe.reading import read_workbook_bytes
from kaohe.registry import load_registry
from kaohe.sample import filled_workbook

MAIN = X.NS_MAIN[1:-1]
DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'


# ----------------------------------------------------------------- the differential


class Strings:
    """A ``strings_fn`` over a fixed table (or a sharedStrings part), remembering what it was asked."""

    def __init__(self, table: dict[int, str] | None = None, sst: bytes | None = None):
        self.table, self.sst, self.asked = table or {}, sst, []

    def __call__(self, wanted: set[int]) -> dict[int, str]:
        self.asked.append(sorted(wanted))
        if self.sst is not None:
            return X.shared_strings(self.sst, wanted)
        return {i: self.table[i] for i in wanted if i in self.table}

    def fresh(self) -> Strings:
        return Strings(self.table, self.sst)

    def all(self) -> dict[int, str]:
        if self.sst is not None:
            return X.shared_strings(self.sst, set(range(self.sst.count(b"<si>") + self.sst.count(b"<si "))))
        return dict(self.table)


def limits(cells: int | None = None, merges: int | None = None, max_problems: int | None = None) -> X.SheetLimits:
    return X.SheetLimits(
        LIMITS.sheet_elements,
        LIMITS.sheet_cells if cells is None else cells,
        LIMITS.merges if merges is None else merges,
        LIMITS.max_problems if max_problems is None else max_problems,
    )


@dataclass
class Outcome:
    plain: bool
    error: tuple | None = None
    after_run: list = field(default_factory=list)
    after_finish: list = field(default_factory=list)
    found: dict = field(default_factory=dict)
    asked: list = field(default_factory=list)
    cells: dict = field(default_factory=dict)
    texts: dict = field(default_factory=dict)
    filled: set = field(default_factory=set)
    shared: dict = field(default_factory=dict)
    merges: list = field(default_factory=list)

    def observable(self) -> dict:
        out = dict(vars(self))
        del out["plain"]
        return out


def outcome(data: bytes, area: tuple[int, int, int, int], strings: Strings, lim: X.SheetLimits, plain: bool) -> Outcome:
    scan = X.SheetScan("QX02_自评表.xlsx", L.FORM_SHEET, area, lim)
    try:
        scan.run(data, plain=plain)
    except X.XmlRefused as exc:
        return Outcome(scan.plain, (type(exc), exc.code, exc.line, exc.column), list(scan.problems))
    except Exception as exc:  # noqa: BLE001 - whatever the exact pass lets out, the plain path must let out the same
        return Outcome(scan.plain, (type(exc), str(exc)), list(scan.problems))
    out = Outcome(scan.plain, None, list(scan.problems))
    s = strings.fresh()
    out.found = scan.finish(s)
    out.asked = s.asked
    out.after_finish = list(scan.problems)
    table = strings.all()
    r1, c1, r2, c2 = area
    for pos in ((r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)):
        out.cells[pos] = scan.cell(pos)
        out.texts[pos] = (scan.text(pos, out.found), scan.text(pos, table))
    out.filled, out.shared, out.merges = set(scan.filled), dict(scan.shared), list(scan.merges)
    return out


def differential(data: bytes, area, strings: Strings | None = None, lim: X.SheetLimits | None = None, base: bytes | None = None) -> tuple[Outcome, Outcome]:
    """Both passes on ``data``: asserts the contract, returns (plain-first outcome, exact outcome).

    The plain pass runs warm (after ``base``, the sheet ``data`` was made from, was read twice:
    its rows are remembered) and cold (after :func:`kaohe.xlsx.forget`): the same outcome."""
    strings = strings or Strings({i: f"共享文字{i}" for i in range(64)})
    lim = lim or limits()
    if base is not None:
        X.forget()
        for _ in range(2):  # rows are kept from their second sighting on
            outcome(base, area, strings, lim, plain=True)
    p = outcome(data, area, strings, lim, plain=True)  # with what earlier sheets taught the pass
    e = outcome(data, area, strings, lim, plain=False)
    assert not e.plain
    po, eo = p.observable(), e.observable()
    for key in eo:
        assert po[key] == eo[key], f"plain/exact differ in {key} (plain pass accepted: {p.plain})"
    X.forget()  # and as the first sheet a reader sees: the same outcome
    cold = outcome(data, area, strings, lim, plain=True)
    assert cold.plain == p.plain and cold.observable() == po
    if p.plain:
        # accepted: the exact pass found nothing; finish may still refuse a shared string's text
        assert e.error is None and e.after_run == []
        assert all(x.code == Code.CONTROL_CHARS for x in e.after_finish), [x.render() for x in e.after_finish]
        assert all(X.parse_ref(x.cell) in e.shared for x in e.after_finish)
    return p, e


def codes(o: Outcome) -> list:
    if o.error is not None:
        return [o.error[1]]
    return [x.code for x in o.after_finish]


def form_sheet(xlsx: bytes) -> tuple[bytes, Strings]:
    """The input sheet's bytes and its shared strings, found as pre-flight finds them."""
    problems, pkg = open_package(xlsx, "x.xlsx")
    assert pkg is not None, [p.render() for p in problems]
    with pkg:
        data = pkg.read(pkg.sheets[L.FORM_SHEET])
        sst = pkg.read(pkg.shared_strings) if pkg.shared_strings and pkg.shared_strings in pkg.infos else None
    return data, Strings(sst=sst) if sst is not None else Strings()


def saved(wb) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# ----------------------------------------------------------------- real sheets


@pytest.fixture(scope="module")
def ctx(mini_catalog, registry, values):
    c = make_ctx(mini_catalog, registry, UNIT, values[UNIT])
    assert (c.at["num"], c.at["text"], c.at["hidden"], c.at["below"]) == (NUM, TEXT, HIDDEN, BELOW)  # the edits' addresses
    return c


@pytest.fixture(scope="module")
def area(mini_catalog, registry):
    return X.parse_range(L.layout(mini_catalog, registry.get(UNIT)).area)


@pytest.fixture(scope="module")
def clean(ctx) -> bytes:
    """The openpyxl-written input sheet of the golden unit QX02."""
    return form_sheet(ctx.good)[0]


EXCEL_ROOT = (
    f'<worksheet xmlns="{MAIN}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" mc:Ignorable="x14ac xr xr2 xr3" '
    'xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac" '
    'xmlns:xr="http://schemas.microsoft.com/office/spreadsheetml/2014/revision" '
    'xmlns:xr2="http://schemas.microsoft.com/office/spreadsheetml/2015/revision2" '
    'xmlns:xr3="http://schemas.microsoft.com/office/spreadsheetml/2016/revision3" '
    'xr:uid="{00000000-0001-0000-0100-000000000000}">'
)


def excel_like(sheet: bytes, newline: str = "\r\n") -> tuple[bytes, Strings]:
    """The openpyxl sheet as Excel writes it: shared strings, CR LF after the declaration,
    ``spans``/``x14ac:dyDescent`` rows, no ``t="n"``, no space before ``/>``."""
    s = sheet.decode("utf-8")
    index: dict[str, int] = {}

    def shared(m: re.Match) -> str:
        i = index.setdefault(m.group(3), len(index))
        return f'<c r="{m.group(1)}"{m.group(2) or ""} t="s"><v>{i}</v></c>'

    s = re.sub(r'<c r="([A-Z]+[0-9]+)"( s="[0-9]+")? t="inlineStr"><is><t(?: xml:space="preserve")?>([^<]*)</t></is></c>', shared, s)
    s = re.sub(r' t="(?:n|inlineStr)"(?= ?/>)', "", s).replace(' t="n">', ">")
    s = re.sub(r'<row r="([0-9]+)"([^<>]*?)>', r'<row r="\1" spans="1:11"\2 x14ac:dyDescent="0.25">', s)
    s = s.replace(" />", "/>")
    s = re.sub(r"<worksheet [^>]*>", lambda _m: EXCEL_ROOT, s, count=1)
    assert 't="inlineStr"' not in s and 't="s"' in s
    sst = (
        f'{DECL}{newline}<sst xmlns="{MAIN}" count="{len(index)}" uniqueCount="{len(index)}">'
        + "".join(f'<si><t xml:space="preserve">{t}</t></si>' for t in index)
        + "</sst>"
    )
    return (DECL + newline + s).encode("utf-8"), Strings(sst=sst.encode("utf-8"))


def test_openpyxl_sheet_is_plain(clean, area):
    p, e = differential(clean, area)
    assert e.after_finish == [] and e.filled
    assert p.plain, "the plain pass refused the sheet openpyxl writes"


@pytest.mark.parametrize("newline", ["\r\n", "\n", ""], ids=["crlf", "lf", "none"])
def test_excel_like_sheet_is_plain(clean, area, newline):
    data, strings = excel_like(clean, newline)
    p, e = differential(data, area, strings)
    assert e.after_finish == [] and e.shared and len(e.filled) > 100
    assert p.plain, f"the plain pass refused an Excel-like sheet (declaration then {newline!r})"


def test_golden_units_sheets(mini_catalog, registry, values):
    accepted = 0
    for unit_id, vals in sorted(values.items()):
        wb, lay = filled_workbook(mini_catalog, registry.get(unit_id), vals)
        data, strings = form_sheet(saved(wb))
        p, e = differential(data, X.parse_range(lay.area), strings)
        if not e.after_finish and b"<f>" not in data:
            assert p.plain, unit_id
            accepted += 1
        xl, xs = excel_like(data)
        p, e = differential(xl, X.parse_range(lay.area), xs)
        if not e.after_finish and b"<f>" not in xl:
            assert p.plain, (unit_id, "excel-like")
    assert accepted >= len(values) // 2


def odd_workbook(catalog, registry) -> tuple[bytes, tuple]:
    """QX05's template with every storage type a clerk can produce in its input cells."""
    wb, lay = filled_workbook(catalog, registry.get("QX05"), {})
    ws = wb[L.FORM_SHEET]
    inputs = [a for b in lay.blocks for _, _, a in b.inputs()]
    odd = [
        (0.95, "0.00%"), (12.5, "#,##0.00"), (dt.datetime(2025, 3, 1), "yyyy-mm-dd"), (True, "General"),
        (False, "General"), ("=1+1", "General"), ("#N/A", "General"), ("９５％", "@"), ("  是 ", "General"),
        (CellRichText([TextBlock(InlineFont(b=True), "部分"), "加粗"]), "General"), (-0.0, "0.0"), (1e-7, "0.00E+00"),
        ("a & b < c > d \"e\" 'f'", "General"), ("\u3000", "General"), (" ", "General"), ("多行\n文字", "General"),
    ]
    for a, (v, fmt) in zip(inputs, odd):
        ws[a].value = v
        ws[a].number_format = fmt
    return saved(wb), X.parse_range(lay.area)


def test_every_storage_type(mini_catalog, registry):
    xlsx, area = odd_workbook(mini_catalog, registry)
    data, strings = form_sheet(xlsx)
    differential(data, area, strings)
    # without the formula and the rich text the sheet is plain again
    plainer = re.sub(rb"<c r=\"([A-Z]+[0-9]+)\"([^>]*)><f>[^<]*</f>(<v>[^<]*</v>|<v */>)?</c>", rb'<c r="\1"\2/>', data)
    plainer = re.sub(rb"<is>(<r>.*?</r>)+</is>", rb"<is><t>rich</t></is>", plainer)
    p, e = differential(plainer, area, strings)
    assert e.after_finish == [] and p.plain
    xl, xs = excel_like(plainer)
    p, e = differential(xl, area, xs)
    assert e.after_finish == [] and p.plain


@lru_cache(maxsize=4)
def _year(year: int):
    b = bundled(year)
    cat = load_catalog(b.catalog)
    return cat, load_registry(b.registry, cat), sorted(Path(b.submissions).glob("*.xlsx"))


@pytest.mark.parametrize("year", [2024, 2025])
def test_bundled_submissions(year):
    cat, reg, files = _year(year)
    if not files:
        pytest.skip(f"no bundled submissions for {year}")
    seen = accepted = 0
    for path in files:
        unit_id = path.name.split("_", 1)[0]
        if unit_id not in reg:
            continue
        try:
            data, strings = form_sheet(path.read_bytes())
        except (AssertionError, KeyError):
            continue  # a planted container or sheet problem: no input sheet to compare
        area = X.parse_range(L.layout(cat, reg.get(unit_id)).area)
        p, e = differential(data, area, strings)
        seen += 1
        if e.error is None and not e.after_finish and b"<f>" not in data:
            assert p.plain, path.name
            accepted += 1
    assert seen >= 20 and accepted >= 10


@pytest.mark.soffice
def test_libreoffice_resave(mini_catalog, registry, ctx, area, tmp_path):
    odd, odd_area = odd_workbook(mini_catalog, registry)
    src = tmp_path / "src"
    src.mkdir()
    (src / "QX02.xlsx").write_bytes(ctx.good)
    (src / "QX05_odd.xlsx").write_bytes(odd)
    dst = tmp_path / "resaved"
    profile = tmp_path / "lo-profile"
    subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "xlsx", "--outdir", str(dst)]
        + [str(p) for p in sorted(src.iterdir())],
        check=True, capture_output=True, timeout=240,
    )
    data, strings = form_sheet((dst / "QX02.xlsx").read_bytes())
    p, e = differential(data, area, strings)
    assert e.after_finish == [] and e.filled
    assert p.plain, "the plain pass refused the sheet LibreOffice writes"
    data, strings = form_sheet((dst / "QX05_odd.xlsx").read_bytes())
    differential(data, odd_area, strings)


# ----------------------------------------------------------------- hostile edits


def sub(pattern: str, repl: str, count: int = 1) -> Callable[[str], str]:
    def fn(s: str) -> str:
        new, n = re.subn(pattern, lambda m: m.expand(repl), s, count=count, flags=re.DOTALL)
        assert n, pattern
        return new

    return fn


def s_(edit) -> Callable[[str], str]:
    """A bytes edit of test_hostile (set_cell, after_cell, swap_rows) as a str edit."""
    return lambda s: edit(s.encode("utf-8")).decode("utf-8")


def cell(a: str, element: str) -> Callable[[str], str]:
    return s_(set_cell(a, element))


def after(a: str, element: str) -> Callable[[str], str]:
    return s_(after_cell(a, element))


def before_end(element: str) -> Callable[[str], str]:
    return sub(r"</sheetData>", element + "</sheetData>")


def at_end(element: str) -> Callable[[str], str]:
    return sub(r"</worksheet>", element + "</worksheet>")


def decl(text: str) -> Callable[[str], str]:
    return lambda s: text + re.sub(r"^<\?xml[^>]*\?>\s*", "", s)


def merge(ref: str) -> Callable[[str], str]:
    return sub(r"</mergeCells>", f'<mergeCell ref="{ref}"/></mergeCells>')


def v(a: str, inner: str, t: str = "", s: str = "") -> Callable[[str], str]:
    attrs = (f' s="{s}"' if s else "") + (f' t="{t}"' if t else "")
    return cell(a, f'<c r="{a}"{attrs}>{inner}</c>')


def text_at(a: str, value: str) -> Callable[[str], str]:
    return cell(a, inline(a, value))


NUM, TEXT, HIDDEN, BELOW, EMPTY_IN = "G8", "K7", "K9", "G9", "I8"  # see test_hostile's ctx fixture
OTHER_NS = 'xmlns="urn:other"'


def bind_x(s: str) -> str:
    """The sheet with the prefix x bound to the main namespace on its root."""
    return s.replace(f'xmlns="{MAIN}"', f'xmlns="{MAIN}" xmlns:x="{MAIN}"', 1)


@dataclass(frozen=True)
class Edit:
    name: str
    fn: Callable[[str], str]
    expect: object = None  # a list of problem codes the exact pass reports, "raise", or None (not checked)
    shared: dict | None = None  # extra shared strings, as sharedStrings.xml holds their text
    encode: str = "utf-8"


P = Code
UNICODE_SPACES = [chr(i) for i in range(0x110000) if chr(i).isspace() and (i >= 0x20 or chr(i) in "\t\n\r")]

EDITS = [
    # --- order and position
    Edit("duplicate_cell", after(NUM, f'<c r="{NUM}"><v>99</v></c>'), [P.DUPLICATE_CELL]),
    Edit("duplicate_empty_cell", after(EMPTY_IN, f'<c r="{EMPTY_IN}" s="16"/>'), [P.DUPLICATE_CELL]),
    Edit("duplicate_cell_same_value", after(NUM, f'<c r="{NUM}" s="14"><v>7</v></c>'), [P.DUPLICATE_CELL]),
    Edit("rows_out_of_order", s_(swap_rows(8, 9)), [P.ROWS_OUT_OF_ORDER]),
    Edit("row_repeated", sub(r'(<row r="9")', '<row r="8"></row>\\1'), [P.ROWS_OUT_OF_ORDER]),
    Edit("empty_row_repeated", sub(r'(<row r="9")', '<row r="8"/>\\1'), [P.ROWS_OUT_OF_ORDER]),
    Edit("cells_swapped", lambda s: s.replace(f'<c r="{NUM}"', '<c r="TMP"').replace(f'<c r="{EMPTY_IN}"', f'<c r="{NUM}"').replace('<c r="TMP"', f'<c r="{EMPTY_IN}"')),
    Edit("cell_in_wrong_row", after("K8", '<c r="L9"/>'), [P.ROWS_OUT_OF_ORDER]),
    Edit("cell_in_wrong_row_with_value", after("K8", '<c r="L9"><v>1</v></c>')),
    Edit("cell_of_next_row", sub(r'(<c r="K8"[^>]*?(/>|>.*?</c>))', '\\1<c r="A9" s="13"/>')),
    Edit("value_outside_area_column", after("K8", '<c r="L8"><v>5</v></c>'), [P.CELL_OUTSIDE_AREA]),
    Edit("value_outside_area_row", before_end('<row r="30"><c r="A30" t="inlineStr"><is><t>附件</t></is></c></row>'), [P.CELL_OUTSIDE_AREA]),
    Edit("value_at_XFD1048576", before_end('<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'), [P.CELL_OUTSIDE_AREA]),
    Edit("empty_outside_area", after("K8", '<c r="L8" s="3"/>'), []),
    Edit("blank_text_outside_area", after("K8", '<c r="L8" t="inlineStr"><is><t>  \n </t></is></c>'), []),
    Edit("ideographic_space_outside_area", after("K8", '<c r="L8" t="inlineStr"><is><t>\u3000</t></is></c>'), []),
    Edit("nbsp_ref_outside_area", after("K8", '<c r="L8"><v>&#160;</v></c>'), []),
    Edit("typed_empty_outside_area", after("K8", '<c r="L8" t="x"/>'), []),
    Edit("formula_outside_area", after("K8", '<c r="L8"><f>1+1</f></c>'), [P.CELL_OUTSIDE_AREA]),
    Edit("value_under_merge", text_at(HIDDEN, "另附材料"), [P.VALUE_UNDER_MERGE]),
    Edit("blank_under_merge", text_at(HIDDEN, "\u3000 "), []),
    Edit("nbsp_under_merge", text_at(HIDDEN, "&#160;"), []),
    Edit("merge_hides_input", merge(f"{NUM}:{BELOW}"), [P.VALUE_UNDER_MERGE]),
    Edit("merge_overlaps", merge("K7:K8"), [P.SHEET_ANOMALY]),
    Edit("merge_invalid_ref", merge("ZZZZ1:A1"), [P.SHEET_ANOMALY]),
    Edit("merge_outside_area", merge("M30:N31"), []),
    Edit("merge_single_cell", merge("L1"), []),
    Edit("merge_ref_with_tab", merge("M1:\tN2"), []),
    Edit("merge_ref_with_newline", merge("M1:N2\n"), []),
    Edit("merge_ref_with_cr", merge("M1:\rN2"), []),
    Edit("merge_ref_with_spaces", merge(" M1:N2 "), []),
    Edit("merge_ref_with_entity", merge("M1:N&#50;"), []),
    Edit("merge_ref_with_amp", merge("M1:N2&amp;"), [P.SHEET_ANOMALY]),
    Edit("merge_ref_lower_case", merge("m1:n2"), []),
    Edit("merge_ref_absolute", merge("$M$1:$N$2"), []),
    Edit("merge_ref_hides_value_lower", merge(f"{NUM.lower()}:{BELOW.lower()}"), [P.VALUE_UNDER_MERGE]),
    Edit("merge_ref_single_quoted", sub(r"</mergeCells>", "<mergeCell ref='M1:N2'/></mergeCells>"), []),
    Edit("merge_extra_attribute", sub(r"</mergeCells>", '<mergeCell ref="M1:N2" x="1"/></mergeCells>'), []),
    Edit("merge_no_ref", sub(r"</mergeCells>", "<mergeCell/></mergeCells>"), [P.SHEET_ANOMALY]),
    Edit("merge_other_ns", sub(r"</mergeCells>", '<o:mergeCell xmlns:o="urn:o" ref="G8:G9"/></mergeCells>'), [P.VALUE_UNDER_MERGE]),
    Edit("mergecells_whitespace", lambda s: s.replace("<mergeCell ", "\n <mergeCell ")),
    Edit("mergecells_crlf", lambda s: s.replace("<mergeCell ", "\r\n<mergeCell ")),
    Edit("mergecells_before_sheetdata", lambda s: s.replace("<sheetData>", '<mergeCells><mergeCell ref="G8:G9"/></mergeCells><sheetData>'), None),
    Edit("mergecells_twice", at_end('<mergeCells><mergeCell ref="G8:G9"/></mergeCells>'), [P.VALUE_UNDER_MERGE]),
    Edit("mergecells_nested", at_end(f'<extLst><ext uri="x"><mergeCells xmlns="{MAIN}"><mergeCell ref="G8:G9"/></mergeCells></ext></extLst>'), []),
    Edit("mergecells_other_ns", at_end('<o:mergeCells xmlns:o="urn:o"><o:mergeCell ref="G8:G9"/></o:mergeCells>'), [P.VALUE_UNDER_MERGE]),
    Edit("mergecells_empty", lambda s: re.sub(r"<mergeCells.*?</mergeCells>", "<mergeCells/>", s, flags=re.DOTALL), []),
    Edit("mergecells_count_0", lambda s: re.sub(r"<mergeCells.*?</mergeCells>", '<mergeCells count="0"></mergeCells>', s, flags=re.DOTALL), []),
    Edit("mergecells_attr_other", lambda s: re.sub(r"<mergeCells[^>]*>", '<mergeCells count="25" x="1">', s), []),
    Edit("mergecell_word_in_text", text_at(TEXT, "mergeCell"), []),
    # --- values the checks look at
    Edit("formula", v(NUM, "<f>SUM(50,50)</f><v>100</v>"), []),
    Edit("formula_empty", v(NUM, "<f></f>"), []),
    Edit("formula_only", v(NUM, "<f>1</f>"), []),
    Edit("shared_formula_ref", v(NUM, '<f t="shared" si="0"/>'), []),
    Edit("error_cell", v(NUM, "<v>#DIV/0!</v>", "e"), []),
    Edit("error_cell_garbage", v(NUM, "<v>not an error</v>", "e"), []),
    Edit("error_cell_escape", v(NUM, "<v>_x0001_</v>", "e"), []),
    Edit("bool_true", v(NUM, "<v>1</v>", "b"), []),
    Edit("bool_2", v(NUM, "<v>2</v>", "b"), [P.SHEET_ANOMALY]),
    Edit("bool_word", v(NUM, "<v>true</v>", "b"), [P.SHEET_ANOMALY]),
    Edit("bool_padded", v(NUM, "<v> 1 </v>", "b"), []),
    Edit("bool_ideographic_padded", v(NUM, "<v>\u30001</v>", "b"), []),
    Edit("bool_ref", v(NUM, "<v>&#49;</v>", "b"), []),
    Edit("bool_empty", v(NUM, "<v></v>", "b"), []),
    Edit("date_cell", v(NUM, "<v>2025-03-01T00:00:00</v>", "d"), []),
    Edit("unknown_type_filled", v(NUM, "<v>1</v>", "x"), [P.SHEET_ANOMALY]),
    Edit("unknown_type_empty", cell(NUM, f'<c r="{NUM}" t="x"/>'), []),
    Edit("upper_case_type", v(NUM, "<v>1</v>", "N"), [P.SHEET_ANOMALY]),
    Edit("empty_type", cell(NUM, f'<c r="{NUM}" t=""><v>1</v></c>'), [P.SHEET_ANOMALY]),
    Edit("type_str", v(NUM, "<v>文字</v>", "str"), []),
    Edit("type_str_escape", v(NUM, "<v>_x0007_</v>", "str"), [P.CONTROL_CHARS]),
    Edit("type_str_escape_ref", v(NUM, "<v>&#95;x0007_</v>", "str"), [P.CONTROL_CHARS]),
    Edit("type_str_with_is", v(NUM, "<is><t>_x0007_</t></is>", "str"), []),
    Edit("inline_with_v", v(NUM, "<v>_x0007_</v>", "inlineStr"), []),
    Edit("inline_with_both", v(NUM, "<v>1</v><is><t>x</t></is>", "inlineStr"), []),
    Edit("shared_with_is", v(NUM, "<is><t>x</t></is>", "s"), [P.SHEET_ANOMALY]),
    Edit("number_with_is", v(NUM, "<is><t>12</t></is>"), [P.SHEET_ANOMALY]),
    Edit("bool_with_is", v(NUM, "<is><t>1</t></is>", "b"), [P.SHEET_ANOMALY]),
    Edit("rich_text", v(TEXT, "<is><r><t>部分</t></r><r><rPr><b/></rPr><t>加粗</t></r></is>", "inlineStr"), []),
    Edit("rich_text_escape", v(TEXT, "<is><r><t>_x0001_</t></r></is>", "inlineStr"), [P.CONTROL_CHARS]),
    Edit("phonetic_run", v(TEXT, "<is><t>文字</t><rPh sb=\"0\" eb=\"1\"><t>_x0001_</t></rPh></is>", "inlineStr"), []),
    Edit("shared_index_word", v(NUM, "<v>x</v>", "s"), [P.SHEET_ANOMALY]),
    Edit("shared_index_negative", v(NUM, "<v>-1</v>", "s"), [P.SHEET_ANOMALY]),
    Edit("shared_index_float", v(NUM, "<v>1.0</v>", "s"), [P.SHEET_ANOMALY]),
    Edit("shared_index_padded", v(NUM, "<v> 3 </v>", "s"), []),
    Edit("shared_index_leading_zero", v(NUM, "<v>003</v>", "s"), []),
    Edit("shared_index_huge", v(NUM, "<v>99999999999999999999</v>", "s"), [P.SHEET_ANOMALY]),  # > 18 digits
    Edit("shared_index_superscript", v(NUM, "<v>\u00b2</v>", "s"), [P.SHEET_ANOMALY]),  # "²".isdigit(), but not an index
    Edit("shared_index_5001_digits", v(NUM, f"<v>{'0' * 5000}3</v>", "s"), [P.SHEET_ANOMALY]),  # no index has 5001 digits
    Edit("number_5001_digits", v(NUM, f"<v>{'0' * 5000}7</v>"), [P.SHEET_ANOMALY]),  # finite, but no office suite writes it
    Edit("shared_index_ref", v(NUM, "<v>&#51;</v>", "s"), []),
    Edit("shared_index_fullwidth", v(NUM, "<v>３</v>", "s"), [P.SHEET_ANOMALY]),  # ASCII digits only
    Edit("shared_index_ideographic_padded", v(NUM, "<v>\u30003</v>", "s"), []),
    Edit("shared_index_blank", v(NUM, "<v> </v>", "s"), []),
    Edit("shared_index_nbsp", v(NUM, "<v>&#160;</v>", "s"), []),
    Edit("shared_escape", v(NUM, "<v>900</v>", "s"), [P.CONTROL_CHARS], {900: "见附件_x0001_"}),
    Edit("shared_escape_bidi", v(NUM, "<v>901</v>", "s"), [P.CONTROL_CHARS], {901: "见附件_x202E_gpj.exe"}),
    Edit("shared_escape_clean", v(NUM, "<v>902</v>", "s"), [], {902: "见附件_x0041_"}),
    Edit("shared_escape_ref", v(NUM, "<v>903</v>", "s"), [P.CONTROL_CHARS], {903: "见附件&#95;x0001_"}),
    Edit("shared_missing_index", v(NUM, "<v>9999</v>", "s"), []),
    Edit("inline_escape", text_at(TEXT, "见附件_x0001_"), [P.CONTROL_CHARS]),
    Edit("inline_escape_ref", text_at(TEXT, "见附件&#95;x0001_"), [P.CONTROL_CHARS]),
    Edit("inline_escape_ref_tail", text_at(TEXT, "见附件_x0001&#95;"), [P.CONTROL_CHARS]),
    Edit("inline_escape_hex_ref", text_at(TEXT, "见附件&#x5F;&#x78;0001_"), [P.CONTROL_CHARS]),
    Edit("inline_escape_upper", text_at(TEXT, "见附件_X0001_"), []),
    Edit("inline_escape_bidi", text_at(TEXT, "见附件_x202e_gpj.exe"), [P.CONTROL_CHARS]),
    Edit("inline_escape_preserve", v(TEXT, '<is><t xml:space="preserve">_x001F_ </t></is>', "inlineStr"), [P.CONTROL_CHARS]),
    Edit("inline_entities", text_at(TEXT, "a &amp; b &lt; c &gt; d &quot; &apos; &#20013;&#x6587;"), []),
    Edit("inline_gt", text_at(TEXT, "a > b ]] >"), []),
    Edit("inline_newline", text_at(TEXT, "多行\n文字"), []),
    Edit("inline_tab", text_at(TEXT, "\t文字\t"), []),
    Edit("inline_cr_ref", text_at(TEXT, "多行&#13;&#10;文字"), []),
    Edit("inline_crlf", text_at(TEXT, "多行\r\n文字"), []),
    Edit("inline_lone_cr", text_at(TEXT, "多行\r文字"), []),
    Edit("inline_cr_only", text_at(TEXT, "\r\n"), []),
    Edit("number_crlf", v(NUM, "<v>7\r\n</v>"), []),
    Edit("number_nan", v(NUM, "<v>NaN</v>"), [P.NOT_FINITE]),
    Edit("number_inf", v(NUM, "<v>inf</v>"), [P.NOT_FINITE]),
    Edit("number_minus_infinity", v(NUM, "<v> -Infinity </v>"), [P.NOT_FINITE]),
    Edit("number_1e999", v(NUM, "<v>1e999</v>"), [P.NOT_FINITE]),
    Edit("number_minus_1E400", v(NUM, "<v>-1E400</v>"), [P.NOT_FINITE]),
    Edit("number_1e-999", v(NUM, "<v>1e-999</v>"), []),
    Edit("number_hex", v(NUM, "<v>0x10</v>"), [P.SHEET_ANOMALY]),
    Edit("number_underscore", v(NUM, "<v>1_000</v>"), [P.SHEET_ANOMALY]),
    Edit("number_fullwidth", v(NUM, "<v>１２</v>"), []),
    Edit("number_arabic_indic", v(NUM, "<v>\u0663</v>"), []),
    Edit("number_superscript", v(NUM, "<v>\u00b2</v>"), [P.SHEET_ANOMALY]),
    Edit("number_padded", v(NUM, "<v>\n 7 \t</v>"), []),
    Edit("number_ideographic_padded", v(NUM, "<v>7\u3000</v>"), []),
    Edit("number_ref", v(NUM, "<v>&#55;</v>"), []),
    Edit("number_trailing_dot", v(NUM, "<v>7.</v>"), []),
    Edit("number_leading_dot", v(NUM, "<v>+.5e-3</v>"), []),
    Edit("number_word", v(NUM, "<v>七</v>"), [P.SHEET_ANOMALY]),
    Edit("number_empty_v", v(NUM, "<v></v>"), []),
    Edit("number_self_closing_v", v(NUM, "<v/>"), []),
    Edit("number_v_preserve", v(NUM, '<v xml:space="preserve">7</v>'), []),
    Edit("number_two_v", v(NUM, "<v>7</v><v>8</v>"), []),
    Edit("number_unknown_child", v(NUM, "<v>7</v><x/>"), []),
    Edit("number_extLst_child", v(NUM, "<extLst/><v>7</v>"), []),
    # --- whitespace-only text: empty to both passes
    *[
        Edit(f"blank_inline_U+{ord(ch):04X}", text_at(TEXT, ch if ch not in "\r" else "&#13;"), [])
        for ch in UNICODE_SPACES
    ],
    *[
        Edit(f"blank_number_U+{ord(ch):04X}", v(NUM, f"<v>{ch}</v>" if ch not in "\r" else "<v>&#13;</v>"), [])
        for ch in UNICODE_SPACES
    ],
    Edit("blank_nbsp_ref", text_at(TEXT, "&#160;"), []),
    Edit("blank_nbsp_hex_ref", text_at(TEXT, "&#xA0;&#x3000;&#x2028;"), []),
    Edit("blank_space_refs", text_at(TEXT, "&#32;&#9;&#10;"), []),
    Edit("blank_mixed", text_at(TEXT, " \u3000\xa0\u2003\n"), []),
    Edit("blank_shared", v(NUM, "<v>\u3000</v>", "s"), []),
    Edit("blank_bool", v(NUM, "<v>\xa0</v>", "b"), []),
    Edit("not_blank_copyright", text_at(TEXT, "\xa9"), []),
    Edit("not_blank_em_quad_x", text_at(TEXT, "\u2001x"), []),
    Edit("not_blank_zero_width", text_at(TEXT, "\u200b"), []),
    Edit("not_blank_bom", text_at(TEXT, "\ufeff"), []),
    Edit("not_blank_mongolian_vowel_separator", text_at(TEXT, "\u180e"), []),
    Edit("not_blank_amp", text_at(TEXT, "&amp;"), []),
    Edit("number_nbsp_only", v(NUM, "<v>\xa0</v>"), []),
    Edit("number_nbsp_and_digit", v(NUM, "<v>\xa07</v>"), []),
    # --- XML structure
    Edit("nested_row", sub(r'(<row r="8"[^>]*>)', '\\1<row r="30"><c r="A30"><v>1</v></c></row>'), None),
    Edit("nested_row_inside_area", sub(r'(<row r="8"[^>]*>)', '\\1<row r="9"><c r="L9"><v>1</v></c></row>'), None),
    Edit("cell_in_sheetdata", sub(r'(<row r="9")', f'<c r="{NUM}"><v>99</v></c>\\1'), []),
    Edit("cell_in_sheetdata_outside", before_end('<c r="L30"><v>99</v></c>'), []),
    Edit("other_element_in_sheetdata", sub(r'(<row r="9")', "<foo/>\\1"), []),
    Edit("sheetdata_in_extlst", at_end(f'<extLst><ext uri="x"><sheetData><row r="8"><c r="{NUM}"><v>99</v></c></row></sheetData></ext></extLst>'), []),
    Edit("sheetdata_other_ns", at_end(f'<o:sheetData xmlns:o="urn:o"><o:row r="8"><o:c r="{NUM}"><o:v>99</o:v></o:c></o:row></o:sheetData>'), [P.SHEET_ANOMALY]),
    Edit("sheetdata_twice", at_end('<sheetData><row r="30"><c r="A30"><v>99</v></c></row></sheetData>'), [P.SHEET_ANOMALY]),
    Edit("sheetdata_empty", lambda s: re.sub(r"<sheetData>.*</sheetData>", "<sheetData/>", s, flags=re.DOTALL), []),
    Edit("sheetdata_space", lambda s: s.replace("<sheetData>", "<sheetData >"), []),
    Edit("sheetdata_word_in_text", text_at(TEXT, "sheetData"), []),
    Edit("sheetdata_nested_in_element", lambda s: s.replace("<sheetData>", "<x><sheetData>").replace("</sheetData>", "</sheetData></x>"), []),
    Edit("row_other_ns", sub(r'<row r="8"', f'<row {OTHER_NS} r="8"'), []),
    Edit("row_main_ns_redeclared", sub(r'<row r="8"', f'<row r="8" xmlns="{MAIN}"'), []),
    Edit("row_prefix_declared", sub(r'<row r="8"', '<row r="8" xmlns:q="urn:q" q:x="1"'), []),
    Edit("row_undeclared_prefix", sub(r'<row r="8"', '<row r="8" q:x="1"'), "raise"),
    Edit("row_attr_with_gt", sub(r'<row r="8"', '<row r="8" x="a>b"'), []),
    Edit("row_attr_with_slash_gt", sub(r'<row r="8"', '<row r="8" x="/>"'), []),
    Edit("row_attr_collapsed", lambda s: re.sub(r'<row r="([0-9]+)"', r'<row r="\1" collapsed="0" outlineLevel="0"', s), []),
    Edit("row_attr_first", sub(r'<row r="8"', '<row customFormat="0" r="8"'), []),
    Edit("row_single_quotes", sub(r'<row r="8"', "<row r='8'"), []),
    Edit("row_close_space", sub(r"</row>", "</row >"), []),
    Edit("row_tab", sub(r'<row r="8"', '<row\tr="8"'), []),
    Edit("prefixed_cell_main", lambda s: bind_x(cell(NUM, f'<x:c r="{NUM}"><x:v>99</x:v></x:c>')(s)), []),
    Edit("prefixed_value_main", lambda s: bind_x(v(NUM, "<x:v>99</x:v>")(s)), []),
    Edit("prefixed_cell_other", lambda s: cell(NUM, f'<o:c xmlns:o="urn:o" r="{NUM}"><o:v>99</o:v></o:c>')(s), []),
    Edit("value_other_ns", v(NUM, '<v xmlns="urn:o">99</v>'), []),
    Edit("prefixed_everything", lambda s: re.sub(r"<(/?)(?!\?)([A-Za-z])", r"<\1x:\2", s).replace(f'xmlns="{MAIN}"', f'xmlns:x="{MAIN}"'), []),
    Edit("root_no_namespace", lambda s: s.replace(f' xmlns="{MAIN}"', ""), []),
    Edit("root_other_namespace", lambda s: s.replace(f'xmlns="{MAIN}"', OTHER_NS), []),
    Edit("root_empty_namespace", lambda s: s.replace(f'xmlns="{MAIN}"', 'xmlns=""'), []),
    Edit("root_namespace_single_quoted", lambda s: s.replace(f'xmlns="{MAIN}"', f"xmlns='{MAIN}'"), []),
    Edit("root_namespace_ref", lambda s: s.replace(f'xmlns="{MAIN}"', f'xmlns="{MAIN[:-4]}&#109;ain"'), []),
    Edit("root_crlf_attrs", lambda s: s.replace(f' xmlns="{MAIN}"', f'\r\n xmlns\r\n=\r\n"{MAIN}"\r\n'), []),
    Edit("root_attr_with_gt", lambda s: s.replace(f' xmlns="{MAIN}"', f' a=">" xmlns="{MAIN}"'), []),
    Edit("root_self_closing_elsewhere", lambda s: s.replace("<sheetData>", "<x/><y></y>text<sheetData>"), []),
    Edit("comment_in_sheetdata", sub(r'(<row r="9")', "<!-- x -->\\1"), []),
    Edit("comment_in_text", text_at(TEXT, "见<!-- x -->附件"), []),
    Edit("comment_before_root", lambda s: re.sub(r"(<worksheet )", "<!-- x -->\\1", s, count=1), []),
    Edit("comment_hiding_cell", after(NUM, '<!--<c r="L8"><v>1</v></c>-->'), []),
    Edit("cdata_value", v(NUM, "<v><![CDATA[99]]></v>"), []),
    Edit("cdata_text", text_at(TEXT, "<![CDATA[_x0001_]]>"), [P.CONTROL_CHARS]),
    Edit("pi_in_sheetdata", sub(r'(<row r="9")', "<?pi x?>\\1"), []),
    Edit("pi_in_value", v(NUM, "<v>9<?pi?>9</v>"), []),
    Edit("pi_before_root", decl(DECL + '<?xml-stylesheet href="x"?>'), []),
    Edit("xml_named_pi_first", decl('<?xml-stylesheet href="x"?>'), []),
    Edit("xml_named_pi_encoding", decl('<?xml-stylesheet encoding="latin1"?>'), []),
    Edit("doctype", decl(DECL + "<!DOCTYPE worksheet>"), "raise"),
    Edit("doctype_entity", lambda s: decl(DECL + '<!DOCTYPE worksheet [<!ENTITY e "99">]>')(v(NUM, "<v>&e;</v>")(s)), "raise"),
    Edit("doctype_in_comment", decl(DECL + "<!-- <!DOCTYPE x> -->"), "raise"),
    Edit("undefined_entity", v(NUM, "<v>&e;</v>"), "raise"),
    Edit("raw_control_char", text_at(TEXT, "见附件\x07"), "raise"),
    Edit("control_char_ref", text_at(TEXT, "见附件&#7;"), "raise"),
    Edit("nul_byte", text_at(TEXT, "见\x00"), "raise"),
    Edit("truncated", lambda s: s[: len(s) // 2], "raise"),
    Edit("unclosed_cell", sub(rf'<c r="{NUM}"[^>]*>.*?</c>', f'<c r="{NUM}"><v>1</v>'), "raise"),
    Edit("duplicate_attribute", sub(rf'<c r="{NUM}"', f'<c r="{NUM}" r="{NUM}"'), "raise"),
    Edit("junk_after_root", lambda s: s + "<x/>", "raise"),
    Edit("text_after_root", lambda s: s + "\n  \n", []),
    Edit("cdata_end_in_text", text_at(TEXT, "a]]>b"), "raise"),
    Edit("pretty_printed", lambda s: re.sub(r"(<row |</row>|<c )", "\n  \\1", s), []),
    Edit("pretty_printed_crlf", lambda s: re.sub(r"(<row |</row>|<c )", "\r\n  \\1", s), []),
    Edit("space_before_gt", sub(rf'(<c r="{NUM}"[^>]*)>', f'<c r="{NUM}" s="14" >'), []),
    Edit("tab_in_cell_tag", sub(rf'<c r="{NUM}"', f'<c\tr="{NUM}"'), []),
    Edit("newline_before_slash", lambda s: re.sub(r'(") ?/>', "\\1\n/>", s), []),
    # --- encodings and the prolog
    Edit("crlf_after_declaration", decl(DECL + "\r\n"), []),
    Edit("crlf_everywhere_outside_sheetdata", lambda s: s.replace("><sheetView", ">\r\n<sheetView").replace("><pageMargins", ">\r\n<pageMargins"), []),
    Edit("lone_cr_after_declaration", decl(DECL + "\r"), []),
    Edit("no_declaration", decl(""), []),
    Edit("declaration_no_encoding", decl('<?xml version="1.0"?>'), []),
    Edit("declaration_utf8_no_hyphen", decl('<?xml version="1.0" encoding="utf8"?>'), "raise"),
    Edit("declaration_utf8_no_hyphen_ascii", lambda s: decl('<?xml version="1.0" encoding="utf8"?>')(ascii_only(s)), []),
    Edit("declaration_single_quotes", decl("<?xml version='1.0' encoding='UTF-8'?>"), []),
    Edit("declaration_spaces", decl('<?xml version = "1.0"  encoding = "UTF-8" ?>\n\n'), []),
    Edit("bom", lambda s: "\ufeff" + s, []),
    Edit("bom_no_declaration", lambda s: "\ufeff" + decl("")(s), []),
    Edit("gbk", decl('<?xml version="1.0" encoding="GBK"?>'), "raise", encode="gbk"),
    Edit("gb2312_declared_utf8_bytes", decl('<?xml version="1.0" encoding="GB2312"?>'), None),
    Edit("latin1", lambda s: decl('<?xml version="1.0" encoding="ISO-8859-1"?>')(ascii_only(s)), []),
    Edit("latin1_bytes", lambda s: decl('<?xml version="1.0" encoding="ISO-8859-1"?>')(ascii_only(s)).replace("QX02", "QX\xe902"), [], encode="latin-1"),
    Edit("us_ascii", lambda s: decl('<?xml version="1.0" encoding="US-ASCII"?>')(ascii_only(s)), []),
    Edit("utf16", decl('<?xml version="1.0" encoding="UTF-16"?>'), [], encode="utf-16"),
    Edit("utf16_no_declaration", decl(""), [], encode="utf-16"),
    Edit("xml_1_1", decl('<?xml version="1.1" encoding="UTF-8"?>'), None),
    Edit("whitespace_before_root", decl("\n \n"), []),
    Edit("standalone_no", decl('<?xml version="1.0" encoding="UTF-8" standalone="no"?>'), []),
    # --- attributes
    Edit("single_quoted_cell", cell(NUM, f"<c r='{NUM}' s='14'><v>99</v></c>"), []),
    Edit("attributes_reordered", cell(NUM, f'<c s="14" r="{NUM}"><v>99</v></c>'), []),
    Edit("attributes_reordered_type", cell(NUM, f'<c t="n" r="{NUM}" s="14"><v>99</v></c>'), []),
    Edit("attributes_reordered_value_outside", after("K8", '<c s="1" r="L8"><v>5</v></c>'), [P.CELL_OUTSIDE_AREA]),
    Edit("cell_extra_attribute", cell(NUM, f'<c r="{NUM}" s="14" cm="1"><v>99</v></c>'), []),
    Edit("cell_ph_attribute", cell(NUM, f'<c r="{NUM}" s="14" t="n" ph="1"><v>99</v></c>'), []),
    Edit("style_leading_zeros", cell(NUM, f'<c r="{NUM}" s="0014"><v>99</v></c>'), []),
    Edit("style_negative", cell(NUM, f'<c r="{NUM}" s="-1"><v>99</v></c>'), []),
    Edit("style_word", cell(NUM, f'<c r="{NUM}" s="x"><v>99</v></c>'), []),
    Edit("style_empty_cell_word", cell(EMPTY_IN, f'<c r="{EMPTY_IN}" s="x"/>'), []),
    Edit("style_huge", cell(NUM, f'<c r="{NUM}" s="99999999999"><v>99</v></c>'), []),
    Edit("ref_entity", cell(NUM, '<c r="G&#56;" s="14"><v>99</v></c>'), []),
    Edit("ref_amp_entity", cell(NUM, '<c r="G8&amp;" s="14"><v>99</v></c>'), [P.SHEET_ANOMALY]),
    Edit("ref_lower_case", cell(NUM, f'<c r="{NUM.lower()}" s="14"><v>99</v></c>'), []),
    Edit("ref_lower_case_dup", after(NUM, f'<c r="{NUM.lower()}"><v>99</v></c>'), [P.DUPLICATE_CELL]),
    Edit("ref_absolute", cell(NUM, '<c r="$G$8" s="14"><v>99</v></c>'), []),
    Edit("ref_leading_zero", cell(NUM, '<c r="G08" s="14"><v>99</v></c>'), []),
    Edit("ref_leading_zero_dup", after(NUM, '<c r="G0008"><v>99</v></c>'), [P.DUPLICATE_CELL]),
    Edit("ref_padded", cell(NUM, '<c r=" G8 " s="14"><v>99</v></c>'), []),
    Edit("ref_tab", cell(NUM, '<c r="G8\t" s="14"><v>99</v></c>'), []),
    Edit("ref_A0", before_end('<row r="30"><c r="A0"/></row>'), [P.SHEET_ANOMALY]),
    Edit("ref_XFE1", after("K8", '<c r="XFE8"/>'), [P.SHEET_ANOMALY]),
    Edit("ref_XFD8_value", after("K8", '<c r="XFD8"><v>1</v></c>'), [P.CELL_OUTSIDE_AREA]),
    Edit("ref_row_too_big", before_end('<row r="1048576"><c r="A1048577"/></row>'), [P.SHEET_ANOMALY]),
    Edit("ref_8_digits", cell(NUM, '<c r="G00000008" s="14"><v>99</v></c>'), [P.SHEET_ANOMALY]),
    Edit("ref_7_digits", cell(NUM, '<c r="G0000008" s="14"><v>99</v></c>'), []),
    Edit("ref_missing", cell(NUM, '<c s="14"><v>99</v></c>'), []),
    Edit("ref_missing_all", lambda s: re.sub(r'<c r="[A-Z]+[0-9]+"', "<c", s), []),
    Edit("ref_empty", cell(NUM, '<c r="" s="14"><v>99</v></c>'), [P.SHEET_ANOMALY]),
    Edit("row_leading_zeros", sub(r'<row r="8"', '<row r="08"'), []),
    Edit("row_many_leading_zeros", sub(r'<row r="8"', '<row r="0000008"'), []),
    Edit("row_0", sub(r'<row r="8"', '<row r="0"'), [P.SHEET_ANOMALY]),
    Edit("row_max", before_end('<row r="1048576"/>'), []),
    Edit("row_too_big", before_end('<row r="1048577"/>'), [P.SHEET_ANOMALY]),
    Edit("row_8_digits", before_end('<row r="10000000"/>'), [P.SHEET_ANOMALY]),
    Edit("row_float", sub(r'<row r="8"', '<row r="8.0"'), []),
    Edit("row_exponent", sub(r'<row r="8"', '<row r="8e0"'), []),
    Edit("row_negative", sub(r'<row r="8"', '<row r="-8"'), [P.SHEET_ANOMALY]),
    Edit("row_padded", sub(r'<row r="8"', '<row r=" 8 "'), []),
    Edit("row_word", sub(r'<row r="8"', '<row r="eight"'), [P.SHEET_ANOMALY]),
    Edit("row_missing", sub(r'<row r="8"', "<row"), []),
    Edit("row_missing_all", lambda s: re.sub(r'<row r="[0-9]+"', "<row", s), []),
    Edit("row_entity", sub(r'<row r="8"', '<row r="&#56;"'), []),
]


def ascii_only(s: str) -> str:
    """The sheet with every non-ASCII character as a character reference (valid in any ASCII-based encoding)."""
    return "".join(ch if ord(ch) < 128 else f"&#{ord(ch)};" for ch in s)


def _base(kind: str, clean: bytes) -> tuple[bytes, Strings]:
    if kind == "openpyxl":
        return clean, Strings({i: f"共享文字{i}" for i in range(64)})
    return excel_like(clean)


@pytest.fixture(scope="module")
def bases(clean):
    return {k: _base(k, clean) for k in ("openpyxl", "excel")}


def _apply(edit: Edit, data: bytes, strings: Strings) -> tuple[bytes, Strings]:
    new = edit.fn(data.decode("utf-8")).encode(edit.encode)
    if edit.shared:
        if strings.sst is not None:
            known = strings.all()
            table = {**known, **edit.shared}
            items = "".join(f"<si><t>{edit.shared[i] if i in edit.shared else escape(known.get(i, ''))}</t></si>" for i in range(max(table) + 1))
            strings = Strings(sst=f'<sst xmlns="{MAIN}">{items}</sst>'.encode())
        else:
            strings = Strings({**strings.table, **{i: X.xml_text(t.encode()) for i, t in edit.shared.items()}})
    return new, strings


@pytest.mark.parametrize("base", ["openpyxl", "excel"])
@pytest.mark.parametrize("edit", EDITS, ids=[e.name for e in EDITS])
def test_hostile_edit(bases, area, base, edit):
    data, strings = bases[base]
    new, strings = _apply(edit, data, strings)
    if new == data:
        pytest.skip("the base sheet is already so")
    _, e = differential(new, area, strings, base=data)
    if edit.expect == "raise":
        assert e.error is not None, [x.render() for x in e.after_finish]
    elif edit.expect is not None:
        assert e.error is None, e.error
        assert codes(e) == edit.expect, [x.render() for x in e.after_finish]


READ_FIELDS = ("problems", "cells", "identity", "unit_id", "template_unit", "claimed_unit", "fingerprint")


def read_both(xlsx: bytes, name: str, catalog, registry, monkeypatch) -> tuple[list, object]:
    """The whole read (``read_workbook_bytes``) as it is, then with the plain pass switched off:
    the same result. Returns what the plain pass answered, and the result."""
    real, answers = X.plain_pass, []

    def spy(scan, data):
        answers.append(real(scan, data))
        return answers[-1]

    def read():
        try:
            return read_workbook_bytes(xlsx, name, catalog, registry)
        except Exception as exc:  # noqa: BLE001 - the same crash either way (isolation reports it)
            return (type(exc), str(exc))

    with monkeypatch.context() as m:
        m.setattr(X, "plain_pass", spy)
        plain = read()
        m.setattr(X, "plain_pass", lambda scan, data: False)
        exact = read()
    if isinstance(exact, tuple) or isinstance(plain, tuple):
        assert plain == exact
        return answers, plain
    for key in READ_FIELDS:
        assert getattr(plain, key) == getattr(exact, key), f"the read differs in {key} (plain pass answered {answers})"
    return answers, plain


@pytest.mark.parametrize("edit", EDITS, ids=[e.name for e in EDITS])
def test_hostile_edit_whole_read(mini_catalog, registry, ctx, monkeypatch, edit):
    """Each edit in a real workbook, read end to end (fixed-cell check, identity, input values)
    after a clean file of the same template primed the reader's per-template memo."""
    answers, res = read_both(ctx.good, f"{UNIT}_clean.xlsx", mini_catalog, registry, monkeypatch)
    assert answers == [True] and not res.problems
    bad = rezip(ctx.good, edit={FORM: lambda b: _apply(edit, b, Strings())[0]})
    read_both(bad, f"{UNIT}_{edit.name}.xlsx", mini_catalog, registry, monkeypatch)


@pytest.mark.parametrize("year", [2024, 2025])
def test_bundled_submissions_whole_read(year, monkeypatch):
    cat, reg, files = _year(year)
    if not files:
        pytest.skip(f"no bundled submissions for {year}")
    took = 0
    for path in files:
        answers, _ = read_both(path.read_bytes(), path.name, cat, reg, monkeypatch)
        took += answers == [True]
    assert took >= 10


def test_shared_string_escapes_from_the_strings_part(clean, area):
    """``_x0001_`` in sharedStrings.xml, written plainly, as ``&#95;x0001_`` or in runs: refused after either pass."""
    data, strings = excel_like(clean)
    known = strings.all()
    n = len(known)
    for written in ("<t>见附件_x0001_</t>", "<t>见附件&#95;x0001_</t>", "<r><t>见附件</t></r><r><t>_x0001_</t></r>", "<t>见附件_x0041_</t>"):
        items = "".join(f"<si><t>{escape(known[i])}</t></si>" for i in range(n)) + f"<si>{written}</si>"
        sst = f'{DECL}<sst xmlns="{MAIN}">{items}</sst>'.encode()
        new = cell(NUM, f'<c r="{NUM}" s="14" t="s"><v>{n}</v></c>')(cell(TEXT, f'<c r="{TEXT}" s="8" t="s"><v>{n}</v></c>')(data.decode()))
        p, e = differential(new.encode(), area, Strings(sst=sst))
        assert p.plain
        bad = [] if "x0041" in written else [(Code.CONTROL_CHARS, TEXT), (Code.CONTROL_CHARS, NUM)]
        assert [(x.code, x.cell) for x in e.after_finish] == bad


@pytest.mark.parametrize("lim", [{"cells": 50}, {"cells": 242}, {"cells": 243}, {"merges": 3}, {"merges": 25}, {"merges": 24}, {"max_problems": 1}], ids=str)
def test_limits(bases, area, lim):
    for data, strings in bases.values():
        for new in (data, after(NUM, f'<c r="{NUM}"/>')(data.decode()).encode(), merge(f"{NUM}:{BELOW}")(data.decode()).encode()):
            differential(new, area, strings, limits(**lim))


def test_other_areas(bases):
    """The area decides what is outside: a shrunk or shifted area on the same sheets."""
    for data, strings in bases.values():
        for a in [(1, 1, 7, 11), (8, 7, 9, 7), (1, 1, 22, 10), (5, 2, 30, 12), (9, 11, 9, 11), (100, 1, 200, 5)]:
            differential(data, a, strings)


# ----------------------------------------------------------------- mutated sheets (hypothesis)

FRAGMENTS = [
    f'<c r="{NUM}"><v>5</v></c>', f'<c r="{HIDDEN}" t="inlineStr"><is><t>x</t></is></c>', '<c r="L8"><v>1</v></c>', '<c r="L8"/>',
    '<c r="G9" t="s"><v>3</v></c>', '<c r="A1"/>', '<c r="K22" t="b"><v>1</v></c>', '<c r="XFD1048576"/>',
    '<row r="8">', "</row>", '<row r="30"/>', '<row r="9"></row>', '<row r="23">', '<row xmlns="urn:o" r="31"><c r="A31"><v>1</v></c></row>',
    "<!-- c -->", "<![CDATA[9]]>", "<?pi x?>", "\r\n", "\n", " ", "\t", "\r", "x", "&amp;", "&#160;", "\u3000", "\xa0", "_x0001_", "&#95;x0001_",
    "<f>1+1</f>", "<v>NaN</v>", "<v>1e999</v>", "<v>7</v>", "<is><t>y</t></is>", "<sheetData>", "</sheetData>", "<extLst/>",
    f'<x:c xmlns:x="{MAIN}" r="{NUM}"><x:v>1</x:v></x:c>', f'<mergeCell ref="{NUM}:{BELOW}"/>', '<mergeCell ref="M1:\tN2"/>',
    '<mergeCells count="1"><mergeCell ref="A1:B1"/></mergeCells>', "<mergeCells>", "</mergeCells>", '<mergeCell ref="K7:K8"/>',
    ' t="s"', ' t="b"', ' t="e"', ' t="str"', ' t="inlineStr"', ' s="3"', ' xmlns="urn:o"', f' xmlns="{MAIN}"', ' r="G8"',
    "<!DOCTYPE x>", "<", ">", "/>", '"', "'", "</c>", "<c>", "</is>", "</t>", "</v>", '<t xml:space="preserve">',
]
VALUES = [
    "", " ", "NaN", "inf", "1e999", "12", "-3.5", "0", "1", "2", "\u3000", "&#160;", "\xa0 ", "_x0001_", "&#95;x0001_", "true",
    "x", "&amp;", "\r\n", "\n", "99999999999999999999", "３", "\u00b2", "+.5", "7.", "#N/A", "a > b", "是", "_x202E_",
]
#: pieces of a value's text: digits, signs, spaces and their character references, escapes
PIECES = [
    "0", "1", "3", "9", ".", "+", "-", "e", "E", "x", "_", "_x", "0001", "001F", "202E", "_x0007_", "nan", "inf", "１", "\u0663", "\u00b2",
    " ", "\t", "\n", "\xa0", "\u3000", "\u2003", "\u2028", "\x85", "\u180e", "\u200b", "&#32;", "&#160;", "&#x3000;", "&#95;", "&#120;",
    "&#48;", "&#13;", "&amp;", "&lt;", "&gt;", "&quot;", ">", "是", "\xa9",
]
_BOUNDARY = re.compile(rb"<|(?<=>)")
_TOKEN = re.compile(rb"<[^<>]*>|[^<]+")
_CELL = re.compile(rb'<c [^>]*?(?:/>|>.*?</c>)', re.DOTALL)
_ROW_EL = re.compile(rb'<row [^>]*?(?:/>|>.*?</row>)', re.DOTALL)
_VALUE = re.compile(rb"(?<=<v>)[^<]*(?=</v>)|(?<=<t>)[^<]*(?=</t>)|(?<=<t xml:space=\"preserve\">)[^<]*(?=</t>)")
_ATTR_VALUE = re.compile(rb'(?<= [rst]=")[^"]*')
ATTR_VALUES = [b"G8", b"G9", b"K9", b"L8", b"A0", b"g8", b"G08", b"08", b"9", b"7", b"0", b"s", b"b", b"e", b"n", b"str", b"inlineStr", b"x", b"", b"3", b"1048577"]


def _pick(draw, seq):
    return seq[draw(st.integers(0, len(seq) - 1))] if seq else None


def mutate_once(draw, data: bytes, how: str) -> bytes:
    if how in ("insert", "insert_anywhere"):
        frag = draw(st.sampled_from(FRAGMENTS)).encode("utf-8")
        if how == "insert":
            at = _pick(draw, [m.start() for m in _BOUNDARY.finditer(data)])
        else:
            at = draw(st.integers(0, len(data)))
        return data[:at] + frag + data[at:]
    if how == "delete":
        m = _pick(draw, list(_TOKEN.finditer(data)))
        return data[: m.start()] + data[m.end():]
    if how in ("duplicate_cell", "duplicate_row"):
        found = list((_CELL if how == "duplicate_cell" else _ROW_EL).finditer(data))
        if found:
            m, to = _pick(draw, found), _pick(draw, found)
            data = data[: to.end()] + m.group(0) + data[to.end():]
        return data
    if how == "swap":
        found = list(_CELL.finditer(data))
        if len(found) >= 2:
            i = draw(st.integers(0, len(found) - 2))
            j = draw(st.integers(i + 1, min(len(found) - 1, i + 30)))
            a, b = found[i], found[j]
            data = data[: a.start()] + b.group(0) + data[a.end(): b.start()] + a.group(0) + data[b.end():]
        return data
    if how in ("value", "value_text"):
        m = _pick(draw, list(_VALUE.finditer(data)))
        if m is not None:
            new = draw(st.sampled_from(VALUES)) if how == "value" else "".join(draw(st.lists(st.sampled_from(PIECES), max_size=6)))
            data = data[: m.start()] + new.encode("utf-8") + data[m.end():]
        return data
    m = _pick(draw, list(_ATTR_VALUE.finditer(data)))  # "attr"
    if m is not None:
        data = data[: m.start()] + draw(st.sampled_from(ATTR_VALUES)) + data[m.end():]
    return data


#: what a mutation does, weighted towards those that leave a sheet the plain pass may still take
MUTATIONS = ["insert"] * 3 + ["insert_anywhere", "delete", "duplicate_cell", "duplicate_row", "swap"] + ["value", "value_text"] * 2 + ["attr"] * 3


@st.composite
def mutated(draw, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        data = mutate_once(draw, data, draw(st.sampled_from(MUTATIONS)))
    return data


@settings(max_examples=250, deadline=None, database=None)
@given(st.data())
def test_mutated_sheets(bases, area, data):
    kind = data.draw(st.sampled_from(sorted(bases)))
    sheet, strings = bases[kind]
    differential(data.draw(mutated(sheet)), area, strings, base=sheet)


# ----------------------------------------------------------------- what the pass remembers
#
# The plain pass judges each piece of sheetData between two "</row>" tags once per process
# and remembers it by its bytes (with the sheet's area and root tag), and the part outside
# sheetData by its bytes. A remembered piece must never carry a verdict into a sheet where
# it does not hold: out of order, duplicated, in a root that does not declare its prefixes,
# next to a malformed outside part.


def _rows(sheet: bytes) -> list[bytes]:
    return re.findall(rb'<row r="[0-9]+"[^>]*?(?:/>|>.*?</row>)', sheet, re.S)


def _taught(sheet: bytes, area, strings: Strings | None = None) -> None:
    X.forget()
    p, _ = differential(sheet, area, strings)
    assert p.plain
    outcome(sheet, area, strings or Strings(), limits(), plain=True)  # differential forgot: learn again


@pytest.mark.parametrize("kind", ["openpyxl", "excel"])
def test_known_rows_out_of_order_or_twice(bases, area, kind):
    sheet, strings = bases[kind]
    rows = _rows(sheet)
    for edit in (
        sheet.replace(rows[3], b"\0").replace(rows[7], rows[3]).replace(b"\0", rows[7]),  # swapped
        sheet.replace(rows[5], rows[5] + rows[5]),  # twice
        sheet.replace(rows[5], rows[5] + rows[2]),  # an earlier one again
        sheet.replace(rows[0], b""),  # one left out: still in order, the plain pass may take it
    ):
        _taught(sheet, area, strings)
        p, e = differential(edit, area, strings)
        assert p.plain == (e.after_run == [] and e.error is None and edit.count(b"<row ") < sheet.count(b"<row "))


def test_known_rows_in_a_root_without_their_prefix(bases, area):
    """The Excel-like rows carry x14ac:dyDescent: in a root that does not declare x14ac they are
    not well-formed, although the same bytes were fine in the root that does."""
    sheet, strings = bases["excel"]
    bare = sheet.replace(b' xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac"', b"")
    assert bare != sheet
    _taught(sheet, area, strings)
    p, e = differential(bare, area, strings)
    assert not p.plain and e.error is not None and e.error[1] == Code.XML_MALFORMED


def test_known_rows_beside_a_malformed_outside(bases, area):
    for kind in ("openpyxl", "excel"):
        sheet, strings = bases[kind]
        tail = sheet.rindex(b"</worksheet>")
        for bad in (b'<pageMargins left="1" left="2"/>', b"<x>&bogus;</x>", b"<y></z>"):
            edit = sheet[:tail] + bad + sheet[tail:]
            _taught(sheet, area, strings)
            p, e = differential(edit, area, strings)
            assert not p.plain and e.error is not None and e.error[1] == Code.XML_MALFORMED


def test_a_new_row_malformed_among_known_ones(bases, area):
    sheet, strings = bases["openpyxl"]
    rows = _rows(sheet)
    target = next(r for r in rows if b"<c " in r and b"/>" in r)
    for attrs in (b' ht="1" ht="2"', b" ht=", b' x:y="1"', b' ht="&bogus;"'):
        edit = sheet.replace(target, re.sub(rb'^(<row r="[0-9]+")', lambda m: m.group(1) + attrs, target))
        assert edit != sheet
        _taught(sheet, area, strings)
        p, e = differential(edit, area, strings)
        assert not p.plain and e.error is not None, attrs


def test_the_warm_run_reuses_what_the_base_taught(bases, area):
    """differential(base=...) runs the plain pass with the base sheet's rows remembered: an edit of
    one row leaves every other row to the memo, and the edited row is judged from the base's row
    with the same head (the fuzzed and hand-written edits rely on it)."""
    sheet, strings = bases["openpyxl"]
    rows = _rows(sheet)
    target = next(r for r in rows if b"<is><t>" in r)
    edit = sheet.replace(target, target.replace(b"<is><t>", b"<is><t>x", 1))
    X.forget()
    for _ in range(2):
        outcome(sheet, area, strings, limits(), plain=True)
    judged: list[bytes] = []
    by_ref: list = []
    real, real_ref = X._piece, X._by_reference
    try:
        X._piece = lambda parts, *a, **k: judged.append(b"<c ".join(parts)) or real(parts, *a, **k)
        X._by_reference = lambda parts, *a: by_ref.append((b"<c ".join(parts), real_ref(parts, *a))) or by_ref[-1][1]
        assert outcome(sheet, area, strings, limits(), plain=True).plain
        assert judged == [] and by_ref == []  # every row came from the memo
        assert outcome(edit, area, strings, limits(), plain=True).plain
        assert judged == []
        assert len(by_ref) == 1 and by_ref[0][0] + b"</row>" == target.replace(b"<is><t>", b"<is><t>x", 1)
        meaning, changed = by_ref[0][1]
        assert len(changed) == 1 and changed[0].startswith(b'r="') and b"<is><t>x" in changed[0]
    finally:
        X._piece, X._by_reference = real, real_ref


@pytest.mark.parametrize(
    "text",
    [b"x]]>y", b"&bogus;", b"&#1;", b"\xff\xfe", b"\x01", b"a&amp;b", b"_x0001_", "全角１２".encode(), b" ", b""],
    ids=["cdata-end", "entity", "char-ref-1", "bad-utf8", "control", "amp", "escaped-control", "cjk", "blank", "empty"],
)
def test_a_row_judged_from_its_reference(bases, area, text):
    """A new row with a known head is judged from its reference, the first row proved with that
    head: only its changed cells are judged (:func:`kaohe.xlsx._judge`) and proved well-formed,
    on their own. Texts only that proof refuses (']]>', an unknown entity, a character that XML
    does not allow, bytes that are not UTF-8) must be refused as the exact pass refuses them."""
    sheet, strings = bases["openpyxl"]
    target = next(r for r in _rows(sheet) if re.search(rb'<c r="G[0-9]+"[^>]*t="inlineStr"><is><t>', r))
    edited = re.sub(rb'(<c r="G[0-9]+"[^>]*t="inlineStr"><is><t>)[^<]*', lambda m: m.group(1) + text, target, count=1)
    assert edited != target or text == b""
    edit = sheet.replace(target, edited)
    if edited != target:
        # the reference decided: a meaning (the proof of the changed cell then decides), or
        # False when the judging refuses the cell (an escaped control character)
        assert _warm_verdicts(sheet, edit, area, strings) == [text != b"_x0001_" or False]
    p, e = differential(edit, area, strings, base=sheet)
    assert p.plain == (text in (b"a&amp;b", "全角１２".encode(), b" ", b""))


@pytest.mark.parametrize("text", [b"a&amp;\xffb", b"\xc2\xa0\xff", b"_x\xff"], ids=["amp", "nbsp-lead", "escape"])
def test_bytes_not_utf8_in_a_text_the_plain_pass_reads(bases, area, text):
    """The plain pass reads a cell's text before expat proves the piece where it may hold a
    non-breaking space, an entity or an escape: bytes there that are not UTF-8 are refused as
    the exact pass refuses them (P119 at the cell), warm and cold, not let out as a decoding error."""
    sheet, strings = bases["openpyxl"]
    target = next(r for r in _rows(sheet) if re.search(rb'<c r="G[0-9]+"[^>]*t="inlineStr"><is><t>', r))
    edit = sheet.replace(target, re.sub(rb'(<c r="G[0-9]+"[^>]*t="inlineStr"><is><t>)[^<]*', lambda m: m.group(1) + text, target, count=1))
    p, e = differential(edit, area, strings, base=sheet)
    assert not p.plain and e.error is not None and e.error[:2] == (X.XmlRefused, Code.XML_MALFORMED)


def _warm_verdicts(base: bytes, data: bytes, area, strings: Strings) -> list:
    """What :func:`kaohe.xlsx._by_reference` said of each piece of ``data`` it was asked about,
    after ``base`` was read twice (True: a meaning)."""
    X.forget()
    for _ in range(2):
        outcome(base, area, strings, limits(), plain=True)
    taken: list = []
    real = X._by_reference
    try:
        X._by_reference = lambda *a: taken.append(real(*a)) or taken[-1]
        outcome(data, area, strings, limits(), plain=True)
    finally:
        X._by_reference = real
    return [t if t in (None, False) else True for t in taken]


def test_rows_that_leave_their_reference_are_judged_from_scratch(bases, area):
    """A row with a known head whose cells moved, or grew in number, is not the reference's shape:
    judged whole (and the sheet's verdict is the exact pass's)."""
    sheet, strings = bases["openpyxl"]
    target = next(r for r in _rows(sheet) if re.search(rb'<c r="G[0-9]+"', r))
    g = re.search(rb'<c r="G([0-9]+)"', target)
    row = g.group(1)
    for edited in (
        target.replace(b'<c r="G' + row + b'"', b'<c r="L' + row + b'"', 1),  # outside the area, out of order
        target.replace(b'<c r="G' + row + b'"', b'<c r="H' + row + b'"', 1),  # the next cell's position: twice
        target.replace(b'<c r="G' + row + b'"', b'<c r="G' + str(int(row) + 1).encode() + b'"', 1),  # another row's
        target.replace(b"</row>", b'<c r="Z' + row + b'"/></row>'),  # one cell more
        target.replace(g.group(0), b'<c r="G' + row + b'"/>' + g.group(0).replace(b"G", b"F"), 1),
    ):
        assert edited != target
        edit = sheet.replace(target, edited)
        assert _warm_verdicts(sheet, edit, area, strings) in ([None], [False])
        differential(edit, area, strings, base=sheet)
