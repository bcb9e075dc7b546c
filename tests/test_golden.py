"""The golden year: 17 units whose results were computed by hand (tests/golden/WORKED.md)."""

from fractions import Fraction

import pytest

from helpers import GOLDEN, read_csv, run_stages, values_by_unit, write_submissions
from kaohe.numbers import fmt2
from kaohe.outputs import result_row
from kaohe.registry import load_registry
from kaohe.review import load_components, load_review


@pytest.fixture(scope="module")
def golden(mini_catalog, tmp_path_factory):
    registry = load_registry(GOLDEN / "registry.csv", mini_catalog)
    folder = tmp_path_factory.mktemp("golden") / "submissions"
    files = write_submissions(mini_catalog, registry, values_by_unit(GOLDEN / "values.csv"), folder)
    results, intake = run_stages(
        mini_catalog,
        registry,
        files,
        load_review(GOLDEN / "review.csv"),
        load_components(GOLDEN / "components.csv", mini_catalog, registry),
    )
    return {r.unit_id: r for r in results}, intake


COLUMNS = ["unit_name", "group", "status", "assessed", "weighted", "bonus", "final", "rank", "grade", "veto", "rate_d1", "rate_d2"]


@pytest.mark.parametrize("expected", read_csv(GOLDEN / "expected_results.csv"), ids=lambda r: r["unit_id"])
def test_unit_result_matches_hand_computation(golden, mini_catalog, expected):
    results, _ = golden
    row = result_row(results[expected["unit_id"]], mini_catalog)
    assert {c: row[c] for c in COLUMNS} == {c: expected[c] for c in COLUMNS}


def test_item_scores_match_hand_computation(golden):
    results, _ = golden
    expected = {(r["unit_id"], r["item_id"]): (Fraction(r["score"]), Fraction(r["lost"])) for r in read_csv(GOLDEN / "expected_items.csv")}
    actual = {}
    for r in results.values():
        for ir in r.items:
            if ir.item.kind == "scored" and ir.applicable == "yes":
                actual[(r.unit_id, ir.item.id)] = (ir.score, ir.lost)
    assert actual == expected


def test_every_unit_is_accounted_for(golden):
    results, intake = golden
    assert len(results) == 17
    assert {u for u, r in results.items() if r.status == "rejected"} == {"ZH05"}
    assert {u for u, r in results.items() if r.status == "missing"} == {"ZH06"}
    assert sorted(intake.file_state.values()).count("rejected") == 1


def test_review_keeps_self_and_reviewed_values(golden):
    results, _ = golden
    a02 = next(ir for ir in results["QX05"].items if ir.item.id == "A02")
    assert a02.self_score == 20 and a02.penalty == 2 and a02.score == 8
    (change,) = a02.changes
    assert change.self_value != change.reviewed_value and change.reason and change.reviewer
    assert "核查不实" in a02.explain


def test_published_final_is_rounded_once(golden):
    results, _ = golden
    zf02 = results["ZF02"]
    assert zf02.final == Fraction(89995, 1000)  # exact until publication
    assert fmt2(zf02.final) == "90.00" and zf02.grade == "优秀"
