"""Insight (METHOD §7, issue 7): how firm each rank is, what to check before
publishing, what changed since last year, and which indicators work.

Pure functions over ranked ``UnitResult``s (``kaohe.ranking.rank_all``) and the
``Catalog``: no I/O, no rendering. The definitions the office should know:

Rank robustness (``rank_robustness``)
    Each draw multiplies each dimension's weight by m_k ~ U[low, high] (one
    multiplier per dimension per draw, the same for every unit; numpy
    ``default_rng(seed)``, drawn once as a draws × dimensions matrix). A unit's
    assessed score becomes 100 · Σ_k m_k·S_k / Σ_k m_k·P_k (S_k, P_k: its score
    and points over its applicable scored items of dimension k); the other
    components and the bonus are unchanged, so
    final' = w_assessed · assessed' + (final − w_assessed · assessed).
    final' is rounded half-up to 2 decimals, then ranked and graded exactly as
    METHOD §5 / ``kaohe.ranking``: competition ranks within the group, ties
    broken by the published dimension rates in ``catalog.tie_break`` order
    (rates do not depend on the weights, so the chain is fixed), the group's
    bands, the excellence quota (K = floor(q · ranked units), a shared rank at
    the cut takes all its units), fail veto → 不合格, cap veto → at most 良好.
    The draws run in floating point; a value within 1e-9 of a cent of a
    rounding boundary is rounded as if on it, and a draw whose multipliers are
    all equal (low == high, e.g. 1) changes no score, so it takes the exact
    published finals. Percentiles are the empirical quantile (numpy's
    ``inverted_cdf``, Hyndman–Fan type 1): rank_pXX is the smallest rank r such
    that in at least XX% of the draws the unit ranks r or better, an integer
    rank actually drawn. grade_stability is the share of draws in which the
    unit gets its published grade. Only ranked units get an entry.

Watch list (``watch_list``), kinds in the order listed for a unit
    ``veto``: every vetoed unit. ``band``: published final within ``margin``
    (inclusive) of a band line of the unit's group, above or below; lines that
    cannot change its grade are skipped (all lines for a fail veto, the 优秀
    line for a cap veto). ``quota``: where the quota binds (an eligible unit
    in the 优秀 band is 良好 for want of places), the cut is the published final
    of the last 优秀 place; eligible units within ``margin`` of it are listed.
    ``tie``: units with the same published final but different ranks (the
    tie-break chain decided), naming the deciding dimension against the
    neighbours. ``review``: a scored item whose reviewed score (after any
    核查不实 penalty) differs from the unit's own score by ≥ ``review_share``
    (default 20%) of its points.

Year on year (``year_on_year``)
    score_change = this year's published final − last year's; rank_change =
    last year's rank − this year's (positive = moved up), only when the unit
    is in the same group both years. Catalog changes compare items by id:
    ``added``, ``removed``, ``reweighted`` (points, or a bonus item's cap,
    changed), ``changed`` (rule, dimension or applicability changed), and
    ``setting`` (bands, group bands, component weights, quota, bonus cap,
    tie-break order). Without a previous catalog ``catalog_changes`` is None
    (unknown), not an empty list (no change).

Indicator diagnostics (``indicator_diagnostics``), over the ranked units
    Shares are of the units the item applies to by ``applies_to``: at full
    points, at zero, 不适用 (marked by the unit, or a zero denominator under
    ``na``). nominal_weight = w_assessed · points / mean base (over the units
    that scored the item): the share of the final score the item carries on
    paper. effective_weight: with c_i(u) = 100 · w_assessed · s_i(u) / base(u)
    (the item's part of the final; 0 where it does not count) and the exact
    final f(u), both centred on their group's mean (ranks are within groups),
    effective_weight = Σ c_i·f / Σ f·f, the share of the within-group variance
    of final scores the item accounts for. Over all items plus the other
    components and the bonus these shares sum to exactly 1, so the items' sum
    is ≈ the assessed component's share. None when every group's finals are
    constant. ``separates`` is False when every unit that scored the item got
    the same score.

Strengths and weaknesses (``strengths_weaknesses``)
    gap = the unit's exact dimension rate − the mean exact rate of its group's
    ranked units that have a rate there; strengths are the ``n`` largest
    positive gaps, weaknesses the ``n`` most negative, ties in catalog order.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from kaohe.catalog import GRADES, Bands, Catalog
from kaohe.numbers import fmt2, round_half_up
from kaohe.ranking import excellence_places, published, sort_key
from kaohe.scoring import UnitResult

ZERO = Fraction(0)
_GRADE_CODE = {g: i for i, g in enumerate(GRADES)}  # 优秀 0, 良好 1, 合格 2, 不合格 3
_VETO_CODE = {None: 0, "cap": 1, "fail": 2}
#: tolerance (in cents) for half-up rounding of floating-point finals
_TOL = 1e-9
#: cells (draws × units) simulated at once; bounds memory (~50 bytes a cell in temporaries:
#: 2,000,000 took +105 MB at 3,000 units, the run's peak), not results
_CHUNK_CELLS = 500_000


def _ranked(results: Sequence[UnitResult]) -> list[UnitResult]:
    return [r for r in results if r.status == "scored" and r.final is not None]


def _groups(results: Sequence[UnitResult], catalog: Catalog) -> list[tuple[str, list[UnitResult]]]:
    """Ranked units by group (catalog order), each in bulletin order."""
    ranked = _ranked(results)
    names = list(catalog.groups) + sorted({r.unit.group for r in ranked} - set(catalog.groups))
    out = []
    for g in names:
        members = [r for r in ranked if r.unit.group == g]
        if members:
            members.sort(key=lambda r: (r.rank if r.rank is not None else math.inf, r.unit_id))
            out.append((g, members))
    return out


def _assessed_weight(catalog: Catalog) -> Fraction:
    return next(Fraction(c.weight) for c in catalog.components if c.id == "assessed")


def _scored_items(r: UnitResult):
    return [ir for ir in r.items if ir.item.kind == "scored" and ir.applicable == "yes"]


def _cents(x: Fraction) -> int:
    return int(round_half_up(x, 2).scaleb(2))


# ====================================================================== robustness


@dataclass(frozen=True)
class Robustness:
    rank_p05: int
    rank_p50: int
    rank_p95: int
    grade_stability: float


@dataclass(frozen=True)
class _Group:
    name: str
    unit_ids: tuple[str, ...]
    S: np.ndarray  # units × dimensions, score
    P: np.ndarray  # units × dimensions, points
    w: float  # weight of assessed
    rest: np.ndarray  # final − w·assessed (other components + bonus)
    cents: np.ndarray  # published final in cents (exact)
    tb: np.ndarray  # dense rank of the tie-break rates, 0 = best
    veto: np.ndarray  # 0 none, 1 cap, 2 fail
    lines: tuple[int, int, int]  # 优秀, 良好, 合格 lines in cents (published final ≥ line)
    quota: int
    grade: np.ndarray  # published grade code
    rank: np.ndarray  # published rank


def _prepare(results: Sequence[UnitResult], catalog: Catalog) -> list[_Group]:
    dims = [d.id for d in catalog.dimensions]
    col = {d: k for k, d in enumerate(dims)}
    w = _assessed_weight(catalog)
    out = []
    for name, members in _groups(results, catalog):
        n = len(members)
        S = np.zeros((n, len(dims)))
        P = np.zeros((n, len(dims)))
        rest = np.empty(n)
        for u, r in enumerate(members):
            if r.rank is None:
                raise ValueError(f"{r.unit_id}: 结果尚未排名,请先调用 kaohe.ranking.rank_all")
            for ir in r.items:
                if ir.item.kind == "scored" and ir.applicable == "yes":
                    k = col[ir.item.dimension]
                    S[u, k] += float(ir.score)
                    P[u, k] += float(ir.item.points)
            if abs(100.0 * S[u].sum() / P[u].sum() - float(r.assessed)) > 1e-9:
                raise ValueError(f"{r.unit_id}: 指标得分之和与审核得分不一致")
            rest[u] = float(r.final - w * r.assessed)
        keys = [sort_key(r, catalog)[1:] for r in members]
        dense = {k: i for i, k in enumerate(sorted(set(keys)))}
        bands = catalog.bands_for(name)
        out.append(
            _Group(
                name=name,
                unit_ids=tuple(r.unit_id for r in members),
                S=S,
                P=P,
                w=float(w),
                rest=rest,
                cents=np.array([_cents(r.final) for r in members], dtype=np.int64),
                tb=np.array([dense[k] for k in keys], dtype=np.int64),
                veto=np.array([_VETO_CODE[r.veto] for r in members], dtype=np.int8),
                lines=tuple(math.ceil(Fraction(line) * 100) for _, line in bands.as_list()),
                quota=excellence_places(catalog, n),
                grade=np.array([_GRADE_CODE[r.grade] for r in members], dtype=np.int8),
                rank=np.array([r.rank for r in members], dtype=np.int64),
            )
        )
    return out


def _draw(catalog: Catalog, draws: int, seed: int, low: float, high: float) -> np.ndarray:
    if draws < 1:
        raise ValueError("draws 至少为 1")
    if not 0 < low <= high:
        raise ValueError("权重乘数范围须满足 0 < low ≤ high")
    rng = np.random.default_rng(seed)
    u = rng.random((draws, len(catalog.dimensions)))
    return low + (high - low) * u


def _simulate(g: _Group, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks and grade codes (draws × units) of one group under multipliers m (draws × dimensions)."""
    n = len(g.unit_ids)
    D = m.shape[0]
    assessed = 100.0 * (m @ g.S.T) / (m @ g.P.T)
    final = g.w * assessed + g.rest
    cents = np.floor(final * 100.0 + 0.5 + _TOL).astype(np.int64)
    flat = np.all(m == m[:, :1], axis=1)
    if flat.any():  # equal multipliers change no score: take the exact published finals
        cents[flat] = g.cents
    # one integer key, larger is better: rounded final, then the tie-break chain
    key = cents * (n + 1) + (n - g.tb)
    order = np.argsort(-key, axis=1, kind="stable")
    srt = np.take_along_axis(key, order, axis=1)
    new = np.ones((D, n), dtype=bool)
    new[:, 1:] = srt[:, 1:] != srt[:, :-1]
    pos = np.broadcast_to(np.arange(n), (D, n))
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)  # first position of each tie block
    ranks = np.empty((D, n), dtype=np.int32)
    np.put_along_axis(ranks, order, (start + 1).astype(np.int32), axis=1)
    # bands
    t_exc, t_good, t_pass = g.lines
    band = np.full((D, n), 3, dtype=np.int8)
    band[cents >= t_pass] = 2
    band[cents >= t_good] = 1
    band[cents >= t_exc] = 0
    # quota: an eligible unit wins iff fewer than K eligible units rank strictly better
    eligible = (band == 0) & (g.veto == 0)[None, :]
    e_srt = np.take_along_axis(eligible, order, axis=1).astype(np.int32)
    before = np.cumsum(e_srt, axis=1) - e_srt
    win_srt = np.take_along_axis(before, start, axis=1) < g.quota
    winner = np.empty((D, n), dtype=bool)
    np.put_along_axis(winner, order, win_srt, axis=1)
    grade = band.copy()
    grade[(band == 0) & ~(winner & eligible)] = 1  # over the quota, or a cap veto
    grade[:, g.veto == 2] = 3
    return ranks, grade


