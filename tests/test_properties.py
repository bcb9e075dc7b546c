"""Invariants over whole years (hypothesis): order does not matter, a bad file hurts no one else."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import GOLDEN, values_by_unit, write_submissions
from kaohe import pipeline as P
from kaohe.outputs import result_row
from kaohe.registry import Registry, load_registry
from kaohe.review import load_components, load_review

SCORE_COLUMNS = ["status", "assessed", "weighted", "bonus", "final", "veto", "rate_d1", "rate_d2"]


@pytest.fixture(scope="module")
def year(mini_catalog, tmp_path_factory):
    registry = load_registry(GOLDEN / "registry.csv", mini_catalog)
    folder = tmp_path_factory.mktemp("prop")
    values = values_by_unit(GOLDEN / "values.csv")
    files = write_submissions(mini_catalog, registry, values, folder)
    reads = P.read_stage(files, mini_catalog, registry)
    review = load_review(GOLDEN / "review.csv")
    components = load_components(GOLDEN / "components.csv", mini_catalog, registry)
    return registry, reads, review, components, values, folder


def score(catalog, registry, reads, review, components):
    subs = P.parse_stage(reads, catalog, registry)
    intake = P.validate_stage(reads, subs, catalog, registry)
    reviewed, changes, _ = P.review_stage(review, intake, catalog, registry)
    results = P.rank_stage(P.score_stage(intake, reviewed, changes, components, catalog, registry), catalog)
    return {r.unit_id: result_row(r, catalog) for r in results}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_shuffling_files_and_registry_rows_changes_nothing(mini_catalog, year, seed):
    registry, reads, review, components, _, _ = year
    baseline = score(mini_catalog, registry, reads, review, components)
    rng = random.Random(seed)
    units = list(registry.units)
    rng.shuffle(units)
    shuffled_reads = list(reads)
    rng.shuffle(shuffled_reads)
    shuffled_review = list(review)
    rng.shuffle(shuffled_review)
    assert score(mini_catalog, Registry(tuple(units)), shuffled_reads, shuffled_review, components) == baseline


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(victim=st.sampled_from(["QX02", "QX04", "ZF03", "ZH01", "ZH04"]), how=st.sampled_from(["garbage", "n_gt_d", "text"]))
def test_one_rejected_file_changes_no_other_units_scores(mini_catalog, year, tmp_path_factory, victim, how):
    """Another unit's scores and rates are untouched (its rank and grade may move: one fewer ranked unit)."""
    registry, reads, review, components, values, _ = year
    baseline = score(mini_catalog, registry, reads, [r for r in review if r.unit_id != victim], components)
    folder = tmp_path_factory.mktemp("victim")
    if how == "garbage":
        path = folder / f"{victim}_x.xlsx"
        path.write_bytes(b"PK\x03\x04" + bytes(random.Random(1).randrange(256) for _ in range(500)))
    else:
        bad = dict(values[victim])
        if how == "n_gt_d":
            bad[("A02", "reviewed")] = 99
            bad[("A02", "total")] = 1
            bad.pop(("A02", "__na"), None), bad.pop(("A02", "__na_reason"), None)
        else:
            bad[("A03", "lectures")] = "两次"
        (path,) = write_submissions(mini_catalog, registry, {victim: bad}, folder)
    new_read = P.read_stage([path], mini_catalog, registry)[0]
    others = [r for r in reads if not r.file.startswith(victim)]
    after = score(mini_catalog, registry, others + [new_read], [r for r in review if r.unit_id != victim], components)
    assert after[victim]["status"] == "rejected"
    for unit_id, row in baseline.items():
        if unit_id != victim:
            assert {c: after[unit_id][c] for c in SCORE_COLUMNS} == {c: row[c] for c in SCORE_COLUMNS}, unit_id


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 5_000), workers=st.integers(1, 16), smallest=st.integers(1, 30), extra=st.integers(0, 100), shrink=st.booleans())
def test_batches_cover_every_item_once_in_order_within_bounds(n, workers, smallest, extra, shrink):
    largest = smallest + extra
    items = list(range(n))
    cut = P.batches(items, workers, smallest=smallest, largest=largest, shrink=shrink)
    assert [x for b in cut for x in b] == items
    sizes = [len(b) for b in cut]
    assert all(b for b in cut)
    assert all(smallest <= s <= largest for s in sizes[:-1]) and (not sizes or sizes[-1] <= largest)
    assert sizes == sorted(sizes, reverse=True)  # never a big batch after a small one
    if not shrink:  # equal batches but the last
        assert len(set(sizes[:-1])) <= 1
    elif n >= 4 * workers * largest:  # enough work: the largest batches first, the smallest last
        assert sizes[0] == largest and sizes[-1] <= smallest
    assert len(cut) <= -(-n // smallest)  # never more batches than the smallest size allows
    if not shrink and sizes and sizes[0] < largest:  # about four per worker, unless capped by largest
        assert len(cut) <= 4 * workers
