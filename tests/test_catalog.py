"""The catalog (METHOD §2, §6): the bundled 2025 catalog, and the validator's defects."""

from __future__ import annotations

import copy
import re
from collections import Counter
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from kaohe.catalog import RULE_TYPES, Catalog, load_catalog, parse_catalog
from kaohe.errors import CatalogError, CatalogSyntaxError, Code
from kaohe.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "indicators" / "2025.yaml"
REGISTRY = ROOT / "inputs" / "2025" / "registry.csv"
SEEDS = ROOT.parent / "shared" / "seeds"
MINI = Path(__file__).parent / "data" / "mini_catalog.yaml"


# ================================================================== bundled catalog


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog(CATALOG)


@pytest.fixture(scope="module")
def registry(cat):
    return load_registry(REGISTRY, cat)


def test_bundled_catalog_loads(cat):
    assert cat.year == 2025
    assert len(cat.items) > 0
    assert len(cat.groups) == 3


def test_ids_unique(cat):
    ids = [i.id for i in cat.items]
    assert [k for k, n in Counter(ids).items() if n > 1] == []
    dims = [d.id for d in cat.dimensions]
    assert len(set(dims)) == len(dims)


def test_every_scored_item_has_positive_points(cat):
    bad = [i.id for i in cat.items if i.kind == "scored" and not (i.points is not None and i.points > 0)]
    assert bad == []


def test_bonus_and_veto_items_have_no_points(cat):
    assert [i.id for i in cat.items if i.kind != "scored" and i.points not in (None, 0)] == []


def test_component_weights_sum_to_exactly_one(cat):
    weights = [c.weight for c in cat.components]
    assert all(isinstance(w, Decimal) for w in weights)
    assert sum(weights, Decimal(0)) == Decimal(1)
    assert sum((Fraction(w) for w in weights), Fraction(0)) == 1
    assert "assessed" in {c.id for c in cat.components}


def test_every_rule_type_is_used(cat):
    assert {i.rule.type for i in cat.items} == set(RULE_TYPES)
    assert len(RULE_TYPES) == 8


def test_every_dimension_has_scored_items(cat):
    for d in cat.dimensions:
        assert any(i.dimension == d.id and i.kind == "scored" for i in cat.items), d.id


def test_tie_break_covers_known_dimensions(cat):
    dims = {d.id for d in cat.dimensions}
    assert set(cat.tie_break) <= dims


def test_every_rule_field_is_declared(cat):
    for item in cat.items:
        keys = {f.key for f in item.fields}
        for key in item.rule.fields_used():
            assert key in keys, (item.id, key)


def test_groups_get_different_applicable_item_sets(cat, registry):
    per_group: dict[str, set[frozenset[str]]] = {g: set() for g in cat.groups}
    for unit in registry:
        ids = frozenset(i.id for i in cat.applicable_items(unit.group, unit.tags))
        per_group[unit.group].add(ids)
    assert all(per_group.values()), "every group has units in the registry"
    union = {g: frozenset().union(*sets) for g, sets in per_group.items()}
    groups = list(cat.groups)
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            ga, gb = groups[a], groups[b]
            assert union[ga] != union[gb], (ga, gb)
            assert per_group[ga] != per_group[gb], (ga, gb)
    # counties and city departments have group-only items: no county sees a department's set
    # (the two department groups share their group items and differ by the units' tags)
    county, *departments = groups
    for g in departments:
        assert per_group[county].isdisjoint(per_group[g]), (county, g)


def test_every_unit_has_scored_items(cat, registry):
    for unit in registry:
        assert any(i.kind == "scored" for i in cat.applicable_items(unit.group, unit.tags)), unit.unit_id


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_basis_quotes_are_verbatim(cat):
    if not SEEDS.is_dir():
        pytest.skip(f"seed folder {SEEDS} not present")
    texts: dict[str, str] = {}
    for path in SEEDS.glob("[0-9][0-9][0-9]_*.txt"):
        texts[path.name[:3]] = _squash(path.read_text(encoding="utf-8"))
    missing = []
    for item in cat.items:
        for b in item.basis:
            if b.file not in texts:
                missing.append(f"{item.id}: no seed file {b.file}_*.txt")
            elif _squash(b.quote) not in texts[b.file]:
                missing.append(f"{item.id}: {b.file} {b.clause} quote not found: {b.quote}")
    assert missing == []


