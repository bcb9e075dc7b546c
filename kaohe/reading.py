"""Stage 1, read: one returned workbook → its fingerprint, identity and raw input cells.

Order: pre-flight checks the bytes and the zip container (:mod:`kaohe.preflight`);
the fingerprint is read from the hidden sheet, which gives the unit and its
layout; one bounded pass over the input sheet (:mod:`kaohe.xlsx`) then checks
its structure against that layout and keeps its cells. Values are taken by
the addresses of the unit's template layout, never by scanning rows. Everything the unit can get wrong becomes a ``Problem`` in
the result; nothing here raises for a bad workbook (a ``MemoryError`` is let
through for :mod:`kaohe.isolation` to report).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kaohe import layout as L
from kaohe import preflight
from kaohe.catalog import Catalog
from kaohe.errors import Code, Problem
from kaohe.parsing import RawCell, normalize_text
from kaohe.registry import Registry
from kaohe.xlsx import remembered

if TYPE_CHECKING:  # pragma: no cover
    from kaohe.submission import Submission

_FILENAME_UNIT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]{0,31})_")


@dataclass
class ReadResult:
    """What reading one file produced. ``unit_id`` is set once the fingerprint names a known unit."""

    file: str
    sha256: str
    size: int
    unit_id: str | None = None
    #: the unit the file name says sent it, when that differs from the template's unit
    claimed_unit: str | None = None
    fingerprint: dict[str, str] = field(default_factory=dict)
    cells: dict[str, RawCell] = field(default_factory=dict)
    identity: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: the unit whose own, current template this file verifiably is (fingerprint and layout
    #: digest match), even when the file is then refused: it still counts as one of its files
    template_unit: str | None = None
    #: the parsed submission (``kaohe.submission.ingest_file`` reads and parses in one step)
    submission: "Submission | None" = None

    def problem(self, code: Code, message: str, expected: str = "", sheet: str = "", cell: str = "") -> None:
        self.problems.append(Problem(code, self.file, message, expected, sheet, cell))


def sniff(data: bytes) -> str | None:
    """A Chinese explanation when the bytes are plainly not an .xlsx, else None (see :mod:`kaohe.preflight`)."""
    found = preflight.sniff(data)
    return found[1] if found else None


def _cell_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return normalize_text(str(v))


def read_workbook(path: str | Path, catalog: Catalog, registry: Registry, *, name: str | None = None) -> ReadResult:
    path = Path(path)
    name = name or path.name
    cap = preflight.LIMITS.file_bytes
    with path.open("rb") as fh:
        data = fh.read(cap + 1)
        if len(data) > cap:
            # never hold an oversized file in memory: hash the rest as it streams past
            h, size = hashlib.sha256(data), len(data)
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
            res = ReadResult(file=name, sha256=h.hexdigest(), size=size)
            res.claimed_unit = unit_from_filename(name, registry)
            res.problems.append(
                Problem(
                    Code.FILE_TOO_LARGE,
                    name,
                    f"文件过大({size / preflight.MB:.1f} MB,上限 {cap // preflight.MB} MB),自评表正常只有几十 KB,请删除插入的图片等内容后重新保存",
                    preflight.EXPECTED,
                )
            )
            return res
    return read_workbook_bytes(data, name, catalog, registry)


def unit_from_filename(name: str, registry: Registry) -> str | None:
    """The registered unit a file name starts with (``QX01_...``), if any."""
    m = _FILENAME_UNIT.match(name)
    return m.group(1) if m and m.group(1) in registry else None


def read_workbook_bytes(data: bytes, name: str, catalog: Catalog, registry: Registry) -> ReadResult:
    """Pre-flight (container) → fingerprint → the input sheet's bounded pass (checks and values).

    Every XML parser that sees the file refuses DOCTYPEs and works on parts whose
    size and element count pre-flight has bounded; values are read only from a
    sheet that passed every check.
    """
    res = ReadResult(file=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    # until the fingerprint says otherwise, the file belongs to the unit its name gives
    res.claimed_unit = unit_from_filename(name, registry)
    problems, pkg = preflight.open_package(data, name)
    if pkg is None:
        res.problems.extend(problems)
        return res
    with pkg:
        lay = _read_fingerprint(pkg, res, catalog, registry)
        if lay is None:
            return res
        res.template_unit = lay.unit.unit_id
        if L.FORM_SHEET not in pkg.sheets:
            res.problem(Code.SHEET_MISSING, f"缺少工作表「{L.FORM_SHEET}」", "不要删除或重命名工作表")
            return res
        sheet = preflight.read_sheet(pkg, L.FORM_SHEET, lay)
    if sheet.problems:
        res.problems.extend(sheet.problems)
        return res
    _read_form(sheet, res, lay)
    return res


def _read_fingerprint(pkg: preflight.Package, res: ReadResult, catalog: Catalog, registry: Registry) -> L.Layout | None:
    """The template's fingerprint (streamed from the hidden sheet) → the unit's layout, or None."""
    if L.META_SHEET not in pkg.sheets:
        res.problem(Code.FINGERPRINT_MISSING, "工作簿中没有考核办模板的校验信息,不是下发的自评表或已被另存为新文件", "使用考核办下发的自评表填报")
        return None
    try:
        cells = pkg.read_values(L.META_SHEET, len(L.META_KEYS), 2)
    except preflight.Rejected:
        cells = {}
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - a malformed hidden sheet is this file's problem only
        cells = {}
    fp: dict[str, str] = {}
    for r, key in enumerate(L.META_KEYS, start=1):
        k, v = cells.get((r, 1), ""), cells.get((r, 2), "")
        if normalize_text(k) == key:
            fp[key] = normalize_text(v)
    res.fingerprint = fp
    if fp.get("mark") != L.META_MARK or len(fp) != len(L.META_KEYS):
        res.problem(Code.FINGERPRINT_MISSING, "模板校验信息不完整或已被改动", "使用考核办下发的自评表填报", sheet=L.META_SHEET)
        return None
    if fp["year"] != str(catalog.year):
        res.problem(Code.FINGERPRINT_YEAR, f"这是 {fp['year']} 年度的自评表,本次考核为 {catalog.year} 年度", f"{catalog.year} 年度自评表")
        return None
    if fp["catalog_hash"] != catalog.content_hash:
        res.problem(Code.FINGERPRINT_CATALOG, "自评表依据的指标体系与本次考核的指标体系不一致(可能是旧版模板)", "考核办最新下发的自评表")
        return None
    if fp["template_version"] != str(catalog.template_version) or fp["layout_version"] != str(L.LAYOUT_VERSION):
        res.problem(Code.FINGERPRINT_TEMPLATE, "自评表模板版本与本次考核不一致", "考核办最新下发的自评表")
        return None
    unit = registry.get(fp["unit_id"])
    if unit is not None:
        res.claimed_unit = None
    if unit is None:
        res.problem(Code.UNIT_UNKNOWN, f"自评表所属单位代码 {fp['unit_id']} 不在考核对象名录中", "本单位的自评表")
        return None
    lay = L.layout(catalog, unit)
    if fp["layout_digest"] != lay.digest:
        res.problem(Code.FINGERPRINT_TEMPLATE, "自评表与考核对象名录中本单位的信息(考核组、标签)不一致,可能是旧版模板", "考核办最新下发的自评表")
        return None
    named = unit_from_filename(res.file, registry)
    if named and named != unit.unit_id:
        other = registry.get(named)
        res.claimed_unit = other.unit_id
        res.problem(
            Code.UNIT_MISMATCH,
            f"文件名显示为{other.unit_name}({other.unit_id}),但文件是{unit.unit_name}({unit.unit_id})的自评表",
            f"使用本单位({other.unit_name})的自评表",
        )
        return None
    return lay


#: per template body (the items part, shared by one group's units): the positions of its fixed
#: cells, and their tokens in a plain sheet that passed the cell-by-cell check with no shared
#: string among them (what the same writer writes again for every unit of the group)
_FIXED: dict[L.Body, tuple[tuple, tuple | None]] = {}


#: per number-format table (styles.xml), the raw cell each plain token of an input cell stands for:
#: a cell's token (its address, style, type and stored text) and the formats decide its value, and
#: most input cells (是/否, grades, blanks, small counts) recur from file to file
_CELLS: dict[tuple[str, ...], dict[bytes, RawCell]] = {}


def _read_form(sheet: preflight.SheetRead, res: ReadResult, lay: L.Layout) -> None:
    """Fixed-cell integrity, identity and the input cells, by the template's addresses."""
    _check_fixed(sheet, res, L.fixed_texts(lay.head_fixed))
    known = _FIXED.get(lay.body)
    if known is None:
        if len(_FIXED) >= 1024:
            _FIXED.clear()
        known = _FIXED[lay.body] = (tuple(preflight.parse_ref(a) for a, _ in lay.body.fixed), None)
    positions, intact = known
    tokens = sheet.tokens(positions)
    if tokens is None or tokens != intact:
        before = len(res.problems)
        _check_fixed(sheet, res, lay.body.fixed_texts)
        if tokens is not None and len(res.problems) == before and not any(t is not None and t[6] == b"s" for t in tokens):
            _FIXED[lay.body] = (positions, tokens)  # the same bytes hold the same texts
    res.unit_id = lay.unit.unit_id
    res.identity = {key: _cell_text(sheet.value(address)[0]) for key, (_, _, address) in L.INPUT_IDENTITY.items()}
    known = remembered(_CELLS, sheet.formats, dict, at_most=4)
    if len(known) > 20_000:
        known.clear()
    token = sheet.raw_tokens().get
    cells = res.cells
    for _item, _key, _spec, address, pos in lay.body.inputs:
        tok = token(pos)
        if tok is not None and tok[6] != b"s" and len(tok[0]) <= 256:  # (a long text does not recur)
            cell = known.get(tok[0])
            if cell is None:
                cell = known[tok[0]] = RawCell(address, *sheet.value_at(pos))
        else:  # none, a shared string (its text is in another part), or a sheet the exact pass read
            cell = RawCell(address, *sheet.value_at(pos))
        cells[address] = cell


def _check_fixed(sheet: preflight.SheetRead, res: ReadResult, texts: tuple[tuple[str, str, str], ...]) -> None:
    """Every fixed cell holds the template's text."""
    for address, expected, normalized in texts:
        if sheet.text(address) == expected:
            continue  # the template's own text, as issued (the usual case, without building the value)
        actual = _cell_text(sheet.value(address)[0])
        if actual != normalized:
            res.problem(
                Code.TEMPLATE_EDITED,
                f"模板内容被修改:此处应为“{expected[:40]}”,实际为“{actual[:40]}”",
                "恢复考核办下发的原内容",
                sheet=L.FORM_SHEET,
                cell=address,
            )
