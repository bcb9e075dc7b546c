"""kaohe.ranking (METHOD §5): ranks, tie-breaks, grade bands, excellence quota, veto.

Results are built by hand; the mini catalog has tie_break [d2, d1], default
bands 90/80/60, 区县政府 bands 88/78/60 and an excellence quota of 0.30.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction as Fr
from pathlib import Path

import pytest

from kaohe.catalog import load_catalog
from kaohe.ranking import excellence_places, published, rank_all, rank_group, sort_key
from kaohe.registry import Unit
from kaohe.scoring import UnitResult

MINI = Path(__file__).parent / "data" / "mini_catalog.yaml"
CITY = "市直综合部门"  # default bands 90/80/60
COUNTY = "区县政府"  # bands 88/78/60


@pytest.fixture(scope="module")
def cat():
    return load_catalog(MINI)


def res(uid, final, d2=80, d1=80, veto=None, group=CITY, status="scored") -> UnitResult:
    def f(x):
        return None if x is None else Fr(Decimal(str(x))) if not isinstance(x, Fr) else x

    if status != "scored":
        return UnitResult(unit=Unit(uid, f"单位{uid}", group, frozenset()), status=status)
    return UnitResult(
        unit=Unit(uid, f"单位{uid}", group, frozenset()),
        status="scored",
        final=f(final),
        rates={"d1": f(d1), "d2": f(d2)},
        veto=veto,
    )


def fillers(n, start=70, group=CITY, prefix="Z"):
    """n units well below the 优秀 band, to set the group size (and so K)."""
    return [res(f"{prefix}{i:02d}", start - i, group=group) for i in range(n)]


def order(results):
    return [r.unit_id for r in results]


def ranks(results):
    return {r.unit_id: r.rank for r in results}


def grades(results):
    return {r.unit_id: r.grade for r in results}


# ------------------------------------------------------------------ ranks


def test_competition_ranks_ties_listed_by_unit_id(cat):
    rs = [res("U3", 90), res("U2", 85), res("U1", 90), res("U4", 95)]
    out = rank_group(rs, cat, CITY)
    # 95 -> 1; 90, 90 (same rates) -> 2, 2 listed U1 before U3; 85 -> 4
    assert order(out) == ["U4", "U1", "U3", "U2"]
    assert [r.rank for r in out] == [1, 2, 2, 4]


def test_three_way_tie_then_next_rank(cat):
    rs = [res("C", 88), res("A", 88), res("B", 88), res("D", 70)]
    out = rank_group(rs, cat, CITY)
    assert order(out) == ["A", "B", "C", "D"]
    assert [r.rank for r in out] == [1, 1, 1, 4]


def test_tie_broken_by_first_tie_break_dimension(cat):
    # same final; d2 (first in tie_break) decides even though d1 says the opposite
    rs = [res("A", 85, d2=70, d1=100), res("B", 85, d2=71, d1=0)]
    out = rank_group(rs, cat, CITY)
    assert order(out) == ["B", "A"]
    assert [r.rank for r in out] == [1, 2]


def test_tie_broken_by_second_dimension_when_first_ties(cat):
    rs = [res("A", 85, d2=75, d1=60), res("B", 85, d2=75, d1=61)]
    out = rank_group(rs, cat, CITY)
    assert order(out) == ["B", "A"]
    assert [r.rank for r in out] == [1, 2]


def test_tie_break_uses_rounded_rates(cat):
    # d2 75.001 and 75.004 both publish as 75.00: tied there, so d1 decides
    rs = [res("A", 85, d2="75.004", d1=60), res("B", 85, d2="75.001", d1=61)]
    out = rank_group(rs, cat, CITY)
    assert order(out) == ["B", "A"]
    # and 75.005 publishes as 75.01, which beats 75.00 before d1 is looked at
    rs = [res("A", 85, d2="75.005", d1=60), res("B", 85, d2="75.004", d1=61)]
    assert order(rank_group(rs, cat, CITY)) == ["A", "B"]


def test_tie_break_rates_non_terminating(cat):
    # 2/3·100 = 66.666… -> 66.67 and 6667/100 = 66.67: tie on d2; d1 decides
    rs = [res("A", 85, d2=Fr(200, 3), d1=50), res("B", 85, d2=Fr(6667, 100), d1=51)]
    assert order(rank_group(rs, cat, CITY)) == ["B", "A"]


def test_all_tie_breaks_equal_share_rank(cat):
    rs = [res("B", 85, d2=75, d1=60), res("A", 85, d2=75, d1=60)]
    out = rank_group(rs, cat, CITY)
    assert order(out) == ["A", "B"]
    assert [r.rank for r in out] == [1, 1]


def test_no_rate_ranks_after_a_rate(cat):
    # A has no applicable item in d2: it sorts after B, whose d2 rate is 0
    rs = [res("A", 85, d2=None, d1=100), res("B", 85, d2=0, d1=0)]
    out = rank_group(rs, cat, CITY)
    assert order(out) == ["B", "A"]
    assert [r.rank for r in out] == [1, 2]


def test_no_rate_in_both_falls_through_to_next_dimension(cat):
    rs = [res("A", 85, d2=None, d1=50), res("B", 85, d2=None, d1=60)]
    assert order(rank_group(rs, cat, CITY)) == ["B", "A"]


def test_no_rate_key_absent_is_same_as_none(cat):
    a = res("A", 85, d2=None, d1=50)
    a.rates.pop("d2")
    b = res("B", 85, d2=None, d1=50)
    out = rank_group([b, a], cat, CITY)
    assert [r.rank for r in out] == [1, 1]


def test_ranks_use_rounded_final_tie(cat):
    # 89.994 and 89.9949 both publish as 89.99: a tie, and equal rates keep it one
    rs = [res("A", "89.9949"), res("B", "89.994")]
    out = rank_group(rs, cat, CITY)
    assert [r.rank for r in out] == [1, 1]
    assert order(out) == ["A", "B"]


def test_ranks_use_rounded_final_tie_goes_to_tie_break(cat):
    # the exact 89.9949 > 89.994 does not matter; B's better d2 rate does
    rs = [res("A", "89.9949", d2=70), res("B", "89.994", d2=71)]
    assert order(rank_group(rs, cat, CITY)) == ["B", "A"]


def test_ranks_use_rounded_final_half_up(cat):
    # 89.995 publishes as 90.00 and beats 89.994 (89.99), whatever the rates
    rs = [res("A", "89.994", d2=100, d1=100), res("B", "89.995", d2=0, d1=0)]
    out = rank_group(rs, cat, CITY)
    assert order(out) == ["B", "A"]
    assert [r.rank for r in out] == [1, 2]


def test_non_terminating_finals(cat):
    # 800/9 = 88.888… -> 88.89 and 8889/100 -> 88.89: tied
    rs = [res("A", Fr(800, 9)), res("B", Fr(8889, 100))]
    assert [r.rank for r in rank_group(rs, cat, CITY)] == [1, 1]


def test_published_and_sort_key(cat):
    assert published(None) is None
    assert published(Fr(89995, 1000)) == Decimal("90.00")
    r = res("A", "89.995", d2=None, d1="66.666")
    key = sort_key(r, cat)
    assert key[0] == Decimal("-90.00")
    assert key[2] == Decimal("-66.67")
    assert key[1] > key[2]  # "no rate" sorts last (ascending key)


# ------------------------------------------------------------------ grade bands


@pytest.mark.parametrize(
    "final, grade",
    [
        ("100", "优秀"),
        ("90", "优秀"),
        ("89.995", "优秀"),  # publishes as 90.00
        ("89.994", "良好"),
        ("80", "良好"),
        ("79.99", "合格"),
        ("60", "合格"),
        ("59.995", "合格"),  # 60.00
        ("59.99", "不合格"),
        ("0", "不合格"),
    ],
)
def test_default_bands(cat, final, grade):
    rs = [res("A", final)] + fillers(9, start=50)  # n = 10, K = 3: quota never binds here
    out = {r.unit_id: r for r in rank_group(rs, cat, CITY)}
    assert out["A"].grade == grade


@pytest.mark.parametrize(
    "final, grade",
    [
        ("90", "优秀"),
        ("88", "优秀"),  # county bands: 优秀 ≥ 88
        ("87.995", "优秀"),
        ("87.99", "良好"),
        ("78", "良好"),
        ("77.99", "合格"),
        ("60", "合格"),
        ("59.99", "不合格"),
    ],
)
def test_group_bands(cat, final, grade):
    rs = [res("A", final, group=COUNTY)] + fillers(9, start=50, group=COUNTY)
    out = {r.unit_id: r for r in rank_group(rs, cat, COUNTY)}
    assert out["A"].grade == grade


def test_same_score_different_group_different_grade(cat):
    city = [res("C1", 88)] + fillers(9, start=50, prefix="C")
    county = [res("Q1", 88, group=COUNTY)] + fillers(9, start=50, group=COUNTY, prefix="Q")
    out = grades(rank_all(city + county, cat))
    assert out["C1"] == "良好"  # 88 < 90
    assert out["Q1"] == "优秀"  # 88 ≥ 88


# ------------------------------------------------------------------ excellence quota


def test_quota_places():
    cat = load_catalog(MINI)
    # K = floor(0.3·n)
    assert [excellence_places(cat, n) for n in (0, 1, 3, 4, 6, 7, 10, 13, 14)] == [0, 0, 0, 1, 1, 2, 3, 3, 4]


def test_quota_zero_nobody_excellent(cat):
    # n = 3 -> K = floor(0.9) = 0
    rs = [res("A", 98), res("B", 95), res("C", 70)]
    out = {r.unit_id: r for r in rank_group(rs, cat, CITY)}
    assert out["A"].grade == "良好" and out["B"].grade == "良好"
    assert "名额" in out["A"].grade_note
    assert out["C"].grade == "合格"
    assert out["A"].rank == 1  # still ranked


def test_quota_exactly_k_eligible(cat):
    # n = 10 -> K = 3; three units in the band, all get 优秀
    rs = [res("A", 95), res("B", 93), res("C", 90)] + fillers(7)
    g = grades(rank_group(rs, cat, CITY))
    assert [g["A"], g["B"], g["C"]] == ["优秀", "优秀", "优秀"]
    assert all(g[f"Z{i:02d}"] == "合格" for i in range(7))


def test_quota_fewer_eligible_than_k(cat):
    rs = [res("A", 95)] + fillers(9)  # K = 3, one eligible
    assert grades(rank_group(rs, cat, CITY))["A"] == "优秀"


def test_quota_more_eligible_than_k(cat):
    # n = 10 -> K = 3; five in the band: the first three by rank get it
    rs = [res("A", 99), res("B", 97), res("C", 95), res("D", 93), res("E", 91)] + fillers(5)
    out = {r.unit_id: r for r in rank_group(rs, cat, CITY)}
    assert [out[u].grade for u in "ABCDE"] == ["优秀", "优秀", "优秀", "良好", "良好"]
    assert "名额" in out["D"].grade_note and "3" in out["D"].grade_note
    assert out["A"].grade_note == ""


def test_quota_follows_tie_break_order(cat):
    # same final, the tie-break decides who is 3rd and gets the last place
    rs = [res("A", 99), res("B", 97), res("C", 95, d2=70), res("D", 95, d2=71)] + fillers(6)
    g = grades(rank_group(rs, cat, CITY))
    assert g["D"] == "优秀" and g["C"] == "良好"


def test_quota_tie_straddling_kth_place(cat):
    # n = 10 -> K = 3; C and D share rank 3: both get 优秀 (4 units), E does not
    rs = [res("A", 99), res("B", 97), res("C", 95), res("D", 95), res("E", 93)] + fillers(5)
    out = rank_group(rs, cat, CITY)
    assert ranks(out)["C"] == ranks(out)["D"] == 3
    g = grades(out)
    assert [g[u] for u in "ABCDE"] == ["优秀", "优秀", "优秀", "优秀", "良好"]


def test_quota_tie_straddling_wider(cat):
    # n = 10 -> K = 3; ranks 1, 2, 2, 2: the K-th (3rd) shares rank 2 with the 4th: all four
    rs = [res("A", 99), res("B", 93), res("C", 93), res("D", 93), res("E", 92)] + fillers(5)
    g = grades(rank_group(rs, cat, CITY))
    assert [g[u] for u in "ABCDE"] == ["优秀", "优秀", "优秀", "优秀", "良好"]


def test_quota_tie_inside_quota_does_not_extend(cat):
    # n = 10 -> K = 3; A, B tie at 1; C is 3rd alone; D (4th) does not get a place
    rs = [res("A", 97), res("B", 97), res("C", 95), res("D", 94)] + fillers(6)
    g = grades(rank_group(rs, cat, CITY))
    assert [g[u] for u in "ABCD"] == ["优秀", "优秀", "优秀", "良好"]


def test_veto_cap_in_band_is_good_and_uses_no_place(cat):
    # n = 10 -> K = 3; V (cap veto) ranks first but is 良好; A, B, C take the three places
    rs = [res("V", 99, veto="cap"), res("A", 97), res("B", 95), res("C", 93), res("D", 91)] + fillers(5)
    out = {r.unit_id: r for r in rank_group(rs, cat, CITY)}
    assert out["V"].rank == 1
    assert out["V"].grade == "良好"
    assert "不得评为优秀" in out["V"].grade_note
    assert [out[u].grade for u in "ABCD"] == ["优秀", "优秀", "优秀", "良好"]


def test_veto_cap_below_band_keeps_its_grade(cat):
    rs = [res("V", 85, veto="cap"), res("W", 70, veto="cap")] + fillers(8)
    g = grades(rank_group(rs, cat, CITY))
    assert g["V"] == "良好" and g["W"] == "合格"


def test_veto_fail_is_unqualified_rank_shown(cat):
    rs = [res("V", 99, veto="fail"), res("A", 97), res("B", 95), res("C", 93), res("D", 91)] + fillers(5)
    out = {r.unit_id: r for r in rank_group(rs, cat, CITY)}
    assert out["V"].grade == "不合格"
    assert out["V"].rank == 1  # the score and rank are still shown
    assert out["V"].final == 99
    assert "否决" in out["V"].grade_note
    # the vetoed unit takes no quota place: A, B, C get the three
    assert [out[u].grade for u in "ABCD"] == ["优秀", "优秀", "优秀", "良好"]


def test_veto_fail_low_score(cat):
    rs = [res("V", 50, veto="fail")] + fillers(3)
    assert grades(rank_group(rs, cat, CITY))["V"] == "不合格"


# ------------------------------------------------------------------ missing / rejected


def test_missing_and_rejected_not_ranked_listed_after(cat):
    rs = [
        res("M2", None, status="missing"),
        res("B", 85),
        res("R1", None, status="rejected"),
        res("A", 95),
        res("M1", None, status="missing"),
    ]
    out = rank_group(rs, cat, CITY)
    assert order(out) == ["A", "B", "M1", "M2", "R1"]
    r = {x.unit_id: x for x in out}
    for u in ("M1", "M2", "R1"):
        assert r[u].rank is None
        assert r[u].grade == "不合格"
    assert r["M1"].grade_note == "未报送"
    assert r["R1"].grade_note == "未通过校验"
    assert [r["A"].rank, r["B"].rank] == [1, 2]


def test_unranked_units_do_not_count_for_quota(cat):
    # 3 ranked + 7 missing: K = floor(0.3·3) = 0, not floor(0.3·10) = 3
    rs = [res("A", 98), res("B", 70), res("C", 65)] + [res(f"M{i}", None, status="missing") for i in range(7)]
    assert grades(rank_group(rs, cat, CITY))["A"] == "良好"


def test_scored_without_final_is_not_ranked(cat):
    r = res("A", 90)
    r.final = None  # no applicable scored item: cannot be ranked
    out = rank_group([r, res("B", 80)], cat, CITY)
    assert order(out) == ["B", "A"]
    assert out[1].rank is None and out[1].grade == "不合格"


def test_rerank_resets_previous_grade(cat):
    rs = [res("A", 95)] + fillers(3)  # n = 4, K = 1
    rank_group(rs, cat, CITY)
    assert rs[0].grade == "优秀"
    rs[0].veto = "cap"
    rank_group(rs, cat, CITY)
    assert rs[0].grade == "良好"


# ------------------------------------------------------------------ rank_all


def test_rank_all_groups_independent_in_catalog_order(cat):
    rs = [
        res("ZH1", 92, group="市直综合部门"),
        res("QX2", 80, group=COUNTY),
        res("ZF1", 70, group="市直执法部门"),
        res("QX1", 85, group=COUNTY),
        res("ZH2", 60, group="市直综合部门"),
        res("QX3", None, group=COUNTY, status="missing"),
    ]
    out = rank_all(rs, cat)
    # catalog group order: 区县政府, 市直执法部门, 市直综合部门
    assert order(out) == ["QX1", "QX2", "QX3", "ZF1", "ZH1", "ZH2"]
    assert ranks(out) == {"QX1": 1, "QX2": 2, "QX3": None, "ZF1": 1, "ZH1": 1, "ZH2": 2}
    g = grades(out)
    # counties: 2 ranked -> K = 0; QX1 85 is 良好 under 88/78/60 anyway; QX2 80 良好
    assert g["QX1"] == "良好" and g["QX2"] == "良好" and g["QX3"] == "不合格"
    # 市直综合部门: 2 ranked -> K = 0, ZH1 92 in band but no place
    assert g["ZH1"] == "良好" and g["ZH2"] == "合格"


def test_rank_all_quota_per_group(cat):
    county = [res(f"Q{i}", 95 - i, group=COUNTY) for i in range(4)]  # n = 4 -> K = 1, all ≥ 88
    city = [res(f"C{i}", 95 - i) for i in range(10)]  # n = 10 -> K = 3, 95..91 in band
    g = grades(rank_all(county + city, cat))
    assert [g[f"Q{i}"] for i in range(4)] == ["优秀", "良好", "良好", "良好"]
    assert [g[f"C{i}"] for i in range(5)] == ["优秀", "优秀", "优秀", "良好", "良好"]
