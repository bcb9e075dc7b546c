"""The office's own tables (registry, review sheet, components): CSV (UTF-8, BOM or not) or XLSX."""

from __future__ import annotations

import csv
from pathlib import Path

from kaohe.errors import KaoheError


def read_rows(path: Path, what: str, error: type[KaoheError]) -> list[list[str]]:
    """Every row of the file (XLSX: its first sheet) as text; `error` names `what` when it cannot be read."""
    if not path.is_file():
        raise error(f"找不到{what} {path}")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        try:
            return [["" if v is None else str(v) for v in row] for row in wb.worksheets[0].iter_rows(values_only=True)]
        finally:
            wb.close()
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return list(csv.reader(fh))
    except UnicodeDecodeError:
        raise error(f"{what} {path} 不是 UTF-8 编码的 CSV,请另存为“CSV UTF-8”") from None
