"""The indicator catalog (考核指标体系): YAML in, frozen typed models out.

Indicators are data. Nothing in kaohe names an indicator id: every stage is
driven by the models below. Loading a catalog validates it completely and
reports every defect at once, each named by the item it concerns.

Numbers in the YAML are read as exact decimals (never binary floats), so a
target written ``0.95`` is exactly 95/100 in scoring.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kaohe.errors import CatalogError, CatalogSyntaxError
from kaohe.numbers import fmt_decimal

GRADES = ("优秀", "良好", "合格", "不合格")
ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------- fields

FieldType = Literal["integer", "decimal", "percent", "yes_no", "grade", "text"]


class FieldSpec(Model):
    """One cell the unit fills for an item."""

    key: Annotated[str, Field(pattern=KEY_PATTERN)]
    label: str
    type: FieldType
    unit: str = ""
    min: Decimal | None = None
    max: Decimal | None = None
    required: bool = True
    choices: tuple[str, ...] = ()
    max_length: Annotated[int, Field(gt=0, le=2000)] = 500

    @model_validator(mode="after")
    def _check(self) -> "FieldSpec":
        numeric = self.type in ("integer", "decimal", "percent")
        if not numeric and (self.min is not None or self.max is not None):
            raise ValueError(f"字段 {self.key}: 只有数值字段可以设置 min/max")
        if self.type == "percent":
            lo = Decimal(0) if self.min is None else self.min
            hi = Decimal(100) if self.max is None else self.max
            if lo < 0 or hi > 100:
                raise ValueError(f"字段 {self.key}: 百分数字段的范围必须在 0–100 之内")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"字段 {self.key}: min 大于 max")
        if self.type == "grade" and len(self.choices) < 2:
            raise ValueError(f"字段 {self.key}: 等级字段至少需要两个 choices")
        if self.type != "grade" and self.choices:
            raise ValueError(f"字段 {self.key}: 只有等级字段可以设置 choices")
        return self

    @property
    def lower(self) -> Decimal | None:
        """Effective lower bound: counts and percents are never negative."""
        if self.min is not None:
            return self.min
        if self.type in ("integer", "decimal", "percent"):
            return Decimal(0)
        return None

    @property
    def upper(self) -> Decimal | None:
        if self.max is not None:
            return self.max
        if self.type == "percent":
            return Decimal(100)
        return None


# ---------------------------------------------------------------------- rules


class _Rule(Model):
    def fields_used(self) -> tuple[str, ...]:  # pragma: no cover - overridden
        raise NotImplementedError

    #: the field types each referenced field may have
    def field_types(self) -> dict[str, tuple[str, ...]]:
        return {}


class YesNoRule(_Rule):
    type: Literal["yes_no"]
    field: str

    def fields_used(self):
        return (self.field,)

    def field_types(self):
        return {self.field: ("yes_no",)}


class RatioRule(_Rule):
    """r = n/d (integers) or r = rate/100 (one percent field)."""

    type: Literal["ratio"]
    numerator: str | None = None
    denominator: str | None = None
    rate: str | None = None
    target: Annotated[Decimal, Field(gt=0, le=1)]
    floor: Annotated[Decimal, Field(ge=0, lt=1)] = Decimal(0)
    zero_denominator: Literal["full", "na"] = "na"

    @model_validator(mode="after")
    def _check(self) -> "RatioRule":
        pair = self.numerator is not None and self.denominator is not None
        if pair == (self.rate is not None) or (
            not pair and (self.numerator is not None or self.denominator is not None)
        ):
            raise ValueError("ratio 规则须且只能给出 numerator+denominator 或 rate 之一")
        if not self.floor < self.target:
            raise ValueError("ratio 规则要求 0 ≤ floor < target ≤ 1")
        return self

    def fields_used(self):
        if self.rate is not None:
            return (self.rate,)
        return (self.numerator, self.denominator)

    def field_types(self):
        if self.rate is not None:
            return {self.rate: ("percent",)}
        return {self.numerator: ("integer",), self.denominator: ("integer",)}


class CountTargetRule(_Rule):
    type: Literal["count_target"]
    field: str
    target: Annotated[Decimal, Field(gt=0)]
    deduction: Annotated[Decimal, Field(gt=0)]
    cap: Annotated[Decimal, Field(gt=0)] | None = None

    def fields_used(self):
        return (self.field,)

    def field_types(self):
        return {self.field: ("integer", "decimal")}


class DeductPerEventRule(_Rule):
    type: Literal["deduct_per_event"]
    field: str
    deduction: Annotated[Decimal, Field(gt=0)]
    cap: Annotated[Decimal, Field(gt=0)] | None = None

    def fields_used(self):
        return (self.field,)

    def field_types(self):
        return {self.field: ("integer",)}


class ChecklistRule(_Rule):
    type: Literal["checklist"]
    fields: Annotated[tuple[str, ...], Field(min_length=2)]
    deduction: Annotated[Decimal, Field(gt=0)]

    def fields_used(self):
        return self.fields

    def field_types(self):
        return {f: ("yes_no",) for f in self.fields}


class Level(Model):
    name: str
    fraction: Annotated[Decimal, Field(ge=0, le=1)]


class GradedRule(_Rule):
    type: Literal["graded"]
    field: str
    levels: Annotated[tuple[Level, ...], Field(min_length=2)]

    def fields_used(self):
        return (self.field,)

    def field_types(self):
        return {self.field: ("grade",)}

    def fraction(self, level: str) -> Decimal:
        for lv in self.levels:
            if lv.name == level:
                return lv.fraction
        raise KeyError(level)


class BonusRule(_Rule):
    type: Literal["bonus"]
    field: str
    per_event: Annotated[Decimal, Field(gt=0)]
    cap: Annotated[Decimal, Field(gt=0)]

    def fields_used(self):
        return (self.field,)

    def field_types(self):
        return {self.field: ("integer",)}


class VetoRule(_Rule):
    type: Literal["veto"]
    field: str
    action: Literal["fail", "cap"] = "fail"

    def fields_used(self):
        return (self.field,)

    def field_types(self):
        return {self.field: ("yes_no",)}


Rule = Annotated[
    Union[
        YesNoRule,
        RatioRule,
        CountTargetRule,
        DeductPerEventRule,
        ChecklistRule,
        GradedRule,
        BonusRule,
        VetoRule,
    ],
    Field(discriminator="type"),
]

RULE_TYPES = (
    "yes_no",
    "ratio",
    "count_target",
    "deduct_per_event",
    "checklist",
    "graded",
    "bonus",
    "veto",
)


# ---------------------------------------------------------------------- items


class Basis(Model):
    """A plan clause an item comes from: seed file prefix, clause, quoted target."""

    file: Annotated[str, Field(pattern=r"^\d{3}$")]
    clause: Annotated[str, Field(min_length=1)]
    quote: Annotated[str, Field(min_length=4)]


class AppliesTo(Model):
    groups: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def matches(self, group: str, tags: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
        if not self.groups and not self.tags:
            return True
        return group in self.groups or any(t in self.tags for t in tags)


class Item(Model):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    dimension: str
    title: str
    criterion: str
    points: Annotated[Decimal, Field(ge=0)] | None = None
    rule: Rule
    fields: Annotated[tuple[FieldSpec, ...], Field(min_length=1)]
    evidence: bool = False
    applies_to: AppliesTo = AppliesTo()
    na_allowed: bool = False
    misreport_penalty: Annotated[Decimal, Field(ge=0)] = Decimal(0)
    basis: Annotated[tuple[Basis, ...], Field(min_length=1)]

    @property
    def kind(self) -> Literal["scored", "bonus", "veto"]:
        if self.rule.type == "bonus":
            return "bonus"
        if self.rule.type == "veto":
            return "veto"
        return "scored"

    def field(self, key: str) -> FieldSpec:
        for f in self.fields:
            if f.key == key:
                return f
        raise KeyError(key)

    @property
    def max_points(self) -> Decimal:
        """What the item can contribute: P, or the bonus cap; 0 for a veto."""
        if self.rule.type == "bonus":
            return self.rule.cap
        return self.points or Decimal(0)


# -------------------------------------------------------------------- catalog


class Dimension(Model):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    name: str


class Component(Model):
    id: Annotated[str, Field(pattern=KEY_PATTERN)]
    name: str
    weight: Annotated[Decimal, Field(gt=0, le=1)]


class Bands(Model):
    """Lower bounds of the grades (on the rounded final score)."""

    优秀: Decimal = Decimal(90)
    良好: Decimal = Decimal(80)
    合格: Decimal = Decimal(60)

    @model_validator(mode="after")
    def _check(self) -> "Bands":
        if not (self.优秀 > self.良好 > self.合格 >= 0):
            raise ValueError("等级分数线须满足 优秀 > 良好 > 合格 ≥ 0")
        return self

    def grade_of(self, score: Decimal) -> str:
        if score >= self.优秀:
            return "优秀"
        if score >= self.良好:
            return "良好"
        if score >= self.合格:
            return "合格"
        return "不合格"

    def as_list(self) -> list[tuple[str, Decimal]]:
        return [("优秀", self.优秀), ("良好", self.良好), ("合格", self.合格)]


class Catalog(Model):
    year: Annotated[int, Field(ge=2000, le=2100)]
    title: str
    city: str
    issuer: str
    template_version: Annotated[int, Field(ge=1)] = 1
    groups: Annotated[tuple[str, ...], Field(min_length=1)]
    tags: tuple[str, ...] = ()
    bands: Bands = Bands()
    group_bands: dict[str, Bands] = {}
    excellence_quota: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.30")
    bonus_cap: Annotated[Decimal, Field(ge=0)] = Decimal(0)
    components: Annotated[tuple[Component, ...], Field(min_length=1)] = (
        Component(id="assessed", name="依法行政考核得分", weight=Decimal(1)),
    )
    tie_break: tuple[str, ...] = ()
    decimals: Literal[2] = 2
    dimensions: Annotated[tuple[Dimension, ...], Field(min_length=1)]
    items: Annotated[tuple[Item, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _cross_check(self) -> "Catalog":
        defects = catalog_defects(self)
        if defects:
            raise ValueError("\n".join(defects))
        return self

    # ---------------------------------------------------------------- lookups

    def item(self, item_id: str) -> Item:
        return self._items_by_id[item_id]

    @cached_property
    def _items_by_id(self) -> dict[str, Item]:
        return {i.id: i for i in self.items}

    @cached_property
    def dimension_names(self) -> dict[str, str]:
        return {d.id: d.name for d in self.dimensions}

    def bands_for(self, group: str) -> Bands:
        return self.group_bands.get(group, self.bands)

    def applicable_items(self, group: str, tags) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.applies_to.matches(group, tags))

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the catalog's canonical content (not of its YAML text: 0.30 and 0.3 hash alike)."""
        blob = json.dumps(self.model_dump(), ensure_ascii=False, sort_keys=True, default=_canonical)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> str:
    if isinstance(value, Decimal):
        return fmt_decimal(value)
    raise TypeError(type(value))


