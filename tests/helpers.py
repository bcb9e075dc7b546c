"""Test helpers: build real workbooks from value tables and run the pure stages."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from kaohe import pipeline as P
from kaohe.catalog import Catalog
from kaohe.registry import Registry
from kaohe.review import ReviewRow
from kaohe.sample import filled_workbook
from kaohe.template import template_filename

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
GOLDEN = ROOT / "tests" / "golden"


def typed(text: str) -> Any:
    """A value as Excel stores what a clerk typed: numbers become numbers, 95% a percent cell."""
    t = text.strip()
    if re.fullmatch(r"-?\d+", t):
        return int(t)
    if re.fullmatch(r"-?\d+\.\d+", t):
        return float(t)
    if re.fullmatch(r"-?\d+(\.\d+)?%", t):
        return ("pct", float(t[:-1]) / 100)
    return text


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def values_by_unit(path: Path) -> dict[str, dict[tuple[str, str], Any]]:
    out: dict[str, dict] = defaultdict(dict)
    for row in read_csv(path):
        out[row["unit_id"]][(row["item_id"], row["field"])] = typed(row["value"])
    return dict(out)


def write_submissions(catalog: Catalog, registry: Registry, values: dict[str, dict], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for unit_id, vals in values.items():
        unit = registry.get(unit_id)
        wb, _ = filled_workbook(catalog, unit, vals)
        path = folder / template_filename(unit, catalog.year)
        wb.save(path)
        paths.append(path)
    return sorted(paths)


def run_stages(catalog: Catalog, registry: Registry, files: list[Path], review_rows: list[ReviewRow] | None = None, components: dict | None = None):
    """The flow's stage order, without Prefect (the e2e test runs the real flow)."""
    reads = P.read_stage(files, catalog, registry)
    subs = P.parse_stage(reads, catalog, registry)
    intake = P.validate_stage(reads, subs, catalog, registry)
    reviewed, changes, notes = P.review_stage(review_rows or [], intake, catalog, registry)
    results = P.rank_stage(P.score_stage(intake, reviewed, changes, components or {}, catalog, registry), catalog)
    return results, intake


def fake_run(out: Path, year: int, run_id: str, finals: dict[str, str]) -> Path:
    """A run folder as kaohe run writes it (manifest + results.csv), for the archive tests."""
    run = out / str(year) / run_id
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(
        json.dumps({"year": year, "run_id": run_id, "catalog_hash": "c" * 64, "code_version": "0.1.0",
                    "units": {"scored": len(finals), "missing": 0, "rejected": 0}}), encoding="utf-8")
    lines = ["unit_id,unit_name,group,status,assessed,weighted,bonus,final,rank,grade,veto"]
    for n, (u, f) in enumerate(sorted(finals.items(), key=lambda kv: -float(kv[1])), start=1):
        lines.append(f"{u},单位{u},区县政府,scored,{f},{f},0.00,{f},{n},良好,")
    (run / "results.csv").write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return run


def scale_year(units: int, seed: int):
    """N realistic scored results without workbooks: ``bench/scale_docs.build_year``."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import scale_docs
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return scale_docs.build_year(units, seed=seed)
