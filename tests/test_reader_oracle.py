"""kaohe's own reader (kaohe.xlsx) against openpyxl, the reference, on real workbooks.

Every input cell of every workbook must read to the same value, data type and
number format as openpyxl (``data_only=False``) gives: filled templates with
every field type, cells of every storage type a unit can produce (numbers,
percent formats, dates, booleans, errors, formulas, rich text), and the same
files re-saved by LibreOffice, a second office suite.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont

from kaohe import layout as L
from kaohe.reading import read_workbook
from kaohe.sample import filled_workbook
from tests.helpers import values_by_unit, write_submissions

GOLDEN = Path(__file__).parent / "golden"



def _oracle(path: Path, addresses: list[str]) -> dict[str, tuple]:
    wb = load_workbook(path, data_only=False)
    ws = wb[L.FORM_SHEET]
    out = {}
    for a in addresses:
        c = ws[a]
        out[a] = (c.value, c.data_type, c.number_format or "General")
    wb.close()
    return out


def _same(ours, theirs) -> bool:
    (v, t, f), (ov, ot, of) = ours, theirs
    if ot == "d" or isinstance(ov, (dt.datetime, dt.date, dt.time)):
        return t == "d" and f == of  # openpyxl converts to a datetime; both refuse a date
    if ot == "f":
        return t == "f" and isinstance(v, str) and v.startswith("=")
    if isinstance(ov, CellRichText):
        ov = str(ov)
    return (v, t, f) == (ov, ot, of) and type(v) is type(ov)


def _compare(files: list[Path], catalog, registry) -> int:
    n = 0
    for p in files:
        res = read_workbook(p, catalog, registry)
        assert not res.problems, [x.render() for x in res.problems]
        theirs = _oracle(p, list(res.cells))
        for a, cell in res.cells.items():
            ours = (cell.value, cell.data_type, cell.number_format)
            assert _same(ours, theirs[a]), (p.name, a, ours, theirs[a])
            n += 1
    return n


@pytest.fixture
def odd_workbooks(mini_catalog, registry, tmp_path):
    """Golden units' workbooks, plus one whose input cells hold every storage type."""
    values = values_by_unit(GOLDEN / "values.csv")
    some = {u: values[u] for u in ("QX02", "QX03", "ZF04", "ZH01")}
    folder = tmp_path / "src"
    files = write_submissions(mini_catalog, registry, some, folder)
    unit = registry.get("QX05")
    wb, lay = filled_workbook(mini_catalog, unit, {})
    ws = wb[L.FORM_SHEET]
    inputs = [a for b in lay.blocks for _, _, a in b.inputs()]
    odd = [
        (0.95, "0.00%"), (95, '0"%"'), (12, "General"), (12.5, "#,##0.00"), (dt.datetime(2025, 3, 1), "yyyy-mm-dd"),
        (True, "General"), ("=1+1", "General"), ("#N/A", "General"), ("９５％", "@"), ("  是 ", "General"),
        (CellRichText([TextBlock(InlineFont(b=True), "部分"), "加粗"]), "General"), (-0.0, "0.0"), (1e-7, "0.00E+00"),
        (45000, "[$-804]yyyy\"年\"m\"月\"d\"日\""), (3, '0" 件"'),
    ]
    assert len(inputs) >= len(odd)
    for a, (v, fmt) in zip(inputs, odd):
        ws[a].value = v
        ws[a].number_format = fmt
    path = folder / f"{unit.unit_id}_odd.xlsx"
    wb.save(path)
    return files + [path]


def test_reader_matches_openpyxl_on_every_input_cell(mini_catalog, registry, odd_workbooks):
    assert _compare(odd_workbooks, mini_catalog, registry) > 60


@pytest.mark.soffice
def test_reader_matches_openpyxl_after_a_libreoffice_resave(mini_catalog, registry, odd_workbooks, tmp_path):
    dst = tmp_path / "resaved"
    dst.mkdir()
    profile = tmp_path / "lo-profile"
    subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "xlsx", "--outdir", str(dst)]
        + [str(p) for p in odd_workbooks],
        check=True, capture_output=True, timeout=240,
    )
    files = sorted(dst.glob("*.xlsx"))
    assert len(files) == len(odd_workbooks)
    assert _compare(files, mini_catalog, registry) > 60


def test_bundled_year_reads_like_openpyxl(tmp_path):
    """The bundled 2025 submissions: every input cell as openpyxl reads it."""
    from kaohe.catalog import load_catalog
    from kaohe.paths import bundled
    from kaohe.registry import load_registry

    b = bundled(2025)
    cat = load_catalog(b.catalog)
    reg = load_registry(b.registry, cat)
    files = sorted(Path(b.submissions).glob("*.xlsx"))[:8]
    clean = []
    for p in files:
        if not read_workbook(p, cat, reg).problems:
            clean.append(p)
    assert len(clean) >= 6
    assert _compare(clean, cat, reg) > 300