def _quantile_index(p: Fraction, draws: int) -> int:
    """Position (0-based) of the p-quantile in sorted draws, inverted-CDF."""
    return max(0, math.ceil(p * draws) - 1)


def rank_robustness(
    results: Sequence[UnitResult],
    catalog: Catalog,
    draws: int = 1000,
    seed: int = 2025,
    low: float = 0.8,
    high: float = 1.2,
) -> dict[str, Robustness]:
    """METHOD §7: each ranked unit's 5th/50th/95th percentile rank and grade stability."""
    m = _draw(catalog, draws, seed, low, high)
    qs = [_quantile_index(Fraction(p, 100), draws) for p in (5, 50, 95)]
    out: dict[str, Robustness] = {}
    for g in _prepare(results, catalog):
        n = len(g.unit_ids)
        ranks = np.empty((draws, n), dtype=np.int32)
        kept = np.zeros(n, dtype=np.int64)
        step = max(1, _CHUNK_CELLS // n)
        for a in range(0, draws, step):
            r, gr = _simulate(g, m[a : a + step])
            ranks[a : a + step] = r
            kept += (gr == g.grade[None, :]).sum(axis=0)
        part = np.partition(ranks, sorted(set(qs)), axis=0)
        p05, p50, p95 = (part[q] for q in qs)
        for u, uid in enumerate(g.unit_ids):
            out[uid] = Robustness(int(p05[u]), int(p50[u]), int(p95[u]), float(kept[u] / draws))
    return out


# ====================================================================== watch list


@dataclass(frozen=True)
class WatchEntry:
    unit_id: str
    kind: str  # veto | band | quota | tie | review
    detail_cn: str


_KIND_ORDER = {"veto": 0, "band": 1, "quota": 2, "tie": 3, "review": 4}


def _num(x) -> str:
    """A number as the office writes it: 90, 88.5, 89.51."""
    d = Decimal(x) if not isinstance(x, Fraction) else round_half_up(x, 2)
    d = d.normalize()
    return format(d.quantize(Decimal(1)) if d == d.to_integral_value() else d, "f")


def _rate_text(r: UnitResult, dim: str) -> str:
    v = r.rates.get(dim)
    return "无适用指标" if v is None else fmt2(v)


def _decider(a: UnitResult, b: UnitResult, catalog: Catalog) -> str | None:
    for d in catalog.tie_break:
        ra, rb = a.rates.get(d), b.rates.get(d)
        if (None if ra is None else published(ra)) != (None if rb is None else published(rb)):
            return f"{catalog.dimension_names[d]}得分率 {_rate_text(a, d)} 对 {_rate_text(b, d)}"
    return None


def _label(r: UnitResult) -> str:
    return f"{r.unit.unit_name}({r.unit_id})"


def watch_list(
    results: Sequence[UnitResult],
    catalog: Catalog,
    margin=1,
    review_share=Fraction(1, 5),
) -> list[WatchEntry]:
    """Units the office should look at before publishing (METHOD §7), in bulletin order."""
    margin = Fraction(str(margin)) if isinstance(margin, float) else Fraction(margin)
    review_share = Fraction(str(review_share)) if isinstance(review_share, float) else Fraction(review_share)
    groups = _groups(results, catalog)
    g_index = {r.unit_id: g for g, (_, members) in enumerate(groups) for r in members}
    entries: list[tuple[tuple, WatchEntry]] = []

    def add(r: UnitResult, kind: str, text: str, extra: str = "") -> None:
        key = (g_index.get(r.unit_id, len(groups)), r.rank if r.rank is not None else math.inf, r.unit_id, _KIND_ORDER[kind], extra)
        entries.append((key, WatchEntry(r.unit_id, kind, text)))

    for group, members in groups:
        bands = catalog.bands_for(group)
        own_bands = group in catalog.group_bands
        fin = {r.unit_id: Fraction(published(r.final)) for r in members}
        # vetoes
        for r in members:
            if r.veto:
                add(r, "veto", _veto_text(r))
        # band lines that can still change the unit's grade
        for r in members:
            for b, (name, line) in enumerate(bands.as_list()):
                if r.veto == "fail" or (r.veto == "cap" and name == "优秀"):
                    continue
                d = fin[r.unit_id] - Fraction(line)
                if abs(d) > margin:
                    continue
                where = f"{group}{name}分数线 {_num(line)}" if own_bands else f"{name}分数线 {_num(line)}"
                if d > 0:
                    rel = f"比{where} 高 {fmt2(d)} 分"
                elif d < 0:
                    rel = f"比{where} 低 {fmt2(-d)} 分"
                else:
                    rel = f"恰好达到{where}"
                add(r, "band", f"最终得分 {fmt2(r.final)},{rel},现评为{r.grade}{_note(r)}。", str(b))
        # the quota cut, where the quota binds
        quota = excellence_places(catalog, len(members))
        in_band = [r for r in members if bands.grade_of(published(r.final)) == "优秀" and r.veto is None]
        winners = [r for r in in_band if r.grade == "优秀"]
        if quota > 0 and winners and len(winners) < len(in_band):
            cut = min(fin[r.unit_id] for r in winners)
            for r in in_band:
                d = fin[r.unit_id] - cut
                if abs(d) > margin:
                    continue
                head = f"本组优秀名额 {quota} 个,末位优秀得分 {fmt2(cut)};本单位最终得分 {fmt2(r.final)},排第 {r.rank} 名"
                if r.grade == "优秀":
                    tail = ",为末位优秀" if d == 0 else f",高于末位优秀 {fmt2(d)} 分,获评优秀"
                elif d:
                    tail = f",比末位优秀低 {fmt2(-d)} 分,因超出优秀名额评为良好"
                else:
                    tail = ",与末位优秀同分但名次在后,因超出优秀名额评为良好"
                add(r, "quota", head + tail + "。")
        # equal published finals, ranks decided by the tie-break chain
        by_final: dict[Fraction, list[UnitResult]] = {}
        for r in members:
            by_final.setdefault(fin[r.unit_id], []).append(r)
        chain = "、".join(catalog.dimension_names[d] for d in catalog.tie_break)
        for block in by_final.values():
            if len({r.rank for r in block}) < 2:
                continue
            for r in block:
                others = "、".join(_label(o) for o in block if o is not r)
                parts = [f"最终得分 {fmt2(r.final)} 与 {others} 相同,按同分比较规则(依次比较{chain}得分率)排第 {r.rank} 名"]
                shared = [o for o in block if o is not r and o.rank == r.rank]
                if shared:
                    parts.append("与 " + "、".join(_label(o) for o in shared) + " 完全并列")
                above = [o for o in block if o.rank < r.rank]
                below = [o for o in block if o.rank > r.rank]
                if above:
                    o = max(above, key=lambda x: x.rank)
                    parts.append(f"排在 {_label(o)} 之后({_decider(o, r, catalog)})")
                if below:
                    o = min(below, key=lambda x: x.rank)
                    parts.append(f"排在 {_label(o)} 之前({_decider(r, o, catalog)})")
                add(r, "tie", ";".join(parts) + "。")
    # large review changes (any scored unit, ranked or not)
    for r in results:
        if r.status != "scored":
            continue
        for ir in _scored_items(r):
            if ir.self_score is None:
                continue
            diff = ir.score - ir.self_score
            if diff == 0 or abs(diff) < review_share * ir.points:
                continue
            text = (
                f"审核调整 {ir.item.id} {ir.item.title}:自评 {fmt2(ir.self_score)} 分,审核后 {fmt2(ir.score)} 分"
                f"(变动 {'+' if diff > 0 else '−'}{fmt2(abs(diff))} 分,占该项分值的 {_num(100 * abs(diff) / ir.points)}%"
            )
            if ir.penalty:
                text += f",含核查不实另扣 {fmt2(ir.penalty)} 分"
            text += ")"
            reasons = [f"{c.reason}({c.reviewer})" if c.reviewer else c.reason for c in ir.changes]
            if reasons:
                text += ";审核理由:" + ";".join(reasons)
            add(r, "review", text + "。", ir.item.id)
    entries.sort(key=lambda e: e[0])
    return [e for _, e in entries]


def _note(r: UnitResult) -> str:
    return f",{r.grade_note}" if r.grade_note else ""


def _veto_text(r: UnitResult) -> str:
    titles = "、".join(f"{ir.item.id} {ir.item.title}" for ir in r.items if ir.veto)
    rank = f",排第 {r.rank} 名" if r.rank is not None else ""
    score = f"最终得分 {fmt2(r.final)}{rank}" if r.final is not None else "未计分"
    if r.veto == "fail":
        return f"一票否决({titles}):{score},评为不合格(得分照常公布)。"
    return f"不得评为优秀({titles}):{score},评为{r.grade}。"


# ====================================================================== year on year


@dataclass(frozen=True)
class UnitChange:
    unit_id: str
    group: str
    final: Decimal | None
    previous_final: Decimal | None
    score_change: Decimal | None  # final − previous_final
    rank: int | None
    previous_rank: int | None
    rank_change: int | None  # previous_rank − rank: positive = moved up
    grade: str
    previous_grade: str
    note_cn: str = ""


@dataclass(frozen=True)
class CatalogChange:
    kind: str  # added | removed | reweighted | changed | setting
    item_id: str  # the item, or the setting's name for kind "setting"
    title: str
    old_points: Decimal | None
    new_points: Decimal | None
    detail_cn: str


class YearOnYear(NamedTuple):
    changes: list[UnitChange]
    new_units: list[str]
    dropped_units: list[str]
    catalog_changes: list[CatalogChange] | None  # None: no previous catalog, so unknown


def _dec(v) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, Fraction):
        return round_half_up(v, 2)
    s = str(v).strip()
    return Decimal(s) if s else None