def test_scored_items_cite_a_clause(cat):
    for item in cat.items:
        assert item.basis and all(b.clause.strip() for b in item.basis), item.id


# ================================================================== validator


@pytest.fixture
def raw() -> dict:
    with MINI.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _item(raw: dict, item_id: str) -> dict:
    return next(i for i in raw["items"] if i["id"] == item_id)


def test_mini_catalog_is_valid(raw):
    c = parse_catalog(copy.deepcopy(raw))
    assert {i.rule.type for i in c.items} == set(RULE_TYPES)
    exact = load_catalog(MINI)
    assert [i.id for i in exact.items] == [i.id for i in c.items]


def _fails(raw: dict, *names: str) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        parse_catalog(raw, source="bad.yaml")
    err = info.value
    text = str(err)  # message and details, as the CLI prints it
    assert err.code in (Code.CATALOG_INVALID, Code.CATALOG_SYNTAX)
    for name in names:
        assert name in text, f"{name!r} not named in:\n{text}"
    return err


def test_unknown_rule_type(raw):
    _item(raw, "A01")["rule"]["type"] = "percentage"
    _fails(raw, "A01")


def test_points_zero_on_scored_item(raw):
    _item(raw, "A03")["points"] = 0
    err = _fails(raw, "A03")
    assert any("A03" in d and "分值" in d for d in err.details)


def test_points_negative_on_scored_item(raw):
    _item(raw, "A03")["points"] = -5
    _fails(raw, "A03")


def test_points_missing_on_scored_item(raw):
    del _item(raw, "A03")["points"]
    _fails(raw, "A03")


def test_points_on_bonus_item(raw):
    _item(raw, "X01")["points"] = 5
    _fails(raw, "X01")


def test_rule_field_not_declared(raw):
    _item(raw, "A01")["rule"]["field"] = "report_done"
    _fails(raw, "A01", "report_done")


def test_checklist_field_not_declared(raw):
    _item(raw, "A04")["rule"]["fields"] = ["p1", "p2", "p4"]
    _fails(raw, "A04", "p4")


def test_wrong_field_type_for_rule(raw):
    _item(raw, "A02")["fields"][0]["type"] = "text"  # ratio numerator must be integer
    _fails(raw, "A02", "reviewed", "text")


def test_wrong_field_type_rate_not_percent(raw):
    _item(raw, "B03")["fields"][0]["type"] = "decimal"
    _fails(raw, "B03", "rate")


def test_weights_not_summing_to_one(raw):
    raw["components"][1]["weight"] = 0.3  # 0.8 + 0.3 = 1.1
    err = _fails(raw, "components")
    assert any("1.1" in d for d in err.details)


def test_weights_must_include_assessed(raw):
    raw["components"] = [{"id": "satisfaction", "name": "群众满意度测评", "weight": 1}]
    _fails(raw, "assessed")


def test_duplicate_item_ids(raw):
    dup = copy.deepcopy(_item(raw, "A03"))
    dup["title"] = "另一个指标"
    raw["items"].append(dup)
    err = _fails(raw, "A03")
    assert any("A03" in d and "重复" in d for d in err.details)


def test_unknown_dimension(raw):
    _item(raw, "A01")["dimension"] = "d9"
    _fails(raw, "A01", "d9")


def test_unknown_group_in_applies_to(raw):
    _item(raw, "B02")["applies_to"]["groups"] = ["区县政府", "省直部门"]
    _fails(raw, "B02", "省直部门")


def test_undeclared_tag(raw):
    _item(raw, "B01")["applies_to"]["tags"] = ["审批"]
    _fails(raw, "B01", "审批")


@pytest.mark.parametrize("floor, target", [(0.6, 0.6), (0.9, 0.6)])
def test_ratio_floor_not_below_target(raw, floor, target):
    _item(raw, "A02")["rule"].update(floor=floor, target=target)
    _fails(raw, "A02", "floor")


def test_ratio_target_above_one(raw):
    _item(raw, "A02")["rule"]["target"] = 1.2
    _fails(raw, "A02")


def test_ratio_both_forms(raw):
    _item(raw, "A02")["rule"]["rate"] = "reviewed"
    _fails(raw, "A02")


def test_graded_levels_not_matching_choices(raw):
    _item(raw, "B02")["fields"][0]["choices"] = ["好", "较好", "一般", "不好"]
    _fails(raw, "B02", "choices")


