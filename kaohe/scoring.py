"""Stage 4, score: METHOD §4, from reviewed values to one unit's exact result.

Everything is a Fraction until publication. Each item result keeps the
cells it came from, the unit's own value, the reviewed value with its
reason and reviewer, the rule's explanation and the 核查不实 penalty, so the
audit table can trace every point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from kaohe.catalog import Catalog, Item
from kaohe.layout import EVIDENCE_KEY, REASON_KEY
from kaohe.registry import Unit
from kaohe.rules import ZERO, Outcome, apply_rule, show
from kaohe.submission import Submission

Status = Literal["scored", "missing", "rejected"]


@dataclass(frozen=True)
class ReviewChange:
    item_id: str
    key: str
    label: str
    self_value: object
    reviewed_value: object
    reason: str
    reviewer: str
    row: int


@dataclass(frozen=True, slots=True)
class FieldTrace:
    key: str
    label: str
    cell: str
    raw: str
    self_value: object
    value: object
    note: str


@dataclass(frozen=True, slots=True)
class ItemResult:
    item: Item
    applicable: Literal["yes", "no", "na"]
    score: Fraction | None = None
    self_score: Fraction | None = None
    penalty: Fraction = ZERO
    bonus: Fraction = ZERO
    self_bonus: Fraction = ZERO
    veto: str | None = None
    explain: str = ""
    fields: tuple[FieldTrace, ...] = ()
    changes: tuple[ReviewChange, ...] = ()
    evidence: str = ""
    na_reason: str = ""

    @property
    def points(self) -> Fraction:
        return Fraction(self.item.points) if self.item.kind == "scored" and self.applicable == "yes" else ZERO

    @property
    def lost(self) -> Fraction | None:
        if self.item.kind != "scored" or self.applicable != "yes":
            return None
        return self.points - self.score


@dataclass
class UnitResult:
    unit: Unit
    status: Status
    file: str = ""
    items: tuple[ItemResult, ...] = ()
    base: Fraction = ZERO
    total: Fraction = ZERO
    assessed: Fraction | None = None
    rates: dict[str, Fraction | None] = field(default_factory=dict)
    components: dict[str, Fraction] = field(default_factory=dict)
    weighted: Fraction | None = None
    bonus: Fraction | None = None
    final: Fraction | None = None
    veto: str | None = None
    problems: tuple = ()
    # set by ranking
    rank: int | None = None
    grade: str = "不合格"
    grade_note: str = ""
    # set by insight (METHOD §7): kaohe.insight.Robustness, for ranked units
    robustness: object | None = None

    @property
    def unit_id(self) -> str:
        return self.unit.unit_id


def _values(sub: Submission, item: Item) -> dict:
    return {f.key: sub.value(item.id, f.key) for f in item.fields}


def score_item(item: Item, unit: Unit, reviewed: Submission, own: Submission, changes: tuple[ReviewChange, ...]) -> ItemResult:
    traces = []
    for f in item.fields:
        e = reviewed.entries.get((item.id, f.key))
        s = own.entries.get((item.id, f.key))
        traces.append(
            FieldTrace(f.key, f.label, e.address if e else "", s.raw if s else "", s.value if s else None, e.value if e else None, e.note if e else "")
        )
    common = dict(
        fields=tuple(traces),
        changes=changes,
        evidence=str(reviewed.value(item.id, EVIDENCE_KEY) or ""),
        na_reason=str(reviewed.value(item.id, REASON_KEY) or ""),
    )
    if reviewed.is_na(item.id):
        return ItemResult(item, "na", explain=f"单位申报不适用:{common['na_reason']}", **common)
    out: Outcome = apply_rule(item, _values(reviewed, item))
    if own is reviewed or not changes:
        mine = out
    elif own.is_na(item.id):
        mine = None
    else:
        mine = apply_rule(item, _values(own, item))
    if out.applicable == "na":
        return ItemResult(item, "na", explain=out.explain, **common)
    self_score = mine.score if mine is not None and mine.applicable == "yes" else None
    score, penalty, explain = out.score, ZERO, out.explain
    if item.kind == "scored" and self_score is not None and out.score < self_score and item.misreport_penalty > 0:
        penalty = min(Fraction(item.misreport_penalty), out.score)
        score = out.score - penalty
        explain += f";经审核得分低于自评,按核查不实另扣 {show(penalty)} 分,得 {show(score)} 分"
    return ItemResult(
        item,
        "yes",
        score=score if item.kind == "scored" else None,
        self_score=self_score if item.kind == "scored" else None,
        penalty=penalty,
        bonus=out.bonus,
        self_bonus=mine.bonus if mine is not None else ZERO,
        veto=out.veto,
        explain=explain,
        **common,
    )


def score_unit(
    catalog: Catalog,
    unit: Unit,
    reviewed: Submission,
    own: Submission,
    changes: dict[str, tuple[ReviewChange, ...]],
    components: dict[str, Fraction],
) -> UnitResult:
    """METHOD §4 for one unit with a valid submission."""
    applicable = {i.id for i in catalog.applicable_items(unit.group, unit.tags)}
    items: list[ItemResult] = []
    for item in catalog.items:
        if item.id not in applicable:
            items.append(ItemResult(item, "no"))
            continue
        items.append(score_item(item, unit, reviewed, own, changes.get(item.id, ())))
    scored = [r for r in items if r.item.kind == "scored" and r.applicable == "yes"]
    base = sum((r.points for r in scored), ZERO)
    total = sum((r.score for r in scored), ZERO)
    assessed = 100 * total / base if base else None
    rates: dict[str, Fraction | None] = {}
    for dim in catalog.dimensions:
        in_dim = [r for r in scored if r.item.dimension == dim.id]
        p = sum((r.points for r in in_dim), ZERO)
        rates[dim.id] = 100 * sum((r.score for r in in_dim), ZERO) / p if p else None
    vetoes = {r.veto for r in items if r.veto}
    veto = "fail" if "fail" in vetoes else ("cap" if "cap" in vetoes else None)
    bonus = min(Fraction(catalog.bonus_cap), sum((r.bonus for r in items), ZERO))
    comps = dict(components)
    if assessed is not None:
        comps["assessed"] = assessed
    weighted = None
    if assessed is not None:
        weighted = sum((Fraction(c.weight) * comps[c.id] for c in catalog.components), ZERO)
    final = None if weighted is None else weighted + bonus
    return UnitResult(
        unit=unit,
        status="scored",
        file=own.file,
        items=tuple(items),
        base=base,
        total=total,
        assessed=assessed,
        rates=rates,
        components=comps,
        weighted=weighted,
        bonus=bonus,
        final=final,
        veto=veto,
    )


def unscored(unit: Unit, status: Status, file: str = "", problems: tuple = ()) -> UnitResult:
    return UnitResult(unit=unit, status=status, file=file, problems=problems)

