"""One real run of the Prefect year-end flow on the bundled 2025 inputs."""

import csv
import json
from collections import defaultdict
from fractions import Fraction

import pytest

from kaohe.numbers import fmt2
from kaohe.paths import bundled

pytestmark = pytest.mark.e2e


def rows(path):
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from kaohe.flows.year_end import year_end

    out = tmp_path_factory.mktemp("outputs")
    first = year_end(year=2025, out=str(out))
    return out, first


def test_run_writes_every_output(runs):
    out, first = runs
    from pathlib import Path

    run = Path(first)
    assert run.parent == out / "2025"
    for name in ("results.csv", "items.csv", "results.xlsx", "manifest.json"):
        assert (run / name).is_file()
    assert (run / "results.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    b = bundled(2025)
    files = sorted(p.name for p in b.submissions.iterdir())
    assert [s["file"] for s in manifest["submissions"]] == files
    assert sum(manifest["file_states"].values()) == len(files)
    assert manifest["units"] == {"scored": 40, "missing": 2, "rejected": 2}
    assert manifest["catalog_hash"] and manifest["code_version"].startswith("0.")
    assert {"catalog", "registry", "review", "components"} <= set(manifest["inputs"])
    assert len(list((run / "inputs" / "submissions").iterdir())) == len(files)
    feedback = sorted(p.suffix for p in (run / "feedback").iterdir())
    assert feedback == [".pdf", ".pdf", ".xlsx", ".xlsx"]
    assert (run / "bulletin.pdf").is_file()
    assert (run / "office_report.pdf").is_file() and (run / "diagnostics.xlsx").is_file()
    assert len(list((run / "scorecards").glob("*.pdf"))) == manifest["units"]["scored"]


def test_results_match_items_summed(runs):
    """assessed = 100·Σscore/Σpoints from items.csv, for every scored unit."""
    from pathlib import Path

    run = Path(runs[1])
    items = defaultdict(lambda: [Fraction(0), Fraction(0)])
    for r in rows(run / "items.csv"):
        if r["applicable"] == "yes" and r["points"]:
            items[r["unit_id"]][0] += Fraction(r["score_exact"])
            items[r["unit_id"]][1] += Fraction(r["points"])
    results = {r["unit_id"]: r for r in rows(run / "results.csv")}
    scored = [u for u, r in results.items() if r["status"] == "scored"]
    assert len(scored) == 40
    for u in scored:
        s, p = items[u]
        assert fmt2(100 * s / p) == results[u]["assessed"], u


def test_second_run_gets_its_own_folder(runs):
    from pathlib import Path

    from kaohe.flows.year_end import year_end

    out, first = runs
    before = {p: p.stat().st_mtime_ns for p in Path(first).rglob("*")}
    second = year_end(year=2025, out=str(out), render=False)
    assert second != first
    assert {p: p.stat().st_mtime_ns for p in Path(first).rglob("*")} == before
    assert (Path(first) / "results.csv").read_bytes() == (Path(second) / "results.csv").read_bytes()


def subset(b, dest):
    """A dozen of the bundled workbooks (both rejected files among them): enough for the
    group-level stages, cheap to lay out twice."""
    import shutil

    dest.mkdir()
    files = sorted(b.submissions.iterdir())
    keep = files[:10] + [f for f in files[10:] if f.name.startswith(("ZF02_", "ZF16_"))]
    for f in keep:
        shutil.copy2(f, dest / f.name)
    return dest


def test_rerun_after_one_fix_redoes_only_that_unit(tmp_path):
    """Re-run after one unit sent a corrected workbook: only that file is read again and only the
    documents whose content changed are laid out again (the manifest's ``work`` and the run's log
    say so); the results equal a run without any cache, byte for byte."""
    import shutil
    from pathlib import Path

    from openpyxl import load_workbook

    from kaohe import layout as L
    from kaohe.catalog import load_catalog
    from kaohe.flows.year_end import year_end
    from kaohe.reading import read_workbook
    from kaohe.registry import load_registry

    b = bundled(2025)
    subs = subset(b, tmp_path / "submissions")
    out = tmp_path / "out"
    kw = dict(year=2025, submissions=str(subs), components=str(b.components), draws=50)
    first = Path(year_end(out=str(out), **kw))
    work = json.loads((first / "manifest.json").read_text(encoding="utf-8"))["work"]
    n = len(list(subs.iterdir()))
    assert work["ingest"] == {"files": n, "read": n, "from_cache": 0, "batches": work["ingest"]["batches"]}
    assert work["render"]["from_cache"] == 0

    # one unit corrects its evidence text: a new file, the same scores
    cat = load_catalog(b.catalog)
    reg = load_registry(b.registry, cat)
    fixed = sorted(subs.glob("QX03_*.xlsx"))[0]
    lay = L.layout(cat, reg.get("QX03"))
    evidence = next(a for blk in lay.blocks for k, _, a in blk.inputs() if k == L.EVIDENCE_KEY)
    wb = load_workbook(fixed)
    wb[L.FORM_SHEET][evidence].value = "补充佐证:2025年行政执法案卷评查报告(更正后)"
    wb.save(fixed)
    assert not read_workbook(fixed, cat, reg).problems

    second = Path(year_end(out=str(out), **kw))
    work = json.loads((second / "manifest.json").read_text(encoding="utf-8"))["work"]
    assert work["ingest"]["read"] == 1 and work["ingest"]["from_cache"] == n - 1
    # the bulletin and the office report always; of the scorecards, only QX03's changed
    assert work["render"]["laid_out"] == 3, work["render"]
    assert work["render"]["from_cache"] == work["render"]["documents"] - 3

    fresh = Path(year_end(out=str(tmp_path / "fresh"), cache=False, render=False, **kw))
    for name in ("results.csv", "items.csv", "watchlist.csv"):
        assert (second / name).read_bytes() == (fresh / name).read_bytes(), name
    assert (second / "scorecards" / "QX03.pdf").is_file()


def test_dask_cluster_gives_the_same_results(tmp_path):
    """--dask: the per-unit reading and layout run as batch tasks on a real local Dask cluster
    (two worker processes); results.csv and items.csv are byte-identical to the local run."""
    from pathlib import Path

    dask = pytest.importorskip("dask")
    from distributed import LocalCluster
    from prefect_dask import DaskTaskRunner

    from kaohe.flows.year_end import year_end

    b = bundled(2025)
    kw = dict(year=2025, submissions=str(subset(b, tmp_path / "submissions")), components=str(b.components), draws=200)
    local = year_end(out=str(tmp_path / "local"), render=False, **kw)
    # worker processes that may start the isolated reader children (see README, Dask)
    with dask.config.set({"distributed.worker.daemon": False}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            address = cluster.scheduler_address
            run = year_end.with_options(task_runner=DaskTaskRunner(address=address))(out=str(tmp_path / "dask"), dask=address, **kw)
    run, local = Path(run), Path(local)
    for name in ("results.csv", "items.csv", "watchlist.csv"):
        assert (run / name).read_bytes() == (local / name).read_bytes(), name
    work = json.loads((run / "manifest.json").read_text(encoding="utf-8"))["work"]
    assert work["runner"] == f"dask {address}"
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    n = len(manifest["submissions"])
    assert work["ingest"]["read"] == n == 12 and work["ingest"]["batches"] >= 2
    assert work["render"]["laid_out"] == work["render"]["documents"] == n + 2  # scorecards + 2 letters + bulletin + office
    assert len(list((run / "scorecards").glob("*.pdf"))) == manifest["units"]["scored"] == n - 2


def test_summary_artifact_and_deployment(runs):
    from pathlib import Path

    from kaohe.flows.year_end import deployment, summary_markdown

    run = Path(runs[1])
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    text = summary_markdown(manifest, [])
    assert text.startswith("# 2025 年度依法行政考核") and "| 考核组 |" in text
    d = deployment(year=2025, out=str(run.parent.parent))
    assert d.name == "kaohe-year-end" and d.parameters["year"] == 2025


def test_rank_intervals_and_watch_list_written(runs):
    from pathlib import Path

    run = Path(runs[1])
    results = rows(run / "results.csv")
    ranked = [r for r in results if r["rank"]]
    assert ranked and all(r["rank_p05"] and r["rank_p95"] and r["grade_stability"] for r in ranked)
    assert all(int(r["rank_p05"]) <= int(r["rank_p50"]) <= int(r["rank_p95"]) for r in ranked)
    assert all(not r["rank_p05"] for r in results if not r["rank"])
    watch = rows(run / "watchlist.csv")
    vetoed = {r["unit_id"] for r in results if r["veto"]}
    assert vetoed <= {w["unit_id"] for w in watch if w["kind"] == "veto"}


def test_archive_feeds_next_year(tmp_path):
    """Publishing a 2024 run fills the 2025 run's change column (较上年) from the archive."""
    from pathlib import Path

    from kaohe.cli import main
    from kaohe.flows.year_end import year_end

    run24 = Path(year_end(year=2024, out=str(tmp_path), render=False, draws=50))
    assert main(["publish", str(run24), "--db", f"sqlite:///{tmp_path / 'kaohe.sqlite'}"]) == 0
    run25 = Path(year_end(year=2025, out=str(tmp_path), draws=50))
    manifest = json.loads((run25 / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"]["previous_results"].endswith("#2024")
    assert manifest["parameters"]["previous_catalog"]
    import shutil
    import subprocess

    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) is not installed")
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(run25 / "bulletin.pdf"), "-"], capture_output=True, text=True).stdout
    flat = "".join(text.split())
    assert "较上年" in flat and "D05" in flat  # the item 2025 added is named as a catalog change
