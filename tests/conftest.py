import os
import shutil

import pytest

from helpers import DATA, GOLDEN, values_by_unit
from kaohe.catalog import load_catalog

import tempfile

# Prefect keeps its state in PREFECT_HOME: tests use a throwaway one
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="kaohe-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@pytest.fixture(scope="session")
def mini_catalog():
    return load_catalog(DATA / "mini_catalog.yaml")


@pytest.fixture(scope="session")
def registry(mini_catalog):
    """The golden year's registry (tests/golden/registry.csv) over the mini catalog."""
    from kaohe.registry import load_registry

    return load_registry(GOLDEN / "registry.csv", mini_catalog)


@pytest.fixture(scope="session")
def values():
    """The golden year's input values by unit (tests/golden/values.csv)."""
    return values_by_unit(GOLDEN / "values.csv")


def pytest_collection_modifyitems(config, items):
    if shutil.which("soffice") is None:
        skip = pytest.mark.skip(reason="LibreOffice (soffice) is not installed")
        for item in items:
            if "soffice" in item.keywords:
                item.add_marker(skip)
