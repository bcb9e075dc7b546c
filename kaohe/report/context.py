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

Documents whose length grows with the number of units (the bulletin's ranking
annex, the office report's watch list) are cut into parts (``BulletinParts``,
``office.OfficeParts``) that ``render_parts`` lays out one at a time and paints
into one PDF (``PartsPdf``), so that a province's thousands of units need the
memory of one part and time linear in the units (see the end of this module).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, NamedTuple
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import inspect
import re

from markupsafe import Markup

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


#: ``zh`` of catalog and system text, memoised (a run's scorecards repeat the same titles and notes)
_zh = lru_cache(maxsize=1 << 14)(zh)


def _fmt2(x: Fraction | Decimal | int | None) -> str:
    """``kaohe.numbers.fmt2`` (half-up to 2 decimals), in integer arithmetic for Fractions and ints."""
    if x is None:
        return ""
    if isinstance(x, Fraction):
        n, d = x.numerator, x.denominator
    elif isinstance(x, int) and not isinstance(x, bool):
        n, d = x, 1
    else:
        return fmt2(x)
    q, r = divmod(abs(n) * 100, d)
    if 2 * r >= d:
        q += 1
    text = f"{q // 100}.{q % 100:02d}"
    return "-" + text if n < 0 and q else text


@lru_cache(maxsize=1024)
def _points(points: Decimal) -> Fraction:
    """An item's points as a Fraction (``ItemResult.points`` of an applicable scored item)."""
    return Fraction(points)


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
    return dict(_robustness_method(draws))


@lru_cache(maxsize=16)
def _robustness_method(draws: int) -> tuple[tuple[str, str], ...]:
    params = inspect.signature(insight.rank_robustness).parameters
    low, high = Decimal(str(params["low"].default)), Decimal(str(params["high"].default))
    return tuple(
        {
            "draws": f"{draws:,}",
            "low": num(low),
            "high": num(high),
            "spread": num((high - 1) * 100) if high - 1 == 1 - low else "",  # ±20 (%)
        }.items()
    )


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
    strip_rows = [
        charts.StripRow(
            label=gv.name,
            dots=tuple(charts.Dot(dec(row.final), row.grade) for row in gv.rows if row.rank != DASH),
            bands=tuple(gv.bands),
        )
        for gv in groups
    ]
    strip = charts.strip_plot(strip_rows, title="各考核组最终得分分布")
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
        "strip_binned": charts.strip_binned(strip_rows),
        "strip_bin": charts.strip_bin_width(strip_rows),
        "heat_chart": heat,
        "method": method_annex(catalog),
        # the ranking annex: column widths for its rows, 得分率 backgrounds as classes (white cells need none)
        "rank_css": Markup(
            rank_column_css(groups) + "\n" + charts.rate_styles(c for gv in groups for row in gv.rows for _, c in row.rates if c != "#ffffff")
        ),
        "rate_class": charts.rate_class,
    }


FONT_REGULAR = Path(__file__).resolve().parent / "fonts" / "KaoheSansSC-Regular.ttf"


@lru_cache(maxsize=1)
def _advances() -> tuple[dict[int, int], int]:
    """Advance width per code point of the bundled regular font, and its units per em."""
    from fontTools.ttLib import TTFont

    font = TTFont(str(FONT_REGULAR), lazy=True)
    try:
        hmtx, upm = font["hmtx"], font["head"].unitsPerEm
        return {cp: hmtx[glyph][0] for cp, glyph in font.getBestCmap().items()}, upm
    finally:
        font.close()


def text_mm(text: str, pt: float) -> float:
    """The width of one line of text in the bundled font, in mm (1 em for a character the font lacks)."""
    widths, upm = _advances()
    return sum(widths.get(ord(ch), upm) for ch in text) / upm * pt * 25.4 / 72


#: the ranking annex's columns: (header class, the row's attribute, narrowest width in mm); the widths
#: are of the column (content + 1.6 mm of the header's padding), the name column takes the rest
RANK_COLUMNS = (("rk", "rank", 8.0), ("fin", "final", 13.0), ("gr", "grade", 11.0), ("iv", "interval", 13.0), ("chg", "change", 12.0), ("nt", "note", 12.0))
RANK_CELL_PT = 8.0  # table.rank font size (report.css)
RANK_CELL_PAD = 2.3  # a cell's padding (2 × 1 mm) and its share of the borders, in mm
RANK_NOTE_MAX = 34.0  # a longer note wraps


