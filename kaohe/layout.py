"""Where everything sits in a unit's template: one pure function of (catalog, unit).

The template writer and the workbook reader both call :func:`layout`, so a
returned workbook is read by the addresses its template was written with,
never by scanning rows. The reader trusts nothing in the workbook about the
layout: it recomputes it from the catalog and the registry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from decimal import Decimal

from kaohe.catalog import Catalog, FieldSpec, Item
from kaohe.parsing import normalize_text
from kaohe.numbers import fmt_decimal  # noqa: F401 - the templates' number text, used as L.fmt_decimal
from kaohe.registry import Unit
from kaohe.xlsx import parse_ref

#: bump when the sheet layout changes; part of every template's fingerprint
LAYOUT_VERSION = 1

FORM_SHEET = "自评表"
GUIDE_SHEET = "填报说明"
META_SHEET = "_kaohe"
META_MARK = "kaohe-template"

# columns of the form sheet
COL_ID, COL_DIM, COL_TITLE, COL_CRITERION, COL_POINTS = "A", "B", "C", "D", "E"
COL_LABEL, COL_VALUE, COL_UNIT, COL_NA, COL_NA_REASON, COL_EVIDENCE = "F", "G", "H", "I", "J", "K"
LAST_COL = COL_EVIDENCE
HEADERS = {
    COL_ID: "指标编号",
    COL_DIM: "一级指标",
    COL_TITLE: "考核内容",
    COL_CRITERION: "评分标准",
    COL_POINTS: "分值",
    COL_LABEL: "填报项目",
    COL_VALUE: "填报值",
    COL_UNIT: "单位",
    COL_NA: "是否不适用",
    COL_NA_REASON: "不适用理由",
    COL_EVIDENCE: "佐证材料(文件名称、文号或链接)",
}
HEADER_ROW = 5
FIRST_ROW = 6

# identity block
ID_CELLS = {
    "unit_name": ("A2", "单位名称", "B2"),
    "unit_id": ("E2", "单位代码", "F2"),
    "group": ("G2", "考核组", "H2"),
    "year": ("J2", "考核年度", "K2"),
}
INPUT_IDENTITY = {
    "filler": ("A3", "填报人", "B3"),
    "phone": ("E3", "联系电话", "F3"),
}

SECTION_TITLES = {"bonus": "加分项目", "veto": "一票否决事项"}
CN_NUMERALS = "一二三四五六七八九十"



# pseudo-fields: the input cells an item has besides its own fields
NA_KEY, REASON_KEY, EVIDENCE_KEY = "__na", "__na_reason", "__evidence"
PSEUDO_SPECS = {
    NA_KEY: FieldSpec(key="na", label="是否不适用", type="yes_no", required=False),
    REASON_KEY: FieldSpec(key="na_reason", label="不适用理由", type="text", required=False, max_length=500),
    EVIDENCE_KEY: FieldSpec(key="evidence", label="佐证材料", type="text", required=False, max_length=1000),
}


def field_hint(spec: FieldSpec) -> str:
    """What a clerk must enter, in words; also used in feedback messages."""
    if spec.type == "yes_no":
        return "从下拉列表选择“是”或“否”"
    if spec.type == "grade":
        return "从下拉列表选择:" + "/".join(spec.choices)
    if spec.type == "text":
        return f"文字,不超过{spec.max_length}字"
    lo, hi = spec.lower, spec.upper
    if spec.type == "percent":
        return f"百分数,{fmt_decimal(lo)}–{fmt_decimal(hi)},如 95 或 95%"
    kind = "整数" if spec.type == "integer" else "数字"
    rng = f"{fmt_decimal(lo)}–{fmt_decimal(hi)}" if hi is not None else f"≥{fmt_decimal(lo)}"
    unit = spec.unit or ""
    return f"{kind},{rng}{unit}"



@dataclass(frozen=True)
class FieldCell:
    item_id: str
    key: str
    address: str
    spec: FieldSpec


@dataclass(frozen=True)
class ItemBlock:
    item: Item
    first_row: int
    last_row: int
    fields: tuple[FieldCell, ...]
    na_flag: str | None
    na_reason: str | None
    evidence: str | None
    #: cells whose text the office wrote and the unit must not change
    fixed: tuple[tuple[str, str], ...]

    @property
    def item_id(self) -> str:
        return self.item.id

    @cached_property
    def _inputs(self) -> tuple[tuple[str, FieldSpec, str], ...]:
        out = [(fc.key, fc.spec, fc.address) for fc in self.fields]
        for key, addr in ((NA_KEY, self.na_flag), (REASON_KEY, self.na_reason), (EVIDENCE_KEY, self.evidence)):
            if addr:
                out.append((key, PSEUDO_SPECS[key], addr))
        return tuple(out)

    def inputs(self) -> tuple[tuple[str, FieldSpec, str], ...]:
        """(key, spec, address) of every input cell of the item (computed once: a layout is frozen)."""
        return self._inputs


@dataclass(frozen=True)
class SectionRow:
    row: int
    text: str


@dataclass(frozen=True, eq=False)
class Body:
    """The items part of a template (section rows and item blocks), the same for every unit the
    same items apply to: built once per group, and what is derived from it with it."""

    blocks: tuple[ItemBlock, ...]
    sections: tuple[SectionRow, ...]
    last_row: int

    @cached_property
    def fixed(self) -> tuple[tuple[str, str], ...]:
        """The fixed cells of the items part (section rows, item texts)."""
        out: list[tuple[str, str]] = [(f"A{s.row}", s.text) for s in self.sections]
        for b in self.blocks:
            out.extend(b.fixed)
        return tuple(out)

    @cached_property
    def fixed_texts(self) -> tuple[tuple[str, str, str], ...]:
        return fixed_texts(self.fixed)

    @cached_property
    def inputs(self) -> tuple[tuple[str, str, FieldSpec, str, tuple[int, int]], ...]:
        """Every input cell of the items part, flat, in order: (item, key, spec, address,
        (row, column)), for the reader and parser that visit them in every file."""
        return tuple(
            (b.item_id, key, spec, address, parse_ref(address)) for b in self.blocks for key, spec, address in b.inputs()
        )

    @cached_property
    def digest_bytes(self) -> bytes:
        return _digest_bytes(self.fixed)


def _digest_bytes(cells: tuple[tuple[str, str], ...]) -> bytes:
    return "".join(f"{addr}\x1f{text}\x1e" for addr, text in cells).encode("utf-8")


@dataclass(frozen=True)
class Layout:
    year: int
    unit: Unit
    catalog_hash: str
    template_version: int
    blocks: tuple[ItemBlock, ...]
    sections: tuple[SectionRow, ...]
    last_row: int
    body: Body = field(compare=False, repr=False, default=None)  # type: ignore[assignment]

    @cached_property
    def fixed_cells(self) -> tuple[tuple[str, str], ...]:
        return self.head_fixed + self.body.fixed

    @cached_property
    def head_fixed(self) -> tuple[tuple[str, str], ...]:
        """The fixed cells above the items: headers, the unit's identity and the labels."""
        out: list[tuple[str, str]] = [(HEADERS_ADDR[c], t) for c, t in HEADERS.items()]
        for key, (label_addr, label, value_addr) in ID_CELLS.items():
            out.append((label_addr, label))
            out.append((value_addr, self.identity_value(key)))
        for label_addr, label, _ in INPUT_IDENTITY.values():
            out.append((label_addr, label))
        return tuple(out)

    def identity_value(self, key: str) -> str:
        return {
            "unit_name": self.unit.unit_name,
            "unit_id": self.unit.unit_id,
            "group": self.unit.group,
            "year": str(self.year),
        }[key]

    @cached_property
    def digest(self) -> str:
        """sha256 over every fixed cell's address and text: the template's content."""
        return hashlib.sha256(_digest_bytes(self.head_fixed) + self.body.digest_bytes).hexdigest()

    def fingerprint(self) -> dict[str, str]:
        return {
            "mark": META_MARK,
            "year": str(self.year),
            "unit_id": self.unit.unit_id,
            "catalog_hash": self.catalog_hash,
            "template_version": str(self.template_version),
            "layout_version": str(LAYOUT_VERSION),
            "layout_digest": self.digest,
        }

    @property
    def area(self) -> str:
        """The rectangle the template occupies; nothing may stand outside it."""
        return f"A1:{LAST_COL}{self.last_row}"


