"""The review sheet: every bad row named, self and reviewed values kept, the 核查不实 penalty."""

import pytest

from helpers import GOLDEN, values_by_unit, write_submissions
from kaohe import pipeline as P
from kaohe.errors import ComponentsError, ReviewError
from kaohe.registry import load_registry
from kaohe.review import ReviewRow, check_components, load_components, load_review


@pytest.fixture(scope="module")
def intake(mini_catalog, tmp_path_factory):
    registry = load_registry(GOLDEN / "registry.csv", mini_catalog)
    values = values_by_unit(GOLDEN / "values.csv")
    files = write_submissions(mini_catalog, registry, values, tmp_path_factory.mktemp("rev"))
    reads = P.read_stage(files, mini_catalog, registry)
    return registry, P.validate_stage(reads, P.parse_stage(reads, mini_catalog, registry), mini_catalog, registry)


def row(n, unit="QX02", item="A02", field="reviewed", value="6", reason="抽查核实", reviewer="王敏"):
    return ReviewRow(n, unit, item, field, value, reason, reviewer)


BAD = [
    (row(2, unit="QX99"), "单位代码 'QX99' 不在考核对象名录中"),
    (row(3, item="Z99"), "指标编号 'Z99' 不在指标体系中"),
    (row(4, unit="ZH01", item="B02", field="level", value="好"), "不适用于"),
    (row(5, field="score"), "没有填报项目 'score'"),
    (row(6, reason=""), "未填写审核理由"),
    (row(7, value="六"), "审核值 '六' 无效"),
    (row(8, value="-1"), "超出范围"),
    (row(9, item="A01", field="不适用", value="是"), "不允许不适用"),
]


@pytest.mark.parametrize("bad,message", BAD, ids=[m for _, m in BAD])
def test_each_bad_row_is_named(mini_catalog, intake, bad, message):
    registry, it = intake
    with pytest.raises(ReviewError) as exc:
        P.review_stage([bad], it, mini_catalog, registry)
    assert f"第 {bad.row} 行" in exc.value.render() and message in exc.value.render()


def test_all_bad_rows_reported_together(mini_catalog, intake):
    registry, it = intake
    with pytest.raises(ReviewError) as exc:
        P.review_stage([b for b, _ in BAD], it, mini_catalog, registry)
    assert len(exc.value.details) == len(BAD)


def test_duplicate_row_rejected(mini_catalog, intake):
    registry, it = intake
    with pytest.raises(ReviewError, match="重复"):
        P.review_stage([row(2), row(3, value="5")], it, mini_catalog, registry)


def test_review_breaking_cross_field_check_rejected(mini_catalog, intake):
    registry, it = intake
    with pytest.raises(ReviewError, match="校验规则") as exc:
        P.review_stage([row(2, value="12")], it, mini_catalog, registry)  # 12 > total 9
    assert "大于" in exc.value.render()


def test_field_by_label_and_values_kept(mini_catalog, intake):
    registry, it = intake
    reviewed, changes, notes = P.review_stage([row(2, field="经合法性审查的重大决策数", value="8")], it, mini_catalog, registry)
    assert reviewed["QX02"].value("A02", "reviewed") == 8
    assert it.valid["QX02"].value("A02", "reviewed") == 7  # the unit's own value is untouched
    (c,) = changes["QX02"]["A02"]
    assert (c.self_value, c.reviewed_value, c.reason, c.reviewer) == (7, 8, "抽查核实", "王敏")


def test_row_for_unit_without_valid_submission_is_noted(mini_catalog, intake):
    registry, it = intake
    _, changes, notes = P.review_stage([row(2, unit="ZH05", value="9")], it, mini_catalog, registry)
    assert changes == {} and "ZH05" in notes[0]


def test_load_review_requires_columns(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("unit_id,item_id,value\nQX01,A01,是\n", encoding="utf-8")
    with pytest.raises(ReviewError, match="缺少列"):
        load_review(p)


def test_components_errors(mini_catalog, tmp_path):
    registry = load_registry(GOLDEN / "registry.csv", mini_catalog)
    p = tmp_path / "c.csv"
    p.write_text("unit_id,component,score\nQX01,satisfaction,101\nQX02,speed,90\nQX99,satisfaction,80\nQX03,satisfaction,abc\n", encoding="utf-8")
    with pytest.raises(ComponentsError) as exc:
        load_components(p, mini_catalog, registry)
    assert len(exc.value.details) == 4
    with pytest.raises(ComponentsError, match="缺失"):
        check_components({"QX01": {}}, mini_catalog, ["QX01"])