def rank_column_css(groups: list[GroupView]) -> str:
    """Widths of the ranking annex's columns, as wide as their longest text: the same in every part."""
    out = []
    for cls, attr, least in RANK_COLUMNS:
        longest = max((text_mm(getattr(r, attr), RANK_CELL_PT) for gv in groups for r in gv.rows), default=0.0)
        width = max(least, longest + RANK_CELL_PAD)
        if cls == "nt":
            width = min(width, RANK_NOTE_MAX)
        out.append(f"table.rank th.{cls} {{ width: {width - 1.6:.1f}mm; }}")
    return "\n".join(out)


#: rows of the ranking annex (附件1) per part: each part is laid out as its own WeasyPrint document
#: (about 0.3 MB per row while laid out), so the memory a bulletin needs does not grow with the units
RANK_ROWS_PER_PART = 270


@dataclass
class RankBlock:
    """The rows of one group in one part of the ranking annex: one table with its header."""

    index: int  # the group's number in the annex (1-based)
    group: GroupView
    rows: list[RankRow]
    first: bool  # the group's first rows: the table has the group's heading
    last: bool
    start: int = 0  # the position of its first row in the annex (data-i of the heading and the rows)


class Part(NamedTuple):
    """One part of a document laid out on its own (``render_parts``)."""

    template: str
    context: dict
    page: str | None = None  # the named page its first page is (``wide``: landscape), None for the default
    #: given the laid-out part, how many of its pages to keep: what is on the pages after them goes
    #: to the next part, which the parts' iterator builds only then (None: keep every page)
    carry: Callable | None = None


class BulletinParts:
    """The bulletin as parts laid out one after the other into one PDF (``render_parts``).

    The front matter (``bulletin.html``: the notice, summary, charts, signature); then the ranking
    annex (``_bulletin_ranks.html``) in parts of about ``rows_per_part`` rows (default
    ``RANK_ROWS_PER_PART``; a group's last quarter-part of rows stays in the part before, its first
    few rows go to the next), one table per group in a part, each with its header; the last part
    ends with the annex notes and the method annex (附件2). Every unit's row is in exactly one part,
    in bulletin order.

    A part's last page is seldom full. ``render_parts`` keeps every page of a part but the last
    (``carry``), and the next part starts with what was on that page, so the annex reads page after
    page as if laid out at once. Iterating without laying out (``carry`` not called) gives the parts
    as first cut.
    """

    def __init__(self, ctx: dict, rows_per_part: int | None = None):
        self.ctx = ctx
        self.rows_per_part = max(1, rows_per_part or RANK_ROWS_PER_PART)
        self.rows: list[tuple[int, GroupView, int | None]] = []  # (group number, group, row in group; None: no units)
        for index, gv in enumerate(ctx["groups"], start=1):
            self.rows += [(index, gv, k) for k in range(len(gv.rows))] or [(index, gv, None)]
        self.next = 0

    def _end(self, start: int) -> int:
        """Where a part starting at ``start`` ends: about rows_per_part rows; a group's short tail kept,
        a group's first few rows moved to the next part."""
        tail = self.rows_per_part // 4
        end = min(len(self.rows), start + self.rows_per_part)
        if end < len(self.rows):
            _, gv, k = self.rows[end]
            if k is not None and len(gv.rows) - k <= tail:
                end += len(gv.rows) - k
            elif k is not None and k < tail and end - k > start:
                end -= k
        return end

    def _blocks(self, start: int, end: int) -> list[RankBlock]:
        blocks: list[RankBlock] = []
        for i in range(start, end):
            index, gv, k = self.rows[i]
            if k is None:
                blocks.append(RankBlock(index, gv, [], first=True, last=True, start=i))
                continue
            if not blocks or blocks[-1].group is not gv:
                blocks.append(RankBlock(index, gv, [], first=k == 0, last=False, start=i))
            blocks[-1].rows.append(gv.rows[k])
            blocks[-1].last = k == len(gv.rows) - 1
        return blocks

    def __iter__(self):
        yield Part("bulletin.html", self.ctx)
        start, k = 0, 0
        while True:
            end = self._end(start)
            last = end >= len(self.rows)
            self.next = end
            ctx = {**self.ctx, "blocks": self._blocks(start, end), "first_part": k == 0, "last_part": last}
            yield Part("_bulletin_ranks.html", ctx, "wide", None if last else self._carry(start))
            if last:
                return
            start, k = self.next, k + 1

    def _carry(self, start: int) -> Callable:
        return carry_from_last_page(self, start)


