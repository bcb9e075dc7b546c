"""Building many scorecards' HTML, and the slim results for the bulletin and office report (issue: performance).

``jobs.scorecard_jobs`` builds every scorecard's HTML in the run's process. Each group's figures
(average 得分率 per dimension, ranked units, the means strengths and weaknesses are measured
against) are computed once per run (``context.GroupStats``), not once per unit, so building N
scorecards is linear in N. The HTML must be byte for byte what it was when every scorecard
recomputed its group: checked against the per-unit path, against the primitives the optimised
code replaces, and against a digest of the HTML the earlier code built for the same year.

``slim.document_results`` is what the bulletin and the office report are given in a worker: the
documents built from it must be the same as from the full results.
"""

from __future__ import annotations

import hashlib
import pickle
import random
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from helpers import scale_year
from kaohe import insight
from kaohe.numbers import fmt2
from kaohe.outputs import item_rows, result_row

pytest.importorskip("weasyprint")

from kaohe.report import context as C  # noqa: E402
from kaohe.report import jobs as J  # noqa: E402
from kaohe.report import office as O  # noqa: E402
from kaohe.report import render as R  # noqa: E402
from kaohe.report.slim import document_results  # noqa: E402
from kaohe.report.text import zh  # noqa: E402
from render_warnings import fail_on_warnings  # noqa: E402

SETTINGS = R.BulletinSettings(doc_number="示法考〔2026〕1号", issue_date="2026年1月15日")
UNITS, SEED = 150, 7
#: the scorecards of ``bench/scale_docs.build_year(150, seed=7)`` as built before GroupStats (every
#: scorecard recomputing its group): sha256 over "<file name>\0<html>\0" per job; INPUTS is the
#: digest of the results it was built from (result_row and item_rows of every unit)
GOLDEN_INPUTS = "886ff1932315964b43894d2475115f0150bdbee4b8e3e5b67a3494b61a45cc7c"
GOLDEN_HTML = "70f7367ba7a06d93486a233f6f2df8047eabc3c1a89f7e02335319e792b9648e"


@pytest.fixture(autouse=True)
def no_warnings():
    yield from fail_on_warnings()


@pytest.fixture(scope="module")
def year():
    return scale_year(UNITS, seed=SEED)


@pytest.fixture(scope="module")
def settings(year):
    return SETTINGS.resolved(year["catalog"])


@pytest.fixture(scope="module")
def jobs(year, settings):
    return list(J.scorecard_jobs(Path("run"), year["results"], year["catalog"], settings))


def scorecard_units(results):
    return [r for r in results if r.status == "scored" and r.final is not None]


# ------------------------------------------------------------------ scorecards


def test_scorecard_html_is_what_a_per_unit_recomputation_builds(year, settings, jobs):
    results, catalog = year["results"], year["catalog"]
    units = scorecard_units(results)
    assert [j.out_pdf.name for j in jobs] == [f"{r.unit_id}.pdf" for r in units]
    for r, job in zip(units, jobs):
        # every result passed: the context picks the unit's group and computes its figures itself
        assert job.html == R.render_template("scorecard.html", C.scorecard_context(r, results, catalog, settings)), r.unit_id


def test_scorecard_html_is_what_it_was(year, jobs):
    """The digest of the HTML the code built before the group figures were precomputed."""
    catalog = year["catalog"]
    inputs = hashlib.sha256()
    for r in year["results"]:
        inputs.update(repr(sorted(result_row(r, catalog).items())).encode())
        for row in item_rows(r):
            inputs.update(repr(sorted(row.items())).encode())
    if inputs.hexdigest() != GOLDEN_INPUTS:
        pytest.skip("the synthetic year's results changed since the digest was taken (scoring or bench/scale_docs)")
    h = hashlib.sha256()
    for j in jobs:
        h.update(j.out_pdf.name.encode() + b"\0" + j.html.encode() + b"\0")
    assert h.hexdigest() == GOLDEN_HTML


def test_group_stats_are_the_per_unit_figures(year):
    results, catalog = year["results"], year["catalog"]
    stats = C.run_group_stats(results, catalog)
    assert set(stats) == {r.unit.group for r in results}
    checked = 0
    for r in scorecard_units(results):
        group = [x for x in results if x.unit.group == r.unit.group]
        s = stats[r.unit.group]
        assert s.averages == tuple(C.dimension_averages(group, catalog))
        assert s.n_ranked == sum(1 for x in group if x.rank is not None)
        if r.rank is not None:
            assert C.strengths_weaknesses(r, s, catalog) == insight.strengths_weaknesses(r, group, catalog)
            checked += 1
    assert checked > 100