def _int(v) -> int | None:
    d = _dec(v)
    return None if d is None else int(d)


def year_on_year(
    results: Sequence[UnitResult],
    catalog: Catalog,
    previous_rows: Mapping[str, Mapping],
    previous_catalog: Catalog | None,
) -> YearOnYear:
    """Change against last year's published rows (results.csv columns: final, rank, grade, group)."""
    changes, new = [], []
    for r in results:
        prev = previous_rows.get(r.unit_id)
        if prev is None:
            new.append(r.unit_id)
            continue
        final = published(r.final) if r.status == "scored" else None
        p_final, p_rank = _dec(prev.get("final")), _int(prev.get("rank"))
        p_group = str(prev.get("group") or "").strip()
        same_group = not p_group or p_group == r.unit.group
        notes = []
        if not same_group:
            notes.append(f"考核组变更(上年为{p_group}),名次不可比")
        if r.rank is None:
            notes.append("本年度未排名")
        if p_rank is None:
            notes.append("上年度未排名")
        rank_change = p_rank - r.rank if same_group and r.rank is not None and p_rank is not None else None
        changes.append(
            UnitChange(
                unit_id=r.unit_id,
                group=r.unit.group,
                final=final,
                previous_final=p_final,
                score_change=final - p_final if final is not None and p_final is not None else None,
                rank=r.rank,
                previous_rank=p_rank,
                rank_change=rank_change,
                grade=r.grade,
                previous_grade=str(prev.get("grade") or ""),
                note_cn=";".join(notes),
            )
        )
    current = {r.unit_id for r in results}
    dropped = [u for u in previous_rows if u not in current]
    cat = catalog_changes(previous_catalog, catalog) if previous_catalog is not None else None
    return YearOnYear(changes, new, dropped, cat)


