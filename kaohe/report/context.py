"""What the PDF templates show, computed in Python from the scored results.

Templates only lay out what is built here. Every published number comes
from ``kaohe.outputs.result_row`` (the row written to results.csv), so the
PDF and the CSV can never differ; statistics the CSV does not hold (group
averages, lost points) are computed from those published figures or from
the exact item scores and rounded once, half-up, like every other number:

- a group's average (highest, lowest) final is over its ranked units' published
  finals, so a reader can recompute it from the table;
- a dimension's average 得分率 is the mean of the published rates of the units
  that have an applicable item in it (a unit with none is left out, not 0);
- lost points (失分合计) are Σ(P − s) over a unit's applicable scored items, in
  item points (not on the 100 scale).

Unit-supplied text (names, evidence, reasons, reviewers, cell values) is
passed through ``clean_text`` and reaches the templates as plain strings:
Jinja escapes it, and it is only ever placed in text context.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import inspect

from kaohe import insight
from kaohe.catalog import Catalog, Item
from kaohe.errors import Problem
from kaohe.layout import fmt_decimal
from kaohe.numbers import fmt2, round_half_up
from kaohe.outputs import STATUS_CN, clean_text, result_row
from kaohe.ranking import excellence_places
from kaohe.report import charts
from kaohe.report.text import zh
from kaohe.scoring import ItemResult, UnitResult

GRADES = ("优秀", "良好", "合格", "不合格")
DASH = "—"
VETO_CN = {"fail": "一票否决", "cap": "不得评为优秀"}


def dec(text: str) -> Decimal | None:
    """A published figure ('92.50', '') back as an exact Decimal."""
    return Decimal(text) if text else None


def mean(values: list[Decimal]) -> Decimal | None:
    """The mean of published figures, rounded half-up to 2 decimals."""
    if not values:
        return None
    return round_half_up(Fraction(sum(values, Decimal(0))) / len(values), 2)


def show2(x: Decimal | None) -> str:
    return DASH if x is None else f"{x:.2f}"


def num(d: Decimal | int | None) -> str:
    """Catalog numbers as a person writes them: 5, 2.5, 0.3."""
    if d is None:
        return ""
    return fmt_decimal(Decimal(d))


def percent(d: Decimal) -> str:
    return num(Decimal(d) * 100) + "%"


def change_text(current: str, prev: dict | None) -> str:
    """较上年: the change in the published final, '+1.23' / '-0.50' / '0.00', or '—'."""
    if not current or not prev or not str(prev.get("final", "") or "").strip():
        return DASH
    try:
        delta = Decimal(current) - Decimal(str(prev["final"]).strip())
    except ArithmeticError:
        return DASH
    delta = round_half_up(delta, 2)
    return f"+{delta:.2f}" if delta > 0 else f"{delta:.2f}"


def chinese_date(d) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


# ------------------------------------------------------------ rank robustness


def interval_text(row: dict) -> str:
    """排名区间 from a results.csv row: '3–6', '3' when p05 == p95, '—' when not computed."""
    lo, hi = row.get("rank_p05", ""), row.get("rank_p95", "")
    if not lo or not hi:
        return DASH
    return lo if lo == hi else f"{lo}–{hi}"


def stability_text(row: dict) -> str:
    """等次稳定度 from a results.csv row ('0.87') as a percentage ('87%'), '—' when not computed."""
    s = row.get("grade_stability", "")
    return DASH if not s else num(Decimal(s) * 100) + "%"


def robustness_method(draws: int = 1000) -> dict:
    """The simulation's parameters for the notes (METHOD §7); the range is rank_robustness's own default."""
    params = inspect.signature(insight.rank_robustness).parameters
    low, high = Decimal(str(params["low"].default)), Decimal(str(params["high"].default))
    return {
        "draws": f"{draws:,}",
        "low": num(low),
        "high": num(high),
        "spread": num((high - 1) * 100) if high - 1 == 1 - low else "",  # ±20 (%)
    }


# ------------------------------------------------------------ year on year


#: the order catalog changes are listed in (sorted is stable: catalog order within a kind)
CHANGE_KINDS = (
    ("added", "新增指标"),
    ("removed", "删除指标"),
    ("reweighted", "分值调整"),
    ("changed", "评分规则或适用范围调整"),
    ("setting", "考核办法调整"),
)


def year_on_year_context(results: list[UnitResult], catalog: Catalog, previous: dict[str, dict], previous_catalog: Catalog | None) -> dict:
    """New and dropped units against last year's rows; catalog changes (None when last year's catalog is unknown)."""
    current = {r.unit_id for r in results}
    new = [f"{clean_text(r.unit.unit_name)}\uff08{r.unit.group}\uff09" for r in results if r.unit_id not in previous]
    dropped = []
    for uid, row in previous.items():
        if uid in current:
            continue
        name = clean_text(row.get("unit_name") or uid)
        group = clean_text(row.get("group") or "")
        dropped.append(f"{name}\uff08{group}\uff09" if group else name)
    changes = None  # unknown
    if previous_catalog is not None:
        found = insight.catalog_changes(previous_catalog, catalog)
        order = {kind: k for k, (kind, _) in enumerate(CHANGE_KINDS)}
        changes = [zh(c.detail_cn) for c in sorted(found, key=lambda c: order.get(c.kind, len(order)))]
    return {
        "previous_year": previous_catalog.year if previous_catalog is not None else catalog.year - 1,
        "new": new,
        "dropped": dropped,
        "catalog_changes": changes,
        "n_changes": len(changes) if changes else 0,
    }


# ------------------------------------------------------------------ catalog text


def applies_text(item: Item, catalog: Catalog) -> str:
    a = item.applies_to
    if not a.groups and not a.tags:
        return "全部单位"
    parts = []
    if a.groups:
        parts.append("、".join(a.groups))
    if a.tags:
        parts.append("、".join(f"“{t}”" for t in a.tags) + "类单位")
    return ";".join(parts)


def _label(item: Item, key: str) -> str:
    return f"“{item.field(key).label}”"


def rule_text(item: Item) -> str:
    """The scoring rule in words, generated from the rule's parameters (never hand-written)."""
    return zh(_rule_text(item))


