"""Insight (issue 7, METHOD §7): rank robustness, watch list, year on year, diagnostics, strengths."""

from __future__ import annotations

import copy
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from helpers import GOLDEN, run_stages, values_by_unit, write_submissions
from kaohe import insight as I
from kaohe.catalog import parse_catalog
from kaohe.outputs import result_row
from kaohe.ranking import rank_all
from kaohe.registry import Unit, load_registry
from kaohe.review import load_components, load_review
from kaohe.scoring import ItemResult

# ----------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def golden(mini_catalog, tmp_path_factory):
    """The 17-unit golden year, ranked (tests/golden/WORKED.md)."""
    registry = load_registry(GOLDEN / "registry.csv", mini_catalog)
    folder = tmp_path_factory.mktemp("golden-insight") / "submissions"
    files = write_submissions(mini_catalog, registry, values_by_unit(GOLDEN / "values.csv"), folder)
    results, _ = run_stages(
        mini_catalog,
        registry,
        files,
        load_review(GOLDEN / "review.csv"),
        load_components(GOLDEN / "components.csv", mini_catalog, registry),
    )
    return results


@pytest.fixture(scope="module")
def synthetic():
    """400 units, 3 groups, discrete scores (ties), vetoes, bonus, group bands."""
    return I._synthetic_year(400, seed=7)


BASIS = [{"file": "000", "clause": "(一)", "quote": "构造的测试年度"}]


def make_catalog(dims: dict[str, list[tuple[str, int]]], groups=("甲组",), **settings):
    """A catalog of yes_no items (the rule does not matter: item results are built directly)."""
    items = [
        {
            "id": item_id,
            "dimension": dim,
            "title": f"指标{item_id}",
            "criterion": "完成得满分",
            "points": points,
            "rule": {"type": "yes_no", "field": "v"},
            "fields": [{"key": "v", "label": "是否完成", "type": "yes_no"}],
            "na_allowed": True,
            "basis": BASIS,
        }
        for dim, its in dims.items()
        for item_id, points in its
    ]
    raw = {
        "year": 2025,
        "title": "构造年度",
        "city": "测试市",
        "issuer": "测试办",
        "groups": list(groups),
        "dimensions": [{"id": d, "name": f"维度{d}"} for d in dims],
        "items": items,
    }
    raw.update(settings)
    return parse_catalog(raw)


def make_unit(catalog, unit_id, scores: dict, group=None, components=None, veto=None, bonus=0):
    """A scored UnitResult from item scores ({item_id: score | 'na'}; absent items do not apply)."""
    group = group or catalog.groups[0]
    irs = []
    for it in catalog.items:
        s = scores.get(it.id)
        if s is None:
            irs.append(ItemResult(it, "no"))
        elif s == "na":
            irs.append(ItemResult(it, "na"))
        else:
            irs.append(ItemResult(it, "yes", score=Fraction(s)))
    unit = Unit(unit_id, f"单位{unit_id}", group, frozenset())
    return I._result_from_items(catalog, unit, irs, components or {}, Fraction(bonus), veto)


def exact_rerank(results, catalog, m):
    """kaohe.ranking on exactly re-weighted copies: the reference the vectorised draw must match."""
    dims = [d.id for d in catalog.dimensions]
    mult = {d: Fraction(float(x)) for d, x in zip(dims, m)}
    w = next(Fraction(c.weight) for c in catalog.components if c.id == "assessed")
    copies = []
    for r in results:
        c = copy.copy(r)
        if r.status == "scored" and r.final is not None:
            num = sum((mult[ir.item.dimension] * ir.score for ir in r.items if ir.item.kind == "scored" and ir.applicable == "yes"), Fraction(0))
            den = sum((mult[ir.item.dimension] * ir.points for ir in r.items if ir.item.kind == "scored" and ir.applicable == "yes"), Fraction(0))
            c.final = r.final + w * (100 * num / den - r.assessed)
        copies.append(c)
    return {r.unit_id: (r.rank, r.grade) for r in rank_all(copies, catalog)}


def simulate(results, catalog, m):
    """The vectorised ranks and grades for multiplier rows m, {unit_id: [(rank, grade) per draw]}."""
    out = {}
    for g in I._prepare(results, catalog):
        ranks, grades = I._simulate(g, np.atleast_2d(m))
        for u, uid in enumerate(g.unit_ids):
            out[uid] = [(int(ranks[k, u]), I.GRADES[grades[k, u]]) for k in range(ranks.shape[0])]
    return out


# ----------------------------------------------------------------- robustness