def _bands_text(b: Bands) -> str:
    return "/".join(f"{name}{_num(line)}" for name, line in b.as_list())


def catalog_changes(previous: Catalog, current: Catalog) -> list[CatalogChange]:
    """Items added, removed, re-weighted or changed, and settings changed, from previous to current."""
    out: list[CatalogChange] = []
    old = {i.id: i for i in previous.items}
    new = {i.id: i for i in current.items}
    dim_old, dim_new = previous.dimension_names, current.dimension_names
    for i in current.items:
        if i.id not in old:
            out.append(CatalogChange("added", i.id, i.title, None, i.max_points, f"新增指标 {i.id} {i.title}({dim_new.get(i.dimension, i.dimension)},{_pts(i)})"))
    for i in previous.items:
        if i.id not in new:
            out.append(CatalogChange("removed", i.id, i.title, i.max_points, None, f"删除指标 {i.id} {i.title}(上年{dim_old.get(i.dimension, i.dimension)},{_pts(i)})"))
    for i in current.items:
        o = old.get(i.id)
        if o is None:
            continue
        if o.max_points != i.max_points:
            what = "加分上限" if i.kind == "bonus" else "分值"
            out.append(
                CatalogChange("reweighted", i.id, i.title, o.max_points, i.max_points, f"指标 {i.id} {i.title} {what}由 {_num(o.max_points)} 分调整为 {_num(i.max_points)} 分")
            )
        aspects = []
        if o.rule.model_dump() != i.rule.model_dump():
            aspects.append("评分规则")
        if o.dimension != i.dimension:
            aspects.append(f"所属一级指标(由{dim_old.get(o.dimension, o.dimension)}改为{dim_new.get(i.dimension, i.dimension)})")
        if o.applies_to != i.applies_to:
            aspects.append("适用范围")
        if o.na_allowed != i.na_allowed:
            aspects.append("可否申报不适用")
        if aspects:
            out.append(CatalogChange("changed", i.id, i.title, o.max_points, i.max_points, f"指标 {i.id} {i.title} 的{'、'.join(aspects)}有变化"))
    # settings
    if previous.bands != current.bands:
        out.append(_setting("bands", f"等级分数线由 {_bands_text(previous.bands)} 调整为 {_bands_text(current.bands)}"))
    for g in sorted(set(previous.group_bands) | set(current.group_bands)):
        a, b = previous.bands_for(g), current.bands_for(g)
        if a != b:
            out.append(_setting(f"group_bands.{g}", f"{g}等级分数线由 {_bands_text(a)} 调整为 {_bands_text(b)}"))
    cw_old = {c.id: c.weight for c in previous.components}
    cw_new = {c.id: c.weight for c in current.components}
    if cw_old != cw_new:
        def parts(cat: Catalog) -> str:
            return "、".join(f"{c.name}{_num(c.weight * 100)}%" for c in cat.components)

        out.append(_setting("components", f"得分构成由 {parts(previous)} 调整为 {parts(current)}"))
    if previous.excellence_quota != current.excellence_quota:
        out.append(_setting("excellence_quota", f"优秀比例由 {_num(previous.excellence_quota * 100)}% 调整为 {_num(current.excellence_quota * 100)}%"))
    if previous.bonus_cap != current.bonus_cap:
        out.append(_setting("bonus_cap", f"加分上限由 {_num(previous.bonus_cap)} 分调整为 {_num(current.bonus_cap)} 分"))
    if previous.tie_break != current.tie_break:
        def chain(cat: Catalog) -> str:
            return "、".join(cat.dimension_names.get(d, d) for d in cat.tie_break) or "无"

        out.append(_setting("tie_break", f"同分比较顺序由 {chain(previous)} 调整为 {chain(current)}"))
    return out