def carry_from_last_page(parts, start: int) -> Callable:
    """A ``Part.carry`` for a part whose items begin at ``start``: keep every page but the last, and
    set ``parts.next`` to the first item on the last page (its ``data-i``), where the next part begins.
    Keeps every page when the part has one page, or when nothing on the last page has a data-i."""

    def carry(document) -> int:
        pages = document.pages
        first = _first_data_i(pages[-1]) if len(pages) > 1 else None
        if first is None or first <= start:
            return len(pages)
        parts.next = first
        return len(pages) - 1

    return carry


def bulletin_parts(ctx: dict, rows_per_part: int | None = None) -> BulletinParts:
    """The bulletin as parts for ``render_parts`` (see ``BulletinParts``)."""
    return BulletinParts(ctx, rows_per_part)


def _first_data_i(page) -> int | None:
    """The data-i of the first element that has one on a laid-out page (WeasyPrint 70's page box), or None."""
    box = getattr(page, "_page_box", None)
    if box is None:
        return None
    for b in box.descendants():
        element = getattr(b, "element", None)
        i = element.get("data-i") if element is not None and hasattr(element, "get") else None
        if i is not None:
            return int(i)
    return None


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
        out.append({"label": _zh(clean_text(t.label)), "value": shown, "changed": t.key in changed})
    return out


def _rate(score: Fraction, points: Fraction) -> Fraction:
    return 100 * score / points if points else Fraction(0)


@dataclass(frozen=True)
class GroupStats:
    """A group's figures that every scorecard of the group shows, computed once per run
    (``group_stats``), not once per unit: building every scorecard is then linear in the units.

    ``averages`` are ``dimension_averages`` over the group's units (the published 组平均);
    ``peer_means`` are the exact mean rates per dimension of the group's ranked units, the means
    ``kaohe.insight.strengths_weaknesses`` measures a unit's gaps against (None: no ranked unit
    has a rate in that dimension).
    """

    group: str
    n_ranked: int
    averages: tuple[Decimal | None, ...]
    peer_means: tuple[Fraction | None, ...]


def group_stats(group_results: list[UnitResult], catalog: Catalog, group: str | None = None) -> GroupStats:
    """``GroupStats`` of the units of ``group`` in ``group_results`` (default: the first unit's group)."""
    if group is None:
        group = group_results[0].unit.group if group_results else ""
    members = [r for r in group_results if r.unit.group == group]
    peers = [r for r in members if r.status == "scored" and r.final is not None]  # insight._ranked
    peer_means: list[Fraction | None] = []
    for d in catalog.dimensions:
        rates = [r.rates[d.id] for r in peers if r.rates.get(d.id) is not None]
        peer_means.append(sum(rates, Fraction(0)) / len(rates) if rates else None)
    return GroupStats(
        group=group,
        n_ranked=sum(1 for r in members if r.rank is not None),
        averages=tuple(dimension_averages(members, catalog)),
        peer_means=tuple(peer_means),
    )


def run_group_stats(results: list[UnitResult], catalog: Catalog) -> dict[str, GroupStats]:
    """``GroupStats`` of every group that has units in ``results``, by group name (one pass per group)."""
    by_group: dict[str, list[UnitResult]] = {}
    for r in results:
        by_group.setdefault(r.unit.group, []).append(r)
    return {g: group_stats(members, catalog, g) for g, members in by_group.items()}


def strengths_weaknesses(result: UnitResult, stats: GroupStats, catalog: Catalog, n: int = 2) -> insight.StrengthsWeaknesses:
    """``kaohe.insight.strengths_weaknesses`` against the group's precomputed means (same result)."""
    gaps = []
    for d, group_mean in zip(catalog.dimensions, stats.peer_means):
        mine = result.rates.get(d.id)
        if mine is None or group_mean is None:
            continue
        gaps.append(insight.DimensionGap(d.id, d.name, mine, group_mean, mine - group_mean))
    strengths = sorted((g for g in gaps if g.gap > 0), key=lambda g: -g.gap)[:n]
    weaknesses = sorted((g for g in gaps if g.gap < 0), key=lambda g: g.gap)[:n]
    return insight.StrengthsWeaknesses(strengths, weaknesses)