def _rule_text(item: Item) -> str:
    r = item.rule
    t = r.type
    if t == "yes_no":
        return f"{_label(item, r.field)}为“是”得满分,为“否”不得分。"
    if t == "ratio":
        if r.rate is not None:
            head = f"比率={_label(item, r.rate)}"
        else:
            head = f"比率={_label(item, r.numerator)}÷{_label(item, r.denominator)}"
        text = f"{head};达到{percent(r.target)}得满分,不高于{percent(r.floor)}不得分,其间按比例计分。"
        if r.rate is None:
            text += "分母为0时" + ("得满分。" if r.zero_denominator == "full" else "本项不适用,不计入应得分。")
        return text
    if t == "count_target":
        cap = f",最多扣{num(r.cap)}分" if r.cap is not None else ""
        return f"{_label(item, r.field)}目标为{num(r.target)},每少1扣{num(r.deduction)}分{cap},扣完为止。"
    if t == "deduct_per_event":
        cap = f",最多扣{num(r.cap)}分" if r.cap is not None else ""
        return f"{_label(item, r.field)}每1件(次)扣{num(r.deduction)}分{cap},扣完为止。"
    if t == "checklist":
        elems = "、".join(item.field(k).label for k in r.fields)
        return f"{len(r.fields)}项要求({elems})每有1项为“否”扣{num(r.deduction)}分,扣完为止。"
    if t == "graded":
        levels = "、".join(f"{lv.name}{percent(lv.fraction)}" for lv in r.levels)
        return f"按{_label(item, r.field)}计分:{levels}(占分值的比例)。"
    if t == "bonus":
        return f"{_label(item, r.field)}每1项加{num(r.per_event)}分,本项最多加{num(r.cap)}分。"
    if t == "veto":
        what = "一票否决,考核等次为不合格" if r.action == "fail" else "不得评为优秀"
        return f"{_label(item, r.field)}为“是”的,{what}。"
    return ""  # pragma: no cover - the catalog rejects unknown rules


