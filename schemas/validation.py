"""Stage 3, validate: pandera schemas built from the catalog, run lazily.

The frame has one row per submission (index: file name) and, per item,
``<item>.<field>`` columns holding parsed values (Decimal or str), the
pseudo-fields ``<item>.__na``, ``<item>.__na_reason``, ``<item>.__evidence``
and ``<item>.__applies`` (whether the item is in the unit's template).

Every check is named ``<code>|<item>|<field>``, so each pandera failure case
maps back to one cell of one workbook. A cell that already failed parsing is
not reported again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from kaohe.catalog import Catalog, FieldSpec, Item
from kaohe.errors import Code, Problem
from kaohe.layout import EVIDENCE_KEY, NA_KEY, PSEUDO_SPECS, REASON_KEY, field_hint, fmt_decimal
from kaohe.registry import Registry
from kaohe.rules import MissingValue, apply_rule
from kaohe.submission import Submission

APPLIES = "__applies"
PHONE = re.compile(r"^[0-9+()\-\s转]{5,30}$")


def col(item_id: str, key: str) -> str:
    return f"{item_id}.{key}"


#: check name → what is wrong, in Chinese (pandera reports the name)
MESSAGES: dict[str, str] = {}


def _named(code: Code, item_id: str, key: str, message: str) -> str:
    name = f"{code.value}|{item_id}|{key}"
    MESSAGES[name] = message
    return name


# ------------------------------------------------------------- fixed columns


#: The fixed columns every submission has, whatever the catalog says. An object-API schema, not
#: a DataFrameModel: pandera turns a model into a schema by probing its optional backends, and
#: with dask installed (kaohe's own dask and test extras) that probe imports dask.dataframe,
#: ~0.5 s of every run's CPU for four columns.
IDENTITY = pa.DataFrameSchema(
    {
        "file": pa.Column(str, unique=True),
        "unit_id": pa.Column(str, pa.Check.str_matches(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")),
        "filler": pa.Column(str, pa.Check.str_length(max_value=50)),
        "phone": pa.Column(str, pa.Check(lambda v: v == "" or bool(PHONE.match(v)), element_wise=True, name="phone_format"), nullable=True),
    },
    strict=True,
)


def identity_problems(subs: list[Submission]) -> dict[str, list[Problem]]:
    """Malformed contact cells, per file (several files for one unit: kaohe.pipeline.duplicate_files)."""
    out: dict[str, list[Problem]] = {s.file: [] for s in subs}
    if not subs:
        return out
    frame = pd.DataFrame(
        {
            "file": [s.file for s in subs],
            "unit_id": [s.unit_id for s in subs],
            "filler": [s.identity.get("filler", "") for s in subs],
            "phone": [s.identity.get("phone", "") for s in subs],
        }
    )
    try:
        IDENTITY.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        for _, fc in exc.failure_cases.iterrows():
            idx = fc["index"]
            if pd.isna(idx):
                continue
            sub = subs[int(idx)]
            column = fc["column"]
            if column == "phone":
                out[sub.file].append(
                    Problem(Code.NOT_A_NUMBER, sub.file, f"联系电话“{fc['failure_case']}”格式不正确", "电话号码,如 0812-1234567", "自评表", "F3", field="联系电话")
                )
            elif column == "filler":
                out[sub.file].append(Problem(Code.TEXT_TOO_LONG, sub.file, "填报人超过 50 字", "填报人姓名", "自评表", "B3", field="填报人"))
    return out


# --------------------------------------------------------- catalog columns


def _bound_checks(item: Item, spec: FieldSpec) -> list[pa.Check]:
    checks = []
    if spec.type in ("integer", "decimal", "percent"):
        lo, hi = spec.lower, spec.upper
        if lo is not None:
            checks.append(
                pa.Check(lambda v, lo=lo: v >= lo, element_wise=True, ignore_na=True, name=_named(Code.BELOW_MIN, item.id, spec.key, f"不得小于 {fmt_decimal(lo)}{spec.unit}"))
            )
        if hi is not None:
            checks.append(
                pa.Check(lambda v, hi=hi: v <= hi, element_wise=True, ignore_na=True, name=_named(Code.ABOVE_MAX, item.id, spec.key, f"不得大于 {fmt_decimal(hi)}{spec.unit}"))
            )
    return checks


def _active(df: pd.DataFrame, item: Item) -> pd.Series:
    """Rows where the item is in the template and not marked 不适用."""
    applies = df[col(item.id, APPLIES)].astype(bool)
    if item.na_allowed:
        return applies & (df[col(item.id, NA_KEY)] != "是")
    return applies


def _required_check(item: Item, spec: FieldSpec) -> pa.Check:
    c = col(item.id, spec.key)
    return pa.Check(
        lambda df: ~(_active(df, item) & df[c].isna()),
        ignore_na=False,
        name=_named(Code.REQUIRED, item.id, spec.key, "未填写"),
    )


def _row_values(row: pd.Series, item: Item) -> dict:
    return {f.key: (None if pd.isna(row[col(item.id, f.key)]) else row[col(item.id, f.key)]) for f in item.fields}


def _claims_points(row: pd.Series, item: Item) -> bool:
    try:
        out = apply_rule(item, _row_values(row, item))
    except (MissingValue, KeyError, ValueError, ArithmeticError, TypeError):
        return False  # the missing or invalid value is reported by its own check
    return out.score > 0 or out.bonus > 0


def _evidence_check(item: Item) -> pa.Check:
    ev = col(item.id, EVIDENCE_KEY)

    def check(df: pd.DataFrame) -> pd.Series:
        suspect = _active(df, item) & df[ev].isna()
        ok = pd.Series(True, index=df.index)
        for idx in df.index[suspect]:
            ok[idx] = not _claims_points(df.loc[idx], item)
        return ok

    return pa.Check(check, ignore_na=False, name=_named(Code.EVIDENCE_REQUIRED, item.id, EVIDENCE_KEY, ":主张得分但未填写佐证材料"))


def _ratio_check(item: Item) -> pa.Check:
    n, d = col(item.id, item.rule.numerator), col(item.id, item.rule.denominator)

    def check(df: pd.DataFrame) -> pd.Series:
        both = df[n].notna() & df[d].notna()
        return pd.Series(
            [not (nb and a > b) for nb, a, b in zip(both, df[n], df[d])], index=df.index, dtype=bool
        )

    label_d = item.field(item.rule.denominator).label
    return pa.Check(check, ignore_na=False, name=_named(Code.NUMERATOR_GT_DENOMINATOR, item.id, item.rule.numerator, f"大于「{label_d}」"))


def _na_checks(item: Item) -> list[pa.Check]:
    na, reason = col(item.id, NA_KEY), col(item.id, REASON_KEY)
    fields = [col(item.id, f.key) for f in item.fields]
    marked = lambda df: df[col(item.id, APPLIES)].astype(bool) & (df[na] == "是")  # noqa: E731
    return [
        pa.Check(lambda df: ~(marked(df) & df[reason].isna()), ignore_na=False, name=_named(Code.NA_REASON_REQUIRED, item.id, REASON_KEY, ":选择不适用但未填写理由")),
        pa.Check(
            lambda df: ~(marked(df) & df[fields].notna().any(axis=1)),
            ignore_na=False,
            name=_named(Code.NA_WITH_VALUES, item.id, NA_KEY, ":选择不适用但又填写了数值"),
        ),
    ]


_SCHEMAS: dict[str, pa.DataFrameSchema] = {}


def build_schema(catalog: Catalog) -> pa.DataFrameSchema:
    """The catalog's schema, built once per catalog content."""
    schema = _SCHEMAS.get(catalog.content_hash)
    if schema is None:
        schema = _SCHEMAS[catalog.content_hash] = _build_schema(catalog)
    return schema


