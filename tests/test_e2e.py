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
