"""Generate filled submissions: demo inputs, benchmarks and tests.

``generate`` writes ``registry.csv`` and ``submissions/*.xlsx``, each filled
into the template ``kaohe templates`` issues for that unit, with plausible
values at the magnitudes the plans and speeches report. With mistakes, it
plants the errors offices really see and lists each in ``planted.csv`` (file,
unit, kind, error code, sheet, cell), so a test can require that validation
reports exactly those.
"""

from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaohe import layout as L
from kaohe.catalog import Catalog, FieldSpec, Item
from kaohe.errors import Code
from kaohe.registry import Registry, Unit, write_registry
from kaohe.template import build_template, template_filename

MISTAKES = ("text_in_number", "percent_over_100", "numerator_gt_denominator", "missing_evidence", "wrong_template", "edited_label")
MISTAKE_CODES = {
    "text_in_number": Code.NOT_A_NUMBER,
    "percent_over_100": Code.ABOVE_MAX,
    "numerator_gt_denominator": Code.NUMERATOR_GT_DENOMINATOR,
    "missing_evidence": Code.EVIDENCE_REQUIRED,
    "wrong_template": Code.UNIT_MISMATCH,
    "edited_label": Code.TEMPLATE_EDITED,
}


@dataclass(frozen=True)
class Planted:
    file: str
    unit_id: str
    kind: str
    code: str
    sheet: str
    cell: str


def synthetic_registry(base: Registry, n: int) -> Registry:
    """n units: the base registry's first n, or its units repeated with numbered names."""
    units = list(base.units[:n])
    k = 1
    while len(units) < n:
        k += 1
        for u in base.units:
            if len(units) >= n:
                break
            units.append(Unit(f"{u.unit_id}-{k}", f"{u.unit_name}(第{k}批)", u.group, u.tags))
    return Registry(tuple(units), f"sample of {n}")


def _evidence_text(item: Item, year: int, rng: random.Random) -> str:
    kinds = ["工作台账", "文件汇编", "会议纪要", "工作报告", "统计报表"]
    return f"{year}年度{item.title}{rng.choice(kinds)}(示文〔{year}〕{rng.randint(1, 99)}号)"


# typical yearly magnitudes for one unit, by what a count is of (the speeches in
# seed 004 report e.g. 1,055 officers trained, 46 documents filed, 1,865 复议
# applications city-wide); the first matching pattern wins
MAGNITUDES = (
    (re.compile(r"人员|人数|执法证|工作人员"), (30, 600)),
    (re.compile(r"审批|服务事项|依申请|处罚信息|公开"), (40, 1500)),
    (re.compile(r"规范性文件|文件"), (3, 40)),
    (re.compile(r"诉讼|出庭|应诉|复议|案件|信访"), (2, 60)),
    (re.compile(r"会议|决策|合同|协议|建议|提案|问题"), (3, 30)),
    (re.compile(r"乡镇|街道"), (6, 20)),
)


def typical_count(label: str, rng: random.Random) -> int:
    for pattern, (lo, hi) in MAGNITUDES:
        if pattern.search(label):
            return int(lo * (hi / lo) ** rng.random())  # log-uniform
    return rng.randint(5, 50)


def _integer_around(spec: FieldSpec, centre: float, rng: random.Random) -> int:
    lo = int(spec.lower or 0)
    hi = int(spec.upper) if spec.upper is not None else 10**6
    return max(lo, min(hi, int(round(centre))))


