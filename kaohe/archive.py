"""The results archive: published runs in an SQL database (SQLite by default).

The database is the single record of what was published. Publishing is one
transaction: the publication row and every unit's published result are
written together or not at all, so a publish killed halfway leaves the
previous state. Run folders are never modified by publishing.

Schema changes are versioned migrations (``MIGRATIONS``), applied in order on
connect; ``schema_version`` records the last one applied. A PostgreSQL URL
(``postgresql+psycopg://…``) works the same for an office with several users.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from kaohe.errors import RunError

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE publications (
                id INTEGER PRIMARY KEY,
                year INTEGER NOT NULL,
                run_id TEXT NOT NULL,
                run_path TEXT NOT NULL,
                results_sha256 TEXT NOT NULL,
                catalog_hash TEXT NOT NULL,
                code_version TEXT NOT NULL,
                published_at TEXT NOT NULL,
                supersedes_run_id TEXT,
                reason TEXT NOT NULL,
                publisher TEXT NOT NULL
            )""",
            "CREATE INDEX publications_year ON publications (year, id)",
            """CREATE TABLE published_results (
                publication_id INTEGER NOT NULL REFERENCES publications (id),
                unit_id TEXT NOT NULL,
                unit_name TEXT NOT NULL,
                unit_group TEXT NOT NULL,
                status TEXT NOT NULL,
                final TEXT,
                rank INTEGER,
                grade TEXT NOT NULL,
                veto TEXT,
                row_json TEXT NOT NULL,
                PRIMARY KEY (publication_id, unit_id)
            )""",
        ],
    ),
]


def default_url(out: str | Path) -> str:
    return f"sqlite:///{Path(out).resolve() / 'kaohe.sqlite'}"


def connect(url: str) -> Engine:
    engine = create_engine(url, future=True)
    migrate(engine)
    return engine


def migrate(engine: Engine) -> int:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"))
        current = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar() or 0
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for stmt in statements:
                conn.execute(text(stmt))
            conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": version})
            current = version
    return current


@dataclass(frozen=True)
class Publication:
    id: int
    year: int
    run_id: str
    run_path: str
    published_at: str
    supersedes_run_id: str | None
    reason: str
    publisher: str


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_PUBLICATIONS = (
    "SELECT id, year, run_id, run_path, published_at, supersedes_run_id, reason, publisher "
    "FROM publications WHERE year = :y ORDER BY id"
)


def history(engine: Engine, year: int) -> list[Publication]:
    """Every publication of the year, oldest first; the last one is in force."""
    with engine.connect() as conn:
        rows = conn.execute(text(_PUBLICATIONS), {"y": year}).all()
    return [Publication(*r) for r in rows]


def current(engine: Engine, year: int) -> Publication | None:
    pubs = history(engine, year)
    return pubs[-1] if pubs else None


def publish(engine: Engine, run: str | Path, *, supersede: bool = False, reason: str = "", publisher: str = "") -> Publication:
    """Record a run folder as its year's published result, in one transaction."""
    run = Path(run)
    manifest_path = run / "manifest.json"
    results_path = run / "results.csv"
    if not manifest_path.is_file() or not results_path.is_file():
        raise RunError(f"{run} 不是完整的运行目录(缺少 manifest.json 或 results.csv)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    year = int(manifest["year"])
    prev = current(engine, year)
    if prev is not None:
        if prev.run_id == manifest["run_id"] and Path(prev.run_path) == run.resolve():
            raise RunError(f"{year} 年度已发布的就是运行 {prev.run_id},无需重复发布")
        if not supersede:
            raise RunError(
                f"{year} 年度已于 {prev.published_at} 发布运行 {prev.run_id};"
                "如需以新的运行替代,请使用 --supersede --reason \"替代理由\""
            )
        if not reason.strip():
            raise RunError("替代已发布结果必须用 --reason 说明理由")
    with results_path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    published_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with engine.begin() as conn:
        pub_id = conn.execute(
            text(
                "INSERT INTO publications (year, run_id, run_path, results_sha256, catalog_hash, code_version, "
                "published_at, supersedes_run_id, reason, publisher) VALUES "
                "(:year, :run_id, :run_path, :sha, :catalog_hash, :code_version, :at, :supersedes, :reason, :publisher) RETURNING id"
            ),
            {
                "year": year,
                "run_id": manifest["run_id"],
                "run_path": str(run.resolve()),
                "sha": _sha256(results_path),
                "catalog_hash": manifest["catalog_hash"],
                "code_version": manifest["code_version"],
                "at": published_at,
                "supersedes": prev.run_id if prev else None,
                "reason": reason.strip() or "首次发布",
                "publisher": publisher or os.environ.get("USER", ""),
            },
        ).scalar_one()
        pause = float(os.environ.get("KAOHE_TEST_PUBLISH_PAUSE", "0") or 0)  # test hook: kill mid-publish
        for n, r in enumerate(rows):
            conn.execute(
                text(
                    "INSERT INTO published_results (publication_id, unit_id, unit_name, unit_group, status, final, rank, grade, veto, row_json) "
                    "VALUES (:p, :u, :n, :g, :s, :f, :r, :gr, :v, :j)"
                ),
                {
                    "p": pub_id, "u": r["unit_id"], "n": r["unit_name"], "g": r["group"], "s": r["status"],
                    "f": r["final"] or None, "r": int(r["rank"]) if r["rank"] else None, "gr": r["grade"],
                    "v": r["veto"] or None, "j": json.dumps(r, ensure_ascii=False),
                },
            )
            if pause and n == 0:
                print("PUBLISHING", flush=True)
                time.sleep(pause)
    return current(engine, year)


def published_rows(engine: Engine, year: int) -> dict[str, dict[str, str]]:
    """The year's current published results (results.csv rows by unit_id), or {}."""
    pub = current(engine, year)
    if pub is None:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT row_json FROM published_results WHERE publication_id = :p"), {"p": pub.id}).all()
    return {r["unit_id"]: r for r in (json.loads(x[0]) for x in rows)}
