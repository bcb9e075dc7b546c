"""kaohe.rules (METHOD §3) by hand-worked examples, plus property tests.

Every expected score is an exact Fraction; the arithmetic is written next to it.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaohe.catalog import Item
from kaohe.numbers import exact_text, fmt2, round_half_up
from kaohe.rules import RULES, MissingValue, apply_rule

D = Decimal
Fr = Fraction

# ------------------------------------------------------------------ builders

BASIS = [{"file": "000", "clause": "(二十七)", "quote": "每年应当举办2次法制讲座"}]


def integer(key, **kw):
    return {"key": key, "label": key, "type": "integer", **kw}


def decimal(key, **kw):
    return {"key": key, "label": key, "type": "decimal", **kw}


def percent(key, **kw):
    return {"key": key, "label": key, "type": "percent", **kw}


def yes_no(key):
    return {"key": key, "label": key, "type": "yes_no"}


def make(rule: dict, fields: list[dict], points=None, id_="T01") -> Item:
    raw = {
        "id": id_,
        "dimension": "d1",
        "title": "测试指标",
        "criterion": "测试",
        "rule": rule,
        "fields": fields,
        "basis": BASIS,
    }
    if points is not None:
        raw["points"] = str(points)
    return Item.model_validate(raw)


def yes_no_item(P=10):
    return make({"type": "yes_no", "field": "v"}, [yes_no("v")], P)


def ratio_item(P=20, target="1", floor="0.6", zero="na"):
    return make(
        {"type": "ratio", "numerator": "n", "denominator": "d", "target": target, "floor": floor, "zero_denominator": zero},
        [integer("n"), integer("d")],
        P,
    )


def rate_item(P=20, target="0.95", floor="0.5"):
    return make({"type": "ratio", "rate": "r", "target": target, "floor": floor}, [percent("r")], P)


def count_item(P=10, N="2", k="5", cap=None, field=None):
    rule = {"type": "count_target", "field": "v", "target": N, "deduction": k}
    if cap is not None:
        rule["cap"] = cap
    return make(rule, [field or integer("v")], P)


def deduct_item(P=15, k="3", cap=None):
    rule = {"type": "deduct_per_event", "field": "v", "deduction": k}
    if cap is not None:
        rule["cap"] = cap
    return make(rule, [integer("v")], P)


def checklist_item(P=10, k="4", n=3):
    keys = [f"p{i}" for i in range(1, n + 1)]
    return make({"type": "checklist", "fields": keys, "deduction": k}, [yes_no(k_) for k_ in keys], P)


LEVELS = [("好", "1"), ("较好", "0.8"), ("一般", "0.6"), ("差", "0")]


def graded_item(P=15, levels=LEVELS):
    return make(
        {"type": "graded", "field": "level", "levels": [{"name": n, "fraction": f} for n, f in levels]},
        [{"key": "level", "label": "等次", "type": "grade", "choices": [n for n, _ in levels]}],
        P,
    )


def bonus_item(b="1", c="2"):
    return make({"type": "bonus", "field": "v", "per_event": b, "cap": c}, [integer("v", required=False)])


def veto_item(action="fail"):
    return make({"type": "veto", "field": "v", "action": action}, [yes_no("v")])


# ------------------------------------------------------------------ yes_no


def test_yes_no_yes_is_full_points():
    out = apply_rule(yes_no_item(10), {"v": "是"})
    assert out.applicable == "yes"
    assert out.score == 10  # 是 -> P = 10
    assert out.bonus == 0 and out.veto is None
    assert "是" in out.explain


def test_yes_no_no_is_zero():
    out = apply_rule(yes_no_item(10), {"v": "否"})
    assert out.score == 0  # 否 -> 0


# ------------------------------------------------------------------ ratio


def test_ratio_between_floor_and_target_non_terminating():
    out = apply_rule(ratio_item(20, "1", "0.6"), {"n": D(7), "d": D(9)})
    # r = 7/9; s = 20·(7/9 − 3/5)/(1 − 3/5) = 20·(35/45 − 27/45)/(2/5)
    #   = 20·(8/45)·(5/2) = 800/90 = 80/9 (8.888…), exactly
    assert out.score == Fr(80, 9)
    assert isinstance(out.score, Fraction)
    assert fmt2(out.score) == "8.89"
    assert out.applicable == "yes"


def test_ratio_at_target():
    out = apply_rule(ratio_item(20, "1", "0.6"), {"n": D(9), "d": D(9)})
    assert out.score == 20  # r = 9/9 = 1 = T -> P


def test_ratio_above_target():
    out = apply_rule(ratio_item(20, "0.8", "0.6"), {"n": D(9), "d": D(10)})
    assert out.score == 20  # r = 0.9 > T = 0.8 -> P


def test_ratio_just_below_target():
    out = apply_rule(ratio_item(20, "0.8", "0.6"), {"n": D(79), "d": D(100)})
    # s = 20·(0.79 − 0.6)/(0.8 − 0.6) = 20·0.19/0.2 = 19
    assert out.score == 19


def test_ratio_at_floor():
    out = apply_rule(ratio_item(20, "1", "0.6"), {"n": D(6), "d": D(10)})
    assert out.score == 0  # r = 0.6 = F -> 0


def test_ratio_below_floor():
    out = apply_rule(ratio_item(20, "1", "0.6"), {"n": D(3), "d": D(10)})
    assert out.score == 0  # r = 0.3 < F -> 0


def test_ratio_zero_floor_is_linear():
    out = apply_rule(ratio_item(10, "1", "0"), {"n": D(1), "d": D(3)})
    assert out.score == Fr(10, 3)  # s = 10·(1/3 − 0)/(1 − 0) = 10/3


def test_ratio_zero_numerator():
    out = apply_rule(ratio_item(10, "1", "0"), {"n": D(0), "d": D(5)})
    assert out.score == 0  # r = 0 ≤ F = 0 -> 0


def test_ratio_zero_denominator_full():
    out = apply_rule(ratio_item(20, zero="full"), {"n": D(0), "d": D(0)})
    assert out.applicable == "yes"
    assert out.score == 20  # d = 0, zero_denominator full -> P


def test_ratio_zero_denominator_na():
    out = apply_rule(ratio_item(20, zero="na"), {"n": D(0), "d": D(0)})
    assert out.applicable == "na"  # leaves A(u): not in base(u)
    assert out.score == 0
    assert "不适用" in out.explain


def test_ratio_zero_denominator_default_is_na():
    item = make(
        {"type": "ratio", "numerator": "n", "denominator": "d", "target": "1"},
        [integer("n"), integer("d")],
        5,
    )
    assert apply_rule(item, {"n": D(0), "d": D(0)}).applicable == "na"


def test_ratio_rate_form_at_target():
    out = apply_rule(rate_item(20, "0.95", "0.5"), {"r": D(95)})
    assert out.score == 20  # r = 95/100 = 0.95 = T -> P


def test_ratio_rate_form_between():
    out = apply_rule(rate_item(20, "0.95", "0.5"), {"r": D("72.5")})
    # r = 0.725; s = 20·(0.725 − 0.5)/(0.95 − 0.5) = 20·0.225/0.45 = 10
    assert out.score == 10


def test_ratio_rate_form_non_terminating():
    out = apply_rule(rate_item(20, "0.95", "0.5"), {"r": D(80)})
    # s = 20·(0.8 − 0.5)/(0.45) = 20·0.3/0.45 = 6/0.45 = 40/3
    assert out.score == Fr(40, 3)


def test_ratio_rate_form_below_floor():
    assert apply_rule(rate_item(20, "0.95", "0.5"), {"r": D(50)}).score == 0  # 0.5 = F -> 0
    assert apply_rule(rate_item(20, "0.95", "0.5"), {"r": D(0)}).score == 0


def test_ratio_rate_one_tenth_is_exact():
    out = apply_rule(rate_item(1, "0.3", "0.1"), {"r": D(20)})
    # s = 1·(0.2 − 0.1)/(0.3 − 0.1) = 0.1/0.2 = 1/2, exact (in floats 0.3 − 0.1 ≠ 0.2)
    assert out.score == Fr(1, 2)


# ------------------------------------------------------------------ count_target


def test_count_target_met():
    out = apply_rule(count_item(10, "2", "5"), {"v": D(2)})
    assert out.score == 10  # shortfall max(0, 2 − 2) = 0 -> P


def test_count_target_exceeded():
    out = apply_rule(count_item(10, "2", "5"), {"v": D(7)})
    assert out.score == 10  # shortfall max(0, 2 − 7) = 0 -> P


def test_count_target_shortfall():
    out = apply_rule(count_item(10, "2", "5"), {"v": D(1)})
    assert out.score == 5  # 10 − 5·(2 − 1) = 5
    assert "少 1" in out.explain


def test_count_target_shortfall_to_zero():
    out = apply_rule(count_item(10, "2", "5"), {"v": D(0)})
    assert out.score == 0  # 10 − 5·2 = 0


def test_count_target_cap_binding():
    out = apply_rule(count_item(10, "24", "1", cap="6"), {"v": D(12)})
    # deduction = min(C, k·shortfall) = min(6, 1·(24 − 12)) = 6; s = 10 − 6 = 4
    assert out.score == 4


def test_count_target_cap_not_binding():
    out = apply_rule(count_item(10, "24", "1", cap="6"), {"v": D(20)})
    # min(6, 1·4) = 4; s = 10 − 4 = 6
    assert out.score == 6


def test_count_target_never_below_zero():
    out = apply_rule(count_item(10, "5", "3"), {"v": D(0)})
    assert out.score == 0  # 10 − 3·5 = −5 -> 0 (扣完为止)


def test_count_target_decimal_field():
    item = count_item(5, "40", "0.5", field=decimal("v", unit="学时"))
    out = apply_rule(item, {"v": D("37.5")})
    # shortfall = 40 − 37.5 = 2.5; deduction = 0.5·2.5 = 1.25; s = 5 − 1.25 = 3.75 = 15/4
    assert out.score == Fr(15, 4)
    assert fmt2(out.score) == "3.75"


# ------------------------------------------------------------------ deduct_per_event


def test_deduct_per_event_none():
    assert apply_rule(deduct_item(15, "3", cap="12"), {"v": D(0)}).score == 15  # 15 − 3·0


def test_deduct_per_event_with_cap_not_binding():
    out = apply_rule(deduct_item(15, "3", cap="12"), {"v": D(2)})
    assert out.score == 9  # 15 − min(12, 3·2) = 15 − 6 = 9


def test_deduct_per_event_with_cap_binding():
    out = apply_rule(deduct_item(15, "3", cap="12"), {"v": D(5)})
    assert out.score == 3  # 15 − min(12, 3·5 = 15) = 15 − 12 = 3


def test_deduct_per_event_without_cap():
    out = apply_rule(deduct_item(15, "3"), {"v": D(4)})
    assert out.score == 3  # 15 − 3·4 = 3


def test_deduct_per_event_floor_at_zero():
    out = apply_rule(deduct_item(15, "3"), {"v": D(6)})
    assert out.score == 0  # 15 − 18 = −3 -> 0


def test_deduct_per_event_fractional_deduction():
    out = apply_rule(deduct_item(2, "0.3"), {"v": D(3)})
    assert out.score == Fr(11, 10)  # 2 − 0.3·3 = 2 − 0.9 = 1.1


# ------------------------------------------------------------------ checklist


def test_checklist_all_yes():
    out = apply_rule(checklist_item(10, "4"), {"p1": "是", "p2": "是", "p3": "是"})
    assert out.score == 10  # 10 − 4·0


def test_checklist_one_no():
    out = apply_rule(checklist_item(10, "4"), {"p1": "是", "p2": "否", "p3": "是"})
    assert out.score == 6  # 10 − 4·1
    assert "1 项" in out.explain


def test_checklist_two_no():
    out = apply_rule(checklist_item(10, "4"), {"p1": "否", "p2": "否", "p3": "是"})
    assert out.score == 2  # 10 − 4·2


def test_checklist_all_no_floor_at_zero():
    out = apply_rule(checklist_item(10, "4"), {"p1": "否", "p2": "否", "p3": "否"})
    assert out.score == 0  # 10 − 4·3 = −2 -> 0


def test_checklist_five_steps():
    item = checklist_item(5, "1", n=5)
    vals = {"p1": "是", "p2": "否", "p3": "是", "p4": "否", "p5": "是"}
    assert apply_rule(item, vals).score == 3  # 5 − 1·2


# ------------------------------------------------------------------ graded


@pytest.mark.parametrize(
    "level, expected",
    [
        ("好", Fr(15)),  # 15·1
        ("较好", Fr(12)),  # 15·0.8 = 12
        ("一般", Fr(9)),  # 15·0.6 = 9
        ("差", Fr(0)),  # 15·0
    ],
)
def test_graded_each_level(level, expected):
    assert apply_rule(graded_item(15), {"level": level}).score == expected


def test_graded_fraction_exact():
    item = graded_item(7, [("好", "1"), ("一般", "0.3")])
    assert apply_rule(item, {"level": "一般"}).score == Fr(21, 10)  # 7·0.3 = 2.1


# ------------------------------------------------------------------ bonus


def test_bonus_under_cap():
    out = apply_rule(bonus_item("1", "2"), {"v": D(1)})
    assert out.bonus == 1  # min(2, 1·1) = 1
    assert out.score == 0  # not part of P totals


def test_bonus_at_and_over_cap():
    assert apply_rule(bonus_item("1", "2"), {"v": D(2)}).bonus == 2  # min(2, 2)
    assert apply_rule(bonus_item("1", "2"), {"v": D(5)}).bonus == 2  # min(2, 5)


def test_bonus_fractional():
    assert apply_rule(bonus_item("0.5", "2"), {"v": D(3)}).bonus == Fr(3, 2)  # min(2, 0.5·3) = 1.5


def test_bonus_zero_count():
    assert apply_rule(bonus_item("1", "2"), {"v": D(0)}).bonus == 0


def test_bonus_blank_is_zero():
    out = apply_rule(bonus_item("1", "2"), {"v": None})
    assert out.bonus == 0 and out.applicable == "yes"
    assert "未申报" in out.explain
    assert apply_rule(bonus_item("1", "2"), {}).bonus == 0


# ------------------------------------------------------------------ veto


def test_veto_fail():
    out = apply_rule(veto_item("fail"), {"v": "是"})
    assert out.veto == "fail" and out.score == 0 and out.bonus == 0


def test_veto_cap():
    out = apply_rule(veto_item("cap"), {"v": "是"})
    assert out.veto == "cap"


@pytest.mark.parametrize("action", ["fail", "cap"])
def test_veto_no(action):
    assert apply_rule(veto_item(action), {"v": "否"}).veto is None


def test_veto_default_action_is_fail():
    item = make({"type": "veto", "field": "v"}, [yes_no("v")])
    assert apply_rule(item, {"v": "是"}).veto == "fail"


# ------------------------------------------------------------------ missing values


@pytest.mark.parametrize(
    "item, values",
    [
        (yes_no_item(), {}),
        (yes_no_item(), {"v": None}),
        (ratio_item(), {"n": D(1)}),
        (ratio_item(), {"d": D(1)}),
        (rate_item(), {}),
        (count_item(), {}),
        (deduct_item(), {}),
        (checklist_item(), {"p1": "是", "p2": "是"}),
        (graded_item(), {}),
        (veto_item(), {}),
    ],
    ids=["yes_no", "yes_no_none", "ratio_d", "ratio_n", "rate", "count", "deduct", "checklist", "graded", "veto"],
)
def test_missing_value_is_an_error_not_zero(item, values):
    with pytest.raises(MissingValue):
        apply_rule(item, values)


def test_every_rule_type_has_a_function():
    assert set(RULES) == {"yes_no", "ratio", "count_target", "deduct_per_event", "checklist", "graded", "bonus", "veto"}


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    "x, expected",
    [
        (D("89.995"), D("90.00")),
        (Fr(89995, 1000), D("90.00")),
        (D("89.994"), D("89.99")),
        (D("89.9949"), D("89.99")),
        (Fr(2, 3), D("0.67")),
        (Fr(1, 3), D("0.33")),
        (D("0.005"), D("0.01")),
        (D("0.004999"), D("0.00")),
        (Fr(1, 8), D("0.13")),  # 0.125 -> 0.13 (half up, not banker's 0.12)
        (Fr(3, 8), D("0.38")),  # 0.375 -> 0.38
        (D("2.675"), D("2.68")),  # float 2.675 would round to 2.67
        (Fr(80, 9), D("8.89")),
        (100, D("100.00")),
        (0, D("0.00")),
        (D("-0.005"), D("-0.01")),  # half away from zero
        (Fr(-2, 3), D("-0.67")),
    ],
)
def test_round_half_up(x, expected):
    got = round_half_up(x, 2)
    assert got == expected
    assert got.as_tuple().exponent == -2  # always two places


def test_round_half_up_other_places():
    assert round_half_up(Fr(1, 8), 1) == D("0.1")  # 0.125 -> 0.1
    assert round_half_up(D("0.15"), 1) == D("0.2")
    assert round_half_up(D("2.5"), 0) == D("3")


@pytest.mark.parametrize(
    "x, expected",
    [
        (None, ""),
        (Fr(80, 9), "8.89"),
        (D(90), "90.00"),
        (Fr(2, 3), "0.67"),
        (D("89.995"), "90.00"),
        (Fr(0), "0.00"),
        (Fr(1, 8), "0.13"),
        (D("100"), "100.00"),
    ],
)
def test_fmt2(x, expected):
    assert fmt2(x) == expected


def test_exact_text():
    assert exact_text(Fr(7, 9)) == "7/9"
    assert exact_text(Fr(12)) == "12"
    assert exact_text(None) == ""


# ------------------------------------------------------------------ properties

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

points_st = st.integers(min_value=1, max_value=40).map(D)
money = st.decimals(min_value=D("0.1"), max_value=D(20), places=1)  # k, b, C: one decimal place
counts = st.integers(min_value=0, max_value=200)


@st.composite
def ratio_case(draw):
    P = draw(points_st)
    T = draw(st.integers(min_value=1, max_value=100))  # percent
    F = draw(st.integers(min_value=0, max_value=T - 1))
    zero = draw(st.sampled_from(["full", "na"]))
    d = draw(st.integers(min_value=0, max_value=500))
    n = draw(st.integers(min_value=0, max_value=d))
    item = ratio_item(P, str(D(T) / 100), str(D(F) / 100), zero)
    return item, {"n": D(n), "d": D(d)}


@st.composite
def rate_case(draw):
    P = draw(points_st)
    T = draw(st.integers(min_value=1, max_value=100))
    F = draw(st.integers(min_value=0, max_value=T - 1))
    r = draw(st.decimals(min_value=0, max_value=100, places=2))
    return rate_item(P, str(D(T) / 100), str(D(F) / 100)), {"r": r}


@st.composite
def count_case(draw):
    P = draw(points_st)
    cap = draw(st.none() | money)
    v = draw(st.decimals(min_value=0, max_value=200, places=1))
    item = count_item(P, str(draw(st.integers(1, 100))), str(draw(money)), cap=None if cap is None else str(cap),
                      field=decimal("v"))
    return item, {"v": v}


@st.composite
def deduct_case(draw):
    P = draw(points_st)
    cap = draw(st.none() | money)
    return deduct_item(P, str(draw(money)), cap=None if cap is None else str(cap)), {"v": D(draw(counts))}


@st.composite
def checklist_case(draw):
    P = draw(points_st)
    n = draw(st.integers(min_value=2, max_value=6))
    item = checklist_item(P, str(draw(money)), n=n)
    return item, {f"p{i}": draw(st.sampled_from(["是", "否"])) for i in range(1, n + 1)}


@st.composite
def graded_case(draw):
    P = draw(points_st)
    k = draw(st.integers(min_value=2, max_value=5))
    fracs = draw(st.lists(st.integers(min_value=0, max_value=100), min_size=k, max_size=k))
    levels = [(f"L{i}", str(D(f) / 100)) for i, f in enumerate(fracs)]
    return graded_item(P, levels), {"level": draw(st.sampled_from([n for n, _ in levels]))}


@st.composite
def yes_no_case(draw):
    return yes_no_item(draw(points_st)), {"v": draw(st.sampled_from(["是", "否"]))}


scored_case = st.one_of(
    yes_no_case(), ratio_case(), rate_case(), count_case(), deduct_case(), checklist_case(), graded_case()
)


@PROPS
@given(scored_case)
def test_prop_score_within_0_and_P(case):
    item, values = case
    out = apply_rule(item, values)
    assert isinstance(out.score, Fraction)
    assert out.bonus == 0 and out.veto is None
    P = Fraction(item.points)
    if out.applicable == "na":
        assert out.score == 0
    else:
        assert 0 <= out.score <= P


@PROPS
@given(
    P=points_st,
    N=st.integers(min_value=1, max_value=60),
    k=money,
    cap=st.none() | money,
    v1=st.integers(min_value=0, max_value=100),
    v2=st.integers(min_value=0, max_value=100),
)
def test_prop_count_target_monotone_in_count(P, N, k, cap, v1, v2):
    item = count_item(P, str(N), str(k), cap=None if cap is None else str(cap))
    lo, hi = sorted((v1, v2))
    s_lo = apply_rule(item, {"v": D(lo)}).score
    s_hi = apply_rule(item, {"v": D(hi)}).score
    assert s_lo <= s_hi
    if hi >= N:
        assert s_hi == P  # target met: full points


@PROPS
@given(
    P=points_st,
    T=st.integers(min_value=1, max_value=100),
    data=st.data(),
)
def test_prop_ratio_monotone_in_numerator(P, T, data):
    F = data.draw(st.integers(min_value=0, max_value=T - 1))
    d = data.draw(st.integers(min_value=1, max_value=300))
    n1 = data.draw(st.integers(min_value=0, max_value=d))
    n2 = data.draw(st.integers(min_value=0, max_value=d))
    item = ratio_item(P, str(D(T) / 100), str(D(F) / 100))
    lo, hi = sorted((n1, n2))
    s_lo = apply_rule(item, {"n": D(lo), "d": D(d)}).score
    s_hi = apply_rule(item, {"n": D(hi), "d": D(d)}).score
    assert s_lo <= s_hi
    assert apply_rule(item, {"n": D(d), "d": D(d)}).score == P  # r = 1 ≥ T always


@PROPS
@given(b=money, c=money, v=counts)
def test_prop_bonus_never_exceeds_item_cap(b, c, v):
    out = apply_rule(bonus_item(str(b), str(c)), {"v": D(v)})
    assert 0 <= out.bonus <= Fraction(c)
    assert out.bonus == min(Fraction(c), Fraction(b) * v)
    assert out.score == 0