def _pts(i) -> str:
    if i.kind == "bonus":
        return f"加分上限 {_num(i.max_points)} 分"
    if i.kind == "veto":
        return "否决项"
    return f"{_num(i.max_points)} 分"


def _setting(name: str, text: str) -> CatalogChange:
    return CatalogChange("setting", name, "", None, None, text)


# ====================================================================== diagnostics


@dataclass(frozen=True)
class ItemDiagnostic:
    item_id: str
    share_full: float | None
    share_zero: float | None
    share_na: float | None
    nominal_weight: float | None
    effective_weight: float | None
    separates: bool
    title: str = ""
    dimension: str = ""
    points: Decimal | None = None
    n_units: int = 0  # ranked units the item applies to (applies_to)


def indicator_diagnostics(results: Sequence[UnitResult], catalog: Catalog) -> list[ItemDiagnostic]:
    """Per scored item, in catalog order, over the ranked units (definitions in the module docstring)."""
    groups = _groups(results, catalog)
    units = [r for _, m in groups for r in m]
    items = [i for i in catalog.items if i.kind == "scored"]
    col = {i.id: k for k, i in enumerate(items)}
    w = _assessed_weight(catalog)
    n = len(units)
    C = np.zeros((n, len(items)))
    f = np.array([float(r.final) for r in units])
    state: dict[str, list] = {i.id: [] for i in items}  # (applicable, score, base) per unit the item applies to
    for u, r in enumerate(units):
        for ir in r.items:
            if ir.item.kind != "scored" or ir.applicable == "no":
                continue
            state[ir.item.id].append((ir.applicable, ir.score, r.base))
            if ir.applicable == "yes":
                C[u, col[ir.item.id]] = float(100 * w * ir.score / r.base)
    # centre within groups
    a = 0
    for _, m in groups:
        b = a + len(m)
        f[a:b] -= f[a:b].mean()
        C[a:b] -= C[a:b].mean(axis=0)
        a = b
    var = float(f @ f)
    cov = C.T @ f
    out = []
    for i in items:
        rows = state[i.id]
        N = len(rows)
        scored = [(s, base) for app, s, base in rows if app == "yes"]
        P = Fraction(i.points)
        out.append(
            ItemDiagnostic(
                item_id=i.id,
                share_full=sum(1 for s, _ in scored if s == P) / N if N else None,
                share_zero=sum(1 for s, _ in scored if s == 0) / N if N else None,
                share_na=sum(1 for app, _, _ in rows if app == "na") / N if N else None,
                nominal_weight=float(w * P * len(scored) / sum(b for _, b in scored)) if scored else None,
                effective_weight=float(cov[col[i.id]] / var) if var > 0 else None,
                separates=len({s for s, _ in scored}) > 1,
                title=i.title,
                dimension=i.dimension,
                points=i.points,
                n_units=N,
            )
        )
    return out