def test_no_noise_every_interval_is_the_published_rank(golden, mini_catalog):
    rob = I.rank_robustness(golden, mini_catalog, draws=50, low=1, high=1)
    ranked = {r.unit_id: r for r in golden if r.rank is not None}
    assert set(rob) == set(ranked)  # 未报送 / 未通过校验 units get no interval
    for uid, r in ranked.items():
        assert (rob[uid].rank_p05, rob[uid].rank_p50, rob[uid].rank_p95) == (r.rank, r.rank, r.rank), uid
        assert rob[uid].grade_stability == 1.0


def test_equal_multipliers_other_than_one_change_nothing(synthetic):
    catalog, results = synthetic
    rob = I.rank_robustness(results, catalog, draws=20, low=1.15, high=1.15)
    for r in results:
        if r.rank is not None:
            assert rob[r.unit_id].rank_p05 == rob[r.unit_id].rank_p95 == r.rank
            assert rob[r.unit_id].grade_stability == 1.0


@pytest.mark.parametrize("which", ["golden", "synthetic"])
def test_vectorised_draws_match_kaohe_ranking_exactly(which, golden, mini_catalog, synthetic):
    """Every draw's ranks and grades equal kaohe.ranking on exactly re-weighted finals."""
    catalog, results = (mini_catalog, golden) if which == "golden" else synthetic
    m = I._draw(catalog, 25, seed=11, low=0.5, high=1.5)
    m[0] = 1.0  # the unperturbed draw: exact published finals
    m[1] = [1.0] * (len(catalog.dimensions) - 1) + [1.3]  # one dimension moved
    sim = simulate(results, catalog, m)
    for k in range(m.shape[0]):
        ref = exact_rerank(results, catalog, m[k])
        got = {uid: draws[k] for uid, draws in sim.items()}
        assert got == {u: v for u, v in ref.items() if v[0] is not None}, f"draw {k}"
    assert {uid: d[0] for uid, d in sim.items()} == {r.unit_id: (r.rank, r.grade) for r in results if r.rank is not None}


def test_synthetic_year_exercises_ties_quota_and_vetoes(synthetic):
    catalog, results = synthetic
    ranked = [r for r in results if r.rank is not None]
    assert any(r.grade_note.startswith("超出优秀名额") for r in ranked)
    assert {r.veto for r in ranked} >= {"cap", "fail"}
    by_group = {}
    for r in ranked:
        by_group.setdefault((r.unit.group, r.rank), []).append(r)
    assert any(len(v) > 1 for v in by_group.values())  # shared ranks


def test_unique_large_lead_is_always_first():
    cat = make_catalog({"a": [("A1", 50), ("A2", 10)], "b": [("B1", 30), ("B2", 10)]})
    leader = make_unit(cat, "U00", {"A1": 50, "A2": 10, "B1": 30, "B2": 10})
    rest = [
        make_unit(cat, f"U{i:02d}", {"A1": 20 + (i % 3) * 5, "A2": i % 10, "B1": 30 - i, "B2": (2 * i) % 10})
        for i in range(1, 12)
    ]
    results = rank_all([leader, *rest], cat)
    rob = I.rank_robustness(results, cat, draws=500)
    assert (rob["U00"].rank_p05, rob["U00"].rank_p50, rob["U00"].rank_p95) == (1, 1, 1)
    assert rob["U00"].grade_stability == 1.0
    # the others do move, and their intervals are ordered and contain ranks 2..12 only
    assert any(rob[r.unit_id].rank_p05 < rob[r.unit_id].rank_p95 for r in rest)
    for r in rest:
        x = rob[r.unit_id]
        assert 2 <= x.rank_p05 <= x.rank_p50 <= x.rank_p95 <= 12


def test_seed_fixes_the_output(synthetic):
    catalog, results = synthetic
    a = I.rank_robustness(results, catalog, draws=200, seed=1)
    b = I.rank_robustness(results, catalog, draws=200, seed=1)
    c = I.rank_robustness(results, catalog, draws=200, seed=2)
    assert a == b
    assert a != c  # a close year: another seed gives other intervals somewhere


def test_percentiles_are_inverted_cdf_ranks():
    assert [I._quantile_index(Fraction(p, 100), 1000) for p in (5, 50, 95)] == [49, 499, 949]
    assert [I._quantile_index(Fraction(p, 100), 1) for p in (5, 50, 95)] == [0, 0, 0]
    ranks = np.array([3, 1, 2, 5, 4, 2, 2, 6, 1, 3])
    for p in (5, 50, 95):
        assert np.sort(ranks)[I._quantile_index(Fraction(p, 100), len(ranks))] == np.percentile(ranks, p, method="inverted_cdf")