def points_text(item: Item) -> str:
    if item.kind == "bonus":
        return f"加分项(最多{num(item.rule.cap)}分)"
    if item.kind == "veto":
        return "否决项"
    return num(item.points)


def method_annex(catalog: Catalog) -> dict:
    """The 考核办法 annex, generated from the catalog so it can never disagree with scoring."""
    names = catalog.dimension_names
    # points per dimension per group: items every unit of the group has, plus items that depend on tags
    points_rows = []
    totals = {g: Decimal(0) for g in catalog.groups}
    for dim in catalog.dimensions:
        cells = []
        for g in catalog.groups:
            base = Decimal(0)
            by_tags: dict[tuple[str, ...], Decimal] = {}
            for it in catalog.items:
                if it.dimension != dim.id or it.kind != "scored":
                    continue
                a = it.applies_to
                if (not a.groups and not a.tags) or g in a.groups:
                    base += it.points
                elif a.tags:
                    by_tags[a.tags] = by_tags.get(a.tags, Decimal(0)) + it.points
            totals[g] += base
            extra = "".join(f" + {num(p)}({'/'.join(t)})" for t, p in sorted(by_tags.items()))
            cells.append(zh(num(base) + extra))
        points_rows.append({"name": zh(dim.name), "cells": cells})
    tag_items = any(it.applies_to.tags and it.kind == "scored" for it in catalog.items)
    def annex_row(it: Item) -> dict:
        return {
            "id": it.id,
            "title": zh(it.title),
            "points": zh(points_text(it)),
            "numeric": it.kind == "scored",
            "applies": zh(applies_text(it, catalog)),
            "rule": rule_text(it),
            "criterion": zh(it.criterion),
            "na_allowed": it.na_allowed,
            "evidence": it.evidence,
            "penalty": num(it.misreport_penalty) if it.misreport_penalty else "",
        }

    items = []
    for dim in catalog.dimensions:
        rows = [annex_row(it) for it in catalog.items if it.dimension == dim.id and it.kind == "scored"]
        items.append({"name": zh(dim.name), "id": dim.id, "rows": rows})
    special = [annex_row(it) for it in catalog.items if it.kind == "bonus"] + [annex_row(it) for it in catalog.items if it.kind == "veto"]
    if special:
        items.append({"name": "加分项和否决项", "id": "", "rows": special})
    bands = [{"group": zh("默认(各考核组)"), "cells": [num(b) for _, b in catalog.bands.as_list()]}]
    for g in catalog.groups:
        if g in catalog.group_bands:
            bands.append({"group": g, "cells": [num(b) for _, b in catalog.group_bands[g].as_list()]})
    comps = [{"name": zh(c.name), "id": c.id, "weight": num(c.weight)} for c in catalog.components]
    formula = " + ".join(f"{num(c.weight)}×{c.name}" for c in catalog.components)
    if catalog.bonus_cap:
        formula += f" + 加分(最多{num(catalog.bonus_cap)}分)"
    return {
        "groups": list(catalog.groups),
        "points_rows": points_rows,
        "points_totals": [num(totals[g]) for g in catalog.groups],
        "tag_items": tag_items,
        "items": items,
        "bands": bands,
        "quota": percent(catalog.excellence_quota),
        "bonus_cap": num(catalog.bonus_cap),
        "components": comps,
        "formula": zh(formula),
        "tie_break": [zh(names[d]) for d in catalog.tie_break],
        "has_penalty": any(it.misreport_penalty for it in catalog.items),
    }


# ------------------------------------------------------------------- bulletin


@dataclass
class RankRow:
    unit_id: str
    name: str
    rank: str
    final: str
    grade: str
    change: str
    interval: str  # 排名区间 (rank_p05–rank_p95)
    rates: list[tuple[str, str]]  # (text, background colour)
    note: str
    status: str