def _build_schema(catalog: Catalog) -> pa.DataFrameSchema:
    # Frame-wide checks say ignore_na=False: each one handles missing values
    # itself, and with pandera's default it computes ``isna()`` over the whole
    # frame (every column, every unit) once per check — quadratic in practice,
    # 70 % of validation at 300 units. The default could only matter for a row
    # with every column missing, which cannot exist (the ``applies`` columns
    # are booleans).
    columns: dict[str, pa.Column] = {}
    checks: list[pa.Check] = []
    for item in catalog.items:
        columns[col(item.id, APPLIES)] = pa.Column(bool)
        for spec in item.fields:
            columns[col(item.id, spec.key)] = pa.Column(object, checks=_bound_checks(item, spec), nullable=True)
            if spec.required:
                checks.append(_required_check(item, spec))
        for key in (NA_KEY, REASON_KEY, EVIDENCE_KEY):
            columns[col(item.id, key)] = pa.Column(object, nullable=True)
        if item.rule.type == "ratio" and item.rule.numerator is not None:
            checks.append(_ratio_check(item))
        if item.evidence and item.kind != "veto":
            checks.append(_evidence_check(item))
        if item.na_allowed:
            checks.extend(_na_checks(item))
    return pa.DataFrameSchema(columns, checks=checks, strict=True, name=f"catalog {catalog.year}")


