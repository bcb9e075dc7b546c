"""The office's internal report (内部工作材料): watch list, grade stability, indicator diagnostics.

Not for publication. What it shows comes from ``kaohe.insight`` (the watch list,
``Robustness`` on each ranked result, ``indicator_diagnostics``) and from
``kaohe.outputs.result_row`` for every published figure, so the report, the
bulletin and results.csv agree. Shares and weights are shown as percentages
with 2 decimals, rounded half-up once from the exact float the diagnostics hold.

``write_diagnostics_xlsx`` writes the same diagnostics table as a workbook
(one row per scored item) through ``kaohe.outputs.put``/``_sheet``, so no text
cell can become a formula.
"""

from __future__ import annotations

import math
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from datetime import date

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

from kaohe.catalog import Catalog
from kaohe.numbers import round_half_up
from kaohe.outputs import STATUS_CN, _sheet, clean_text, put, result_row
from kaohe.ranking import published
from kaohe.report import charts
from kaohe.report.context import DASH, chinese_date, interval_text, num, robustness_method, stability_text
from kaohe.report.text import zh
from kaohe.scoring import UnitResult

#: watch-list kinds in the order of kaohe.insight (title, what it means for the office)
WATCH_KINDS = (
    ("veto", "触发否决项", "触发否决项的单位。得分照常公布，等次按否决规则确定（一票否决为不合格，其他否决项不得评为优秀）。请核实否决事实及其依据。"),
    ("band", "接近等次分数线", "最终得分距本组等次分数线不超过1分（高于或低于）的单位，得分稍有变化就会改变等次。请复核其计分依据和审核意见。"),
    ("quota", "优秀名额临界", "达到优秀分数线的单位多于优秀名额时，得分距末位优秀不超过1分的单位。"),
    ("tie", "同分按规则定名次", "最终得分相同、按同分比较规则（依次比较一级指标得分率）分出先后名次的单位。"),
    ("review", "审核调整较大", "审核后某一考核内容得分的变动达到该项分值20%及以上的单位（含核查不实扣分）。"),
)
#: units whose grade holds in fewer draws than this are listed as unstable
STABILITY_LINE = Decimal("0.90")
#: an item that nearly every unit passes
NEAR_FULL = 0.9
#: items per part of the diagnostics chart (a part must fit one A4 page with the section's heading)
CHART_ROWS = 56


def pct(x: float | None) -> str:
    """A share (0.4286) as a percentage with 2 decimals ('42.86'), '—' when None."""
    if x is None:
        return DASH
    return f"{round_half_up(Fraction(x) * 100, 2):.2f}"


def _unit_view(r: UnitResult, catalog: Catalog) -> dict:
    row = result_row(r, catalog)
    return {
        "id": r.unit_id,
        "name": clean_text(r.unit.unit_name),
        "group": r.unit.group,
        "rank": row["rank"] or DASH,
        "final": row["final"] or DASH,
        "grade": r.grade if r.status == "scored" else STATUS_CN.get(r.status, r.status),
        "interval": interval_text(row),
        "stability": stability_text(row),
        "stability_value": Decimal(row["grade_stability"]) if row["grade_stability"] else None,
    }


def watch_context(results: list[UnitResult], catalog: Catalog, watch) -> list[dict]:
    """The watch list grouped by kind (kinds with no entry left out), entries in the list's order.

    Ties with more than ``TIE_DETAIL_MAX`` entries are also given as ``blocks`` (``tie_blocks``): one
    table row per unit instead of a paragraph naming every other unit of its tie (which grows with
    the square of a tie's size); the template shows the blocks then.
    """
    by_id = {r.unit_id: r for r in results}
    units = {r.unit_id: _unit_view(r, catalog) for r in results}
    known = {k for k, _, _ in WATCH_KINDS}
    kinds = list(WATCH_KINDS) + [(k, k, "") for k in dict.fromkeys(e.kind for e in watch) if k not in known]
    out = []
    for kind, title, meaning in kinds:
        rows = []
        for e in watch:
            if e.kind != kind:
                continue
            u = units.get(e.unit_id) or {"id": e.unit_id, "name": e.unit_id, "group": "", "rank": DASH, "final": DASH, "grade": DASH, "interval": DASH, "stability": DASH}
            rows.append({**u, "detail": zh(clean_text(e.detail_cn))})
        if rows:
            g = {"kind": kind, "title": title, "meaning": meaning, "rows": rows, "n_units": len({r["id"] for r in rows}), "blocks": None, "index": len(out) + 1}
            if kind == "tie" and len(rows) > TIE_DETAIL_MAX:
                g["blocks"] = tie_blocks([r["id"] for r in rows], by_id, units, catalog)
            out.append(g)
    return out


