#!/usr/bin/env python
"""How the two whole-year documents scale: bulletin.pdf and office_report.pdf for N units.

Builds N realistic results fast, without writing or reading a single workbook:
the bundled 2025 catalog and registry, the registry expanded to N units
(``kaohe.sample.synthetic_registry``), each unit's cell values from
``kaohe.sample.unit_values`` handed to the real stages as the reader would
(``ReadResult`` with ``RawCell``s at the template's addresses), then the real
parse → validate → review → score → rank stages of ``kaohe.pipeline``, rank
robustness, the watch list and the indicator diagnostics of ``kaohe.insight``.
About 1 % of the units send nothing, about 1 % send a workbook with a cell that
cannot be read (rejected), about 2 % have a review change; last year's rows
(for 较上年) and the bundled 2024 catalog make the year-on-year part real.

Each document is then rendered by ``kaohe.report.render`` in a fresh child
process (multiprocessing 'spawn'): the child loads the results, resets its peak
RSS (``/proc/self/clear_refs``; unpickling has a peak of its own), renders, and
reports its peak RSS during the render (VmHWM, which includes the results it
holds: "loaded" is its RSS before the render) and the render's wall and CPU
seconds (the machine may be shared: CPU seconds are the steadier figure).
Prints seconds, pages, PDF size, peak RSS and warnings (WeasyPrint's and
kaohe.report's) per N and document, then the 3,000-over-300 time ratio and the
issue's targets (3,000 units: ≤ 60 s, peak RSS ≤ 1 GB, time ≤ 11 × that of 300).

    python bench/scale_docs.py --units 300 --units 3000
    python bench/scale_docs.py --units 300 --docs bulletin --keep /tmp/scale
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import multiprocessing as mp
import pickle
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # the checkout's kaohe, not some other installed copy
    sys.path.insert(0, str(REPO))

from bench import _reset_hwm, _status_kb  # noqa: E402  (bench/ is the script's own folder)

YEAR = 2025
DOCS = ("bulletin", "office")
# the issue's targets at 3,000 units
TARGET_S = 60.0
TARGET_RSS_MB = 1024.0
TARGET_RATIO = 11.0


# ================================================================ the synthetic year


def build_year(n: int, seed: int = 2025) -> dict:
    """N units through the real stages (no workbooks). Returns what the two renders take."""
    from kaohe import layout as L
    from kaohe import pipeline as P
    from kaohe.catalog import load_catalog
    from kaohe.insight import indicator_diagnostics, rank_robustness, watch_list
    from kaohe.outputs import result_row
    from kaohe.parsing import RawCell
    from kaohe.reading import ReadResult
    from kaohe.registry import load_registry
    from kaohe.review import ReviewRow
    from kaohe.sample import synthetic_registry, unit_values
    from kaohe.template import template_filename

    catalog = load_catalog(REPO / "indicators" / f"{YEAR}.yaml")
    previous_catalog = load_catalog(REPO / "indicators" / f"{YEAR - 1}.yaml")
    base = load_registry(REPO / "inputs" / str(YEAR) / "registry.csv", catalog)
    registry = synthetic_registry(base, n)
    rng = random.Random(seed)
    reads = []
    review: list[ReviewRow] = []
    for k, unit in enumerate(registry):
        values = unit_values(catalog, unit, rng)
        if k % 97 == 96:  # ~1 %: sent nothing
            continue
        lay = L.layout(catalog, unit)
        addresses = {(b.item_id, key): addr for b in lay.blocks for key, _, addr in b.inputs()}
        if k % 89 == 88:  # ~1 %: text in a number cell → rejected
            for (item_id, key), v in values.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    values[(item_id, key)] = f"约{v}次"
                    break
        cells = {}
        for (item_id, key), v in values.items():
            addr = addresses[(item_id, key)]
            if isinstance(v, tuple):
                cells[addr] = RawCell(addr, v[1], "n", "0.0%")
            else:
                cells[addr] = RawCell(addr, v, "s" if isinstance(v, str) else "n")
        file = template_filename(unit, catalog.year)
        reads.append(
            ReadResult(
                file=file,
                sha256=hashlib.sha256(file.encode()).hexdigest(),
                size=0,
                unit_id=unit.unit_id,
                fingerprint={"unit_id": unit.unit_id},
                cells=cells,
                identity={"filler": "张明", "phone": "0812-2345678"},
                template_unit=unit.unit_id,
            )
        )
        # ~2 %: the office graded a case-file review lower than the unit did
        if k % 47 == 5:
            for item in catalog.applicable_items(unit.group, unit.tags):
                if item.rule.type == "graded" and (item.id, item.rule.field) in values:
                    names = [lv.name for lv in item.rule.levels]
                    own = values[(item.id, item.rule.field)]
                    lower = names[min(len(names) - 1, names.index(own) + 1)] if own in names else names[-1]
                    review.append(ReviewRow(len(review) + 2, unit.unit_id, item.id, item.rule.field, lower, "以年度案卷评查通报结果为准", "李强"))
                    break
    subs = P.parse_stage(reads, catalog, registry)
    intake = P.validate_stage(reads, subs, catalog, registry)
    reviewed, changes, _ = P.review_stage(review, intake, catalog, registry)
    crng = random.Random(seed + 1)
    components = {
        u.unit_id: {"satisfaction": _frac(crng.uniform(78, 98)), "daily": _frac(crng.uniform(72, 98))} for u in registry if u.unit_id in intake.valid
    }
    results = P.rank_stage(P.score_stage(intake, reviewed, changes, components, catalog, registry), catalog)
    robust = rank_robustness(results, catalog, draws=1000, seed=seed)
    for r in results:
        r.robustness = robust.get(r.unit_id)
    watch = watch_list(results, catalog)
    diagnostics = indicator_diagnostics(results, catalog)
    # last year: every unit but a few, finals a little different; one unit dropped since
    prng = random.Random(seed + 2)
    previous = {}
    for k, r in enumerate(results):
        if k % 150 == 3:
            continue  # new this year
        row = result_row(r, catalog)
        final = f"{float(row['final']) + prng.uniform(-4, 3):.2f}" if row["final"] else ""
        previous[r.unit_id] = {"unit_id": r.unit_id, "unit_name": row["unit_name"], "group": row["group"], "final": final, "rank": row["rank"], "grade": row["grade"]}
    previous["ZZ99"] = {"unit_id": "ZZ99", "unit_name": "示范市已撤并单位", "group": catalog.groups[-1], "final": "85.00", "rank": "3", "grade": "良好"}
    return {
        "n": n,
        "catalog": catalog,
        "previous_catalog": previous_catalog,
        "results": results,
        "watch": watch,
        "diagnostics": diagnostics,
        "previous": previous,
    }


def _frac(x: float):
    from fractions import Fraction

    return Fraction(round(x * 10), 10)


# ==================================================================== one render


def _pages(pdf: Path) -> int:
    if shutil.which("pdfinfo"):
        out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        m = re.search(r"^Pages:\s+(\d+)", out, re.M)
        if m:
            return int(m.group(1))
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


class _Count(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        msg = record.getMessage()
        if "Using fontTools instead of HarfBuzz-Subset" not in msg:
            self.messages.append(f"{record.name}: {msg[:160]}")


def _cpu() -> float:
    """CPU seconds of this process (user + system): the machine may be shared, wall time is noisier."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _status_mb(key: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MB, from /proc."""
    return _status_kb("self", key) / 1024