def _value_columns(catalog: Catalog) -> tuple[list[str], list[str], dict[tuple[str, str], int]]:
    """The frame's columns: the ``applies`` ones (bool), the value ones (object) and, for each
    (item, field) of an entry, its value column's position."""
    applies = [col(item.id, APPLIES) for item in catalog.items]
    keys = [(item.id, key) for item in catalog.items for key in [f.key for f in item.fields] + [NA_KEY, REASON_KEY, EVIDENCE_KEY]]
    return applies, [col(i, k) for i, k in keys], {k: j for j, k in enumerate(keys)}


def submissions_frame(subs: list[Submission], catalog: Catalog, registry: Registry) -> pd.DataFrame:
    """One row per submission, the schema's columns, values as parsed (Decimal or str; None where
    a unit's template has no such cell or the cell is empty, never NaN).

    Built as two blocks, not column by column: the units of one template have their entries in
    the same order, so each unit's values go into its row of one object array in one step (a
    Series per column and a lookup per column and unit took ~0.1 s of the serial validation
    at 1,000 units)."""
    applies_cols, value_cols, position = _value_columns(catalog)
    n = len(subs)
    index = pd.Index([s.file for s in subs], dtype=object)
    item_index = {item.id: k for k, item in enumerate(catalog.items)}
    applies = np.zeros((n, len(applies_cols)), dtype=bool)
    rows: dict[tuple, np.ndarray] = {}
    for i, s in enumerate(subs):
        unit = registry.get(s.unit_id)
        key = (unit.group, unit.tags)
        row = rows.get(key)
        if row is None:
            row = rows[key] = np.zeros(len(applies_cols), dtype=bool)
            row[[item_index[it.id] for it in catalog.applicable_items(unit.group, unit.tags)]] = True
        applies[i] = row
    values = np.full((n, len(value_cols)), None, dtype=object)
    #: per order of entry keys (one per template), where each entry's value goes
    places: dict[tuple, tuple[np.ndarray, np.ndarray | None]] = {}
    for i, s in enumerate(subs):
        order = tuple(s.entries)
        found = places.get(order)
        if found is None:
            at = [position.get(k, -1) for k in order]
            keep = np.array([j >= 0 for j in at], dtype=bool)
            found = places[order] = (np.array([j for j in at if j >= 0], dtype=np.intp), None if keep.all() else keep)
        cols, keep = found
        vals = np.empty(len(order), dtype=object)  # element by element: a value is never split or converted
        vals[:] = [e.value for e in s.entries.values()]
        values[i, cols] = vals if keep is None else vals[keep]
    frame = pd.concat(
        [pd.DataFrame(applies, index=index, columns=applies_cols, copy=False), pd.DataFrame(values, index=index, columns=value_cols, dtype=object, copy=False)],
        axis=1,
    )
    return frame[list(build_schema(catalog).columns)]


