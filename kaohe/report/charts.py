"""Charts as inline SVG, drawn in Python (no plotting library).

Each function returns ``Markup`` that a template inserts as is. Every piece
of text inside goes through ``escape`` first, so no label can turn into
markup. Charts carry office text only (groups, dimensions, grades), never
unit-supplied text. Coordinates are CSS pixels (96 per inch), and the charts are
sized for the page's content box: 640 px is a portrait A4 page with 20 mm
side margins.

The font is named on the root element, so WeasyPrint draws the labels with
the bundled font like all other text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

from kaohe.numbers import fmt_decimal
from kaohe.report.text import zh

FONT = "Kaohe Sans SC"
GRADE_COLORS = {"优秀": "#1a7f37", "良好": "#2f6fb5", "合格": "#d08a00", "不合格": "#c62828"}
GRADE_ORDER = ("优秀", "良好", "合格", "不合格")

# 得分率 colour scale (shared by the heat map and the ranking tables):
# low rates stand out in red, high rates fade to green; light enough to print text on.
_SCALE = ((Decimal(50), (0xEF, 0x8A, 0x80)), (Decimal(75), (0xFF, 0xEB, 0xA8)), (Decimal(100), (0xDC, 0xF0, 0xD8)))
SCALE_LOW, SCALE_HIGH = _SCALE[0][0], _SCALE[-1][0]


def rate_color(rate: Decimal | None) -> str:
    """Background for a 得分率 (0–100): red below 50, yellow at 75, green at 100."""
    if rate is None:
        return "#ffffff"
    r = min(max(rate, SCALE_LOW), SCALE_HIGH)
    for (x0, c0), (x1, c1) in zip(_SCALE, _SCALE[1:]):
        if r <= x1:
            t = float((r - x0) / (x1 - x0))
            rgb = tuple(round(a + (b - a) * t) for a, b in zip(c0, c1))
            return "#%02x%02x%02x" % rgb
    return "#%02x%02x%02x" % _SCALE[-1][1]  # pragma: no cover


def rate_class(color: str) -> str:
    """The CSS class of a 得分率 background colour ('#ffeba8' → 'rc-ffeba8'), see ``rate_styles``."""
    return "rc-" + color.lstrip("#").lower()


def rate_styles(colors, scope: str = "table.rank") -> Markup:
    """One CSS rule per 得分率 colour a table uses (``table.rank td.rc-ffeba8 { background-color: #ffeba8 }``).

    Classes instead of a ``style`` attribute on every cell: WeasyPrint parses an inline style once per
    cell, which is a quarter of the layout time of a table with thousands of rows.
    """
    out = []
    for c in sorted(set(colors)):
        if not _HEX.fullmatch(c):
            raise ValueError(f"not a colour: {c!r}")
        out.append(f"{scope} td.{rate_class(c)} {{ background-color: {c}; }}")
    return Markup("\n".join(out))


_HEX = re.compile(r"#[0-9a-fA-F]{6}")


def _svg(width: float, height: float, body: list[str], label: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" font-size="10" role="img" '
        f'aria-label="{escape(label)}">'
    )
    return Markup(head + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, *, size: float = 10, anchor: str = "start", weight: str = "normal", fill: str = "#222") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'font-weight="{weight}" fill="{fill}">{escape(zh(text))}</text>'
    )


# ------------------------------------------------------------------ strip plot


@dataclass(frozen=True)
class Dot:
    value: Decimal
    grade: str


@dataclass(frozen=True)
class StripRow:
    label: str
    dots: tuple[Dot, ...]
    bands: tuple[tuple[str, Decimal], ...]  # (grade, lower bound), best first



def _score_axis(body: list[str], left: float, plot_w: float, y: float, lo: int, hi: int, step: int, sx) -> None:
    """The score axis of the distribution charts: the line, a tick and label every ``step`` points, its title."""
    body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w:.1f}" y2="{y:.1f}" stroke="#444" stroke-width="0.8"/>')
    for v in range(lo, hi + 1, step):
        x = sx(v)
        body.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + 4:.1f}" stroke="#444" stroke-width="0.8"/>')
        body.append(_text(x, y + 15, str(v), anchor="middle", size=9))
    body.append(_text(left + plot_w, y + 28, "最终得分", anchor="end", size=9, fill="#444"))


def _swarm(xs: list[float], radius: float, max_lanes: int) -> list[int]:
    """Lane of each dot (0, 1, -1, 2, -2, …): the nearest free lane, so dots never overlap."""
    placed: list[tuple[float, int]] = []
    lanes = []
    order = [0]
    for k in range(1, max_lanes + 1):
        order += [k, -k]
    for x in xs:
        near = [lane for (px, lane) in placed if abs(px - x) < 2 * radius + 0.5]
        lane = next((c for c in order if c not in near), order[-1])
        placed.append((x, lane))
        lanes.append(lane)
    return lanes


#: above this many dots in one group the strip plot draws a histogram: a swarm of more dots
#: overflows its lanes (unreadable) and every dot is an SVG element WeasyPrint has to lay out
STRIP_MAX_DOTS = 150


def strip_binned(rows: list[StripRow], max_dots: int = STRIP_MAX_DOTS) -> bool:
    """Whether ``strip_plot`` draws these rows as histograms (a group with more than ``max_dots`` dots)."""
    return max((len(row.dots) for row in rows), default=0) > max_dots


def strip_plot(rows: list[StripRow], width: float = 640, title: str = "", max_dots: int = STRIP_MAX_DOTS) -> Markup:
    """Finals per group on one axis, dots coloured by grade, the group's grade bands as lines.

    When a group has more than ``max_dots`` dots, every group is drawn as a histogram instead
    (units per score bin, stacked by grade): the same axis, bands and colours, bounded in size.
    """
    if strip_binned(rows, max_dots):
        return _strip_histogram(rows, width, title)
    values = [d.value for row in rows for d in row.dots]
    bounds = [b for row in rows for _, b in row.bands]
    lo_data = min(values + bounds) if values else Decimal(60)
    hi_data = max(values + [Decimal(100)])
    lo = max(0, math.floor((float(lo_data) - 2) / 5) * 5)
    hi = math.ceil(float(hi_data) / 5) * 5
    left, right = 96, 16
    plot_w = width - left - right

    def sx(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    biggest = max((len(row.dots) for row in rows), default=0)
    radius = 4.0 if biggest <= 40 else 3.0 if biggest <= 120 else 2.4  # big groups: smaller dots, same height
    body: list[str] = []
    y = 24.0
    step = 10 if hi - lo > 50 else 5
    for row in rows:
        dots = sorted(row.dots, key=lambda d: d.value)
        xs = [sx(float(d.value)) for d in dots]
        lanes = _swarm(xs, radius, max_lanes=12)
        spread = max((abs(x) for x in lanes), default=0)
        lane_h = 2 * radius + 1
        half = max(12.0, spread * lane_h + radius + 4)
        top, mid = y, y + 14 + half
        bottom = mid + half
        body.append(f'<rect x="{left}" y="{top + 12:.1f}" width="{plot_w:.1f}" height="{bottom - top - 12:.1f}" fill="#f7f7f7"/>')
        body.append(_text(left - 8, mid + 4, row.label, anchor="end", weight="bold"))
        body.append(_text(left - 8, mid + 17, f"{len(dots)} 个单位", anchor="end", size=8, fill="#666"))
        for grade, bound in row.bands:
            bx = sx(float(bound))
            body.append(
                f'<line x1="{bx:.1f}" y1="{top + 12:.1f}" x2="{bx:.1f}" y2="{bottom:.1f}" stroke="{GRADE_COLORS[grade]}" '
                f'stroke-width="1" stroke-dasharray="3 2"/>'
            )
            body.append(_text(bx + 2, top + 9, f"{grade}≥{fmt_decimal(bound)}", size=8, fill=GRADE_COLORS[grade]))
        for d, x, lane in zip(dots, xs, lanes):
            body.append(
                f'<circle cx="{x:.1f}" cy="{mid - lane * lane_h:.1f}" r="{radius}" fill="{GRADE_COLORS.get(d.grade, "#555")}" '
                f'fill-opacity="0.85" stroke="#fff" stroke-width="0.6"/>'
            )
        y = bottom + 8
    _score_axis(body, left, plot_w, y, lo, hi, step, sx)
    # legend
    lx = left
    for grade in GRADE_ORDER:
        body.append(f'<circle cx="{lx + 4:.1f}" cy="{y + 24:.1f}" r="4" fill="{GRADE_COLORS[grade]}"/>')
        body.append(_text(lx + 12, y + 28, grade, size=9))
        lx += 56
    body.append(_text(lx + 4, y + 28, "虚线为该组等次分数线;否决的单位按其得分标注为不合格", size=8, fill="#666"))
    return _svg(width, y + 36, body, title or "最终得分分布")


def strip_bin_width(rows: list[StripRow]) -> int:
    """Score points per histogram bin: 1, or 2 when the axis spans more than 50 points."""
    lo, hi = _strip_axis(rows)
    return 1 if hi - lo <= 50 else 2


def _strip_axis(rows: list[StripRow]) -> tuple[int, int]:
    values = [d.value for row in rows for d in row.dots]
    bounds = [b for row in rows for _, b in row.bands]
    lo_data = min(values + bounds) if values else Decimal(60)
    hi_data = max(values + [Decimal(100)])
    return max(0, math.floor((float(lo_data) - 2) / 5) * 5), math.ceil(float(hi_data) / 5) * 5


def _strip_histogram(rows: list[StripRow], width: float, title: str) -> Markup:
    """The strip plot for large groups: per group, the units per score bin as bars stacked by grade."""
    lo, hi = _strip_axis(rows)
    left, right = 96, 16
    plot_w = width - left - right
    bin_w = strip_bin_width(rows)
    n_bins = max(1, math.ceil((hi - lo) / bin_w))

    def sx(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    counts = []  # per row: per bin, per grade
    for row in rows:
        bins = [dict.fromkeys(GRADE_ORDER, 0) for _ in range(n_bins)]
        for d in row.dots:
            k = min(n_bins - 1, max(0, int((float(d.value) - lo) // bin_w)))
            grade = d.grade if d.grade in GRADE_COLORS else "不合格"
            bins[k][grade] += 1
        counts.append(bins)
    peak = max((sum(b.values()) for bins in counts for b in bins), default=0) or 1
    bar_h = 56.0
    px = plot_w / n_bins
    body: list[str] = []
    y = 24.0
    step = 10 if hi - lo > 50 else 5
    for row, bins in zip(rows, counts):
        top = y
        base = top + 12 + bar_h
        body.append(f'<rect x="{left}" y="{top + 12:.1f}" width="{plot_w:.1f}" height="{bar_h:.1f}" fill="#f7f7f7"/>')
        body.append(_text(left - 8, top + 12 + bar_h / 2 + 2, row.label, anchor="end", weight="bold"))
        body.append(_text(left - 8, top + 12 + bar_h / 2 + 15, f"{len(row.dots)} 个单位", anchor="end", size=8, fill="#666"))
        for k, b in enumerate(bins):
            x = left + k * px
            h0 = 0.0
            for grade in GRADE_ORDER:
                if not b[grade]:
                    continue
                h = b[grade] / peak * bar_h
                body.append(
                    f'<rect x="{x + 0.4:.1f}" y="{base - h0 - h:.1f}" width="{max(px - 0.8, 0.5):.1f}" height="{h:.1f}" fill="{GRADE_COLORS[grade]}"/>'
                )
                h0 += h
        for grade, bound in row.bands:
            bx = sx(float(bound))
            body.append(
                f'<line x1="{bx:.1f}" y1="{top + 12:.1f}" x2="{bx:.1f}" y2="{base:.1f}" stroke="{GRADE_COLORS[grade]}" '
                f'stroke-width="1" stroke-dasharray="3 2"/>'
            )
            body.append(_text(bx + 2, top + 9, f"{grade}≥{fmt_decimal(bound)}", size=8, fill=GRADE_COLORS[grade]))
        y = base + 8
    _score_axis(body, left, plot_w, y, lo, hi, step, sx)
    lx = left
    for grade in GRADE_ORDER:
        body.append(f'<rect x="{lx:.1f}" y="{y + 20:.1f}" width="9" height="8" fill="{GRADE_COLORS[grade]}"/>')
        body.append(_text(lx + 12, y + 28, grade, size=9))
        lx += 56
    note = f"柱高为最终得分在该{bin_w}分区间内的单位数,按等次着色(最高的柱为{peak}个单位);虚线为该组等次分数线"
    body.append(_text(left, y + 44, note, size=8, fill="#666"))
    return _svg(width, y + 52, body, title or "最终得分分布")


# -------------------------------------------------------------------- heat map


def heat_map(row_labels: list[str], col_labels: list[str], values: list[list[Decimal | None]], width: float = 640, title: str = "") -> Markup:
    """A table of 得分率 (rows × columns), each cell coloured and labelled with its value."""
    left = 150
    head = 30
    cell_h = 19
    n = max(1, len(col_labels))
    cell_w = min(110.0, (width - left) / n)
    body: list[str] = []
    for j, label in enumerate(col_labels):
        body.append(_text(left + (j + 0.5) * cell_w, head - 10, label, anchor="middle", weight="bold", size=9.5))
    for i, label in enumerate(row_labels):
        y = head + i * cell_h
        body.append(_text(left - 8, y + cell_h / 2 + 4, label, anchor="end", size=9.5))
        for j, v in enumerate(values[i]):
            x = left + j * cell_w
            body.append(
                f'<rect x="{x + 1:.1f}" y="{y + 1:.1f}" width="{cell_w - 2:.1f}" height="{cell_h - 2:.1f}" fill="{rate_color(v)}" '
                f'stroke="#ddd" stroke-width="0.5"/>'
            )
            body.append(_text(x + cell_w / 2, y + cell_h / 2 + 4, "—" if v is None else f"{v:.2f}", anchor="middle", size=9.5))
    y = head + len(row_labels) * cell_h + 10
    # legend: the colour scale
    lx, lw = left, 200
    stops = "".join(
        f'<stop offset="{float((x - SCALE_LOW) / (SCALE_HIGH - SCALE_LOW)):.3f}" stop-color="{rate_color(x)}"/>' for x, _ in _SCALE
    )
    body.append(f'<defs><linearGradient id="heatscale" x1="0" x2="1" y1="0" y2="0">{stops}</linearGradient></defs>')
    body.append(f'<rect x="{lx}" y="{y}" width="{lw}" height="8" fill="url(#heatscale)"/>')
    body.append(_text(lx, y + 20, f"≤{SCALE_LOW}", size=8, fill="#444"))
    body.append(_text(lx + lw / 2, y + 20, f"{(SCALE_LOW + SCALE_HIGH) / 2:.0f}", size=8, anchor="middle", fill="#444"))
    body.append(_text(lx + lw, y + 20, f"{SCALE_HIGH}", size=8, anchor="end", fill="#444"))
    body.append(_text(lx + lw + 12, y + 8, "平均得分率(%)", size=8, fill="#444"))
    return _svg(min(width, left + n * cell_w + 4), y + 26, body, title or "得分率热力图")


# ------------------------------------------------------------------- bar chart


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal | None
    reference: Decimal | None


def bar_chart(bars: list[Bar], width: float = 640, title: str = "", value_name: str = "本单位", reference_name: str = "组平均") -> Markup:
    """Horizontal bars 0–100 (the unit's 得分率) with the group average as a marker."""
    left, right = 150, 120
    plot_w = width - left - right
    bar_h, gap = 14, 6
    top = 22
    body: list[str] = []

    def sx(v: Decimal) -> float:
        return left + float(min(max(v, Decimal(0)), Decimal(100))) / 100 * plot_w

    for t in range(0, 101, 20):
        x = sx(Decimal(t))
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{top + len(bars) * (bar_h + gap):.1f}" stroke="#ddd" stroke-width="0.6"/>')
        body.append(_text(x, top - 8, str(t), anchor="middle", size=8, fill="#666"))
    for i, b in enumerate(bars):
        y = top + i * (bar_h + gap)
        body.append(_text(left - 8, y + bar_h - 3, b.label, anchor="end", size=9.5))
        if b.value is None:
            body.append(_text(left + 4, y + bar_h - 3, "无适用指标", size=9, fill="#888"))
        else:
            color = "#2f6fb5" if b.reference is None or b.value >= b.reference else "#d9822b"
            body.append(f'<rect x="{left}" y="{y:.1f}" width="{sx(b.value) - left:.1f}" height="{bar_h}" fill="{color}"/>')
        if b.reference is not None:
            rx = sx(b.reference)
            body.append(
                f'<path d="M{rx:.1f},{y - 3:.1f} L{rx + 4:.1f},{y - 7:.1f} L{rx - 4:.1f},{y - 7:.1f} Z" fill="#222"/>'
                f'<line x1="{rx:.1f}" y1="{y - 3:.1f}" x2="{rx:.1f}" y2="{y + bar_h + 2:.1f}" stroke="#222" stroke-width="1.4"/>'
            )
        label = ("—" if b.value is None else f"{b.value:.2f}") + " / " + ("—" if b.reference is None else f"{b.reference:.2f}")
        body.append(_text(left + plot_w + 8, y + bar_h - 3, label, size=9))
    y = top + len(bars) * (bar_h + gap) + 6
    body.append(_text(left + plot_w + 18, top - 8, f"{value_name} / {reference_name}", size=8, fill="#666"))
    body.append(f'<rect x="{left}" y="{y}" width="10" height="8" fill="#2f6fb5"/>')
    body.append(_text(left + 14, y + 8, f"{value_name}得分率(不低于{reference_name})", size=8.5))
    body.append(f'<rect x="{left + 190}" y="{y}" width="10" height="8" fill="#d9822b"/>')
    body.append(_text(left + 204, y + 8, f"低于{reference_name}", size=8.5))
    body.append(f'<line x1="{left + 290}" y1="{y - 1}" x2="{left + 290}" y2="{y + 9}" stroke="#222" stroke-width="1.4"/>')
    body.append(_text(left + 296, y + 8, f"{reference_name}得分率", size=8.5))
    return _svg(width, y + 16, body, title or "得分率对比")


# ------------------------------------------------------ indicator diagnostics


@dataclass(frozen=True)
class ItemBar:
    label: str  # item id
    title: str
    full: float | None  # shares of the units the item applies to
    zero: float | None
    na: float | None
    nominal: float | None  # share of the final score, on paper
    effective: float | None  # share of the within-group variance of final scores
    separates: bool = True


def weight_scale(items: list[ItemBar]) -> tuple[float, float]:
    values = [v for it in items for v in (it.nominal, it.effective) if v is not None]
    return min(values + [0.0]), max(values + [0.01])


SHARE_COLORS = (("满分", "#5aa469"), ("部分得分", "#9ecae1"), ("零分", "#d9534f"), ("不适用", "#d0d0d0"))


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def indicator_chart(items: list[ItemBar], width: float = 640, title: str = "", scale: tuple[float, float] | None = None) -> Markup:
    """Per scored item: left, the units at full / partial / zero / 不适用 (100% bar);
    right, nominal weight (grey) against effective weight (blue, red when negative).
    Items that never separate units are labelled in red with a mark."""
    left = 168
    gap = 22
    p1_w = 190
    p2_x = left + p1_w + gap
    p2_w = width - p2_x - 40
    row_h = 11 if len(items) > 40 else 15
    bar_h = row_h - 4
    top = 40
    if scale is None:  # the weight axis; pass one scale for every part of a chart split over pages
        scale = weight_scale(items)
    lo, hi = scale
    # a round axis step: 1%, 2%, 5%, 10% …
    span = hi - lo
    step = next(s for s in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0) if span / s <= 6)
    lo_t = math.floor(lo / step - 1e-9) * step
    hi_t = math.ceil(hi / step - 1e-9) * step

    def sx(v: float) -> float:
        return p2_x + (v - lo_t) / (hi_t - lo_t) * p2_w

    body: list[str] = []
    # panel titles and axes
    body.append(_text(left, 12, "适用单位的得分分布", size=9, weight="bold"))
    body.append(_text(p2_x, 12, "名义权重与实际权重(占最终得分的%)", size=9, weight="bold"))
    for t in range(0, 101, 25):
        x = left + t / 100 * p1_w
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{top + len(items) * row_h:.1f}" stroke="#e3e3e3" stroke-width="0.6"/>')
        body.append(_text(x, top - 8, f"{t}%", anchor="middle", size=7.5, fill="#666"))
    n_ticks = int(round((hi_t - lo_t) / step))
    for k in range(n_ticks + 1):
        v = lo_t + k * step
        x = sx(v)
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{top + len(items) * row_h:.1f}" stroke="{"#999" if abs(v) < 1e-12 else "#e3e3e3"}" stroke-width="{0.8 if abs(v) < 1e-12 else 0.6}"/>')
        label = f"{v * 100:.1f}".rstrip("0").rstrip(".")
        body.append(_text(x, top - 8, label, anchor="middle", size=7.5, fill="#666"))
    for i, it in enumerate(items):
        y = top + i * row_h
        color = "#222" if it.separates else "#c62828"
        mark = "" if it.separates else " ×"
        body.append(_text(4, y + bar_h - 1, it.label + mark, size=8, weight="bold", fill=color))
        body.append(_text(34, y + bar_h - 1, _short(it.title, 12), size=8, fill=color))
        if it.full is None:
            body.append(_text(left + 4, y + bar_h - 1, "无适用单位", size=8, fill="#888"))
        else:
            na = it.na or 0.0
            zero = it.zero or 0.0
            full = it.full
            partial = max(0.0, 1.0 - full - zero - na)
            x = left
            for (name, c), share in zip(SHARE_COLORS, (full, partial, zero, na)):
                w = share * p1_w
                if w > 0:
                    body.append(f'<rect x="{x:.2f}" y="{y + 1:.1f}" width="{w:.2f}" height="{bar_h - 1}" fill="{c}"/>')
                x += w
        if it.nominal is not None:
            body.append(
                f'<rect x="{min(sx(0), sx(it.nominal)):.2f}" y="{y + 1:.1f}" width="{abs(sx(it.nominal) - sx(0)):.2f}" height="{bar_h / 2:.1f}" fill="#b5b5b5"/>'
            )
        if it.effective is not None:
            c = "#2f6fb5" if it.effective >= 0 else "#c62828"
            body.append(
                f'<rect x="{min(sx(0), sx(it.effective)):.2f}" y="{y + 1 + bar_h / 2:.1f}" width="{abs(sx(it.effective) - sx(0)):.2f}" height="{bar_h / 2 - 0.5:.1f}" fill="{c}"/>'
            )
    y = top + len(items) * row_h + 10
    lx = left
    for name, c in SHARE_COLORS:
        body.append(f'<rect x="{lx}" y="{y}" width="9" height="8" fill="{c}"/>')
        body.append(_text(lx + 12, y + 8, name, size=8))
        lx += 14 + 9 * len(name) + 8
    lx = p2_x
    for name, c in (("名义权重", "#b5b5b5"), ("实际权重", "#2f6fb5")):
        body.append(f'<rect x="{lx}" y="{y}" width="9" height="8" fill="{c}"/>')
        body.append(_text(lx + 12, y + 8, name, size=8))
        lx += 70
    body.append(_text(4, y + 24, "× 标红的指标:计分单位得分全部相同,不能区分单位", size=8, fill="#c62828"))
    return _svg(width, y + 32, body, title or "指标诊断")