# ====================================================================== strengths and weaknesses


@dataclass(frozen=True)
class DimensionGap:
    dimension: str
    name: str
    rate: Fraction
    group_mean: Fraction
    gap: Fraction  # rate − group_mean


class StrengthsWeaknesses(NamedTuple):
    strengths: list[DimensionGap]  # largest positive gap first
    weaknesses: list[DimensionGap]  # most negative gap first


def strengths_weaknesses(
    result: UnitResult, group_results: Sequence[UnitResult], catalog: Catalog, n: int = 2
) -> StrengthsWeaknesses:
    """The unit's dimensions furthest above and below its group's average rate."""
    peers = [r for r in _ranked(group_results) if r.unit.group == result.unit.group]
    gaps = []
    for d in catalog.dimensions:
        mine = result.rates.get(d.id)
        rates = [r.rates[d.id] for r in peers if r.rates.get(d.id) is not None]
        if mine is None or not rates:
            continue
        mean = sum(rates, ZERO) / len(rates)
        gaps.append(DimensionGap(d.id, d.name, mine, mean, mine - mean))
    strengths = sorted((g for g in gaps if g.gap > 0), key=lambda g: -g.gap)[:n]
    weaknesses = sorted((g for g in gaps if g.gap < 0), key=lambda g: g.gap)[:n]
    return StrengthsWeaknesses(strengths, weaknesses)