def catalog_defects(cat: Catalog) -> list[str]:
    """Cross-references the models cannot check on their own; each names its item."""
    out: list[str] = []
    dims = {d.id for d in cat.dimensions}
    if len(dims) != len(cat.dimensions):
        out.append("一级指标 id 重复")
    seen: set[str] = set()
    for item in cat.items:
        where = f"指标 {item.id}"
        if item.id in seen:
            out.append(f"{where}: id 重复")
        seen.add(item.id)
        if item.dimension not in dims:
            out.append(f"{where}: 一级指标 {item.dimension!r} 未定义")
        keys = [f.key for f in item.fields]
        if len(set(keys)) != len(keys):
            out.append(f"{where}: 字段 key 重复")
        by_key = {f.key: f for f in item.fields}
        for key, types in item.rule.field_types().items():
            spec = by_key.get(key)
            if spec is None:
                out.append(f"{where}: 规则 {item.rule.type} 引用的字段 {key!r} 未在 fields 中声明")
            elif spec.type not in types:
                out.append(
                    f"{where}: 规则 {item.rule.type} 要求字段 {key!r} 的类型为 {'/'.join(types)},实际为 {spec.type}"
                )
        if item.kind == "scored":
            if item.points is None or item.points <= 0:
                out.append(f"{where}: 计分指标的分值必须大于 0")
        elif item.points not in (None, Decimal(0)):
            out.append(f"{where}: {item.rule.type} 指标不设分值(加分上限写在规则的 cap 中)")
        rule = item.rule
        if rule.type == "graded":
            spec = by_key.get(rule.field)
            names = tuple(lv.name for lv in rule.levels)
            if len(set(names)) != len(names):
                out.append(f"{where}: 等级名称重复")
            if spec is not None and spec.type == "grade" and tuple(spec.choices) != names:
                out.append(f"{where}: 字段 {spec.key} 的 choices 与规则 levels 不一致")
        if rule.type in ("count_target", "deduct_per_event") and rule.cap is not None:
            if item.points is not None and rule.cap > item.points:
                out.append(f"{where}: 扣分上限 cap 大于分值")
        for g in item.applies_to.groups:
            if g not in cat.groups:
                out.append(f"{where}: applies_to 中的考核组 {g!r} 未在 groups 中声明")
        for t in item.applies_to.tags:
            if t not in cat.tags:
                out.append(f"{where}: applies_to 中的标签 {t!r} 未在 tags 中声明")
        if item.na_allowed and item.kind != "scored":
            out.append(f"{where}: 只有计分指标可以允许不适用")
    for dim in cat.dimensions:
        if not any(i.dimension == dim.id and i.kind == "scored" for i in cat.items):
            out.append(f"一级指标 {dim.id}: 没有计分指标")
    comp_ids = [c.id for c in cat.components]
    if len(set(comp_ids)) != len(comp_ids):
        out.append("components: id 重复")
    if "assessed" not in comp_ids:
        out.append("components: 必须包含 assessed(依法行政考核得分)")
    total = sum((c.weight for c in cat.components), Decimal(0))
    if total != 1:
        out.append(f"components: 权重之和为 {total},应为 1")
    for d in cat.tie_break:
        if d not in dims:
            out.append(f"tie_break: 一级指标 {d!r} 未定义")
    if len(set(cat.tie_break)) != len(cat.tie_break):
        out.append("tie_break: 一级指标重复")
    for g in cat.group_bands:
        if g not in cat.groups:
            out.append(f"group_bands: 考核组 {g!r} 未在 groups 中声明")
    return out