def _child(doc: str, data: str, out_pdf: str, queue) -> None:
    """In a fresh process: load the year, render one document, report time, pages and RSS."""
    try:
        with open(data, "rb") as fh:
            year = pickle.load(fh)
        gc.collect()
        rss_loaded = _status_mb("VmRSS")
        reset = _reset_hwm()  # the peak from here on is the render's (unpickling has its own peak)
        handler = _Count()
        for name in ("weasyprint", "kaohe.report"):
            lg = logging.getLogger(name)
            lg.addHandler(handler)
            lg.setLevel(logging.WARNING)
        from kaohe.report import render as R

        t0 = time.perf_counter()
        c0 = _cpu()
        if doc == "bulletin":
            settings = R.BulletinSettings(doc_number=f"示法考〔{YEAR + 1}〕1号", issue_date=f"{YEAR + 1}年1月15日")
            R.render_bulletin(year["results"], year["catalog"], settings, Path(out_pdf), year["previous"], year["previous_catalog"])
        else:
            R.render_office_report(year["results"], year["catalog"], Path(out_pdf), year["watch"], year["diagnostics"])
        seconds = time.perf_counter() - t0
        cpu = _cpu() - c0
        peak = _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put({"ok": True, "seconds": seconds, "cpu_s": cpu, "rss_loaded_mb": rss_loaded, "peak_rss_mb": peak, "warnings": handler.messages})
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        import traceback

        queue.put({"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]})


def render_in_child(doc: str, data: Path, out_pdf: Path, timeout: float) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(doc, str(data), str(out_pdf), queue))
    t0 = time.perf_counter()
    proc.start()
    try:
        res = queue.get(timeout=timeout)
    except Exception:  # noqa: BLE001 - queue.Empty: the child hung or died
        res = {"ok": False, "error": f"no answer in {timeout:.0f} s (exit code {proc.exitcode})"}
    proc.join(30)
    if proc.is_alive():
        proc.kill()
        proc.join()
    res["wall_s"] = time.perf_counter() - t0
    if res.get("ok"):
        res["pages"] = _pages(out_pdf)
        res["pdf_kb"] = out_pdf.stat().st_size / 1024
    return res


# ====================================================================== main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", type=int, action="append", help="N (repeatable); default 300, 1000, 3000")
    p.add_argument("--docs", nargs="+", choices=DOCS, default=list(DOCS))
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--keep", type=Path, help="keep the PDFs in this folder (default: a temporary folder, removed)")
    p.add_argument("--json", type=Path, help="also write every figure as JSON")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds one render may take before it is abandoned")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = args.units or [300, 1000, 3000]
    work = Path(tempfile.mkdtemp(prefix="kaohe-scale-"))
    out_dir = args.keep or work
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in sizes:
            t0 = time.perf_counter()
            year = build_year(n, args.seed)
            build_s = time.perf_counter() - t0
            statuses = {s: sum(1 for r in year["results"] if r.status == s) for s in ("scored", "missing", "rejected")}
            data = work / f"year-{n}.pickle"
            with data.open("wb") as fh:
                pickle.dump(year, fh, protocol=pickle.HIGHEST_PROTOCOL)
            print(
                f"N={n}: built in {build_s:.1f} s ({statuses['scored']} scored, {statuses['missing']} missing, "
                f"{statuses['rejected']} rejected; {len(year['watch'])} watch entries)",
                file=sys.stderr,
                flush=True,
            )
            del year
            gc.collect()
            for doc in args.docs:
                pdf = out_dir / f"{doc}-{n}.pdf"
                res = render_in_child(doc, data, pdf, args.timeout)
                res.update({"n": n, "doc": doc, "build_s": build_s})
                rows.append(res)
                if res.get("ok"):
                    print(
                        f"  {doc:8s} {res['seconds']:7.1f} s (CPU {res['cpu_s']:.1f} s)  {res['pages']:4d} pages  {res['pdf_kb']:8.0f} KB  "
                        f"peak RSS {res['peak_rss_mb']:6.0f} MB (loaded {res['rss_loaded_mb']:.0f} MB)  warnings {len(res['warnings'])}",
                        file=sys.stderr,
                        flush=True,
                    )
                    for w in res["warnings"][:5]:
                        print(f"    warning: {w}", file=sys.stderr)
                else:
                    print(f"  {doc:8s} FAILED: {res.get('error')}\n{res.get('trace', '')}", file=sys.stderr, flush=True)
            data.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the pickled years (the PDFs are in --keep when given)

    # ------------------------------------------------------------------ table
    print()
    print(f"{'N':>6} {'document':<9} {'seconds':>8} {'CPU s':>6} {'pages':>6} {'PDF KB':>8} {'peak RSS MB':>12} {'loaded MB':>10} {'render MB':>10} {'warn':>5}")
    for r in rows:
        if r.get("ok"):
            print(
                f"{r['n']:>6} {r['doc']:<9} {r['seconds']:>8.1f} {r['cpu_s']:>6.1f} {r['pages']:>6} {r['pdf_kb']:>8.0f} "
                f"{r['peak_rss_mb']:>12.0f} {r['rss_loaded_mb']:>10.0f} {r['peak_rss_mb'] - r['rss_loaded_mb']:>10.0f} {len(r['warnings']):>5}"
            )
        else:
            print(f"{r['n']:>6} {r['doc']:<9} FAILED {r.get('error', '')[:80]}")
    verdicts = []
    for doc in args.docs:
        done = {r["n"]: r for r in rows if r["doc"] == doc and r.get("ok")}
        lo, hi = min(sizes), max(sizes)
        if lo in done and hi in done and hi > lo:
            ratio = done[hi]["seconds"] / done[lo]["seconds"]
            cpu_ratio = done[hi]["cpu_s"] / done[lo]["cpu_s"]
            limit = TARGET_RATIO / 10 * hi / lo  # 3,000 units at most 11 × the time of 300
            verdicts.append(
                f"{doc}: time({hi})/time({lo}) = {ratio:.1f}, CPU {cpu_ratio:.1f} (N grew {hi / lo:.0f}×; target ≤ {limit:.1f}): "
                f"{'OK' if ratio <= limit else 'MISSED'}"
            )
        if 3000 in done:
            r = done[3000]
            ok = r["seconds"] <= TARGET_S and r["peak_rss_mb"] <= TARGET_RSS_MB and not r["warnings"]
            verdicts.append(
                f"{doc} at 3000: {r['seconds']:.1f} s (≤ {TARGET_S:.0f}), peak RSS {r['peak_rss_mb']:.0f} MB (≤ {TARGET_RSS_MB:.0f}), "
                f"{len(r['warnings'])} warnings: {'OK' if ok else 'MISSED'}"
            )
    if verdicts:
        print()
        print("\n".join(verdicts))
    if args.json:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