#: above this many 同分 entries the watch list shows ties as blocks, one row per unit (tie_blocks)
TIE_DETAIL_MAX = 30


def tie_blocks(unit_ids: list[str], by_id: dict[str, UnitResult], units: dict[str, dict], catalog: Catalog) -> list[dict] | None:
    """The tied units as blocks of one group and one published final, each in rank order.

    Each unit's row says how it compares with the unit ranked just before it in the block: the
    first tie-break 一级指标 whose published 得分率 differs (that unit's rate, then this unit's), as
    the watch list's own text does (``kaohe.insight``), or 完全并列. None when a unit has no result.
    """
    from kaohe.insight import _decider  # the watch list's own wording of a tie-break

    if any(uid not in by_id or by_id[uid].rank is None or by_id[uid].final is None for uid in unit_ids):
        return None
    order = {g: k for k, g in enumerate(catalog.groups)}
    blocks: dict[tuple, list[UnitResult]] = {}
    for uid in dict.fromkeys(unit_ids):
        r = by_id[uid]
        blocks.setdefault((order.get(r.unit.group, len(order)), r.unit.group, published(r.final)), []).append(r)
    out = []
    for (_, group, final), members in sorted(blocks.items(), key=lambda kv: (kv[0][0], min(r.rank for r in kv[1]))):
        members.sort(key=lambda r: (r.rank, r.unit_id))
        rows, prev = [], None
        for r in members:
            if prev is None:
                how = ""
            elif prev.rank == r.rank:
                how = "与上一名完全并列"
            else:
                how = zh(_decider(prev, r, catalog) or "")
            rows.append({**units[r.unit_id], "how": how})
            prev = r
        first, last = members[0].rank, members[-1].rank
        out.append(
            {
                "group": group,
                "final": f"{final:.2f}",
                "n": len(members),
                "ranks": str(first) if first == last else f"{first}–{last}",
                "rows": rows,
            }
        )
    return out


def diagnostics_rows(diagnostics, catalog: Catalog) -> list[dict]:
    names = catalog.dimension_names
    rows = []
    for d in diagnostics:
        rows.append(
            {
                "id": d.item_id,
                "title": zh(d.title),
                "dimension": zh(names.get(d.dimension, d.dimension)),
                "points": num(d.points) if d.points is not None else DASH,
                "n": d.n_units,
                "full": pct(d.share_full),
                "zero": pct(d.share_zero),
                "na": pct(d.share_na),
                "nominal": pct(d.nominal_weight),
                "effective": pct(d.effective_weight),
                "separates": d.separates,
            }
        )
    return rows


