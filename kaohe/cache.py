"""Content-addressed caches for incremental re-runs (issues 5 and 8).

A re-run after one unit fixed its workbook should redo that unit's reading,
parsing and scorecard, and the group-level stages, nothing else.

* :class:`IngestCache`: a file's read-and-parse result (``ReadResult`` with
  its ``Submission``), keyed by the file's sha256 and name, the catalog's
  content hash, the registry's content, the reader's limits and the code
  fingerprint (a hash of kaohe's own source files, so any code change,
  committed or not, starts a fresh cache).
* :class:`PdfCache`: a rendered PDF keyed by the sha256 of the exact HTML,
  stylesheet, fonts and WeasyPrint version that produced it. A scorecard
  whose HTML did not change (its unit's values, its group's averages and
  ranks, the run's settings) is copied, not laid out again.

Validation, review, scoring, ranking, insight and the bulletin always run:
they are group-level and take seconds. The caches live under
``<out>/.cache/`` (the output root, never a run folder); every entry is
written to a temporary name and renamed, so a killed run leaves no partial
entry. Entries are pickles written by kaohe itself: whoever can write the
cache folder can already change the code that reads it. Delete the folder
(or run with ``--no-cache``) to start over.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

CACHE_FORMAT = 1


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over kaohe's source files (package, flows, schemas, report templates and CSS)."""
    import kaohe

    root = Path(kaohe.__file__).resolve().parent
    roots = [root]
    for mod in ("kaohe.flows", "kaohe.schemas"):
        try:
            m = __import__(mod, fromlist=["_"])
            roots.append(Path(m.__file__).resolve().parent)
        except ImportError:  # pragma: no cover
            pass
    h = hashlib.sha256(f"cache-format {CACHE_FORMAT}\n".encode())
    for base in roots:
        for p in sorted(base.rglob("*")):
            if p.suffix in (".py", ".html", ".css") and p.is_file():
                h.update(str(p.relative_to(base)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class IngestCache:
    """Read-and-parse results by file content, for one catalog, registry and code version."""

    def __init__(self, root: str | Path, catalog, registry):
        from kaohe import layout as L
        from kaohe.preflight import LIMITS

        units = [(u.unit_id, u.unit_name, u.group, sorted(u.tags)) for u in registry.units]  # sets: no stable repr
        salt = "\n".join(
            [catalog.content_hash, json.dumps(units, ensure_ascii=False), repr(LIMITS), str(L.LAYOUT_VERSION), code_fingerprint()]
        )
        self.salt = hashlib.sha256(salt.encode()).hexdigest()
        self.dir = Path(root) / "ingest" / self.salt[:16]
        self.hits = 0
        self.misses = 0

    def _path(self, name: str, sha256: str) -> Path:
        key = hashlib.sha256(f"{self.salt}\0{name}\0{sha256}".encode()).hexdigest()
        return self.dir / key[:2] / f"{key}.pickle"

    def get(self, name: str, sha256: str):
        p = self._path(name, sha256)
        try:
            data = p.read_bytes()
        except OSError:
            self.misses += 1
            return None
        try:
            res = pickle.loads(data)
        except Exception:  # noqa: BLE001 - a damaged entry is a miss
            self.misses += 1
            return None
        if getattr(res, "sha256", None) != sha256 or getattr(res, "file", None) != name:
            self.misses += 1
            return None
        self.hits += 1
        return res

    def put(self, res) -> None:
        if res.problems and any(p.code.value.startswith("P3") for p in res.problems):
            return  # crash/timeout/memory may be the machine's fault: try again next run
        _atomic_write(self._path(res.file, res.sha256), pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))


class PdfCache:
    """Rendered PDFs by the sha256 of what produced them."""

    def __init__(self, root: str | Path, salt: str):
        self.dir = Path(root) / "pdf"
        self.salt = salt
        self.hits = 0
        self.misses = 0

    def key(self, html: str) -> str:
        return hashlib.sha256(self.salt.encode() + b"\0" + html.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.pdf"

    def fetch(self, key: str, out_pdf: Path) -> bool:
        """Copy the cached PDF to ``out_pdf``; False when there is none."""
        src = self._path(key)
        if not src.is_file():
            self.misses += 1
            return False
        out_pdf.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_pdf.with_name(out_pdf.name + ".part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, out_pdf)
        self.hits += 1
        return True

    def store(self, key: str, pdf: Path) -> None:
        _atomic_write(self._path(key), Path(pdf).read_bytes())
