"""Reading alone: ingest + validate against python-calamine on the same files (issue 8).

``bench/bench.py`` runs the whole year end on workbooks written by ``kaohe.sample``: the
template's own bytes with values typed in, texts as inline strings. Units send back what Excel,
WPS or LibreOffice saved: every text in ``sharedStrings.xml`` (LibreOffice splits them into
rich-text runs by script), styles and rows rewritten. This script measures reading on both, each
repetition in a fresh process (as ``kaohe run`` reads), alternating the two corpora so that the
machine's drift falls on both alike:

* ``kaohe``: ``pipeline.ingest_stage`` (pre-flight, the isolated reader children, one per
  core) + ``pipeline.validate_stage``; the readers' fork server is started and has imported
  kaohe before the clock (``kaohe run`` starts it while Prefect starts its server);
* ``calamine``: ``CalamineWorkbook.from_path(p).get_sheet_by_name("自评表").to_python()`` for
  every file, one process (the raw read of ``bench/bench.py``).

    pip install python-calamine                        # the baseline (not a kaohe dependency)
    apt-get install libreoffice-calc-nogui             # --resave (Debian)
    python bench/reading.py --units 1000 --resave 300 --repeat 3 --json reading.json

It prints, per corpus, the median over the repetitions of each figure and of the ratio
``calamine seconds / (ingest + validate seconds)`` (issue 8's target: >= 0.5), and writes every
repetition as JSON. Exit codes: 0 done, 1 a run failed (or not every file was scored), 2 a
dependency is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FORM_SHEET = "自评表"


def _tree_cpu_s() -> float:
    """CPU seconds of this process and every descendant alive or reaped by one that is alive
    (the readers are children of the fork server, which reaps them): utime, stime, cutime, cstime."""
    from bench.bench import _subtree

    tick = os.sysconf("SC_CLK_TCK")
    cpu: dict[int, float] = {}
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu[int(entry)] = sum(int(x) for x in fields[11:15]) / tick
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return sum(cpu.get(p, 0.0) for p in _subtree(kids, os.getpid()))


def measure(corpus: Path) -> dict:
    """One repetition, in this (fresh) process."""
    from kaohe.isolation import start_fork_server

    start_fork_server()
    from kaohe import pipeline as P
    from kaohe.catalog import load_catalog
    from kaohe.paths import bundled
    from kaohe.registry import load_registry

    catalog = load_catalog(bundled(2025).catalog)
    registry = load_registry(corpus / "registry.csv", catalog)
    files = P.list_submission_files(corpus / "submissions")
    import kaohe
    from bench.bench import fork_server_kaohe

    reader_kaohe = fork_server_kaohe()  # answered once the server has imported kaohe: warm before the clock
    if reader_kaohe is None or Path(reader_kaohe) != Path(kaohe.__file__).resolve().parent:
        raise RuntimeError(f"the readers imported kaohe from {reader_kaohe}, this process from {kaohe.__file__}")
    cpu0, t0 = _tree_cpu_s(), time.perf_counter()
    reads = P.ingest_stage(files, catalog, registry, cache=None, workers=os.cpu_count())
    t1 = time.perf_counter()
    intake = P.validate_stage(reads, P.parse_stage(reads, catalog, registry), catalog, registry)
    t2 = time.perf_counter()
    cpu = _tree_cpu_s() - cpu0
    from python_calamine import CalamineWorkbook

    c0, t3 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for p in files:
        CalamineWorkbook.from_path(str(p)).get_sheet_by_name(FORM_SHEET).to_python()
    t4, c1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    n = len(files)
    return {
        "files": n,
        "scored": sum(1 for s in intake.file_state.values() if s == "scored"),
        "ingest_s": round(t1 - t0, 4),
        "validate_s": round(t2 - t1, 4),
        "calamine_s": round(t4 - t3, 4),
        "ratio": round((t4 - t3) / (t2 - t0), 4),
        "cpu_ms_per_file": round(cpu / n * 1000, 3),
        "calamine_cpu_ms_per_file": round((c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime) / n * 1000, 3),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def generate(n: int, seed: int, dest: Path) -> None:
    from kaohe.catalog import load_catalog
    from kaohe.paths import bundled
    from kaohe.registry import load_registry
    from kaohe.sample import generate as gen

    b = bundled(2025)
    catalog = load_catalog(b.catalog)
    gen(catalog, load_registry(b.registry, catalog), dest, units=n, seed=seed)


def resave(src: Path, dest: Path, k: int) -> int:
    """The first ``k`` workbooks of ``src`` saved again by LibreOffice into ``dest`` (with the
    registry); returns how many it wrote."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        raise FileNotFoundError("soffice (LibreOffice) is not installed")
    out = dest / "submissions"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "registry.csv", dest / "registry.csv")
    files = sorted((src / "submissions").iterdir())[:k]
    profile = Path(tempfile.mkdtemp(prefix="kaohe-lo-"))
    try:
        for i in range(0, len(files), 40):  # a long batch makes soffice drop files
            subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--calc", "--convert-to", "xlsx", "--outdir", str(out),
                            *map(str, files[i : i + 40])], capture_output=True, timeout=900, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return len(list(out.iterdir()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="kaohe reading (ingest + validate) against python-calamine, on generated and on LibreOffice-saved workbooks")
    p.add_argument("--units", type=int, default=300, help="workbooks to generate (default 300)")
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--resave", type=int, default=0, help="also measure the first K workbooks saved again by LibreOffice")
    p.add_argument("--repeat", type=int, default=3, help="fresh-process repetitions per corpus (default 3)")
    p.add_argument("--corpus", help="keep the workbooks here and reuse them")
    p.add_argument("--json", help="write every repetition here")
    p.add_argument("--measure", help=argparse.SUPPRESS)  # one repetition on this corpus (the child)
    a = p.parse_args(argv)
    if a.measure:
        print(json.dumps(measure(Path(a.measure))))
        return 0
    try:
        import python_calamine  # noqa: F401
    except ImportError:
        print("reading: pip install python-calamine (the raw-read baseline)", file=sys.stderr)
        return 2
    root = Path(a.corpus) if a.corpus else Path(tempfile.mkdtemp(prefix="kaohe-reading-"))
    corpora = {"generated": root / f"units-{a.units}-seed{a.seed}"}
    if not (corpora["generated"] / "registry.csv").is_file():
        print(f"reading: generating {a.units} workbooks …", file=sys.stderr)
        generate(a.units, a.seed, corpora["generated"])
    if a.resave:
        corpora["libreoffice"] = root / f"units-{a.units}-seed{a.seed}-resaved-{a.resave}"
        if not (corpora["libreoffice"] / "registry.csv").is_file():
            print(f"reading: saving {a.resave} of them again with LibreOffice …", file=sys.stderr)
            try:
                got = resave(corpora["generated"], corpora["libreoffice"], a.resave)
            except FileNotFoundError as exc:
                print(f"reading: {exc}", file=sys.stderr)
                return 2
            print(f"reading: LibreOffice wrote {got} of {a.resave}", file=sys.stderr)
    runs: dict[str, list[dict]] = {k: [] for k in corpora}
    code = 0
    try:
        for rep in range(a.repeat):
            for name, corpus in corpora.items():
                # the checkout's kaohe in the measuring process and in its readers' fork server, which
                # takes neither the parent's sys.path nor (with -P) the working directory: PYTHONPATH
                env = {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")}
                proc = subprocess.run([sys.executable, "-P", str(Path(__file__).resolve()), "--measure", str(corpus)],
                                      capture_output=True, text=True, timeout=3600, cwd=str(REPO), env=env)
                if proc.returncode != 0:
                    print(f"reading: {name} run {rep + 1} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                    return 1
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                runs[name].append(r)
                print(f"{name:12s} run {rep + 1}: {r['files']} files, ingest {r['ingest_s']:.3f} s + validate {r['validate_s']:.3f} s, "
                      f"calamine {r['calamine_s']:.3f} s, ratio {r['ratio']:.3f}, {r['cpu_ms_per_file']:.2f} ms CPU a file (load {r['load_1min']})", flush=True)
                if r["scored"] != r["files"]:
                    print(f"reading: {name}: {r['files'] - r['scored']} files not scored", file=sys.stderr)
                    code = 1
        print("\nmedians (target: ratio >= 0.5)")
        for name, rs in runs.items():
            med = {k: statistics.median(r[k] for r in rs) for k in ("ingest_s", "validate_s", "calamine_s", "ratio", "cpu_ms_per_file", "calamine_cpu_ms_per_file")}
            print(f"  {name:12s} {rs[0]['files']} files: ingest {med['ingest_s']:.3f} s, validate {med['validate_s']:.3f} s, calamine {med['calamine_s']:.3f} s, "
                  f"ratio {med['ratio']:.3f}; CPU a file: kaohe {med['cpu_ms_per_file']:.2f} ms (all processes), calamine {med['calamine_cpu_ms_per_file']:.2f} ms")
        if a.json:
            Path(a.json).write_text(json.dumps({"issue": 8, "units": a.units, "resave": a.resave, "runs": runs}, ensure_ascii=False, indent=2), encoding="utf-8")
    finally:
        if not a.corpus:
            shutil.rmtree(root, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