# ====================================================================== benchmark


def _synthetic_year(n_units: int = 3000, seed: int = 0, n_groups: int = 3, dims: int = 9, per_dim: int = 4, levels: int = 5):
    """A ranked synthetic year for benchmarks and cross-checks: (catalog, results).

    Scores take ``levels`` values per item, so equal finals (ties) happen; a few
    units carry cap and fail vetoes and a bonus; components: assessed 0.8,
    satisfaction 0.2. The first group has its own bands.
    """
    from kaohe.catalog import parse_catalog
    from kaohe.ranking import rank_all
    from kaohe.registry import Unit
    from kaohe.scoring import ItemResult

    rng = np.random.default_rng(seed)
    groups = [f"G{g + 1}" for g in range(n_groups)]
    basis = [{"file": "000", "clause": "(一)", "quote": "合成测试数据"}]
    raw_items = []
    for d in range(dims):
        for j in range(per_dim):
            raw_items.append(
                {
                    "id": f"I{d + 1}_{j + 1}",
                    "dimension": f"d{d + 1}",
                    "title": f"指标{d + 1}-{j + 1}",
                    "criterion": "是得满分",
                    "points": int(rng.choice([5, 10, 15, 20])),
                    "rule": {"type": "yes_no", "field": "v"},
                    "fields": [{"key": "v", "label": "是否完成", "type": "yes_no"}],
                    "na_allowed": True,
                    "basis": basis,
                }
            )
    cat = parse_catalog(
        {
            "year": 2025,
            "title": "合成年度",
            "city": "合成市",
            "issuer": "合成办",
            "groups": groups,
            "group_bands": {groups[0]: {"优秀": 88, "良好": 78, "合格": 60}},
            "bonus_cap": 2,
            "components": [
                {"id": "assessed", "name": "依法行政考核得分", "weight": Decimal("0.8")},
                {"id": "satisfaction", "name": "群众满意度测评", "weight": Decimal("0.2")},
            ],
            "tie_break": [f"d{d + 1}" for d in range(min(3, dims))],
            "dimensions": [{"id": f"d{d + 1}", "name": f"维度{d + 1}"} for d in range(dims)],
            "items": raw_items,
        }
    )
    items = cat.items
    fracs = [Fraction(k, levels - 1) for k in range(levels)]
    results = []
    for u in range(n_units):
        unit = Unit(f"U{u:05d}", f"单位{u}", groups[u % n_groups], frozenset())
        quality = rng.uniform(0.8, 1.15)
        irs = []
        for it in items:
            if rng.random() < 0.03:
                irs.append(ItemResult(it, "na"))
                continue
            k = int(np.clip(round(rng.normal(quality * (levels - 1), 0.8)), 0, levels - 1))
            irs.append(ItemResult(it, "yes", score=Fraction(it.points) * fracs[k]))
        results.append(_result_from_items(cat, unit, irs, {"satisfaction": Fraction(int(rng.integers(70, 100)))}, Fraction(int(rng.integers(0, 3))) if rng.random() < 0.1 else ZERO, (None, "cap", "fail")[int(rng.choice(3, p=[0.96, 0.02, 0.02]))]))
    return cat, rank_all(results, cat)