def test_bad_arguments_and_unranked_results(golden, mini_catalog):
    with pytest.raises(ValueError):
        I.rank_robustness(golden, mini_catalog, low=1.2, high=0.8)
    with pytest.raises(ValueError):
        I.rank_robustness(golden, mini_catalog, draws=0)
    unranked = [copy.copy(r) for r in golden]
    for r in unranked:
        r.rank = None
    with pytest.raises(ValueError, match="排名"):
        I.rank_robustness(unranked, mini_catalog)


def test_golden_intervals_show_the_close_units(golden, mini_catalog):
    rob = I.rank_robustness(golden, mini_catalog)
    # ZF03 and ZF04 both publish 85.00, separated only by the tie-break: they swap under reweighting
    assert rob["ZF03"].rank_p05 == 3 and rob["ZF04"].rank_p95 == 4
    assert rob["ZF03"].rank_p95 == 4 or rob["ZF04"].rank_p05 == 3
    # the vetoed county is first whatever the weights and always 不合格
    assert (rob["QX01"].rank_p05, rob["QX01"].rank_p95, rob["QX01"].grade_stability) == (1, 1, 1.0)
    assert all(0 <= x.grade_stability <= 1 for x in rob.values())


# ----------------------------------------------------------------- watch list


def test_watch_list_on_the_golden_year(golden, mini_catalog):
    wl = I.watch_list(golden, mini_catalog)
    kinds = {(e.unit_id, e.kind) for e in wl}
    assert ("QX01", "veto") in kinds and ("ZF01", "veto") in kinds
    qx01 = next(e for e in wl if e.unit_id == "QX01" and e.kind == "veto")
    assert "一票否决" in qx01.detail_cn and "重大违法行政案件" in qx01.detail_cn
    # 市直综合部门: ZH04, ZH03, ZH02 all publish 84.00; the chain (行政执法, then 依法决策) orders them 2, 3, 4
    for uid in ("ZH04", "ZH03", "ZH02"):
        assert (uid, "tie") in kinds
    zh03 = next(e for e in wl if e.unit_id == "ZH03" and e.kind == "tie")
    assert "排第 3 名" in zh03.detail_cn and "依法决策得分率 87.00 对 86.67" in zh03.detail_cn
    # QX02/QX03 share rank 2 exactly: not a chain-decided tie
    assert ("QX02", "tie") not in kinds
    # 区县政府 (own bands 88/78/60): one 优秀 place, shared by QX02 and QX03 at 89.51; QX04 (88.69) loses it
    qx04 = next(e for e in wl if e.unit_id == "QX04" and e.kind == "quota")
    assert "89.51" in qx04.detail_cn and "0.82" in qx04.detail_cn and "超出优秀名额" in qx04.detail_cn
    assert ("QX04", "band") in kinds  # 0.69 above the county 优秀 line 88
    assert "区县政府优秀分数线 88" in next(e for e in wl if e.unit_id == "QX04" and e.kind == "band").detail_cn
    # ZF02 90.00 sits on the 优秀 line; ZF05 79.99 is 0.01 below 良好
    zf05 = next(e for e in wl if e.unit_id == "ZF05" and e.kind == "band")
    assert "比良好分数线 80 低 0.01 分" in zf05.detail_cn
    assert any(e.unit_id == "ZF02" and e.kind == "band" and "恰好达到优秀分数线" in e.detail_cn for e in wl)
    # the vetoed QX01 (95.60) has no band entry; review: QX05 A02 20 → 8 (with the 核查不实 penalty)
    assert ("QX01", "band") not in kinds
    qx05 = next(e for e in wl if e.unit_id == "QX05" and e.kind == "review")
    assert "自评 20.00 分,审核后 8.00 分" in qx05.detail_cn and "核查不实" in qx05.detail_cn and "王敏" in qx05.detail_cn
    # ZF01 B02 好 → 较好 is 3 of 15 points: exactly 20%, listed
    assert any(e.unit_id == "ZF01" and e.kind == "review" and "B02" in e.detail_cn for e in wl)
    # far from everything: QX06 (26.67)
    assert not any(e.unit_id == "QX06" for e in wl)
    # bulletin order: groups in catalog order, then rank
    order = [e.unit_id for e in wl]
    assert order.index("QX01") < order.index("QX04") < order.index("ZF01") < order.index("ZH04")


