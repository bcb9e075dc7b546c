"""Templates as a unit receives them, and reading them back exactly (also after LibreOffice re-saves them)."""

import shutil
import subprocess
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from helpers import GOLDEN, values_by_unit, write_submissions
from kaohe import layout as L
from kaohe import pipeline as P
from kaohe.template import build_template, write_templates



def test_one_template_per_unit_with_only_its_items(mini_catalog, registry, tmp_path):
    paths = write_templates(mini_catalog, registry, tmp_path)
    assert len(paths) == len(registry)
    for unit, path in zip(registry, paths):
        wb = load_workbook(path)
        assert wb.sheetnames == [L.GUIDE_SHEET, L.FORM_SHEET, L.META_SHEET]
        ws = wb[L.FORM_SHEET]
        ids = {ws[f"A{b.first_row}"].value for b in L.layout(mini_catalog, unit).blocks}
        expected = {i.id for i in mini_catalog.applicable_items(unit.group, unit.tags)}
        assert ids == expected
        assert ws["B2"].value == unit.unit_name and ws["F2"].value == unit.unit_id


def test_inputs_unlocked_everything_else_protected(mini_catalog, registry):
    unit = registry.get("QX01")
    wb, lay = build_template(mini_catalog, unit)
    ws = wb[L.FORM_SHEET]
    assert ws.protection.sheet and ws.protection.password
    assert wb[L.GUIDE_SHEET].protection.sheet
    assert wb[L.META_SHEET].sheet_state == "veryHidden"
    inputs = {addr for b in lay.blocks for _, _, addr in b.inputs()} | {"B3", "F3"}
    for row in ws.iter_rows(min_row=1, max_row=lay.last_row, max_col=11):
        for c in row:
            if c.coordinate in inputs:
                assert c.protection.locked is False, c.coordinate
                assert c.fill.fgColor.rgb.endswith("FFF2CC")
            elif type(c).__name__ == "Cell":
                assert c.protection.locked is not False, c.coordinate


def test_dropdowns_and_bounds(mini_catalog, registry):
    unit = registry.get("QX01")
    wb, lay = build_template(mini_catalog, unit)
    ws = wb[L.FORM_SHEET]
    by_cell = {}
    for dv in ws.data_validations.dataValidation:
        for rng in dv.sqref.ranges:
            by_cell[rng.coord] = dv
    cell = {(b.item_id, k): a for b in lay.blocks for k, _, a in b.inputs()}
    assert by_cell[cell[("A01", "reported")]].formula1 == '"是,否"'
    assert by_cell[cell[("B02", "level")]].formula1 == '"好,较好,一般,差"'
    lectures = by_cell[cell[("A03", "lectures")]]
    assert (lectures.type, lectures.formula1, lectures.formula2) == ("whole", "0", "100")
    rate = by_cell[cell[("B03", "rate")]]
    assert (rate.type, rate.formula1, rate.formula2) == ("decimal", "0", "100")
    assert by_cell[cell[("A02", "__na")]].formula1 == '"是,否"'
    assert ("A01", "__evidence") in cell and ("A03", "__evidence") not in cell
    assert ("A02", "__na_reason") in cell and ("A01", "__na") not in cell


def test_fingerprint(mini_catalog, registry):
    unit = registry.get("ZF02")
    wb, lay = build_template(mini_catalog, unit)
    meta = {wb[L.META_SHEET].cell(row=r, column=1).value: wb[L.META_SHEET].cell(row=r, column=2).value for r in range(1, 8)}
    assert meta["year"] == "2025" and meta["unit_id"] == "ZF02"
    assert meta["catalog_hash"] == mini_catalog.content_hash
    assert meta["layout_digest"] == lay.digest


def _read(catalog, registry, folder):
    files = sorted(folder.glob("*.xlsx"))
    reads = P.read_stage(files, catalog, registry)
    subs = P.parse_stage(reads, catalog, registry)
    intake = P.validate_stage(reads, subs, catalog, registry)
    return {s.unit_id: s for s in subs}, intake


def test_roundtrip_values_and_cells(mini_catalog, registry, tmp_path):
    values = values_by_unit(GOLDEN / "values.csv")
    write_submissions(mini_catalog, registry, {"QX02": values["QX02"]}, tmp_path)
    subs, intake = _read(mini_catalog, registry, tmp_path)
    s = subs["QX02"]
    assert s.value("A02", "reviewed") == Decimal(7) and s.value("A02", "total") == Decimal(9)
    assert s.value("B03", "rate") == Decimal(95)
    e = s.entries[("B03", "rate")]
    assert e.sheet == L.FORM_SHEET and e.address.startswith("G") and "95%" in e.note
    assert all(p == [] for p in intake.problems.values())


@pytest.mark.soffice
def test_libreoffice_resave_reads_the_same(mini_catalog, registry, tmp_path):
    """A filled workbook opened and re-saved by LibreOffice still reads to the same values."""
    values = values_by_unit(GOLDEN / "values.csv")
    some = {u: values[u] for u in ("QX02", "QX03", "ZF04", "ZH01")}
    src = tmp_path / "src"
    write_submissions(mini_catalog, registry, some, src)
    dst = tmp_path / "resaved"
    dst.mkdir()
    profile = tmp_path / "lo-profile"
    subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "xlsx", "--outdir", str(dst)]
        + [str(p) for p in sorted(src.glob("*.xlsx"))],
        check=True, capture_output=True, timeout=180,
    )
    assert len(list(dst.glob("*.xlsx"))) == 4
    before, _ = _read(mini_catalog, registry, src)
    after, intake = _read(mini_catalog, registry, dst)
    assert all(p == [] for p in intake.problems.values()), intake.problems
    for u in some:
        assert {k: e.value for k, e in after[u].entries.items()} == {k: e.value for k, e in before[u].entries.items()}