def _result_from_items(catalog: Catalog, unit, items, components: dict, bonus: Fraction, veto: str | None) -> UnitResult:
    """METHOD §4 aggregation of given item results (what scoring.score_unit does after the rules)."""
    scored = [r for r in items if r.item.kind == "scored" and r.applicable == "yes"]
    base = sum((r.points for r in scored), ZERO)
    total = sum((r.score for r in scored), ZERO)
    assessed = 100 * total / base if base else None
    rates = {}
    for d in catalog.dimensions:
        ins = [r for r in scored if r.item.dimension == d.id]
        p = sum((r.points for r in ins), ZERO)
        rates[d.id] = 100 * sum((r.score for r in ins), ZERO) / p if p else None
    bonus = min(Fraction(catalog.bonus_cap), bonus)
    comps = dict(components)
    weighted = final = None
    if assessed is not None:
        comps["assessed"] = assessed
        weighted = sum((Fraction(c.weight) * comps[c.id] for c in catalog.components), ZERO)
        final = weighted + bonus
    return UnitResult(
        unit=unit, status="scored", items=tuple(items), base=base, total=total, assessed=assessed, rates=rates,
        components=comps, weighted=weighted, bonus=bonus, final=final, veto=veto,
    )


def _bench(n_units: int = 3000, draws: int = 1000, seed: int = 0) -> dict[str, float]:
    """Time rank_robustness on a synthetic year (not a test): prints and returns seconds."""
    t0 = time.perf_counter()
    catalog, results = _synthetic_year(n_units, seed)
    t1 = time.perf_counter()
    prep = _prepare(results, catalog)
    t2 = time.perf_counter()
    rob = rank_robustness(results, catalog, draws=draws, seed=2025)
    t3 = time.perf_counter()
    out = {"build_year_s": t1 - t0, "prepare_s": t2 - t1, "rank_robustness_s": t3 - t2, "units": len(rob), "groups": len(prep)}
    print(out)
    return out


if __name__ == "__main__":  # pragma: no cover
    _bench()