def test_watch_list_constructed_band_and_chain():
    cat = make_catalog({"a": [("A1", 50)], "b": [("B1", 50)]}, tie_break=["b", "a"])
    units = [
        make_unit(cat, "U1", {"A1": 50, "B1": 39.5}),  # 89.50: 0.5 below 优秀
        make_unit(cat, "U2", {"A1": 35, "B1": 40}),  # 75.00, d_b 80
        make_unit(cat, "U3", {"A1": 40, "B1": 35}),  # 75.00, d_b 70 → after U2 by the chain
        make_unit(cat, "U4", {"A1": 10, "B1": 10}),  # 20.00: nothing to watch
    ]
    results = rank_all(units, cat)
    ranks = {r.unit_id: r.rank for r in results}
    assert ranks == {"U1": 1, "U2": 2, "U3": 3, "U4": 4}
    wl = I.watch_list(results, cat)
    assert [(e.unit_id, e.kind) for e in wl] == [("U1", "band"), ("U2", "tie"), ("U3", "tie")]
    assert "比优秀分数线 90 低 0.50 分" in wl[0].detail_cn and "现评为良好" in wl[0].detail_cn
    assert "排在 单位U3(U3) 之前(维度b得分率 80.00 对 70.00)" in wl[1].detail_cn
    assert "排在 单位U2(U2) 之后(维度b得分率 80.00 对 70.00)" in wl[2].detail_cn
    # a wider margin catches U2/U3 at the 良好 line? no: 75 is 5 below 80
    assert {e.kind for e in I.watch_list(results, cat, margin=5) if e.unit_id == "U2"} == {"tie", "band"}
    assert not any(e.kind == "band" for e in I.watch_list(results, cat, margin=Decimal("0.4")))


# ----------------------------------------------------------------- year on year


def test_year_on_year(golden, mini_catalog):
    raw = mini_catalog.model_dump()
    raw["year"] = 2024
    raw["items"] = [i for i in raw["items"] if i["id"] != "A03"]  # A03 is new this year
    old_b = next(i for i in raw["items"] if i["id"] == "B01")
    old_b["points"] = Decimal(10)  # B01 re-weighted 10 → 15
    old_b["rule"]["cap"] = Decimal(10)
    raw["items"].append({**copy.deepcopy(next(i for i in raw["items"] if i["id"] == "A01")), "id": "A09", "title": "旧指标"})
    raw["bands"] = {"优秀": Decimal(92), "良好": Decimal(80), "合格": Decimal(60)}
    previous = parse_catalog(raw)

    prev_rows = {r.unit_id: result_row(r, mini_catalog) for r in golden if r.unit_id != "ZF05"}  # ZF05 is new
    prev_rows["QX02"] = {**prev_rows["QX02"], "final": "85.00", "rank": "4"}
    prev_rows["ZH02"] = {**prev_rows["ZH02"], "group": "市直执法部门", "rank": "1"}
    prev_rows["OLD1"] = {"unit_id": "OLD1", "group": "区县政府", "final": "70.00", "rank": "6", "grade": "合格"}

    yoy = I.year_on_year(golden, mini_catalog, prev_rows, previous)
    changes, new, dropped, cat_changes = yoy
    assert new == ["ZF05"] and dropped == ["OLD1"]
    by_id = {c.unit_id: c for c in changes}
    q = by_id["QX02"]
    assert (q.final, q.previous_final, q.score_change) == (Decimal("89.51"), Decimal("85.00"), Decimal("4.51"))
    assert (q.rank, q.previous_rank, q.rank_change) == (2, 4, 2)  # moved up two places
    assert by_id["QX04"].score_change == 0 and by_id["QX04"].rank_change == 0
    assert by_id["ZH02"].rank_change is None and "考核组变更" in by_id["ZH02"].note_cn
    assert by_id["ZH06"].score_change is None and by_id["ZH06"].rank_change is None  # 未报送 both years
    kinds = {(c.kind, c.item_id) for c in cat_changes}
    assert {("added", "A03"), ("removed", "A09"), ("reweighted", "B01"), ("changed", "B01"), ("setting", "bands")} == kinds
    b01 = next(c for c in cat_changes if c.kind == "reweighted")
    assert (b01.old_points, b01.new_points) == (10, 15) and "由 10 分调整为 15 分" in b01.detail_cn
    # no previous catalog: changes unknown, not "none"
    assert I.year_on_year(golden, mini_catalog, prev_rows, None).catalog_changes is None
    assert I.catalog_changes(mini_catalog, mini_catalog) == []