# -------------------------------------------------------------------- loading


class _ExactLoader(yaml.SafeLoader):
    """Safe YAML with exact decimals and no silently repeated keys."""


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    return Decimal(loader.construct_scalar(node).replace("_", ""))


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"重复的键 {key!r}", key_node.start_mark
            )
        seen[key] = 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _decimal)
_ExactLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _locate(raw: Any, loc: tuple) -> str:
    """Turn a pydantic error location into a reader's address, by item id."""
    if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
        try:
            item_id = raw["items"][loc[1]].get("id", f"#{loc[1] + 1}")
        except (KeyError, IndexError, TypeError, AttributeError):
            item_id = f"#{loc[1] + 1}"
        rest = ".".join(str(p) for p in loc[2:] if p not in RULE_TYPES)
        return f"指标 {item_id}" + (f" {rest}" if rest else "")
    return ".".join(str(p) for p in loc) or "目录"


_PYDANTIC_CN = {
    "extra_forbidden": "未知的键(请检查拼写)",
    "missing": "缺少必填项",
    "union_tag_invalid": "未知的规则类型 {tag!r}(可用: " + "、".join(RULE_TYPES) + ")",
    "union_tag_not_found": "规则缺少 type",
    "greater_than": "必须大于 {gt}",
    "greater_than_equal": "必须大于或等于 {ge}",
    "less_than": "必须小于 {lt}",
    "less_than_equal": "必须小于或等于 {le}",
    "string_pattern_mismatch": "格式不符合要求({pattern})",
    "string_too_short": "不能为空或过短",
    "too_short": "至少需要 {min_length} 项",
    "literal_error": "取值必须为 {expected}",
    "decimal_parsing": "不是数字",
    "decimal_type": "不是数字",
    "int_parsing": "不是整数",
    "int_type": "不是整数",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "string_type": "应为文字",
    "dict_type": "应为映射(键: 值)",
    "tuple_type": "应为列表",
    "model_type": "应为映射(键: 值)",
}


def _message_cn(err: dict) -> str:
    template = _PYDANTIC_CN.get(err["type"])
    if template is None:
        return err["msg"].removeprefix("Value error, ")
    try:
        return template.format(**(err.get("ctx") or {}))
    except (KeyError, IndexError):
        return template


def parse_catalog(raw: Any, source: str = "<catalog>") -> Catalog:
    if not isinstance(raw, dict):
        raise CatalogSyntaxError(f"考核指标目录 {source} 的顶层必须是映射(键: 值)")
    try:
        return Catalog.model_validate(raw)
    except ValidationError as exc:
        details: list[str] = []
        for err in exc.errors():
            msg = _message_cn(err)
            where = _locate(raw, tuple(err["loc"]))
            if not err["loc"]:
                details.extend(msg.splitlines())
            else:
                details.append(f"{where}: {msg}")
        raise CatalogError(f"考核指标目录 {source} 有 {len(details)} 处错误", details=details) from None


def load_catalog(path: str | Path) -> Catalog:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogSyntaxError(f"无法读取考核指标目录 {path}: {exc.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_ExactLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CatalogSyntaxError(f"考核指标目录 {path} 不是有效的 YAML: {exc}") from None
    return parse_catalog(raw, source=str(path))