@dataclass
class GroupView:
    name: str
    rows: list[RankRow] = field(default_factory=list)
    n_units: int = 0
    n_ranked: int = 0
    n_missing: int = 0
    n_rejected: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    average: str = DASH
    highest: str = DASH
    lowest: str = DASH
    dim_avgs: list[Decimal | None] = field(default_factory=list)
    bands: list[tuple[str, Decimal]] = field(default_factory=list)
    excellent: list[str] = field(default_factory=list)
    quota: int = 0


def lost_points(r: UnitResult) -> Fraction:
    """Σ lost over the unit's applicable scored items (in item points, exact)."""
    return sum((ir.lost for ir in r.items if ir.lost is not None), Fraction(0))


def fail_reason(r: UnitResult, row: dict, catalog: Catalog) -> str:
    if r.veto == "fail":
        vetoed = [ir.item.title for ir in r.items if ir.veto == "fail"]
        return zh("一票否决" + (f"({'、'.join(vetoed)})" if vetoed else ""))
    bound = catalog.bands_for(r.unit.group).合格
    return zh(f"最终得分{row['final']}分,低于合格分数线{num(bound)}分")


def dimension_averages(results: list[UnitResult], catalog: Catalog) -> list[Decimal | None]:
    """Mean of the units' published 得分率 per dimension (units with no applicable item left out)."""
    out = []
    for d in catalog.dimensions:
        vals = [dec(fmt2(r.rates.get(d.id))) for r in results if r.status == "scored" and r.rates.get(d.id) is not None]
        out.append(mean(vals))
    return out


def bulletin_context(
    results: list[UnitResult], catalog: Catalog, settings, previous: dict[str, dict] | None, previous_catalog: Catalog | None = None
) -> dict:
    previous = previous or {}
    dims = catalog.dimensions
    groups: list[GroupView] = []
    failing, missing, rejected = [], [], []
    for g in catalog.groups:
        members = [r for r in results if r.unit.group == g]
        gv = GroupView(name=g, bands=catalog.bands_for(g).as_list())
        gv.counts = {k: 0 for k in GRADES}
        finals = []
        for r in members:
            row = result_row(r, catalog)
            rates = [
                (row[f"rate_{d.id}"] or DASH, charts.rate_color(dec(row[f"rate_{d.id}"])) if row[f"rate_{d.id}"] else "#ffffff")
                for d in dims
            ]
            note = zh(r.grade_note)
            if r.status == "scored" and r.veto == "cap" and not note:
                note = "不得评为优秀"
            gv.rows.append(
                RankRow(
                    unit_id=r.unit_id,
                    name=clean_text(r.unit.unit_name),
                    rank=row["rank"] or DASH,
                    final=row["final"] or DASH,
                    grade=r.grade,
                    change=change_text(row["final"], previous.get(r.unit_id)),
                    interval=interval_text(row),
                    rates=rates if r.status == "scored" else [(DASH, "#ffffff") for _ in dims],
                    note=note,
                    status=r.status,
                )
            )
            gv.counts[r.grade] = gv.counts.get(r.grade, 0) + 1
            if r.rank is not None:
                finals.append(dec(row["final"]))
            if r.grade == "优秀":
                gv.excellent.append(clean_text(r.unit.unit_name))
            if r.status == "scored" and r.grade == "不合格":
                failing.append(
                    {
                        "group": g,
                        "name": clean_text(r.unit.unit_name),
                        "final": row["final"] or DASH,
                        "reason": fail_reason(r, row, catalog),
                        "lost": fmt2(lost_points(r)),
                        "veto": r.veto == "fail",
                    }
                )
            elif r.status == "missing":
                missing.append({"group": g, "name": clean_text(r.unit.unit_name)})
            elif r.status == "rejected":
                n_problems = len(r.problems)
                rejected.append({"group": g, "name": clean_text(r.unit.unit_name), "problems": n_problems})
        gv.n_units = len(members)
        gv.n_ranked = len(finals)
        gv.n_missing = sum(1 for r in members if r.status == "missing")
        gv.n_rejected = sum(1 for r in members if r.status == "rejected")
        gv.average = show2(mean(finals))
        gv.highest = show2(max(finals)) if finals else DASH
        gv.lowest = show2(min(finals)) if finals else DASH
        gv.dim_avgs = dimension_averages(members, catalog)
        gv.quota = excellence_places(catalog, gv.n_ranked)
        groups.append(gv)

    overall = dimension_averages(results, catalog)
    ranked_dims = [(v, d.name) for v, d in zip(overall, dims) if v is not None]
    best = max(ranked_dims, key=lambda t: t[0]) if ranked_dims else None
    worst = min(ranked_dims, key=lambda t: t[0]) if ranked_dims else None
    total_counts = Counter()
    for gv in groups:
        total_counts.update(gv.counts)
    strip = charts.strip_plot(
        [
            charts.StripRow(
                label=gv.name,
                dots=tuple(charts.Dot(dec(row.final), row.grade) for row in gv.rows if row.rank != DASH),
                bands=tuple(gv.bands),
            )
            for gv in groups
        ],
        title="各考核组最终得分分布",
    )
    heat = charts.heat_map(
        [zh(d.name) for d in dims],
        [gv.name for gv in groups] + ["全部单位"],
        [[gv.dim_avgs[i] for gv in groups] + [overall[i]] for i in range(len(dims))],
        title="各一级指标平均得分率",
    )
    return {
        "title": f"{catalog.city}{catalog.year}年度依法行政考核结果通报",
        "catalog": catalog,
        "catalog_title": zh(catalog.title),
        "settings": settings,
        "dims": [zh(d.name) for d in dims],
        "groups": groups,
        "n_units": len(results),
        "n_ranked": sum(gv.n_ranked for gv in groups),
        "n_missing": len(missing),
        "n_rejected": len(rejected),
        "counts": {k: total_counts.get(k, 0) for k in GRADES},
        "best_dim": best and {"name": zh(best[1]), "rate": show2(best[0])},
        "worst_dim": worst and {"name": zh(worst[1]), "rate": show2(worst[0])},
        "overall_dims": [show2(v) for v in overall],
        "failing": failing,
        "missing": missing,
        "rejected": rejected,
        "has_previous": bool(previous),
        "yoy": year_on_year_context(results, catalog, previous, previous_catalog) if previous else None,
        "has_intervals": any(row.interval != DASH for gv in groups for row in gv.rows),
        "robust": robustness_method(getattr(settings, "draws", 1000)),
        "strip_chart": strip,
        "heat_chart": heat,
        "method": method_annex(catalog),
    }