HEADERS_ADDR = {c: f"{c}{HEADER_ROW}" for c in HEADERS}


def fixed_texts(cells: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, str], ...]:
    """(address, text, text as a reader compares it) of fixed cells."""
    return tuple((a, t, normalize_text(t)) for a, t in cells)
META_KEYS = (
    "mark",
    "year",
    "unit_id",
    "catalog_hash",
    "template_version",
    "layout_version",
    "layout_digest",
)


def _ordered_items(catalog: Catalog, unit: Unit) -> list[tuple[str, list[Item]]]:
    """Scored items grouped by dimension (catalog order), then bonus, then veto."""
    applicable = catalog.applicable_items(unit.group, unit.tags)
    sections: list[tuple[str, list[Item]]] = []
    n = 0
    for dim in catalog.dimensions:
        items = [i for i in applicable if i.kind == "scored" and i.dimension == dim.id]
        if items:
            pts = sum((i.points for i in items), Decimal(0))
            title = f"{_numeral(n)}、{dim.name}({fmt_decimal(pts)}分)"
            sections.append((title, items))
            n += 1
    for kind in ("bonus", "veto"):
        items = [i for i in applicable if i.kind == kind]
        if items:
            sections.append((f"{_numeral(n)}、{SECTION_TITLES[kind]}", items))
            n += 1
    return sections


