"""METHOD §3: one item's score from its (validated) values, exactly.

Each rule is a small function over exact rationals, chosen by the rule's
name in the catalog. A rule never sees a missing value: validation rejects
those, and a ``MissingValue`` here is a programming error, never a zero.

Every function returns an ``Outcome``: the points (or the bonus, or the
veto) and a one-line Chinese explanation printed in the audit trail and the
scorecard, so each number can be followed from cell to points.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Callable, Literal, Mapping

from kaohe.catalog import (
    BonusRule,
    ChecklistRule,
    CountTargetRule,
    DeductPerEventRule,
    GradedRule,
    Item,
    RatioRule,
    VetoRule,
    YesNoRule,
)

Value = Decimal | str | None
ZERO = Fraction(0)


class MissingValue(Exception):
    """A rule was given no value for a field it needs (validation should have stopped it)."""


@dataclass(frozen=True)
class Outcome:
    #: "yes": scored; "na": leaves A(u) (不适用 or ratio with d = 0 under ``na``)
    applicable: Literal["yes", "na"]
    score: Fraction = ZERO
    bonus: Fraction = ZERO
    veto: Literal["fail", "cap"] | None = None
    explain: str = ""


def F(x: Decimal | int | Fraction) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(x)


def show(x: Fraction, places: int = 2) -> str:
    """Display an exact number half-up at `places` decimals, trailing zeros dropped."""
    from kaohe.numbers import round_half_up

    d = round_half_up(x, places)
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def pct(x: Fraction) -> str:
    return show(x * 100) + "%"


def _need(values: Mapping[str, Value], key: str) -> Value:
    v = values.get(key)
    if v is None:
        raise MissingValue(key)
    return v


def yes_no(rule: YesNoRule, points: Fraction, values) -> Outcome:
    v = _need(values, rule.field)
    s = points if v == "是" else ZERO
    return Outcome("yes", s, explain=f"填报“{v}”,得 {show(s)} 分")


def ratio(rule: RatioRule, points: Fraction, values) -> Outcome:
    target, floor = F(rule.target), F(rule.floor)
    if rule.rate is not None:
        r = F(_need(values, rule.rate)) / 100
        head = f"比率 {pct(r)}"
    else:
        n, d = F(_need(values, rule.numerator)), F(_need(values, rule.denominator))
        if d == 0:
            if rule.zero_denominator == "full":
                return Outcome("yes", points, explain=f"分母为 0,按规定得满分 {show(points)} 分")
            return Outcome("na", explain="分母为 0,按规定本项不适用,不计入应得分")
        r = n / d
        head = f"比率 {n}/{d} = {pct(r)}"
    if r >= target:
        s = points
        tail = f"达到目标 {pct(target)},得满分 {show(s)} 分"
    elif r <= floor:
        s = ZERO
        tail = f"不高于下限 {pct(floor)},得 0 分"
    else:
        s = points * (r - floor) / (target - floor)
        tail = f"按比例得 {show(points)}×({pct(r)}−{pct(floor)})/({pct(target)}−{pct(floor)}) = {show(s)} 分"
    return Outcome("yes", s, explain=f"{head},{tail}")


def _capped(k: Fraction, shortfall: Fraction, cap) -> Fraction:
    deduction = k * shortfall
    return deduction if cap is None else min(F(cap), deduction)


def count_target(rule: CountTargetRule, points: Fraction, values) -> Outcome:
    v = F(_need(values, rule.field))
    short = max(ZERO, F(rule.target) - v)
    deduction = _capped(F(rule.deduction), short, rule.cap)
    s = max(ZERO, points - deduction)
    if short == 0:
        return Outcome("yes", s, explain=f"完成 {show(v)},达到目标 {show(F(rule.target))},得满分 {show(s)} 分")
    cap = f"(扣分上限 {show(F(rule.cap))})" if rule.cap is not None else ""
    return Outcome(
        "yes",
        s,
        explain=f"完成 {show(v)},比目标 {show(F(rule.target))} 少 {show(short)},每少 1 扣 {show(F(rule.deduction))} 分{cap},扣 {show(min(deduction, points))} 分,得 {show(s)} 分",
    )


def deduct_per_event(rule: DeductPerEventRule, points: Fraction, values) -> Outcome:
    v = F(_need(values, rule.field))
    deduction = _capped(F(rule.deduction), v, rule.cap)
    s = max(ZERO, points - deduction)
    cap = f"(扣分上限 {show(F(rule.cap))})" if rule.cap is not None else ""
    return Outcome(
        "yes", s, explain=f"发生 {show(v)} 次,每次扣 {show(F(rule.deduction))} 分{cap},扣 {show(min(deduction, points))} 分,得 {show(s)} 分"
    )


def checklist(rule: ChecklistRule, points: Fraction, values) -> Outcome:
    answers = [_need(values, f) for f in rule.fields]
    missing = sum(1 for a in answers if a != "是")
    s = max(ZERO, points - F(rule.deduction) * missing)
    return Outcome(
        "yes", s, explain=f"{len(answers)} 项要求中 {missing} 项为“否”,每项扣 {show(F(rule.deduction))} 分,得 {show(s)} 分"
    )


def graded(rule: GradedRule, points: Fraction, values) -> Outcome:
    level = _need(values, rule.field)
    frac = F(rule.fraction(str(level)))
    s = points * frac
    return Outcome("yes", s, explain=f"等次“{level}”,得分系数 {show(frac)},得 {show(s)} 分")


def bonus(rule: BonusRule, points: Fraction, values) -> Outcome:
    v = values.get(rule.field)
    if v is None:
        return Outcome("yes", bonus=ZERO, explain="未申报加分")
    b = min(F(rule.cap), F(rule.per_event) * F(v))
    return Outcome("yes", bonus=b, explain=f"申报 {show(F(v))} 项,每项加 {show(F(rule.per_event))} 分(本项最多 {show(F(rule.cap))} 分),加 {show(b)} 分")


def veto(rule: VetoRule, points: Fraction, values) -> Outcome:
    v = _need(values, rule.field)
    if v == "是":
        what = "一票否决,评为不合格" if rule.action == "fail" else "不得评为优秀"
        return Outcome("yes", veto=rule.action, explain=f"填报“是”:{what}")
    return Outcome("yes", explain="填报“否”,不触发否决")


RULES: dict[str, Callable[..., Outcome]] = {
    "yes_no": yes_no,
    "ratio": ratio,
    "count_target": count_target,
    "deduct_per_event": deduct_per_event,
    "checklist": checklist,
    "graded": graded,
    "bonus": bonus,
    "veto": veto,
}


def apply_rule(item: Item, values: Mapping[str, Value]) -> Outcome:
    """Score one applicable item that the unit did not mark 不适用."""
    points = F(item.points) if item.points is not None else ZERO
    return RULES[item.rule.type](item.rule, points, values)
