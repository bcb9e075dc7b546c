"""Stage 5, rank: METHOD §5 — ranks within groups, grade bands, quota, veto.

Ranks and grades use the published (half-up, 2 decimals) final score, and
tie-breaks use the dimension rates rounded the same way, in the catalog's
tie-break order. A unit with no rate in a tie-break dimension (no applicable
item there) sorts after every unit that has one. Units still tied share a
rank, competition style (1, 2, 2, 4), and are listed by unit_id.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from kaohe.catalog import Catalog
from kaohe.numbers import round_half_up
from kaohe.scoring import UnitResult

#: a missing rate sorts after every real one (rates are descending, so "less")
_NO_RATE = Decimal("-Infinity")


def published(x: Fraction | None) -> Decimal | None:
    return None if x is None else round_half_up(x, 2)


def sort_key(r: UnitResult, catalog: Catalog) -> tuple:
    """Comparison key, best first: (-final, -rates in tie-break order)."""
    rates = tuple(
        -(published(r.rates.get(d)) if r.rates.get(d) is not None else _NO_RATE) for d in catalog.tie_break
    )
    return (-published(r.final),) + rates


def rank_group(results: list[UnitResult], catalog: Catalog, group: str) -> list[UnitResult]:
    """Ranks and grades for one group, in bulletin order; mutates and returns the results."""
    ranked = [r for r in results if r.status == "scored" and r.final is not None]
    others = [r for r in results if r not in ranked]
    ranked.sort(key=lambda r: (sort_key(r, catalog), r.unit_id))
    prev_key, prev_rank = None, 0
    for pos, r in enumerate(ranked, start=1):
        key = sort_key(r, catalog)
        r.rank = prev_rank if key == prev_key else pos
        prev_key, prev_rank = key, r.rank
    bands = catalog.bands_for(group)
    for r in ranked:
        r.grade = bands.grade_of(published(r.final))
        r.grade_note = ""
    # excellence quota: K places among the eligible, in rank order
    quota = math.floor(Fraction(catalog.excellence_quota) * len(ranked))
    eligible = [r for r in ranked if r.grade == "优秀" and r.veto is None]
    winners: set[str] = set()
    if quota > 0 and eligible:
        winners = {r.unit_id for r in eligible[:quota]}
        if len(eligible) > quota:
            last_rank = eligible[quota - 1].rank
            winners |= {r.unit_id for r in eligible[quota:] if r.rank == last_rank}
    for r in ranked:
        if r.veto == "fail":
            r.grade = "不合格"
            r.grade_note = "一票否决"
        elif r.grade == "优秀" and r.veto == "cap":
            r.grade = "良好"
            r.grade_note = "不得评为优秀"
        elif r.grade == "优秀" and r.unit_id not in winners:
            r.grade = "良好"
            r.grade_note = f"超出优秀名额({quota}个)"
    for r in others:
        r.rank = None
        r.grade = "不合格"
        r.grade_note = {"missing": "未报送", "rejected": "未通过校验"}.get(r.status, "无适用计分指标")
    others.sort(key=lambda r: r.unit_id)
    return ranked + others


def rank_all(results: list[UnitResult], catalog: Catalog) -> list[UnitResult]:
    """All groups, in catalog group order; within a group in bulletin order."""
    out: list[UnitResult] = []
    for group in catalog.groups:
        out.extend(rank_group([r for r in results if r.unit.group == group], catalog, group))
    return out


def excellence_places(catalog: Catalog, n_ranked: int) -> int:
    return math.floor(Fraction(catalog.excellence_quota) * n_ranked)
