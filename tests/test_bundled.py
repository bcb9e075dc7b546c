"""The bundled 2025 year must stay consistent with its catalog."""

from openpyxl import load_workbook

from kaohe import layout as L
from kaohe.catalog import load_catalog
from kaohe.paths import bundled
from kaohe.registry import load_registry

REGENERATE = (
    "the bundled submissions were made for another catalog: regenerate them with\n"
    "  kaohe sample --year 2025 --out /tmp/bund --seed 2025 --mistakes 2 --missing 2 "
    "&& cp /tmp/bund/submissions/*.xlsx inputs/2025/submissions/"
)


def test_bundled_submissions_match_the_catalog():
    b = bundled(2025)
    catalog = load_catalog(b.catalog)
    registry = load_registry(b.registry, catalog)
    files = sorted(b.submissions.glob("*.xlsx"))
    assert len(files) == 42
    for f in files:
        wb = load_workbook(f, read_only=True)
        meta = {r[0]: r[1] for r in wb[L.META_SHEET].iter_rows(values_only=True)}
        wb.close()
        assert meta["catalog_hash"] == catalog.content_hash, f"{f.name}: {REGENERATE}"
        assert meta["unit_id"] in registry


def test_bundled_review_and_components_load():
    from kaohe.review import load_components, load_review

    b = bundled(2025)
    catalog = load_catalog(b.catalog)
    registry = load_registry(b.registry, catalog)
    assert len(load_review(b.review)) == 4
    comps = load_components(b.components, catalog, registry)
    assert set(comps) == {u.unit_id for u in registry}