# ------------------------------------------------------------------ scorecard


def value_text(value: object, unit: str = "") -> str:
    if value is None or value == "":
        return "\uff08未填\uff09"
    if isinstance(value, Decimal):
        text = fmt_decimal(value)
        return text + (unit if unit else "")
    return clean_text(value)


def field_values(ir: ItemResult) -> list[dict]:
    """One line per field: its label and value, with the unit's own value where review changed it."""
    out = []
    changed = {c.key for c in ir.changes}
    for t in ir.fields:
        try:
            spec_unit = ir.item.field(t.key).unit
        except KeyError:
            spec_unit = ""
        shown = value_text(t.value, spec_unit)
        if t.key in changed:
            shown = f"{value_text(t.self_value, spec_unit)} → {shown}"
        out.append({"label": zh(clean_text(t.label)), "value": shown, "changed": t.key in changed})
    return out


def _rate(score: Fraction, points: Fraction) -> Fraction:
    return 100 * score / points if points else Fraction(0)


def scorecard_context(result: UnitResult, group_results: list[UnitResult], catalog: Catalog, settings) -> dict:
    if result.status != "scored" or result.final is None:
        raise ValueError(f"单位 {result.unit_id} 没有计分结果({STATUS_CN.get(result.status, result.status)}),不生成成绩单")
    row = result_row(result, catalog)
    group = [r for r in group_results if r.unit.group == result.unit.group] or [result]
    n_ranked = sum(1 for r in group if r.rank is not None)
    averages = dimension_averages(group, catalog)
    names = catalog.dimension_names
    dims = []
    for d, avg in zip(catalog.dimensions, averages):
        items = [ir for ir in result.items if ir.item.dimension == d.id and ir.applicable != "no"]
        scored = [ir for ir in items if ir.item.kind == "scored" and ir.applicable == "yes"]
        pts = sum((ir.points for ir in scored), Fraction(0))
        got = sum((ir.score for ir in scored), Fraction(0))
        rows = []
        for ir in items:
            if ir.item.kind != "scored":
                continue
            if ir.applicable == "na":
                rows.append(
                    {
                        "id": ir.item.id, "title": zh(ir.item.title), "values": [], "na": clean_text(ir.na_reason) or zh(clean_text(ir.explain)),
                        "points": DASH, "score": DASH, "lost": DASH, "explain": "", "changed": False, "penalty": "",
                    }
                )
                continue
            rows.append(
                {
                    "id": ir.item.id,
                    "title": zh(ir.item.title),
                    "values": field_values(ir),
                    "na": "",
                    "points": fmt2(ir.points),
                    "score": fmt2(ir.score),
                    "lost": fmt2(ir.lost),
                    "explain": zh(clean_text(ir.explain)),
                    "changed": bool(ir.changes),
                    "penalty": fmt2(ir.penalty) if ir.penalty else "",
                }
            )
        if not rows:
            continue
        rate = result.rates.get(d.id)
        dims.append(
            {
                "name": zh(d.name),
                "rows": rows,
                "points": fmt2(pts) if scored else DASH,
                "score": fmt2(got) if scored else DASH,
                "lost": fmt2(pts - got) if scored else DASH,
                "rate": fmt2(rate) if rate is not None else DASH,
                "avg": show2(avg),
            }
        )
    special = []
    for ir in result.items:
        if ir.applicable == "no" or ir.item.kind == "scored":
            continue
        if ir.item.kind == "bonus":
            outcome = f"加 {fmt2(ir.bonus)} 分"
        else:
            outcome = VETO_CN.get(ir.veto or "", "未触发")
        special.append(
            {"id": ir.item.id, "kind": "加分项" if ir.item.kind == "bonus" else "否决项", "title": zh(ir.item.title),
             "values": field_values(ir), "outcome": outcome, "explain": zh(clean_text(ir.explain))}
        )
    changes = []
    for ir in result.items:
        for c in ir.changes:
            try:
                unit = ir.item.field(c.key).unit
            except KeyError:
                unit = ""
            changes.append(
                {
                    "id": ir.item.id,
                    "title": zh(ir.item.title),
                    "label": zh(clean_text(c.label)),
                    "self": value_text(c.self_value, unit),
                    "reviewed": value_text(c.reviewed_value, unit),
                    "reason": clean_text(c.reason),
                    "reviewer": clean_text(c.reviewer) or DASH,
                    "self_score": fmt2(ir.self_score) if ir.self_score is not None else DASH,
                    "score": fmt2(ir.score) if ir.score is not None else DASH,
                    "penalty": fmt2(ir.penalty) if ir.penalty else "",
                }
            )
    rectify = sorted(
        (ir for ir in result.items if ir.lost is not None and ir.lost > 0),
        key=lambda ir: (_rate(ir.score, ir.points), -ir.lost, ir.item.id),
    )
    rectify_rows = [
        {
            "id": ir.item.id,
            "title": zh(ir.item.title),
            "dimension": zh(names[ir.item.dimension]),
            "points": fmt2(ir.points),
            "score": fmt2(ir.score),
            "lost": fmt2(ir.lost),
            "rate": fmt2(_rate(ir.score, ir.points)),
            "criterion": zh(ir.item.criterion),
        }
        for ir in rectify
    ]
    evidence = [
        {"id": ir.item.id, "title": zh(ir.item.title), "text": clean_text(ir.evidence)}
        for ir in result.items
        if ir.applicable != "no" and ir.evidence.strip()
    ]
    comps = []
    for c in catalog.components:
        if c.id == "assessed":
            comps.append({"name": zh(f"{c.name}(审核得分)"), "weight": num(c.weight), "value": row["assessed"]})
        else:
            comps.append({"name": zh(c.name), "weight": num(c.weight), "value": row[f"component_{c.id}"]})
    bars = charts.bar_chart(
        [
            charts.Bar(zh(d.name), dec(row[f"rate_{d.id}"]), avg)
            for d, avg in zip(catalog.dimensions, averages)
        ],
        title="各一级指标得分率与组平均",
        reference_name="组平均",
    )
    # 优势与不足: insight chooses the dimensions (exact gaps); the figures shown are the scorecard's
    # published rate and group average (the chart's), and the gap between them, so a reader can recompute it
    shown_avg = {d.id: avg for d, avg in zip(catalog.dimensions, averages)}

    def gap_rows(gaps) -> list[dict]:
        out = []
        for g in gaps:
            rate, avg = dec(row[f"rate_{g.dimension}"]), shown_avg.get(g.dimension)
            if rate is None or avg is None or rate == avg:
                continue  # a gap under 0.01 is not shown as a strength or weakness
            diff = rate - avg
            out.append({"name": zh(g.name), "rate": f"{rate:.2f}", "avg": f"{avg:.2f}", "gap": f"{abs(diff):.2f}", "above": diff > 0})
        return out

    sw = insight.strengths_weaknesses(result, group, catalog) if result.rank is not None else None
    strengths = gap_rows(sw.strengths) if sw else []
    weaknesses = gap_rows(sw.weaknesses) if sw else []
    robust = None
    if row["rank_p05"]:
        robust = {"interval": interval_text(row), "single": row["rank_p05"] == row["rank_p95"], "stability": stability_text(row)}
    if result.rank is not None:
        rank_text = f"第 {result.rank} 名 / 共 {n_ranked} 个单位"
    else:
        rank_text = "未参与排名"
    lost_total = lost_points(result)
    return {
        "title": f"{catalog.city}{catalog.year}年度依法行政考核成绩单",
        "catalog": catalog,
        "catalog_title": zh(catalog.title),
        "settings": settings,
        "unit": {
            "name": clean_text(result.unit.unit_name),
            "id": result.unit_id,
            "group": result.unit.group,
            "tags": "、".join(sorted(result.unit.tags)) or DASH,
            "file": clean_text(result.file),
        },
        "row": row,
        "rank_text": rank_text,
        "grade": result.grade,
        "grade_note": zh(result.grade_note),
        "veto": VETO_CN.get(result.veto or "", ""),
        "components": comps,
        "bonus": row["bonus"],
        "bonus_cap": num(catalog.bonus_cap),
        "base": fmt2(result.base),
        "total": fmt2(result.total),
        "lost_total": fmt2(lost_total),
        "dims": dims,
        "special": special,
        "changes": changes,
        "rectify": rectify_rows,
        "evidence": evidence,
        "chart": bars,
        "must_rectify": result.grade == "不合格",
        "strengths": strengths,
        "weaknesses": weaknesses,
        "has_sw": sw is not None,
        "robust": robust,
        "robust_method": robustness_method(getattr(settings, "draws", 1000)),
    }


# ------------------------------------------------------------------- feedback


def feedback_context(file: str, unit_label: str, problems: list[Problem], catalog: Catalog, settings) -> dict:
    rows = []
    for n, p in enumerate(problems, start=1):
        item = ""
        if p.item_id:
            try:
                item = f"{p.item_id} {zh(catalog.item(p.item_id).title)}"
            except KeyError:
                item = clean_text(p.item_id)
        rows.append(
            {
                "n": n,
                "sheet": clean_text(p.sheet) or DASH,
                "cell": clean_text(p.cell) or DASH,
                "item": item or DASH,
                "value": clean_text(p.value),
                "message": zh(clean_text(p.message)),
                "expected": zh(clean_text(p.expected)) or DASH,
                "code": p.code.value,
            }
        )
    return {
        "title": zh(f"{catalog.title}自评表退回意见"),
        "catalog": catalog,
        "catalog_title": zh(catalog.title),
        "settings": settings,
        "file": clean_text(Path(file).name),
        "unit_label": clean_text(unit_label),
        "rows": rows,
    }


__all__ = ["bulletin_context", "scorecard_context", "feedback_context", "method_annex", "rule_text"]
