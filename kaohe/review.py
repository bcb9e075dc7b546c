"""The office's review sheet (审核意见) and the other score components.

Review rows are applied after validation, to copies of the submissions: the
unit's own values are kept beside the reviewed ones. A row must name a known
unit, an item in that unit's template and one of its fields (by key or by
the label printed in the template; 不适用 / 不适用理由 / 佐证材料 for the
pseudo-fields), carry a reason, and hold a value that passes the same cell
parser as the workbook. Any bad row stops the run with every bad row listed:
scoring half a review would publish numbers the office did not decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from kaohe.catalog import Catalog
from kaohe.errors import ComponentsError, ReviewError
from kaohe.layout import EVIDENCE_KEY, NA_KEY, PSEUDO_SPECS, REASON_KEY
from kaohe.parsing import Parsed, normalize_text, parse_text_value
from kaohe.registry import Registry
from kaohe.scoring import ReviewChange
from kaohe.tables import read_rows
from kaohe.submission import Submission

REVIEW_COLUMNS = ("unit_id", "item_id", "field", "reviewed_value", "reason", "reviewer")
PSEUDO_NAMES = {
    "不适用": NA_KEY, "是否不适用": NA_KEY, NA_KEY: NA_KEY,
    "不适用理由": REASON_KEY, REASON_KEY: REASON_KEY,
    "佐证材料": EVIDENCE_KEY, EVIDENCE_KEY: EVIDENCE_KEY,
}


@dataclass(frozen=True)
class ReviewRow:
    row: int
    unit_id: str
    item_id: str
    field: str
    reviewed_value: str
    reason: str
    reviewer: str


def _table(path: Path, what: str, error) -> list[dict[str, str]]:
    """Rows as {header: text}, with their line number in ``__row``; blank rows skipped."""
    rows = read_rows(path, what, error)
    if not rows:
        return []
    header = [normalize_text(h) for h in rows[0]]
    return [
        {h: normalize_text(r[i]) if i < len(r) else "" for i, h in enumerate(header)} | {"__row": str(n)}
        for n, r in enumerate(rows[1:], start=2)
        if any(c.strip() for c in r)
    ]


def load_review(path: str | Path) -> list[ReviewRow]:
    path = Path(path)
    rows = _table(path, "审核意见表", ReviewError)
    if rows and any(c not in rows[0] for c in REVIEW_COLUMNS):
        missing = [c for c in REVIEW_COLUMNS if c not in rows[0]]
        raise ReviewError(f"审核意见表 {path} 缺少列: {', '.join(missing)}", details=[f"表头应为: {','.join(REVIEW_COLUMNS)}"])
    return [
        ReviewRow(int(r["__row"]), r["unit_id"], r["item_id"], r["field"], r["reviewed_value"], r["reason"], r["reviewer"])
        for r in rows
    ]


def apply_review(
    rows: list[ReviewRow],
    catalog: Catalog,
    registry: Registry,
    valid: dict[str, Submission],
) -> tuple[dict[str, Submission], dict[str, dict[str, tuple[ReviewChange, ...]]], list[str]]:
    """(reviewed submissions, changes per unit and item, notes on rows not applied).

    Raises ReviewError listing every invalid row.
    """
    errors: list[str] = []
    notes: list[str] = []
    reviewed = dict(valid)
    changes: dict[str, dict[str, list[ReviewChange]]] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for r in rows:
        where = f"第 {r.row} 行"
        unit = registry.get(r.unit_id)
        if unit is None:
            errors.append(f"{where}: 单位代码 {r.unit_id!r} 不在考核对象名录中")
            continue
        try:
            item = catalog.item(r.item_id)
        except KeyError:
            errors.append(f"{where}: 指标编号 {r.item_id!r} 不在指标体系中")
            continue
        if not item.applies_to.matches(unit.group, unit.tags):
            errors.append(f"{where}: 指标 {r.item_id} 不适用于 {unit.unit_name}({r.unit_id})")
            continue
        key = PSEUDO_NAMES.get(r.field)
        if key is None:
            key = next((f.key for f in item.fields if r.field in (f.key, f.label)), None)
        if key is None:
            options = "、".join([f"{f.key}({f.label})" for f in item.fields] + ["不适用", "不适用理由", "佐证材料"])
            errors.append(f"{where}: 指标 {r.item_id} 没有填报项目 {r.field!r}(可选: {options})")
            continue
        if key == NA_KEY and not item.na_allowed:
            errors.append(f"{where}: 指标 {r.item_id} 不允许不适用")
            continue
        if not r.reason:
            errors.append(f"{where}: 未填写审核理由(reason)")
            continue
        if (r.unit_id, r.item_id, key) in seen:
            errors.append(f"{where}: 与第 {seen[(r.unit_id, r.item_id, key)]} 行重复(同一单位、指标、填报项目)")
            continue
        seen[(r.unit_id, r.item_id, key)] = r.row
        spec = PSEUDO_SPECS.get(key) or item.field(key)
        parsed = parse_text_value(r.reviewed_value, spec)
        if not isinstance(parsed, Parsed):
            errors.append(f"{where}: 审核值 {r.reviewed_value!r} 无效{parsed.message}")
            continue
        value = parsed.value
        if isinstance(value, Decimal):
            lo, hi = spec.lower, spec.upper
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                errors.append(f"{where}: 审核值 {r.reviewed_value} 超出范围 {lo}–{hi if hi is not None else ''}")
                continue
        sub = reviewed.get(r.unit_id)
        if sub is None:
            notes.append(f"审核意见{where}未应用:单位 {r.unit_id} 没有通过校验的自评表")
            continue
        if (r.item_id, key) not in sub.entries:
            errors.append(f"{where}: 单位 {r.unit_id} 的自评表中没有 {r.item_id} 的“{r.field}”")
            continue
        old = sub.value(r.item_id, key)
        reviewed[r.unit_id] = sub.with_value(r.item_id, key, value, f"审核修改:{r.reason}")
        changes.setdefault(r.unit_id, {}).setdefault(r.item_id, []).append(
            ReviewChange(r.item_id, key, spec.label, old, value, r.reason, r.reviewer, r.row)
        )
    if errors:
        raise ReviewError(f"审核意见表有 {len(errors)} 处错误,未进行计分", details=errors)
    frozen = {u: {i: tuple(cs) for i, cs in items.items()} for u, items in changes.items()}
    return reviewed, frozen, notes


def load_components(path: str | Path, catalog: Catalog, registry: Registry) -> dict[str, dict[str, Fraction]]:
    """``unit_id, component, score`` (0–100) → {unit: {component: score}}."""
    path = Path(path)
    rows = _table(path, "其他考核分项得分表", ComponentsError)
    needed = {c.id for c in catalog.components} - {"assessed"}
    out: dict[str, dict[str, Fraction]] = {}
    errors = []
    for r in rows:
        where = f"第 {r['__row']} 行"
        uid, comp, text = r.get("unit_id", ""), r.get("component", ""), r.get("score", "")
        if uid not in registry:
            errors.append(f"{where}: 单位代码 {uid!r} 不在考核对象名录中")
            continue
        if comp not in needed:
            errors.append(f"{where}: 分项 {comp!r} 不是指标体系中的分项({'、'.join(sorted(needed)) or '无'})")
            continue
        try:
            score = Decimal(text)
        except Exception:  # noqa: BLE001 - decimal raises several types
            errors.append(f"{where}: 得分 {text!r} 不是数字")
            continue
        if not (0 <= score <= 100):
            errors.append(f"{where}: 得分 {text} 不在 0–100 之间")
            continue
        if comp in out.get(uid, {}):
            errors.append(f"{where}: 单位 {uid} 的分项 {comp} 重复")
            continue
        out.setdefault(uid, {})[comp] = Fraction(score)
    if errors:
        raise ComponentsError(f"其他考核分项得分表 {path} 有 {len(errors)} 处错误", details=errors)
    return out


def check_components(components: dict[str, dict[str, Fraction]], catalog: Catalog, unit_ids: list[str]) -> None:
    """A ranked unit missing a component value is an error, never a zero."""
    needed = [c.id for c in catalog.components if c.id != "assessed"]
    missing = [f"单位 {u} 缺少分项 {c}" for u in unit_ids for c in needed if c not in components.get(u, {})]
    if missing:
        raise ComponentsError(f"其他考核分项得分缺失 {len(missing)} 项(缺失不能按 0 分计算)", details=missing)