# ----------------------------------------------------------------- diagnostics


def test_diagnostics_on_a_constructed_year():
    """EASY: everyone full; DECIDE: spread 0..40 and drives the order; SMALL: a little noise; OPT: some 不适用."""
    cat = make_catalog(
        {"a": [("EASY", 20), ("DECIDE", 40)], "b": [("SMALL", 20), ("OPT", 20)]},
        groups=("甲组", "乙组"),
    )
    units = []
    for i in range(12):
        scores = {"EASY": 20, "DECIDE": (i * 7) % 41, "SMALL": 18 + (i % 3), "OPT": "na" if i % 4 == 0 else (0 if i % 4 == 1 else 20)}
        units.append(make_unit(cat, f"U{i:02d}", scores, group=("甲组", "乙组")[i % 2]))
    results = rank_all(units, cat)
    diag = {d.item_id: d for d in I.indicator_diagnostics(results, cat)}
    easy, decide, small, opt = diag["EASY"], diag["DECIDE"], diag["SMALL"], diag["OPT"]
    assert easy.separates is False and easy.share_full == 1.0 and easy.share_zero == 0.0 and easy.share_na == 0.0
    assert decide.separates and small.separates and opt.separates
    assert max(diag.values(), key=lambda d: d.effective_weight).item_id == "DECIDE"
    assert decide.effective_weight > 0.5 and abs(small.effective_weight) < decide.effective_weight
    assert opt.share_na == 3 / 12 and opt.share_zero == 3 / 12 and opt.share_full == 6 / 12 and opt.n_units == 12
    # only assessed counts here: the shares sum to 1 exactly (up to floats)
    assert sum(d.effective_weight for d in diag.values()) == pytest.approx(1.0)
    # nominal: points / mean base (base 80 where OPT is 不适用, else 100)
    mean_base = (3 * 80 + 9 * 100) / 12
    assert decide.nominal_weight == pytest.approx(40 / mean_base)
    assert opt.nominal_weight == pytest.approx(20 / 100)


def test_diagnostics_on_the_golden_year(golden, mini_catalog):
    diag = I.indicator_diagnostics(golden, mini_catalog)
    assert [d.item_id for d in diag] == ["A01", "A02", "A03", "A04", "B01", "B02", "B03"]  # scored items only
    by = {d.item_id: d for d in diag}
    assert by["B02"].n_units == 11  # 区县 6 + 执法 5 ranked; ZH04 has no B02
    # items + satisfaction + bonus explain the within-group variance exactly
    assert 0 < sum(d.effective_weight for d in diag) < 1
    assert all(0 < d.nominal_weight < 1 for d in diag)


# ----------------------------------------------------------------- strengths and weaknesses


def test_strengths_and_weaknesses():
    cat = make_catalog({"a": [("A1", 10)], "b": [("B1", 10)], "c": [("C1", 10)], "d": [("D1", 10)]})
    u = make_unit(cat, "U1", {"A1": 10, "B1": 2, "C1": 6, "D1": 5})
    v = make_unit(cat, "U2", {"A1": 4, "B1": 8, "C1": 6})
    results = rank_all([u, v], cat)
    sw = I.strengths_weaknesses(u, results, cat, n=2)
    assert [(g.dimension, g.gap) for g in sw.strengths] == [("a", 30)]  # 100 vs mean 70
    assert [(g.dimension, g.gap) for g in sw.weaknesses] == [("b", -30)]  # 20 vs mean 50
    # c is at the mean; d only U1 has a rate, so it is the mean
    assert I.strengths_weaknesses(v, results, cat).strengths[0].dimension == "b"


def test_golden_strengths_weaknesses(golden, mini_catalog):
    by = {r.unit_id: r for r in golden}
    # 区县政府 means: d1 (100 + 77.78·2 + 100 + 66 + 0)/6 ≈ 70.26, d2 (94·3 + 80.22 + 48 + 32.67)/6 ≈ 73.81
    sw = I.strengths_weaknesses(by["QX04"], golden, mini_catalog)
    assert [g.dimension for g in sw.strengths] == ["d1", "d2"] and sw.weaknesses == []
    sw = I.strengths_weaknesses(by["QX05"], golden, mini_catalog, n=1)
    assert sw.strengths == [] and [g.dimension for g in sw.weaknesses] == ["d2"]
    assert sw.weaknesses[0].group_mean == sum(by[u].rates["d2"] for u in ("QX01", "QX02", "QX03", "QX04", "QX05", "QX06")) / 6