def _numeral(n: int) -> str:
    if n < 10:
        return CN_NUMERALS[n]
    if n < 20:
        return "十" + (CN_NUMERALS[n - 10] if n > 10 else "")
    return str(n + 1)


_LAYOUTS: dict[tuple[str, Unit], Layout] = {}


#: the item blocks and section rows, by catalog and the items that apply: units of one group
#: (and tags) share them, so what is derived from a block (its inputs) is computed once per group
_BODIES: dict[tuple, Body] = {}


def layout(catalog: Catalog, unit: Unit) -> Layout:
    """The unit's template layout (memoised by catalog content and unit: a layout is frozen)."""
    key = (catalog.content_hash, unit)
    found = _LAYOUTS.get(key)
    if found is None:
        if len(_LAYOUTS) >= 4096:
            _LAYOUTS.clear()
        found = _LAYOUTS[key] = _layout(catalog, unit)
    return found


def _layout(catalog: Catalog, unit: Unit) -> Layout:
    key = (catalog.content_hash, unit.group, tuple(sorted(unit.tags)))
    body = _BODIES.get(key)
    if body is None:
        if len(_BODIES) >= 256:
            _BODIES.clear()
        body = _BODIES[key] = _body(catalog, _ordered_items(catalog, unit))
    return Layout(
        year=catalog.year,
        unit=unit,
        catalog_hash=catalog.content_hash,
        template_version=catalog.template_version,
        blocks=body.blocks,
        sections=body.sections,
        last_row=body.last_row,
        body=body,
    )


def _body(catalog: Catalog, ordered: list[tuple[str, list[Item]]]) -> Body:
    row = FIRST_ROW
    blocks: list[ItemBlock] = []
    sections: list[SectionRow] = []
    dim_names = catalog.dimension_names
    for title, items in ordered:
        sections.append(SectionRow(row, title))
        row += 1
        for item in items:
            n = len(item.fields)
            first, last = row, row + n - 1
            fields = tuple(
                FieldCell(item.id, f.key, f"{COL_VALUE}{first + k}", f) for k, f in enumerate(item.fields)
            )
            fixed = [
                (f"{COL_ID}{first}", item.id),
                (f"{COL_DIM}{first}", dim_names[item.dimension]),
                (f"{COL_TITLE}{first}", item.title),
                (f"{COL_CRITERION}{first}", item.criterion),
                (f"{COL_POINTS}{first}", points_text(item)),
            ]
            for k, f in enumerate(item.fields):
                fixed.append((f"{COL_LABEL}{first + k}", f.label))
                fixed.append((f"{COL_UNIT}{first + k}", f.unit))
            blocks.append(
                ItemBlock(
                    item=item,
                    first_row=first,
                    last_row=last,
                    fields=fields,
                    na_flag=f"{COL_NA}{first}" if item.na_allowed else None,
                    na_reason=f"{COL_NA_REASON}{first}" if item.na_allowed else None,
                    evidence=f"{COL_EVIDENCE}{first}" if item.evidence else None,
                    fixed=tuple(fixed),
                )
            )
            row = last + 1
    return Body(tuple(blocks), tuple(sections), row - 1)


def points_text(item: Item) -> str:
    if item.kind == "bonus":
        return f"最多加{fmt_decimal(item.rule.cap)}分"
    if item.kind == "veto":
        return "一票否决" if item.rule.action == "fail" else "不得评为优秀"
    return fmt_decimal(item.points)