def _reference_items(r, catalog) -> tuple[list, list, str]:
    """The scorecard's item tables as first written: ItemResult's own points and lost, numbers.fmt2, zh."""
    dims = []
    for d in catalog.dimensions:
        items = [ir for ir in r.items if ir.item.dimension == d.id and ir.applicable != "no"]
        scored = [ir for ir in items if ir.item.kind == "scored" and ir.applicable == "yes"]
        rows = [
            (ir.item.id, zh(ir.item.title), fmt2(ir.points), fmt2(ir.score), fmt2(ir.lost), fmt2(ir.penalty) if ir.penalty else "")
            if ir.applicable == "yes"
            else (ir.item.id, zh(ir.item.title), C.DASH, C.DASH, C.DASH, "")
            for ir in items
            if ir.item.kind == "scored"
        ]
        if rows:
            pts = sum((ir.points for ir in scored), Fraction(0))
            got = sum((ir.score for ir in scored), Fraction(0))
            dims.append((zh(d.name), rows, fmt2(pts) if scored else C.DASH, fmt2(got) if scored else C.DASH, fmt2(pts - got) if scored else C.DASH))
    lost = [ir for ir in r.items if ir.lost is not None and ir.lost > 0]
    lost.sort(key=lambda ir: (100 * ir.score / ir.points, -ir.lost, ir.item.id))
    rectify = [(ir.item.id, fmt2(ir.points), fmt2(ir.score), fmt2(ir.lost), fmt2(100 * ir.score / ir.points)) for ir in lost]
    return dims, rectify, fmt2(C.lost_points(r))


def test_scorecard_item_tables_match_a_reference(year, settings):
    results, catalog = year["results"], year["catalog"]
    stats = C.run_group_stats(results, catalog)
    rectified = 0
    for r in scorecard_units(results):
        ctx = C.scorecard_context(r, None, catalog, settings, stats[r.unit.group])
        dims = [
            (d["name"], [(x["id"], x["title"], x["points"], x["score"], x["lost"], x["penalty"]) for x in d["rows"]], d["points"], d["score"], d["lost"])
            for d in ctx["dims"]
        ]
        rectify = [(x["id"], x["points"], x["score"], x["lost"], x["rate"]) for x in ctx["rectify"]]
        assert (dims, rectify, ctx["lost_total"]) == _reference_items(r, catalog), r.unit_id
        rectified += bool(rectify)
    assert rectified > 100


def test_fast_fmt2_is_fmt2():
    rng = random.Random(3)
    values: list = [None, 0, 1, -1, 7, Fraction(0), Decimal("2.5"), Decimal("-0.005"), Decimal("89.995")]
    for _ in range(5000):
        den = rng.choice([1, 2, 3, 7, 8, 9, 40, 200, 400, 1000, 2000, 99991])
        values.append(Fraction(rng.randint(-10**6, 10**6), den))
    values += [Fraction(k, 200) for k in range(-1000, 1000)]  # every x.xx5: half away from zero
    values += [Fraction(k, 2000) for k in range(-50, 50)]  # around zero: no "-0.00"
    for v in values:
        assert C._fmt2(v) == fmt2(v), v


def test_scorecard_jobs_compute_each_group_once(year, settings, monkeypatch):
    calls = []
    real = C.dimension_averages
    monkeypatch.setattr(C, "dimension_averages", lambda rs, cat: calls.append(len(rs)) or real(rs, cat))
    monkeypatch.setattr(insight, "strengths_weaknesses", lambda *a, **k: pytest.fail("strengths_weaknesses per unit"))
    results = year["results"]
    n = sum(1 for _ in J.scorecard_jobs(Path("run"), results, year["catalog"], settings))
    assert n > 100
    assert len(calls) == len({r.unit.group for r in results})  # once per group, not once per unit


def test_scorecard_without_group_results_uses_the_unit_alone(year, settings):
    r = scorecard_units(year["results"])[0]
    catalog = year["catalog"]
    alone = C.scorecard_context(r, [r], catalog, settings)
    assert C.scorecard_context(r, None, catalog, settings) == alone
    # statistics of another group are not used
    other = next(x for x in year["results"] if x.unit.group != r.unit.group)
    wrong = C.group_stats([other], catalog)
    assert C.scorecard_context(r, [r], catalog, settings, wrong) == alone


# ------------------------------------------------------------------ slim results


def _bulletin_html(year, results, settings) -> list[str]:
    ctx = C.bulletin_context(results, year["catalog"], settings, year["previous"], year["previous_catalog"])
    return [R.render_template(p.template, p.context) for p in C.bulletin_parts(ctx, rows_per_part=40)]


def _office_html(year, results) -> list[str]:
    ctx = O.office_context(results, year["catalog"], list(year["watch"]), list(year["diagnostics"]))
    return [R.render_template(p.template, p.context) for p in O.office_parts(ctx, rows_per_part=60)]


def test_document_results_build_the_same_documents(year, settings):
    results = year["results"]
    slim = document_results(results)
    assert [r.unit_id for r in slim] == [r.unit_id for r in results]
    failing = [r for r in results if r.status == "scored" and r.grade == "不合格"]
    assert failing and any(r.veto == "fail" for r in failing)
    assert _bulletin_html(year, slim, settings) == _bulletin_html(year, results, settings)
    assert _office_html(year, slim) == _office_html(year, results)
    # the run's results are untouched
    assert all(r.items for r in results if r.status == "scored")


def test_document_results_are_small(year):
    results = year["results"]
    slim = document_results(results)
    full_size = len(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    slim_size = len(pickle.dumps(slim, protocol=pickle.HIGHEST_PROTOCOL))
    assert slim_size * 8 < full_size, (slim_size, full_size)
    for r, s in zip(results, slim):
        if r.status == "scored" and r.grade == "不合格":
            assert [(i.item.id, i.applicable, i.score, i.veto, i.lost) for i in s.items] == [
                (i.item.id, i.applicable, i.score, i.veto, i.lost) for i in r.items
            ]
            assert not any(i.fields or i.explain or i.evidence for i in s.items)
        else:
            assert s.items == ()