def plausible_values(item: Item, quality: float, year: int, rng: random.Random) -> dict[str, Any]:
    """Cell values a unit of the given quality (0.5–1) would enter for one item."""
    rule = item.rule
    vals: dict[str, Any] = {}
    good = rng.random() < quality
    t = rule.type
    if t == "yes_no":
        vals[rule.field] = "是" if good or rng.random() < 0.5 else "否"
    elif t == "ratio":
        if rule.rate is not None:
            spec = item.field(rule.rate)
            r = min(100.0, 100 * float(rule.target) * (0.9 + 0.12 * quality) + rng.uniform(-6, 3))
            r = round(max(float(spec.lower or 0), r), 1)
            style = rng.random()
            if style < 0.4:
                vals[rule.rate] = r
            elif style < 0.8:
                vals[rule.rate] = f"{r:g}%"
            else:
                vals[rule.rate] = ("pct", r / 100)
        else:
            dspec = item.field(rule.denominator)
            d = _integer_around(dspec, typical_count(dspec.label, rng), rng)
            if rule.zero_denominator == "na" and rng.random() < 0.05:
                d = 0
            r = min(1.0, float(rule.target) * (0.8 + 0.22 * quality) + rng.uniform(-0.08, 0.05))
            n = min(d, max(0, int(round(d * r))))
            vals[rule.numerator], vals[rule.denominator] = n, d
    elif t == "count_target":
        spec = item.field(rule.field)
        target = float(rule.target)
        v = target * (0.75 + 0.4 * quality) + rng.uniform(-0.15, 0.2) * target
        if spec.type == "integer":
            vals[rule.field] = _integer_around(spec, v, rng)
        else:
            hi = float(spec.upper) if spec.upper is not None else 1e6
            vals[rule.field] = round(min(hi, max(0.0, v)), 1)
    elif t == "deduct_per_event":
        spec = item.field(rule.field)
        vals[rule.field] = 0 if good else _integer_around(spec, rng.choice([1, 1, 2, 3]), rng)
    elif t == "checklist":
        for f in rule.fields:
            vals[f] = "是" if rng.random() < 0.75 + 0.25 * quality else "否"
    elif t == "graded":
        names = [lv.name for lv in rule.levels]
        idx = min(len(names) - 1, max(0, int((1 - quality) * len(names) + rng.uniform(-0.6, 0.9))))
        vals[rule.field] = names[idx]
    elif t == "bonus":
        if rng.random() < 0.35 * quality:
            vals[rule.field] = rng.randint(1, 3)
    elif t == "veto":
        vals[rule.field] = "是" if rng.random() < 0.02 else "否"
    for f in item.fields:  # informational fields a rule does not name
        if f.key not in vals and f.key not in rule.fields_used() and f.required:
            if f.type == "text":
                vals[f.key] = f"{year}年度{f.label}情况说明"
            elif f.type in ("integer", "decimal"):
                vals[f.key] = _integer_around(f, 10 * quality + rng.randint(0, 20), rng)
            elif f.type == "percent":
                vals[f.key] = round(80 + 20 * quality * rng.random(), 1)
            elif f.type == "yes_no":
                vals[f.key] = "是"
            elif f.type == "grade":
                vals[f.key] = f.choices[0]
    return vals


def set_cell(ws, addr: str, value: Any) -> None:
    """Write a value the way a clerk's spreadsheet stores it."""
    if isinstance(value, tuple) and value[0] == "pct":
        ws[addr].value = value[1]
        ws[addr].number_format = "0.0%"
    else:
        ws[addr].value = value


def filled_workbook(catalog: Catalog, unit: Unit, values: dict[tuple[str, str], Any], identity: dict[str, str] | None = None):
    """The unit's template with `values` keyed (item_id, key) written into their cells.

    Keys may be real field keys or the pseudo-fields ``__na``, ``__na_reason``,
    ``__evidence``. A value for a cell the template does not have is an error.
    """
    wb, lay = build_template(catalog, unit)
    ws = wb[L.FORM_SHEET]
    addresses = {(b.item_id, key): addr for b in lay.blocks for key, _, addr in b.inputs()}
    for (item_id, key), value in values.items():
        if (item_id, key) not in addresses:
            raise KeyError(f"{unit.unit_id}: template has no cell for {item_id}.{key}")
        set_cell(ws, addresses[(item_id, key)], value)
    ident = identity if identity is not None else {"filler": "张明", "phone": "0812-2345678"}
    for key, value in ident.items():
        ws[L.INPUT_IDENTITY[key][2]].value = value
    return wb, lay


def unit_values(catalog: Catalog, unit: Unit, rng: random.Random) -> dict[tuple[str, str], Any]:
    quality = rng.uniform(0.55, 1.0)
    out: dict[tuple[str, str], Any] = {}
    for item in catalog.applicable_items(unit.group, unit.tags):
        if item.na_allowed and rng.random() < 0.08:
            out[(item.id, L.NA_KEY)] = "是"
            out[(item.id, L.REASON_KEY)] = f"本年度未发生{item.title}相关事项"
            continue
        for key, v in plausible_values(item, quality, catalog.year, rng).items():
            out[(item.id, key)] = v
        if item.evidence:
            out[(item.id, L.EVIDENCE_KEY)] = _evidence_text(item, catalog.year, rng)
    return out


