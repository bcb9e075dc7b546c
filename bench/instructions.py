"""Instructions a workbook costs to read, send and receive, counted by cachegrind (issue 8).

Wall-clock and CPU times on this kind of VM drift by ±20 % within minutes (``bench/README.md``),
more than most single changes to the readers save. Instructions do not drift: this script runs
the per-workbook work of a reader child and of the run's process in one process under
``valgrind --tool=cachegrind`` (no cache simulation), once on ``--warm`` workbooks and once on
``--warm`` + ``--files``, and divides the difference by ``--files``:

* ``read``: ``submission.ingest_file`` (pre-flight, fingerprint, the plain pass, fixed cells,
  input cells, parsing), what a reader child runs for each file;
* ``send``: pickling its result as the child does (``isolation._Sender``, the shared entries);
* ``receive``: unpickling it as the run's process does (``isolation._Receiver``);
* ``validate``: ``pipeline.validate_stage`` on the workbooks read, a unit's share.

Each part is the difference between two runs that stop after it. ``--tree`` measures the kaohe of
another checkout (a worktree of an older commit) on the same workbooks, for an A/B without the
VM's drift.

    apt-get install valgrind
    python bench/instructions.py --corpus /tmp/reading-corpus/units-1000-seed2025 --files 200
    python bench/instructions.py --corpus DIR --tree /tmp/base --json base.json
    python bench/instructions.py --smoke     # CI: the stages run (no valgrind, nothing counted)

A corpus is a folder with ``registry.csv`` and ``submissions/`` (``bench/reading.py --corpus``
writes them). Exit codes: 0 done, 1 a run failed, 2 valgrind is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGES = ("read", "send", "receive", "validate")


def work(corpus: Path, count: int, upto: str) -> None:
    """Read ``count`` workbooks of the corpus and take each through the stages up to ``upto``."""
    import gc

    from kaohe import isolation as I
    from kaohe import pipeline as P
    from kaohe.catalog import load_catalog
    from kaohe.paths import bundled
    from kaohe.registry import load_registry
    from kaohe.submission import Entry, ingest_file

    import kaohe.submission as S

    catalog = load_catalog(bundled(2025).catalog)
    registry = load_registry(corpus / "registry.csv", catalog)
    files = P.list_submission_files(corpus / "submissions")[:count]
    if len(files) < count:
        raise SystemExit(f"the corpus holds {len(files)} workbooks, fewer than {count}")
    P.prepare_validation(catalog)
    P._PREPARING.pop(catalog.content_hash).join()
    gc.freeze()  # as a reader child: what it holds for its life is not walked
    gc.set_threshold(20_000, 50, 1000)

    class Pipe:
        last = b""

        def send_bytes(self, data) -> None:
            self.last = bytes(data)

    pipe = Pipe()
    sender = I._Sender(pipe, getattr(S, "SHARED", (Entry,)))
    received: list = []
    depth = STAGES.index(upto)
    reads = []
    for path in files:
        res = ingest_file(path, catalog, registry)
        if depth >= 1:
            sender.send(("done", "ok", res, 0.0, 0, 0.0))
        if depth >= 2:
            res = I._Receiver(pipe.last, received).load()[2]
        reads.append(res)
    if depth >= 3:
        P.validate_stage(reads, P.parse_stage(reads, catalog, registry), catalog, registry)


def count(tree: Path, corpus: Path, files: int, upto: str) -> int:
    """Instructions of one run of :func:`work` under cachegrind, with ``tree``'s kaohe."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, str(Path(__file__).resolve()), "--work", str(corpus), str(files), upto]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree, check=False)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"cachegrind failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="instructions a workbook costs to read, send, receive and validate (cachegrind)")
    p.add_argument("--corpus", required=False, help="a folder with registry.csv and submissions/")
    p.add_argument("--files", type=int, default=200, help="workbooks counted (default 200)")
    p.add_argument("--warm", type=int, default=50, help="workbooks read first in both runs (default 50)")
    p.add_argument("--tree", default=str(REPO), help="the checkout whose kaohe is measured (default: this one)")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--smoke", action="store_true", help="CI: run every stage once on 4 generated workbooks, without valgrind")
    p.add_argument("--work", nargs=3, help=argparse.SUPPRESS)  # the measured child
    args = p.parse_args(argv)
    if args.work:
        corpus, n, upto = args.work
        work(Path(corpus), int(n), upto)
        return 0
    if args.smoke:
        import tempfile

        from kaohe.catalog import load_catalog
        from kaohe.paths import bundled
        from kaohe.registry import load_registry
        from kaohe.sample import generate

        year = bundled(2025)
        catalog = load_catalog(year.catalog)
        with tempfile.TemporaryDirectory(prefix="kaohe-instr-") as tmp:
            generate(catalog, load_registry(year.registry, catalog), Path(tmp), units=4, seed=2025)
            work(Path(tmp), 4, STAGES[-1])
        print("instructions.py smoke: every stage ran on 4 workbooks")
        return 0
    if not args.corpus:
        p.error("--corpus is required")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    corpus, tree = Path(args.corpus).absolute(), Path(args.tree).resolve()
    per_file: dict[str, float] = {}
    try:
        for upto in STAGES:
            small = count(tree, corpus, args.warm, upto)
            large = count(tree, corpus, args.warm + args.files, upto)
            per_file[upto] = (large - small) / args.files
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    parts = {"read": per_file["read"]}
    for before, stage in zip(STAGES, STAGES[1:]):
        parts[stage] = per_file[stage] - per_file[before]
    out = {"tree": str(tree), "corpus": str(corpus), "files": args.files, "warm": args.warm,
           "instructions_per_workbook": {k: round(v) for k, v in parts.items()}, "total": round(per_file["validate"])}
    print(f"{tree} on {corpus.name}, {args.files} workbooks after {args.warm}:")
    for k, v in parts.items():
        print(f"  {k:<9} {v / 1e6:7.2f} M instructions a workbook")
    print(f"  {'total':<9} {per_file['validate'] / 1e6:7.2f} M")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
