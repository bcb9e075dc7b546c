"""kaohe.xlsx's number-format facts are openpyxl's, without importing openpyxl in the readers.

The reader gives values the way openpyxl gives them (``tests/test_reader_oracle.py``); the two
facts it needs from openpyxl — Excel's built-in number formats and which formats make a number a
date — are kept in kaohe.xlsx so that a reader's fork server does not import openpyxl (and numpy
with it). These tests hold the copies equal to openpyxl's own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl.styles import numbers as openpyxl_numbers

from kaohe import xlsx as X


def test_builtin_formats_are_openpyxls():
    assert X.BUILTIN_FORMATS == openpyxl_numbers.BUILTIN_FORMATS


FORMATS = [
    *openpyxl_numbers.BUILTIN_FORMATS.values(),
    'yyyy"年"m"月"d"日"',
    "yyyy/m/d;@",
    '[$-F800]dddd\\,\\ mmmm\\ dd\\,\\ yyyy',
    "[DBNum1][$-804]yyyy\"年\"m\"月\"d\"日\"",
    "0.00_ ",
    "0_);[Red]\\(0\\)",
    "[Red]0",
    "[h]:mm:ss",
    "[mm]:ss",
    "[ss].00",
    "#,##0;[Red]-#,##0",
    '"days" 0',
    "\\d0",
    "_d0",
    "0;0;0;@\"d\"",
    "[>=100]0;[Red]0",
    "General",
    "",
    "@",
    "0%",
]


def test_is_date_format_agrees_on_known_formats():
    for fmt in FORMATS:
        assert X.is_date_format(fmt) is bool(openpyxl_numbers.is_date_format(fmt)), fmt


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet='0#.,;%@"[]$-_\\ hmsdyHMSDY年月日ERed>=<AMP/:*()?', max_size=24))
def test_is_date_format_agrees_on_any_format(fmt):
    X.is_date_format.cache_clear()
    assert X.is_date_format(fmt) is bool(openpyxl_numbers.is_date_format(fmt))


def test_reading_a_workbook_does_not_import_openpyxl():
    """What a reader's fork server preloads, and reading and parsing a filled workbook, leave
    openpyxl (and numpy) unimported: checked in a fresh interpreter, as this one has imported it."""
    from kaohe.paths import bundled

    b = bundled(2025)
    path = sorted(b.submissions.glob("QX01_*.xlsx"))[0]
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import importlib
        from multiprocessing import forkserver
        from kaohe.isolation import _context
        _context()  # sets what the readers' fork server preloads
        preload = [m for m in forkserver._forkserver._preload_modules if m != "__main__"]
        assert "kaohe.reading" in preload, preload
        for m in preload:
            importlib.import_module(m)
        from kaohe.catalog import load_catalog
        from kaohe.registry import load_registry
        from kaohe.submission import ingest_file
        catalog = load_catalog(Path({str(b.catalog)!r}))
        registry = load_registry(Path({str(b.registry)!r}), catalog)
        r = ingest_file(Path({str(path)!r}), catalog, registry)
        assert r.unit_id == "QX01" and r.submission is not None, r.problems
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("openpyxl", "numpy", "pandas")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
