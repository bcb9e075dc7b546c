"""Exact numbers: all scoring is in Fractions; rounding happens once, at publication."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction


def round_half_up(x: Fraction | Decimal | int, places: int = 2) -> Decimal:
    """Round half away from zero at `places` decimals (四舍五入), exactly.

    Works on the exact rational, so 89.995 becomes 90.00 and 2/3 becomes 0.67,
    with no binary floating point anywhere.
    """
    x = Fraction(x)
    scale = 10**places
    scaled = x * scale
    sign = -1 if scaled < 0 else 1
    q, r = divmod(abs(scaled.numerator), scaled.denominator)
    if 2 * r >= scaled.denominator:
        q += 1
    return Decimal(sign * q).scaleb(-places)


def fmt_decimal(d: Decimal | None) -> str:
    """A decimal as a person writes it, never with an exponent: 5, 2.5, 0.3, 100."""
    if d is None:
        return ""
    return format(d.normalize(), "f")


def fmt2(x: Fraction | Decimal | None) -> str:
    """Published form: exactly two decimals, or empty for no value."""
    if x is None:
        return ""
    return f"{round_half_up(x, 2):.2f}"


def exact_text(x: Fraction | None) -> str:
    """Exact value for the audit trail: '7/9', '12', '25/2'."""
    if x is None:
        return ""
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