def office_context(results: list[UnitResult], catalog: Catalog, watch, diagnostics) -> dict:
    groups = watch_context(results, catalog, watch)
    ranked = [_unit_view(r, catalog) for r in results if r.status == "scored" and r.rank is not None]
    unstable = [u for u in ranked if u["stability_value"] is not None and u["stability_value"] < STABILITY_LINE]
    order = {g: k for k, g in enumerate(catalog.groups)}
    unstable.sort(key=lambda u: (order.get(u["group"], len(order)), int(u["rank"]), u["id"]))
    has_robustness = any(u["stability_value"] is not None for u in ranked)
    rows = diagnostics_rows(diagnostics, catalog)
    scored = [d for d in diagnostics if d.n_units and d.share_full is not None]
    never = [f"{d.item_id} {zh(d.title)}" for d in scored if not d.separates and (d.share_na or 0) < 1]
    near_full = [f"{d.item_id} {zh(d.title)}（{pct(d.share_full)}%）" for d in scored if d.separates and d.share_full >= NEAR_FULL]
    unused = [f"{d.item_id} {zh(d.title)}" for d in diagnostics if not d.n_units or (d.share_na or 0) >= 1]
    with_eff = [d for d in diagnostics if d.effective_weight is not None]
    top = sorted(with_eff, key=lambda d: -d.effective_weight)[:5]
    eff_sum = sum(d.effective_weight for d in with_eff) if with_eff else None
    bars = [
        charts.ItemBar(
            label=d.item_id,
            title=zh(d.title),
            full=d.share_full,
            zero=d.share_zero,
            na=d.share_na,
            nominal=d.nominal_weight,
            effective=d.effective_weight,
            separates=d.separates,
        )
        for d in diagnostics
    ]
    # one chart fits a page up to CHART_ROWS items; a longer catalog gets several parts on one scale
    scale = charts.weight_scale(bars)
    n_parts = max(1, math.ceil(len(bars) / CHART_ROWS))
    size = max(1, math.ceil(len(bars) / n_parts))  # equal parts: 60 items are 2 × 30, not 56 + 4
    parts = [bars[k : k + size] for k in range(0, len(bars), size)] or [[]]
    chart_parts = [charts.indicator_chart(part, title="指标得分分布与权重", scale=scale) for part in parts]
    assessed = next((c for c in catalog.components if c.id == "assessed"), None)
    ctx = {
        "title": f"{catalog.city}{catalog.year}年度依法行政考核 发布前核对清单与指标诊断",
        "catalog": catalog,
        "settings": {"issuer": catalog.issuer, "doc_number": "内部工作材料 不对外公开"},
        "made": chinese_date(date.today()),
        "n_ranked": len(ranked),
        "n_units": len(results),
        "watch": groups,
        "n_watch": sum(len(g["rows"]) for g in groups),
        "n_watch_units": len({r["id"] for g in groups for r in g["rows"]}),
        "unstable": unstable,
        "has_robustness": has_robustness,
        "stability_line": num(STABILITY_LINE * 100) + "%",
        "robust": robustness_method(),
        "diagnostics": rows,
        "n_items": len(rows),
        "never": never,
        "near_full": near_full,
        "near_full_line": num(Decimal(str(NEAR_FULL)) * 100) + "%",
        "unused": unused,
        "top": [f"{d.item_id} {zh(d.title)}（{pct(d.effective_weight)}%）" for d in top],
        "eff_sum": pct(eff_sum) if eff_sum is not None else None,
        "assessed_weight": num(assessed.weight * 100) + "%" if assessed else "",
        "charts": chart_parts,
    }
    whole = OfficeParts(ctx, rows_per_part=sys.maxsize)  # the whole report as one part; office_parts splits it
    return whole.context(0, len(whole.items))


#: table rows per part of the report (context.render_parts): a watch-list entry with its explanation
#: counts as 2, a row of a tie block or of the unstable units as 1
OFFICE_ROWS_PER_PART = 300


class OfficeParts:
    """The report as parts laid out one after the other (``context.render_parts``), so that its memory
    does not grow with the watch list.

    The report is a sequence of items: the watch list's entries (tie blocks when ``tie_blocks``
    applies) kind by kind, the unstable units (or, when there are none, the section's text alone);
    the head goes with the first part, the diagnostics with the last. A part takes about
    ``rows_per_part`` rows' worth of items; as for the bulletin (``context.BulletinParts``), what is
    on a part's last page starts the next part, so the tables run on page after page. A tie block
    is never split over pages. ``office_context`` alone is the whole report as one part.
    """

    def __init__(self, ctx: dict, rows_per_part: int | None = None):
        self.ctx = ctx
        self.budget = max(1, rows_per_part or OFFICE_ROWS_PER_PART)
        # (section, group or None, item or None, position in its section, weight)
        self.items: list[tuple] = []
        for g in ctx["watch"]:
            if g["blocks"]:
                self.items += [("watch", g, b, k, len(b["rows"]) + 1) for k, b in enumerate(g["blocks"])]
            else:
                self.items += [("watch", g, r, k, 2) for k, r in enumerate(g["rows"])]
        self.items += [("unstable", None, u, k, 1) for k, u in enumerate(ctx["unstable"])] or [("unstable", None, None, 0, 1)]
        self.next = 0

    def _end(self, start: int) -> int:
        end, room = start, self.budget
        while end < len(self.items) and (end == start or self.items[end][4] <= room):
            room -= self.items[end][4]
            end += 1
        return end

    def context(self, start: int, end: int) -> dict:
        """The context of the part of items ``start`` to ``end`` (the report's context, with its pieces)."""
        last = end >= len(self.items)
        pieces, unstable = [], None
        for i in range(start, end):
            section, g, item, k, _ = self.items[i]
            if section == "watch":
                if not pieces or pieces[-1]["group"] is not g:
                    pieces.append({"group": g, "rows": [], "blocks": [], "first": k == 0, "last": False, "start": i})
                pieces[-1]["blocks" if g["blocks"] else "rows"].append(item)
                pieces[-1]["last"] = k == (len(g["blocks"] or g["rows"]) - 1)
            else:
                if unstable is None:
                    unstable = {"rows": [], "first": k == 0, "last": False, "start": i}
                if item is not None:
                    unstable["rows"].append(item)
                unstable["last"] = k >= len(self.ctx["unstable"]) - 1
        return {**self.ctx, "part_head": start == 0, "watch_pieces": pieces, "unstable_piece": unstable, "part_diag": last}

    def __iter__(self):
        from kaohe.report.context import Part, carry_from_last_page

        start = 0
        while True:
            end = self._end(start)
            last = end >= len(self.items)
            self.next = end
            yield Part("office.html", self.context(start, end), None, None if last else carry_from_last_page(self, start))
            if last:
                return
            start = self.next