def _plant(kind: str, catalog: Catalog, unit: Unit, values: dict, lay: L.Layout, rng: random.Random):
    """Change `values` (or return a cell edit) to plant one mistake; returns (item_id, key) or None."""
    blocks = [b for b in lay.blocks if all(values.get((b.item_id, k)) is not None for k in b.item.rule.fields_used()) and values.get((b.item_id, L.NA_KEY)) != "是"]
    rng.shuffle(blocks)
    for b in blocks:
        item = b.item
        if kind == "text_in_number":
            for f in item.fields:
                if f.type in ("integer", "decimal"):
                    values[(item.id, f.key)] = f"约{rng.randint(2, 30)}次"
                    return item.id, f.key
        elif kind == "percent_over_100" and item.rule.type == "ratio" and item.rule.rate:
            values[(item.id, item.rule.rate)] = "120%"
            return item.id, item.rule.rate
        elif kind == "numerator_gt_denominator" and item.rule.type == "ratio" and item.rule.numerator:
            d = values[(item.id, item.rule.denominator)]
            if isinstance(d, int) and d > 0:
                values[(item.id, item.rule.numerator)] = d + rng.randint(1, 5)
                return item.id, item.rule.numerator
        elif kind == "missing_evidence" and item.evidence and item.kind == "scored":
            from kaohe.rules import apply_rule

            parsed = {f.key: as_read(values.get((item.id, f.key)), f) for f in item.fields}
            if apply_rule(item, parsed).score > 0:
                values.pop((item.id, L.EVIDENCE_KEY), None)
                return item.id, L.EVIDENCE_KEY
    return None


def as_read(value: Any, spec: FieldSpec):
    """What kaohe will read from a cell holding `value` (as set_cell writes it): the reader's own parser."""
    from kaohe.parsing import Parsed, RawCell, parse_cell

    if isinstance(value, tuple):
        cell = RawCell("", value[1], "n", "0.0%")
    else:
        cell = RawCell("", value, "s" if isinstance(value, str) else "n")
    out = parse_cell(cell, spec)
    return out.value if isinstance(out, Parsed) else None


def generate(
    catalog: Catalog,
    base_registry: Registry,
    out_dir: str | Path,
    *,
    units: int | None = None,
    seed: int = 2025,
    with_mistakes: bool = False,
    mistakes: int | None = None,
    missing: int = 0,
) -> tuple[Registry, list[Planted]]:
    """Write registry.csv and submissions/; with mistakes, the first `mistakes` kinds (default all)."""
    out = Path(out_dir)
    subs_dir = out / "submissions"
    subs_dir.mkdir(parents=True, exist_ok=True)
    registry = base_registry if units is None else synthetic_registry(base_registry, units)
    write_registry(registry, out / "registry.csv")
    rng = random.Random(seed)
    planted: list[Planted] = []
    # missing: the last `missing` units send nothing
    sending = list(registry.units[: len(registry.units) - missing]) if missing else list(registry.units)
    mistake_at = {}
    if with_mistakes:
        kinds = MISTAKES[: mistakes if mistakes is not None else len(MISTAKES)]
        step = max(1, len(sending) // (len(kinds) + 1))
        for k, kind in enumerate(kinds):
            idx = (k + 1) * step - 1
            if idx < len(sending):
                mistake_at[idx] = kind
    for idx, unit in enumerate(sending):
        values = unit_values(catalog, unit, rng)
        fname = template_filename(unit, catalog.year)
        kind = mistake_at.get(idx)
        if kind == "wrong_template":
            other = sending[(idx + 1) % len(sending)]
            wb, _ = filled_workbook(catalog, other, unit_values(catalog, other, rng))
            wb.save(subs_dir / fname)
            planted.append(Planted(fname, unit.unit_id, kind, MISTAKE_CODES[kind].value, "", ""))
            continue
        lay = L.layout(catalog, unit)
        target = _plant(kind, catalog, unit, values, lay, rng) if kind and kind != "edited_label" else None
        wb, lay = filled_workbook(catalog, unit, values)
        if kind == "edited_label":
            block = next(b for b in lay.blocks if b.item.kind == "scored")
            addr = f"{L.COL_POINTS}{block.first_row}"
            wb[L.FORM_SHEET][addr].value = L.fmt_decimal(block.item.points * 2)
            planted.append(Planted(fname, unit.unit_id, kind, MISTAKE_CODES[kind].value, L.FORM_SHEET, addr))
        elif target is not None:
            block = next(b for b in lay.blocks if b.item_id == target[0])
            addr = next(a for k, _, a in block.inputs() if k == target[1])
            planted.append(Planted(fname, unit.unit_id, kind, MISTAKE_CODES[kind].value, L.FORM_SHEET, addr))
        wb.save(subs_dir / fname)
    if with_mistakes:
        with (out / "planted.csv").open("w", encoding="utf-8-sig", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "unit_id", "kind", "code", "sheet", "cell"])
            for p in planted:
                w.writerow([p.file, p.unit_id, p.kind, p.code, p.sheet, p.cell])
    return registry, planted