@dataclass(frozen=True)
class _Failure:
    file: str
    code: Code
    item_id: str
    key: str


def _failures(exc: pa.errors.SchemaErrors) -> list[_Failure]:
    out = []
    fc = exc.failure_cases
    for _, r in fc.iterrows():
        check = str(r["check"])
        if "|" not in check or pd.isna(r["index"]):
            raise RuntimeError(f"unexpected schema failure: {r.to_dict()}")  # a bug in the schema, not the unit's
        code, item_id, key = check.split("|", 2)
        out.append(_Failure(str(r["index"]), Code(code), item_id, key))
    return out


def _not_geopandas(pd_dtype) -> bool:
    return False


def _no_geopandas_probe() -> None:
    """pandera's pandas engine (0.35) asks of every column's dtype whether it is geopandas'
    GeometryDtype by importing geopandas; where geopandas is not installed, the failed import is
    not remembered and searches sys.path again each time (~0.1 ms, 343 columns: ~20 % of
    validating 1,000 units). Without geopandas the answer is always no: given once."""
    from importlib.util import find_spec

    from pandera.engines import pandas_engine

    if find_spec("geopandas") is None and callable(getattr(pandas_engine, "is_geopandas_dtype", None)):
        pandas_engine.is_geopandas_dtype = _not_geopandas


_no_geopandas_probe()


def prepare(catalog: Catalog) -> None:
    """Pay validation's one-time costs ahead (kaohe.pipeline does it while the readers work):
    the catalog's schema, and pandera's first use, which probes its optional backends and
    imports its validators (~0.5-1 s on a cold process). Changes no result."""
    build_schema(catalog)
    identity_problems([Submission("", "", "")])  # a failing row: the whole lazy path, errors included


def validate_submissions(subs: list[Submission], catalog: Catalog, registry: Registry) -> dict[str, list[Problem]]:
    """All problems per file: parse problems, identity problems and every schema failure."""
    problems: dict[str, list[Problem]] = {s.file: list(s.problems) for s in subs}
    for file, extra in identity_problems(subs).items():
        problems[file].extend(extra)
    if not subs:
        return problems
    schema = build_schema(catalog)
    frame = submissions_frame(subs, catalog, registry)
    try:
        schema.validate(frame, lazy=True)
        failures: list[_Failure] = []
    except pa.errors.SchemaErrors as exc:
        failures = _failures(exc)
    by_file = {s.file: s for s in subs}
    seen: set[tuple] = set()
    for f in failures:
        sub = by_file[f.file]
        entry = sub.entries.get((f.item_id, f.key))
        if entry is None or entry.rejected:
            continue  # not in this unit's template, or already reported by the parser
        key = (f.file, f.code, f.item_id, f.key)
        if key in seen:
            continue
        seen.add(key)
        item = catalog.item(f.item_id)
        spec = PSEUDO_SPECS.get(f.key) or item.field(f.key)
        problems[f.file].append(
            Problem(
                f.code,
                f.file,
                f"{item.title}「{entry.label}」{MESSAGES[f'{f.code.value}|{f.item_id}|{f.key}']}",
                expected=_expected(f.code, spec),
                sheet=entry.sheet,
                cell=entry.address,
                item_id=f.item_id,
                field=entry.label,
                value=entry.raw[:100],
            )
        )
    return problems


def _expected(code: Code, spec: FieldSpec) -> str:
    return {
        Code.NUMERATOR_GT_DENOMINATOR: "分子不大于分母",
        Code.EVIDENCE_REQUIRED: "列明佐证材料名称、文号或链接",
        Code.NA_REASON_REQUIRED: "填写不适用的理由",
        Code.NA_WITH_VALUES: "不适用时不填写数值;如适用请选择“否”",
    }.get(code, field_hint(spec))
