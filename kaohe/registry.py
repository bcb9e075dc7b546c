"""The registry (考核对象名录): one row per assessed unit.

Columns ``unit_id, unit_name, group, tags``; tags are separated by ``;``
(``；`` and ``、`` are accepted too, as offices type them). CSV (UTF-8, with or
without BOM) or XLSX (first sheet).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from kaohe.catalog import Catalog
from kaohe.errors import RegistryError
from kaohe.tables import read_rows

COLUMNS = ("unit_id", "unit_name", "group", "tags")
UNIT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_TAG_SPLIT = re.compile(r"[;；、,,]")


@dataclass(frozen=True)
class Unit:
    unit_id: str
    unit_name: str
    group: str
    tags: frozenset[str]

    @property
    def tags_text(self) -> str:
        return ";".join(sorted(self.tags))


@dataclass(frozen=True)
class Registry:
    units: tuple[Unit, ...]
    source: str = ""

    def __post_init__(self):
        object.__setattr__(self, "_by_id", {u.unit_id: u for u in self.units})

    def get(self, unit_id: str) -> Unit | None:
        return self._by_id.get(unit_id)  # type: ignore[attr-defined]

    def __contains__(self, unit_id: str) -> bool:
        return unit_id in self._by_id  # type: ignore[attr-defined]

    def __iter__(self):
        return iter(self.units)

    def __len__(self) -> int:
        return len(self.units)


def _clean(text: object) -> str:
    if text is None:
        return ""
    return unicodedata.normalize("NFKC", str(text)).strip()


def parse_registry(rows: list[list[str]], source: str, catalog: Catalog | None = None) -> Registry:
    if not rows:
        raise RegistryError(f"考核对象名录 {source} 为空")
    header = [_clean(h) for h in rows[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise RegistryError(
            f"考核对象名录 {source} 缺少列: {', '.join(missing)}",
            details=[f"表头应为: {','.join(COLUMNS)}"],
        )
    idx = {c: header.index(c) for c in COLUMNS}
    units: list[Unit] = []
    details: list[str] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(_clean(c) for c in row):
            continue
        cell = lambda c: _clean(row[idx[c]]) if idx[c] < len(row) else ""  # noqa: E731
        uid, name, group = cell("unit_id"), cell("unit_name"), cell("group")
        tags = frozenset(t.strip() for t in _TAG_SPLIT.split(cell("tags")) if t.strip())
        where = f"第 {n} 行"
        if not UNIT_ID.match(uid):
            details.append(f"{where}: 单位代码 {uid!r} 无效(字母、数字、-、_,不超过32位)")
            continue
        if uid in seen:
            details.append(f"{where}: 单位代码 {uid} 与第 {seen[uid]} 行重复")
            continue
        seen[uid] = n
        if not name:
            details.append(f"{where}: 单位 {uid} 缺少单位名称")
        if catalog is not None:
            if group not in catalog.groups:
                details.append(f"{where}: 单位 {uid} 的考核组 {group!r} 不在指标目录的考核组中({'、'.join(catalog.groups)})")
            unknown = sorted(t for t in tags if t not in catalog.tags)
            if unknown:
                details.append(f"{where}: 单位 {uid} 的标签 {'、'.join(unknown)} 未在指标目录中声明")
        units.append(Unit(uid, name, group, tags))
    if details:
        raise RegistryError(f"考核对象名录 {source} 有 {len(details)} 处错误", details=details)
    if not units:
        raise RegistryError(f"考核对象名录 {source} 没有任何单位")
    return Registry(tuple(units), source)


def load_registry(path: str | Path, catalog: Catalog | None = None) -> Registry:
    path = Path(path)
    return parse_registry(read_rows(path, "考核对象名录", RegistryError), str(path), catalog)


def write_registry(registry: Registry | list[Unit], path: str | Path) -> None:
    units = registry.units if isinstance(registry, Registry) else registry
    with Path(path).open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for u in units:
            w.writerow([u.unit_id, u.unit_name, u.group, u.tags_text])
