"""Capture what WeasyPrint (and kaohe.report) log while rendering: tests fail on any warning."""

import logging
from contextlib import contextmanager

import pytest

#: logged by WeasyPrint on machines without libharfbuzz-subset0: slower, same PDF (shared/STACK.md)
HARMLESS = ("Using fontTools instead of HarfBuzz-Subset",)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        if not any(h in record.getMessage() for h in HARMLESS):
            self.records.append(record)


@contextmanager
def captured(*names: str):
    """Collects every WARNING (or worse) the named loggers emit inside the block."""
    handler = _Collect()
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.level == logging.NOTSET or lg.level > logging.WARNING:
            lg.setLevel(logging.WARNING)
    try:
        yield handler.records
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)



def fail_on_warnings():
    """The body of a module's autouse fixture (``yield from fail_on_warnings()``): fails the test on
    any warning WeasyPrint or kaohe.report logs while it runs."""
    with captured("weasyprint", "kaohe.report") as records:
        yield
    if records:
        pytest.fail("warnings while rendering: " + "; ".join(f"{r.name} {r.levelname}: {r.getMessage()[:200]}" for r in records))