def scorecard_context(
    result: UnitResult, group_results: list[UnitResult] | None, catalog: Catalog, settings, stats: GroupStats | None = None
) -> dict:
    """What one unit's scorecard shows. ``group_results`` are the results of its group (others are
    ignored); ``stats`` (``group_stats``/``run_group_stats``), when given, replaces them: building
    every scorecard of a run then costs time linear in the units, not in units × group size."""
    if result.status != "scored" or result.final is None:
        raise ValueError(f"单位 {result.unit_id} 没有计分结果({STATUS_CN.get(result.status, result.status)}),不生成成绩单")
    row = result_row(result, catalog)
    if stats is None or stats.group != result.unit.group:
        group = [r for r in (group_results or ()) if r.unit.group == result.unit.group] or [result]
        stats = group_stats(group, catalog, result.unit.group)
    n_ranked = stats.n_ranked
    averages = stats.averages
    names = catalog.dimension_names
    # each item's kind, points and lost points once (ItemResult.points/.lost build new Fractions per call)
    facts = []  # (item result, kind, points, lost): points and lost for applicable scored items, else None
    by_dim: dict[str, list[tuple]] = {}
    for ir in result.items:
        kind = ir.item.kind
        if kind == "scored" and ir.applicable == "yes":
            pts = _points(ir.item.points)
            fact = (ir, kind, pts, pts - ir.score)
        else:
            fact = (ir, kind, None, None)
        facts.append(fact)
        if ir.applicable != "no":
            by_dim.setdefault(ir.item.dimension, []).append(fact)
    dims = []
    for d, avg in zip(catalog.dimensions, averages):
        items = by_dim.get(d.id, ())
        scored = [(ir, pts) for ir, kind, pts, _ in items if pts is not None]
        pts_sum = sum((p for _, p in scored), Fraction(0))
        got = sum((ir.score for ir, _ in scored), Fraction(0))
        rows = []
        for ir, kind, pts, lost in items:
            if kind != "scored":
                continue
            if ir.applicable == "na":
                rows.append(
                    {
                        "id": ir.item.id, "title": _zh(ir.item.title), "values": [], "na": clean_text(ir.na_reason) or _zh(clean_text(ir.explain)),
                        "points": DASH, "score": DASH, "lost": DASH, "explain": "", "changed": False, "penalty": "",
                    }
                )
                continue
            rows.append(
                {
                    "id": ir.item.id,
                    "title": _zh(ir.item.title),
                    "values": field_values(ir),
                    "na": "",
                    "points": _fmt2(pts),
                    "score": _fmt2(ir.score),
                    "lost": _fmt2(lost),
                    "explain": _zh(clean_text(ir.explain)),
                    "changed": bool(ir.changes),
                    "penalty": _fmt2(ir.penalty) if ir.penalty else "",
                }
            )
        if not rows:
            continue
        rate = result.rates.get(d.id)
        dims.append(
            {
                "name": _zh(d.name),
                "rows": rows,
                "points": _fmt2(pts_sum) if scored else DASH,
                "score": _fmt2(got) if scored else DASH,
                "lost": _fmt2(pts_sum - got) if scored else DASH,
                "rate": _fmt2(rate) if rate is not None else DASH,
                "avg": show2(avg),
            }
        )
    special = []
    for ir in result.items:
        if ir.applicable == "no" or ir.item.kind == "scored":
            continue
        if ir.item.kind == "bonus":
            outcome = f"加 {_fmt2(ir.bonus)} 分"
        else:
            outcome = VETO_CN.get(ir.veto or "", "未触发")
        special.append(
            {"id": ir.item.id, "kind": "加分项" if ir.item.kind == "bonus" else "否决项", "title": _zh(ir.item.title),
             "values": field_values(ir), "outcome": outcome, "explain": _zh(clean_text(ir.explain))}
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
                    "title": _zh(ir.item.title),
                    "label": _zh(clean_text(c.label)),
                    "self": value_text(c.self_value, unit),
                    "reviewed": value_text(c.reviewed_value, unit),
                    "reason": clean_text(c.reason),
                    "reviewer": clean_text(c.reviewer) or DASH,
                    "self_score": _fmt2(ir.self_score) if ir.self_score is not None else DASH,
                    "score": _fmt2(ir.score) if ir.score is not None else DASH,
                    "penalty": _fmt2(ir.penalty) if ir.penalty else "",
                }
            )
    # 需整改: items that lost points, lowest 得分率 first (then most lost, then id); each rate computed once
    rectify = sorted(
        ((_rate(ir.score, pts), -lost, ir.item.id, ir, pts, lost) for ir, _, pts, lost in facts if lost is not None and lost > 0),
        key=lambda t: t[:3],
    )
    rectify_rows = [
        {
            "id": ir.item.id,
            "title": _zh(ir.item.title),
            "dimension": _zh(names[ir.item.dimension]),
            "points": _fmt2(pts),
            "score": _fmt2(ir.score),
            "lost": _fmt2(lost),
            "rate": _fmt2(rate),
            "criterion": _zh(ir.item.criterion),
        }
        for rate, _, _, ir, pts, lost in rectify
    ]
    evidence = [
        {"id": ir.item.id, "title": _zh(ir.item.title), "text": clean_text(ir.evidence)}
        for ir in result.items
        if ir.applicable != "no" and ir.evidence.strip()
    ]
    comps = []
    for c in catalog.components:
        if c.id == "assessed":
            comps.append({"name": _zh(f"{c.name}(审核得分)"), "weight": num(c.weight), "value": row["assessed"]})
        else:
            comps.append({"name": _zh(c.name), "weight": num(c.weight), "value": row[f"component_{c.id}"]})
    bars = charts.bar_chart(
        [
            charts.Bar(_zh(d.name), dec(row[f"rate_{d.id}"]), avg)
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
            out.append({"name": _zh(g.name), "rate": f"{rate:.2f}", "avg": f"{avg:.2f}", "gap": f"{abs(diff):.2f}", "above": diff > 0})
        return out

    sw = strengths_weaknesses(result, stats, catalog) if result.rank is not None else None
    strengths = gap_rows(sw.strengths) if sw else []
    weaknesses = gap_rows(sw.weaknesses) if sw else []
    robust = None
    if row["rank_p05"]:
        robust = {"interval": interval_text(row), "single": row["rank_p05"] == row["rank_p95"], "stability": stability_text(row)}
    if result.rank is not None:
        rank_text = f"第 {result.rank} 名 / 共 {n_ranked} 个单位"
    else:
        rank_text = "未参与排名"
    lost_total = sum((lost for *_, lost in facts if lost is not None), Fraction(0))  # lost_points(result)
    return {
        "title": f"{catalog.city}{catalog.year}年度依法行政考核成绩单",
        "catalog": catalog,
        "catalog_title": _zh(catalog.title),
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
        "grade_note": _zh(result.grade_note),
        "veto": VETO_CN.get(result.veto or "", ""),
        "components": comps,
        "bonus": row["bonus"],
        "bonus_cap": num(catalog.bonus_cap),
        "base": _fmt2(result.base),
        "total": _fmt2(result.total),
        "lost_total": _fmt2(lost_total),
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


# ------------------------------------------------------- long documents: parts into one PDF

#: a part of a document is laid out without page margins (the margins document draws them, render_parts);
#: its first section starts its first page (a break before it would leave that page empty)
NO_MARGINS_CSS = (
    "@page { @top-left { content: none; border: none; } @top-center { content: none; border: none; }"
    " @top-right { content: none; border: none; } @bottom-center { content: none; } }"
    " body > section:first-of-type { break-before: auto; }"
)
#: a part whose first page is a named page (``page: wide``): the whole body starts on it, or the
#: running-header strings before the first section would sit alone on a portrait page
PAGE_START_CSS = "body {{ page: {name}; }}"


def parts_supported() -> bool:
    """Whether the installed WeasyPrint has the internals ``PartsPdf`` drives (those of WeasyPrint 70)."""
    try:
        import pydyf  # noqa: F401
        from weasyprint.anchors import make_page_bookmark_tree  # noqa: F401
        from weasyprint.matrix import Matrix  # noqa: F401
        from weasyprint.pdf import _use_references  # noqa: F401
        from weasyprint.pdf.anchors import add_outlines  # noqa: F401
        from weasyprint.pdf.fonts import build_fonts_dictionary  # noqa: F401
        from weasyprint.pdf.stream import Stream
    except ImportError:
        return False
    params = list(inspect.signature(Stream.__init__).parameters)[1:8]
    return params == ["fonts", "page_rectangle", "resources", "images", "tags", "color_profiles", "output_intent"]


class PartsPdf:
    """Paints the pages of several WeasyPrint documents, one after the other, into one PDF.

    WeasyPrint keeps every laid-out page of a document in memory until it writes the PDF (a
    ranking table costs about 0.35 MB per row: 1.5 GB for 3,000 units). Here each part is laid
    out, its pages painted into the PDF (content streams compressed at once) and dropped before
    the next part is laid out, so the memory is that of the largest part. Fonts are shared: one
    subset per font for the whole PDF. Headings become PDF bookmarks across all parts.

    Page margins (running header, 第 X 页 / 共 Y 页) need the total number of pages, unknown
    while parts are laid out: parts are laid out without margins (``NO_MARGINS_CSS``), and
    ``overlay`` paints the pages of one more document, laid out once the total is known, with one
    empty page of the same size per page and the margins, onto the pages.

    It does what ``weasyprint.Document.write_pdf`` does (WeasyPrint 70, ``weasyprint.pdf``) for
    pages from many documents; ``parts_supported()`` says whether the installed WeasyPrint has
    those internals. Links, forms and attachments are not supported (the documents have none).
    """

    SCALE = 0.75  # PDF points per CSS pixel

    def __init__(self):
        import pydyf
        from tinycss2.color5 import D50, D65

        self.pdf = pydyf.PDF()
        self.fonts: dict = {}
        self.images: dict = {}
        self.color_profiles: dict = {}
        color_space = pydyf.Dictionary(
            {
                "lab-d50": pydyf.Array(("/Lab", pydyf.Dictionary({"WhitePoint": pydyf.Array(D50), "Range": pydyf.Array((-125, 125, -125, 125))}))),
                "lab-d65": pydyf.Array(("/Lab", pydyf.Dictionary({"WhitePoint": pydyf.Array(D65), "Range": pydyf.Array((-125, 125, -125, 125))}))),
            }
        )
        self.pdf.add_object(color_space)
        self.resources = pydyf.Dictionary(
            {
                "ExtGState": pydyf.Dictionary(),
                "XObject": pydyf.Dictionary(),
                "Pattern": pydyf.Dictionary(),
                "Shading": pydyf.Dictionary(),
                "ColorSpace": color_space.reference,
            }
        )
        self.pdf.add_object(self.resources)
        self.metadata = None
        self.pages: list[tuple[object, float, float]] = []  # (PDF page dictionary, width, height in CSS px)
        self._bookmarks: list = []
        self._skipped: list = []
        self._last_by_depth: list = [self._bookmarks]
        self._level = 0

    @property
    def page_sizes(self) -> list[tuple[float, float]]:
        return [(w, h) for _, w, h in self.pages]

    def add(self, document, pages: int | None = None) -> int:
        """Paints the pages (the first ``pages`` of them) of a rendered ``weasyprint.Document`` after the
        pages so far; returns their number."""
        if self.metadata is None:
            self.metadata = document.metadata
        chosen = document.pages if pages is None else document.pages[:pages]
        for page in chosen:
            self._add_page(page)
        return len(chosen)

    def _stream(self, height: float):
        from weasyprint.pdf.stream import Stream

        # the page rectangle is only used for PDF/UA tags (none here)
        stream = Stream(self.fonts, None, self.resources, self.images, None, self.color_profiles, None, compress=True)
        stream.push_state()  # each content stream restores the graphics state: a page has two (content, margins)
        stream.transform(d=-1, f=height * self.SCALE)
        self.pdf.add_object(stream)
        return stream

    def _add_page(self, page) -> None:
        import pydyf
        from weasyprint.anchors import make_page_bookmark_tree
        from weasyprint.matrix import Matrix

        if page.links or any(page.forms.values()):
            raise ValueError("PartsPdf: links and forms are not supported")
        s = self.SCALE
        stream = self._stream(page.height)
        left, top = -s * page.bleed["left"], -s * page.bleed["top"]
        right = left + s * (page.width + page.bleed["left"] + page.bleed["right"])
        bottom = top + s * (page.height + page.bleed["top"] + page.bleed["bottom"])
        pdf_page = pydyf.Dictionary(
            {
                "Type": "/Page",
                "Parent": self.pdf.pages.reference,
                "MediaBox": pydyf.Array([left, top, right, bottom]),
                "Contents": stream.reference,
                "Resources": self.resources.reference,
            }
        )
        self.pdf.add_page(pdf_page)
        page.paint(stream, s)
        _freeze(stream)
        bleed = {k: v * s for k, v in page.bleed.items()}
        trim = [left + bleed["left"], top + bleed["top"], right - bleed["right"], bottom - bleed["bottom"]]
        pdf_page["TrimBox"] = pydyf.Array(trim)
        pdf_page["BleedBox"] = pydyf.Array(
            [trim[0] - min(10, bleed["left"]), trim[1] - min(10, bleed["top"]), trim[2] + min(10, bleed["right"]), trim[3] + min(10, bleed["bottom"])]
        )
        matrix = Matrix(a=s, d=-s, f=page.height * s)
        self._level = make_page_bookmark_tree(page, self._skipped, self._last_by_depth, self._level, len(self.pages), matrix)
        self.pages.append((pdf_page, page.width, page.height))

    def overlay(self, document) -> None:
        """Paints page k of ``document`` (the margins) onto page k: same number of pages, same sizes."""
        import pydyf

        if len(document.pages) != len(self.pages):
            raise ValueError(f"PartsPdf: {len(document.pages)} margin pages for {len(self.pages)} pages")
        for (pdf_page, width, height), page in zip(self.pages, document.pages):
            if abs(page.width - width) > 0.5 or abs(page.height - height) > 0.5:
                raise ValueError("PartsPdf: a margin page differs in size from its page")
            stream = self._stream(page.height)
            page.paint(stream, self.SCALE)
            _freeze(stream)
            pdf_page["Contents"] = pydyf.Array([pdf_page["Contents"], stream.reference])

    def write(self, target) -> None:
        """Writes the PDF (bookmarks, metadata, fonts subset once) to a binary file object."""
        import pydyf
        import weasyprint
        from weasyprint.pdf import _use_references
        from weasyprint.pdf.anchors import add_outlines
        from weasyprint.pdf.fonts import build_fonts_dictionary

        options = dict(weasyprint.DEFAULT_OPTIONS)
        pdf = self.pdf
        add_outlines(pdf, self._bookmarks)
        pdf.info["Producer"] = pydyf.String(f"WeasyPrint {weasyprint.__version__}")
        m = self.metadata
        if m is not None:
            if m.title:
                pdf.info["Title"] = pydyf.String(m.title)
            if m.authors:
                pdf.info["Author"] = pydyf.String(", ".join(m.authors))
            if m.description:
                pdf.info["Subject"] = pydyf.String(m.description)
            if m.keywords:
                pdf.info["Keywords"] = pydyf.String(", ".join(m.keywords))
            if m.generator:
                pdf.info["Creator"] = pydyf.String(m.generator)
            if m.lang:
                pdf.catalog["Lang"] = pydyf.String(m.lang)
        fonts = build_fonts_dictionary(pdf, self.fonts, True, not options["full_fonts"], options)
        pdf.add_object(fonts)
        self.resources["Font"] = fonts.reference
        _use_references(pdf, self.resources, self.images, self.color_profiles)
        pdf.write(target, options["pdf_version"], options["pdf_identifier"], True)


def _freeze(stream) -> None:
    """Compresses a painted content stream now (pydyf would keep every operator until the PDF is written)."""
    import zlib

    from pydyf import Object

    def to_bytes(item) -> bytes:  # pydyf's own conversion of stream items
        if isinstance(item, bytes):
            return item
        if isinstance(item, float):
            return str(int(item)).encode("ascii") if item.is_integer() else f"{item:f}".rstrip("0").encode("ascii")
        if isinstance(item, Object):
            return item.data
        return str(item).encode("ascii")

    stream.pop_state()
    data = b"\n".join(to_bytes(item) for item in stream.stream)
    stream.stream = [zlib.compress(data, 6)]
    stream.compress = False
    stream.extra["Filter"] = "/FlateDecode"


def render_parts(parts, out_pdf: Path) -> Path:
    """Lays out ``Part``s (or (template, context) pairs) one after the other into one PDF with continuous
    page margins; ``parts`` is iterated as the parts are laid out (``Part.carry``).

    Used by ``render.render_bulletin`` and ``render.render_office_report`` for documents whose length
    grows with the number of units. The first part's context gives the running header and the PDF's
    metadata. With a WeasyPrint that lacks the internals ``PartsPdf`` drives, the parts are joined into
    one HTML document and rendered as before (same pages, more memory).
    """
    import gc
    import os

    from kaohe.report import render as R

    if not parts_supported():
        return R.render_html(join_parts([R.render_template(p.template, p.context) for p in map(_as_part, parts)]), out_pdf)
    from weasyprint.urls import FatalURLFetchingError

    eng = R.engine()
    out_pdf = Path(out_pdf)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_pdf.with_name(out_pdf.name + ".part")
    missing: set[str] = set()
    base_url = R.STATIC.as_uri() + "/"

    def layout(html: str, extra: list):
        missing.update(R.uncovered_characters(html))
        doc = eng.weasyprint.HTML(string=html, base_url=base_url, url_fetcher=eng.fetcher)
        return doc.render(stylesheets=[eng.css, *extra], font_config=eng.font_config)

    # Garbage collection: the caller's objects (all results: ~0.15 MB per unit) are not garbage, so
    # they are left out of collections (gc.freeze: a collection walks the whole heap, 0.7 s at 3,000
    # units), and no collection runs while a part is laid out (WeasyPrint allocates so much that
    # collections, each walking the part's boxes so far, make layout time grow with the square of
    # a part's size: 35 % of the time at 270 rows); one collection after each part frees its cycles.
    with eng.lock:
        freeze = not gc.get_freeze_count()
        enabled = gc.isenabled()
        try:
            if freeze:
                gc.freeze()
            gc.disable()
            book = PartsPdf()
            first = None
            for part in map(_as_part, parts):  # lazily: a part may depend on how the one before was laid out
                first = part.context if first is None else first
                document = layout(R.render_template(part.template, part.context), _parts_css(eng, part.page))
                book.add(document, part.carry(document) if part.carry else None)
                del document
                gc.collect()  # the part's reference cycles, before the next part
            if first is None:
                raise ValueError("render_parts: no parts")
            sizes = [w > h for w, h in book.page_sizes]
            margins = layout(R.render_template("_margins.html", {**first, "margin_pages": sizes}), [])
            book.overlay(margins)
            del margins
            if missing:
                R.log.warning(
                    "%s:内置字体缺少字符 %s\uff0c这些字符将以系统字体显示\uff08系统也没有时显示为方框\uff09",
                    out_pdf.name,
                    " ".join(sorted(missing)[:50]),
                )
            with open(tmp, "wb") as fh:
                book.write(fh)
        except FatalURLFetchingError as exc:
            tmp.unlink(missing_ok=True)
            cause = exc.__cause__
            raise R.ReportError(str(cause) if isinstance(cause, R.ReportError) else f"PDF 生成失败:{exc}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            if freeze:
                gc.unfreeze()
            if enabled:
                gc.enable()
    os.replace(tmp, out_pdf)
    return out_pdf


def _as_part(p) -> Part:
    return p if isinstance(p, Part) else Part(*p)


_PARTS_CSS: dict[tuple[int, str | None], list] = {}


def _parts_css(eng, page: str | None = None) -> list:
    """The stylesheets of a part (NO_MARGINS_CSS, and PAGE_START_CSS for ``page``), parsed once per engine."""
    key = (id(eng), page)
    sheets = _PARTS_CSS.get(key)
    if sheets is None:
        if page is not None and not re.fullmatch(r"[a-z][a-z0-9-]*", page):
            raise ValueError(f"not a page name: {page!r}")
        text = NO_MARGINS_CSS + (" " + PAGE_START_CSS.format(name=page) if page else "")
        sheets = _PARTS_CSS[key] = [eng.weasyprint.CSS(string=text, font_config=eng.font_config)]
    return sheets


_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S)


def join_parts(htmls: list[str]) -> str:
    """The parts as one HTML document: the first part, with the body of every other part appended."""
    if not htmls:
        return ""
    bodies = []
    for html in htmls[1:]:
        m = _BODY.search(html)
        bodies.append(m.group(1) if m else html)
    head, sep, tail = htmls[0].rpartition("</body>")
    return head + "".join(bodies) + sep + tail if sep else htmls[0] + "".join(bodies)