def office_parts(ctx: dict, rows_per_part: int | None = None) -> OfficeParts:
    """The report as parts for ``context.render_parts`` (see ``OfficeParts``)."""
    return OfficeParts(ctx, rows_per_part)


# ------------------------------------------------------------------ workbook

DIAG_HEADERS = ["指标编号", "考核内容", "一级指标", "分值", "适用单位数", "满分占比", "零分占比", "不适用占比", "名义权重", "实际权重", "能否区分单位"]
DIAG_NOTES = [
    ("统计范围", "参与排名的单位。占比的分母为按适用范围（applies_to）适用该指标的单位数。"),
    ("满分占比 / 零分占比", "得满分 / 得0分的单位占适用单位的比例。"),
    ("不适用占比", "单位申报不适用，或分母为0按规则不适用的比例。"),
    ("名义权重", "该指标分值在最终得分中所占的份额（按计分单位的平均应得分折算，含依法行政考核得分的权重）。"),
    ("实际权重", "在各考核组内，该指标得分对最终得分差异（方差）的贡献份额；可为负。全部指标、其他考核分项和加分的实际权重之和为100%。"),
    ("能否区分单位", "“否”表示计分的单位在该指标上得分全部相同，该指标不影响排名。"),
    ("定义", "详见 kaohe/insight.py 的说明（METHOD §7）。"),
]


def write_diagnostics_xlsx(path: Path, diagnostics, catalog: Catalog) -> Path:
    """diagnostics.xlsx: one row per scored item (indicator_diagnostics), shares and weights as percentages."""
    path = Path(path)
    names = catalog.dimension_names
    rows = [
        [
            d.item_id,
            d.title,
            names.get(d.dimension, d.dimension),
            d.points,
            d.n_units,
            d.share_full,
            d.share_zero,
            d.share_na,
            d.nominal_weight,
            d.effective_weight,
            "是" if d.separates else "否",
        ]
        for d in diagnostics
    ]
    wb = Workbook()
    wb.remove(wb.active)
    ws = _sheet(wb, "指标诊断", DIAG_HEADERS, rows, {1: 9, 2: 36, 3: 16, 4: 8, 5: 10, 11: 12})
    for r in range(2, len(rows) + 2):
        ws.cell(row=r, column=4).number_format = "General"
        ws.cell(row=r, column=5).number_format = "0"
        for c in range(6, 11):
            ws.cell(row=r, column=c).number_format = "0.00%"
    notes = wb.create_sheet("说明")
    put(notes, 1, 1, f"{catalog.title}指标诊断(内部工作材料,不对外公开)").font = Font(bold=True, size=12)
    for n, (k, v) in enumerate(DIAG_NOTES, start=3):
        put(notes, n, 1, k).font = Font(bold=True)
        put(notes, n, 2, v).alignment = Alignment(wrap_text=True, vertical="top")
    notes.column_dimensions["A"].width = 20
    notes.column_dimensions["B"].width = 90
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    wb.save(tmp)
    tmp.replace(path)
    return path


__all__ = ["office_context", "watch_context", "diagnostics_rows", "write_diagnostics_xlsx", "WATCH_KINDS"]