def test_graded_levels_order_must_match(raw):
    _item(raw, "B02")["fields"][0]["choices"] = ["差", "一般", "较好", "好"]
    _fails(raw, "B02")


def test_unknown_key_on_item(raw):
    _item(raw, "A01")["weight"] = 3
    _fails(raw, "A01", "weight")


def test_unknown_key_in_rule(raw):
    _item(raw, "A03")["rule"]["maximum"] = 3
    _fails(raw, "A03", "maximum")


def test_unknown_key_in_field(raw):
    _item(raw, "A03")["fields"][0]["minimum"] = 0
    _fails(raw, "A03", "minimum")


def test_unknown_top_level_key(raw):
    raw["excellence_rate"] = 0.3
    _fails(raw, "excellence_rate")


def test_deduction_cap_above_points(raw):
    _item(raw, "B01")["rule"]["cap"] = 20  # points 15
    _fails(raw, "B01", "cap")


def test_all_defects_reported_together(raw):
    _item(raw, "A01")["dimension"] = "d9"
    _item(raw, "A03")["points"] = 0
    _item(raw, "B01")["applies_to"]["tags"] = ["审批"]
    err = _fails(raw, "A01", "A03", "B01")
    assert len(err.details) == 3


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: _item(r, "A01")["rule"].update(type="percentage"),
        lambda r: _item(r, "A01").update(weight=3),
    ],
    ids=["unknown_rule_type", "unknown_key"],
)
def test_catalog_errors_are_in_chinese(raw, mutate):
    mutate(raw)
    err = _fails(raw, "A01")
    for d in err.details:
        assert not re.search(r"[A-Za-z]{3,} [a-z]{2,} [a-z]{2,}", d), d  # no English sentence


def test_not_a_mapping():
    with pytest.raises(CatalogSyntaxError):
        parse_catalog([1, 2, 3])


# ------------------------------------------------------------------ YAML loading


MINI_TEXT = MINI.read_text(encoding="utf-8")


def test_duplicate_yaml_key(tmp_path):
    # A repeated key would silently win in plain YAML: here it is an error.
    text = MINI_TEXT.replace("    points: 10\n    rule: {type: yes_no", "    points: 10\n    points: 5\n    rule: {type: yes_no", 1)
    assert text != MINI_TEXT
    path = tmp_path / "dup.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert isinstance(info.value, CatalogSyntaxError)
    msg = str(info.value)
    assert "points" in msg and "重复" in msg
    assert "line" in msg  # the position, so the office can find it


def test_duplicate_yaml_key_top_level(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(MINI_TEXT + "\nbonus_cap: 5\n", encoding="utf-8")
    with pytest.raises(CatalogSyntaxError, match="bonus_cap"):
        load_catalog(path)


def test_yaml_float_is_exact_decimal(tmp_path):
    text = (
        MINI_TEXT.replace("excellence_quota: 0.30", "excellence_quota: 0.1")
        .replace("{id: assessed, name: 依法行政考核得分, weight: 0.8}", "{id: assessed, name: 依法行政考核得分, weight: 0.7}")
        .replace(
            "{id: satisfaction, name: 群众满意度测评, weight: 0.2}",
            "{id: satisfaction, name: 群众满意度测评, weight: 0.2}\n  - {id: daily, name: 日常考核, weight: 0.1}",
        )
    )
    path = tmp_path / "exact.yaml"
    path.write_text(text, encoding="utf-8")
    c = load_catalog(path)
    assert c.excellence_quota == Decimal("0.1")
    assert Fraction(c.excellence_quota) == Fraction(1, 10)  # not 0.1000000000000000055…
    # 0.7 + 0.2 + 0.1 is 0.9999999999999999 in binary floats; exactly 1 here
    assert [c.weight for c in c.components] == [Decimal("0.7"), Decimal("0.2"), Decimal("0.1")]
    assert sum((Fraction(x.weight) for x in c.components), Fraction(0)) == 1
    assert c.item("B03").rule.target == Decimal("0.95")
    assert Fraction(c.item("B03").rule.target) == Fraction(19, 20)
    assert Fraction(c.item("A02").rule.floor) == Fraction(3, 5)


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("year: 2025\nitems: [\n", encoding="utf-8")
    with pytest.raises(CatalogSyntaxError):
        load_catalog(path)


def test_missing_file(tmp_path):
    with pytest.raises(CatalogSyntaxError):
        load_catalog(tmp_path / "nope.yaml")
