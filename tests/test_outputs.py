"""Outputs are safe: unit text never becomes a formula, in xlsx or CSV."""

import csv

from openpyxl import load_workbook

from helpers import GOLDEN, run_stages, values_by_unit, write_submissions
from kaohe import layout as L
from kaohe.outputs import clean_text, csv_safe, write_items_csv, write_results_csv, write_results_xlsx
from kaohe.registry import load_registry
from kaohe.review import load_components
from kaohe.sample import filled_workbook
from kaohe.template import template_filename

HOSTILE = '=HYPERLINK("http://evil.example","点击")'


def test_unit_text_is_never_a_formula(mini_catalog, tmp_path):
    registry = load_registry(GOLDEN / "registry.csv", mini_catalog)
    values = values_by_unit(GOLDEN / "values.csv")
    unit = registry.get("QX02")
    wb, lay = filled_workbook(mini_catalog, unit, values["QX02"])
    ev = next(a for b in lay.blocks if b.item_id == "A01" for k, _, a in b.inputs() if k == L.EVIDENCE_KEY)
    cell = wb[L.FORM_SHEET][ev]
    cell.value = HOSTILE
    cell.data_type = "s"  # typed as text ('=...), not a formula
    folder = tmp_path / "subs"
    folder.mkdir()
    wb.save(folder / template_filename(unit, 2025))
    others = {u: v for u, v in values.items() if u != "QX02"}
    write_submissions(mini_catalog, registry, others, folder)
    results, intake = run_stages(mini_catalog, registry, sorted(folder.glob("*.xlsx")), components=load_components(GOLDEN / "components.csv", mini_catalog, registry))
    assert intake.file_state[template_filename(unit, 2025)] == "scored"
    write_results_xlsx(tmp_path / "r.xlsx", results, mini_catalog, intake.problems)
    write_items_csv(tmp_path / "items.csv", results)
    write_results_csv(tmp_path / "results.csv", results, mini_catalog)
    ws = load_workbook(tmp_path / "r.xlsx")["指标得分明细"]
    hits = [c for row in ws.iter_rows() for c in row if c.value == HOSTILE]
    assert hits and all(c.data_type == "s" for c in hits)
    assert not any(c.data_type == "f" for sheet in load_workbook(tmp_path / "r.xlsx") for row in sheet.iter_rows() for c in row)
    with (tmp_path / "items.csv").open(encoding="utf-8-sig") as fh:
        evidence = [r["evidence"] for r in csv.DictReader(fh) if r["unit_id"] == "QX02" and r["item_id"] == "A01"]
    assert evidence == ["'" + HOSTILE]


def test_clean_text_and_csv_safe():
    assert clean_text("a\x00b\x1bc") == "abc"
    long = "长" * 5000
    assert len(clean_text(long)) == 1000 and clean_text(long).endswith("…")
    for s in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx"):
        assert csv_safe(s).startswith("'")
    assert csv_safe("正常文字") == "正常文字" and csv_safe(3) == 3
