import os
import shutil

import pytest

from helpers import DATA
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


def pytest_collection_modifyitems(config, items):
    if shutil.which("soffice") is None:
        skip = pytest.mark.skip(reason="LibreOffice (soffice) is not installed")
        for item in items:
            if "soffice" in item.keywords:
                item.add_marker(skip)
