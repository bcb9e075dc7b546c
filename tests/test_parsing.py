"""kaohe.parsing: one raw cell -> one typed value, per field type (METHOD §3, cross-field checks).

Bounds (min/max, percent 0–100) are validation's job, not parsing's: a parser
only decides what the cell *says*, and records what it read when it had to
interpret it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from kaohe.catalog import FieldSpec
from kaohe.errors import Code
from kaohe.parsing import Parsed, RawCell, Rejected, normalize_text, parse_cell, parse_text_value

# ------------------------------------------------------------------ helpers

SPECS = {
    "integer": FieldSpec(key="n", label="次数", type="integer", unit="次"),
    "decimal": FieldSpec(key="h", label="学时", type="decimal", unit="学时"),
    "percent": FieldSpec(key="p", label="公开率", type="percent", unit="%"),
    "yes_no": FieldSpec(key="yn", label="是否报告", type="yes_no"),
    "grade": FieldSpec(key="g", label="等次", type="grade", choices=("好", "较好", "一般", "差")),
    "text": FieldSpec(key="t", label="说明", type="text", max_length=10),
}
ALL_TYPES = sorted(SPECS)


def cell(value, data_type: str | None = None, number_format: str = "General", address: str = "D7") -> RawCell:
    if data_type is None:
        data_type = "s" if isinstance(value, str) else "n"
    return RawCell(address, value, data_type, number_format)


def ok(result) -> Parsed:
    assert isinstance(result, Parsed), f"expected Parsed, got {result!r}"
    return result


def rejected(result, code: Code) -> Rejected:
    assert isinstance(result, Rejected), f"expected Rejected({code}), got {result!r}"
    assert result.code == code, f"expected {code}, got {result.code}: {result.message}"
    assert result.message  # every rejection says why, in Chinese
    return result


def parse(value, type_: str, **kw):
    return parse_cell(cell(value, **kw), SPECS[type_])


# ------------------------------------------------------------------ integer


@pytest.mark.parametrize(
    "value, expected",
    [
        (3, Decimal(3)),
        (3.0, Decimal(3)),  # Excel stores every number as a float
        ("3", Decimal(3)),
        ("３", Decimal(3)),  # full-width digit (NFKC)
        (" 3 ", Decimal(3)),
        ("1,234", Decimal(1234)),  # thousands separator
        ("１,２３４", Decimal(1234)),
        (0, Decimal(0)),
        ("3.", Decimal(3)),
        ("3.00", Decimal(3)),
    ],
)
def test_integer_accepts(value, expected):
    p = ok(parse(value, "integer"))
    assert p.value == expected
    assert isinstance(p.value, Decimal)


def test_integer_negative_is_parsed_bounds_are_validations_job():
    assert ok(parse(-2, "integer")).value == Decimal(-2)


@pytest.mark.parametrize("value", [3.5, "3.5", "３．５", 0.1])
def test_integer_rejects_fraction(value):
    rejected(parse(value, "integer"), Code.NOT_AN_INTEGER)


@pytest.mark.parametrize("value", ["约3次", "3次", "三", "95%", "1,23", "12,34,567", "abc", "3-4", "1e3"])
def test_integer_rejects_non_numbers(value):
    rejected(parse(value, "integer"), Code.NOT_A_NUMBER)


def test_integer_rejection_quotes_the_cell():
    r = rejected(parse("约3次", "integer"), Code.NOT_A_NUMBER)
    assert "约3次" in r.message


# ------------------------------------------------------------------ decimal


@pytest.mark.parametrize(
    "value, expected",
    [
        (42.5, Decimal("42.5")),
        ("42.5", Decimal("42.5")),
        ("４２．５", Decimal("42.5")),  # full-width digits and full-width full stop
        (40, Decimal(40)),
        (37.5, Decimal("37.5")),
        (0.1, Decimal("0.1")),  # exactly 1/10, not the binary float's expansion
        (0, Decimal(0)),
        ("1,234.5", Decimal("1234.5")),
    ],
)
def test_decimal_accepts(value, expected):
    p = ok(parse(value, "decimal"))
    assert p.value == expected
    assert isinstance(p.value, Decimal)


def test_decimal_float_is_read_by_shortest_repr_not_binary_expansion():
    # Decimal(0.1) would be 0.1000000000000000055511151231257827...
    assert ok(parse(0.1, "decimal")).value == Decimal("0.1")
    assert ok(parse(2.675, "decimal")).value == Decimal("2.675")


@pytest.mark.parametrize("value", ["约40学时", "40学时", "42.5%", "四十"])
def test_decimal_rejects_non_numbers(value):
    rejected(parse(value, "decimal"), Code.NOT_A_NUMBER)


# ------------------------------------------------------------------ percent


@pytest.mark.parametrize(
    "value, expected",
    [
        (95, Decimal(95)),
        (95.0, Decimal(95)),
        ("95", Decimal(95)),
        ("95%", Decimal(95)),
        ("95 %", Decimal(95)),
        ("９５％", Decimal(95)),  # full-width digits and full-width percent sign
        ("95.5%", Decimal("95.5")),
        (0, Decimal(0)),
        ("0", Decimal(0)),
        ("0%", Decimal(0)),
        ("0.95%", Decimal("0.95")),  # an explicit % sign is never ambiguous
        ("120%", Decimal(120)),  # bounds are validation's job
        (120, Decimal(120)),
        (100, Decimal(100)),
    ],
)
def test_percent_accepts(value, expected):
    p = ok(parse(value, "percent"))
    assert p.value == expected


@pytest.mark.parametrize(
    "value, fmt, expected",
    [
        (0.95, "0.0%", Decimal(95)),
        (0.95, "0%", Decimal(95)),
        (0.07, "0%", Decimal(7)),  # 0.07*100 is 7.000000000000001 in floats: exact here
        (0.5, "0.00%", Decimal(50)),
        (1, "0%", Decimal(100)),
        (1.0, "0%", Decimal(100)),
        (0, "0%", Decimal(0)),
    ],
)
def test_percent_formatted_fraction_is_scaled(value, fmt, expected):
    p = ok(parse(value, "percent", number_format=fmt))
    assert p.value == expected


def test_percent_formatted_note_says_what_was_read():
    p = ok(parse(0.95, "percent", number_format="0.0%"))
    assert p.value == 95
    assert "百分比格式" in p.note
    assert "0.95" in p.note and "95%" in p.note


@pytest.mark.parametrize("value, raw", [("95%", "95%"), ("９５％", "９５％")])
def test_percent_sign_note_says_what_was_read(value, raw):
    p = ok(parse(value, "percent"))
    assert raw in p.note  # the cell as typed
    assert "95%" in p.note  # what it was read as


def test_percent_bare_number_note_says_what_was_read():
    p = ok(parse(95, "percent"))
    assert "95" in p.note and "95%" in p.note


@pytest.mark.parametrize("value", [0.95, "0.95", 0.5, 1, 1.0, "1", 0.001])
def test_percent_between_0_and_1_without_format_is_ambiguous(value):
    r = rejected(parse(value, "percent"), Code.PERCENT_AMBIGUOUS)
    # the message offers both readings
    if value in (0.95, "0.95"):
        assert "95%" in r.message and "0.95%" in r.message


def test_percent_zero_is_not_ambiguous():
    p = ok(parse(0, "percent"))
    assert p.value == 0


def test_percent_string_with_percent_format_is_not_scaled():
    # A text cell "95" in a %-formatted cell says 95, not 9500.
    assert ok(parse("95", "percent", number_format="0%")).value == 95


@pytest.mark.parametrize("value", ["约95%", "九成", "95%%", "%", "high"])
def test_percent_rejects_non_numbers(value):
    rejected(parse(value, "percent"), Code.NOT_A_NUMBER)


# ------------------------------------------------------------------ yes_no


@pytest.mark.parametrize("value, expected", [("是", "是"), ("否", "否"), (" 是 ", "是"), ("\u3000否\u3000", "否")])
def test_yes_no_accepts(value, expected):
    assert ok(parse(value, "yes_no")).value == expected


@pytest.mark.parametrize("value", ["Y", "N", "yes", "有", "是的", "√", 1, 0])
def test_yes_no_rejects(value):
    rejected(parse(value, "yes_no"), Code.NOT_A_CHOICE)


# ------------------------------------------------------------------ grade


@pytest.mark.parametrize("value", ["好", "较好", "一般", "差", " 较好 "])
def test_grade_accepts_a_choice(value):
    assert ok(parse(value, "grade")).value == value.strip()


@pytest.mark.parametrize("value", ["优秀", "良", "较 好", "A", 1])
def test_grade_rejects_a_non_choice(value):
    r = rejected(parse(value, "grade"), Code.NOT_A_CHOICE)
    assert "好/较好/一般/差" in r.message  # the message lists the choices


# ------------------------------------------------------------------ text


def test_text_accepts_and_trims():
    assert ok(parse("  已公开  ", "text")).value == "已公开"


def test_text_number_cell_reads_as_written():
    assert ok(parse(3.0, "text")).value == "3"
    assert ok(parse(12, "text")).value == "12"


def test_text_length_limit():
    assert ok(parse("一二三四五六七八九十", "text")).value == "一二三四五六七八九十"  # exactly 10
    r = rejected(parse("一二三四五六七八九十一", "text"), Code.TEXT_TOO_LONG)
    assert "11" in r.message and "10" in r.message


def test_text_newlines_and_tabs_are_allowed():
    assert ok(parse("第一行\n第二行\t完", "text")).value == "第一行\n第二行\t完"


@pytest.mark.parametrize("value", ["报告\x07", "\x00", "a\u200bb", "\x1b[31m"])
def test_text_control_chars(value):
    rejected(parse(value, "text"), Code.CONTROL_CHARS)


# ------------------------------------------------------------------ every type


@pytest.mark.parametrize("type_", ALL_TYPES)
def test_formula_rejected(type_):
    r = rejected(parse_cell(RawCell("D7", "=1+1", "f"), SPECS[type_]), Code.FORMULA)
    assert "=1+1" in r.message


@pytest.mark.parametrize("type_", ALL_TYPES)
def test_error_cell_rejected(type_):
    r = rejected(parse_cell(RawCell("D7", "#DIV/0!", "e"), SPECS[type_]), Code.ERROR_CELL)
    assert "#DIV/0!" in r.message


@pytest.mark.parametrize("type_", ALL_TYPES)
@pytest.mark.parametrize(
    "value", [dt.datetime(2025, 3, 1, 9, 30), dt.date(2025, 3, 1), dt.time(9, 30), dt.timedelta(days=2)]
)
def test_date_cell_rejected(type_, value):
    rejected(parse_cell(RawCell("D7", value, "d"), SPECS[type_]), Code.DATE_CELL)
    # even when openpyxl reports it as a number cell
    rejected(parse_cell(RawCell("D7", value, "n"), SPECS[type_]), Code.DATE_CELL)


@pytest.mark.parametrize("type_", ALL_TYPES)
@pytest.mark.parametrize("value", [True, False])
def test_bool_cell_rejected(type_, value):
    rejected(parse_cell(RawCell("D7", value, "b"), SPECS[type_]), Code.BOOL_CELL)
    rejected(parse_cell(RawCell("D7", value, "n"), SPECS[type_]), Code.BOOL_CELL)


@pytest.mark.parametrize("type_", ALL_TYPES)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_rejected(type_, value):
    rejected(parse_cell(RawCell("D7", value, "n"), SPECS[type_]), Code.NOT_FINITE)


@pytest.mark.parametrize("type_", ALL_TYPES)
def test_control_chars_rejected_for_every_type(type_):
    rejected(parse(" 3\x07", type_), Code.CONTROL_CHARS)


@pytest.mark.parametrize("type_", ALL_TYPES)
@pytest.mark.parametrize("value", [None, "", "  ", "\u3000", "\n\t"])
def test_blank_is_none(type_, value):
    assert parse_cell(cell(value), SPECS[type_]) == Parsed(None)


# ------------------------------------------------------------------ RawCell.text


def test_rawcell_text():
    assert RawCell("A1", None).text == ""
    assert RawCell("A1", 3.0).text == "3"
    assert RawCell("A1", 3.5).text == "3.5"
    assert RawCell("A1", "是").text == "是"


def test_normalize_text():
    assert normalize_text("\u3000４２．５％ ") == "42.5%"


# ------------------------------------------------------------------ parse_text_value


@pytest.mark.parametrize(
    "text, type_, expected",
    [
        ("3", "integer", Decimal(3)),
        ("３", "integer", Decimal(3)),
        ("1,234", "integer", Decimal(1234)),
        ("42.5", "decimal", Decimal("42.5")),
        ("95%", "percent", Decimal(95)),
        ("95", "percent", Decimal(95)),
        ("是", "yes_no", "是"),
        (" 否 ", "yes_no", "否"),
        ("较好", "grade", "较好"),
        ("复核后更正", "text", "复核后更正"),
        ("", "integer", None),
        ("  ", "percent", None),
    ],
)
def test_parse_text_value_accepts(text, type_, expected):
    assert ok(parse_text_value(text, SPECS[type_], "审核意见!D2")).value == expected


@pytest.mark.parametrize(
    "text, type_, code",
    [
        ("3.5", "integer", Code.NOT_AN_INTEGER),
        ("约3次", "integer", Code.NOT_A_NUMBER),
        ("0.95", "percent", Code.PERCENT_AMBIGUOUS),  # no cell format to disambiguate
        ("Y", "yes_no", Code.NOT_A_CHOICE),
        ("优秀", "grade", Code.NOT_A_CHOICE),
        ("=1+1", "integer", Code.NOT_A_NUMBER),  # typed text, not a formula cell
        ("a\x07", "text", Code.CONTROL_CHARS),
        ("x" * 11, "text", Code.TEXT_TOO_LONG),
    ],
)
def test_parse_text_value_rejects(text, type_, code):
    rejected(parse_text_value(text, SPECS[type_]), code)


def test_parse_text_value_percent_note():
    p = ok(parse_text_value("95%", SPECS["percent"]))
    assert "95%" in p.note


# ------------------------------------------------- literal % signs in number formats


@pytest.mark.parametrize(
    "value, fmt, shown",
    [
        (0.95, '0.00"%"', Decimal(95)),  # the cell shows 0.95%: must not become 95
        (0.95, "0.00\\%", Decimal(95)),
        (95, '0"%"', Decimal(9500)),  # the cell shows 95%: must not become 9500
    ],
)
def test_percent_literal_percent_sign_in_format_does_not_scale(value, fmt, shown):
    p = parse(value, "percent", number_format=fmt)
    assert not (isinstance(p, Parsed) and p.value == shown), p
