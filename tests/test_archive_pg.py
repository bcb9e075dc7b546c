"""The results archive against a real PostgreSQL server (and the same tests on SQLite).

A session fixture starts a throwaway PostgreSQL cluster in a temp dir (initdb
and pg_ctl from /usr/lib/postgresql/*/bin or PATH, run as the ``postgres``
user when the tests run as root; unix socket in the temp dir, no TCP) and
removes it at the end. ``KAOHE_TEST_PG_URL`` (a ``postgresql+psycopg://`` URL
of a role allowed to CREATE DATABASE) uses that server instead: the tests never
write to the database it names, only to ``kaohe_test_*`` databases they create
and drop. Without PostgreSQL binaries and without a URL the PostgreSQL tests
are skipped, unless ``KAOHE_REQUIRE_PG=1`` (set by .ci/run): then they fail.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from kaohe import archive
from kaohe.cli import main
from kaohe.errors import RunError
from helpers import fake_run

REQUIRE_PG = os.environ.get("KAOHE_REQUIRE_PG", "") not in ("", "0")


def kaohe_exe() -> str:
    return shutil.which("kaohe") or str(Path(sys.executable).parent / "kaohe")


# ---------------------------------------------------------------- the server


def _unavailable(reason: str):
    if REQUIRE_PG:
        pytest.fail(f"KAOHE_REQUIRE_PG=1 but no PostgreSQL server: {reason}", pytrace=False)
    pytest.skip(reason)


def _pg_bindir() -> Path | None:
    def version(path: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/(\d+(?:\.\d+)?)/bin/", path)
        return tuple(int(x) for x in m.group(1).split(".")) if m else (0,)

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _as_user() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) to run the server as a non-root user; PostgreSQL refuses root."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", name, "--"], pw.pw_uid, pw.pw_gid
        if shutil.which("su"):
            return ["su", name, "-s", "/bin/sh", "-c"], pw.pw_uid, pw.pw_gid
    _unavailable("running as root and no postgres/nobody user to run PostgreSQL as")


def _run_as(prefix: list[str], argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = prefix + [shlex.join(argv)] if prefix[:1] == ["su"] else prefix + argv
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C", "LANG": "C"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _create_database(base_url: str, name: str) -> str:
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
    finally:
        admin.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(base_url: str, name: str) -> None:
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def pg_server():
    """A ``postgresql+psycopg://`` URL of a database on a real PostgreSQL server."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        _unavailable(f'the PostgreSQL driver is not installed (pip install -e ".[test]"): {exc}')
    given = os.environ.get("KAOHE_TEST_PG_URL")
    if given:
        yield given
        return
    bindir = _pg_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        _unavailable("PostgreSQL is not installed (no initdb/pg_ctl; Debian: apt-get install postgresql) and KAOHE_TEST_PG_URL is not set")
    prefix, uid, gid = _as_user()
    root = Path(tempfile.mkdtemp(prefix="kaohe-pg-"))
    if uid is not None:
        os.chown(root, uid, gid)
    data, log = root / "data", root / "server.log"
    started = False
    try:
        r = _run_as(prefix, [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                             "-E", "UTF8", "--no-locale", "--no-sync"], cwd=root)
        if r.returncode != 0:
            _unavailable(f"initdb failed: {r.stderr.strip() or r.stdout.strip()}")
        opts = f"-c listen_addresses='' -k {root} -p 5432 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        r = _run_as(prefix, [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"], cwd=root)
        started = True
        if r.returncode != 0:
            text_log = log.read_text(errors="replace") if log.exists() else ""
            _unavailable(f"pg_ctl start failed: {r.stderr.strip() or r.stdout.strip()}\n{text_log}")
        base = f"postgresql+psycopg://postgres@/postgres?host={root}&port=5432"
        yield _create_database(base, "kaohe")
    finally:
        if started:
            _run_as(prefix, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], cwd=root)
            _kill_postmaster(data)
        shutil.rmtree(root, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """If pg_ctl stop did not stop the server, SIGQUIT its postmaster (immediate shutdown)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
    except (OSError, ValueError, IndexError):
        pass


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database for one test on the session's server (dropped afterwards)."""
    name = f"kaohe_test_{uuid.uuid4().hex[:12]}"
    url = _create_database(pg_server, name)
    yield url
    _drop_database(pg_server, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The same test on an SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return archive.default_url(tmp_path)
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engines():
    """Engines opened by a test, disposed at its end (so its database can be dropped)."""
    made = []

    def connect(url: str):
        made.append(archive.connect(url))
        return made[-1]

    yield connect
    for e in made:
        e.dispose()


@pytest.fixture(autouse=True)
def _no_kaohe_db(monkeypatch):
    monkeypatch.delenv("KAOHE_DB", raising=False)
    monkeypatch.delenv("KAOHE_TEST_PUBLISH_PAUSE", raising=False)


# ---------------------------------------------------------------- the tests


def test_server_is_postgresql(pg_url, engines):
    engine = engines(pg_url)
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
    with engine.connect() as conn:
        assert conn.execute(text("SHOW server_encoding")).scalar() == "UTF8"


def test_migrate_empty_database_is_idempotent(db_url, engines):
    engine = engines(db_url)
    latest = archive.MIGRATIONS[-1][0]
    assert archive.migrate(engine) == latest
    assert archive.migrate(engine) == latest
    with engine.connect() as conn:
        versions = [v for (v,) in conn.execute(text("SELECT version FROM schema_version ORDER BY version"))]
    assert versions == [v for v, _ in archive.MIGRATIONS]
    assert {"schema_version", "publications", "published_results"} <= set(inspect(engine).get_table_names())
    engines(db_url)  # connecting again migrates nothing
    assert archive.history(engine, 2025) == []


def test_publish_history_current_rows_round_trip(db_url, engines, tmp_path):
    engine = engines(db_url)
    a = fake_run(tmp_path, 2025, "A", {"U1": "90.00", "U2": "85.50", "U3": "60.00"})
    pub = archive.publish(engine, a, publisher="王敏")
    assert (pub.year, pub.run_id, pub.seq, pub.supersedes_run_id, pub.reason, pub.publisher) == (2025, "A", 1, None, "首次发布", "王敏")
    assert pub.run_path == str(a.resolve()) and isinstance(pub.id, int)
    assert archive.history(engine, 2025) == [pub]
    assert archive.current(engine, 2025) == pub
    assert archive.current(engine, 2024) is None and archive.published_rows(engine, 2024) == {}
    rows = archive.published_rows(engine, 2025)
    assert set(rows) == {"U1", "U2", "U3"}
    assert rows["U2"] == {"unit_id": "U2", "unit_name": "单位U2", "group": "区县政府", "status": "scored", "assessed": "85.50",
                          "weighted": "85.50", "bonus": "0.00", "final": "85.50", "rank": "2", "grade": "良好", "veto": ""}
    with engine.connect() as conn:
        typed = conn.execute(text("SELECT rank, final, veto FROM published_results WHERE unit_id = 'U1'")).one()
    assert typed == (1, "90.00", None)
    # another year does not interfere
    archive.publish(engine, fake_run(tmp_path, 2024, "Z", {"U1": "70.00"}))
    assert archive.current(engine, 2025).run_id == "A" and archive.current(engine, 2024).seq == 1


def test_supersede_needs_a_reason_and_keeps_both(db_url, engines, tmp_path):
    engine = engines(db_url)
    a = fake_run(tmp_path, 2025, "A", {"U1": "90.00", "U2": "85.00"})
    b = fake_run(tmp_path, 2025, "B", {"U1": "91.00", "U2": "85.00"})
    archive.publish(engine, a)
    with pytest.raises(RunError, match="无需重复发布"):
        archive.publish(engine, a, supersede=True, reason="再发一次")
    with pytest.raises(RunError, match="--supersede"):
        archive.publish(engine, b)
    with pytest.raises(RunError, match="理由"):
        archive.publish(engine, b, supersede=True, reason="  ")
    assert [h.run_id for h in archive.history(engine, 2025)] == ["A"]  # refused attempts wrote nothing
    pub = archive.publish(engine, b, supersede=True, reason="市公安局补正材料后重新计分", publisher="王敏")
    assert (pub.supersedes_run_id, pub.reason, pub.seq) == ("A", "市公安局补正材料后重新计分", 2)
    hist = archive.history(engine, 2025)
    assert [(h.run_id, h.supersedes_run_id, h.reason, h.seq) for h in hist] == [
        ("A", None, "首次发布", 1), ("B", "A", "市公安局补正材料后重新计分", 2)]
    assert archive.published_rows(engine, 2025)["U1"]["final"] == "91.00"
    with engine.connect() as conn:  # both publications keep their rows
        counts = dict(conn.execute(text("SELECT publication_id, COUNT(*) FROM published_results GROUP BY publication_id")).all())
    assert counts == {hist[0].id: 2, hist[1].id: 2}


def test_killed_publish_leaves_previous_state(db_url, engines, tmp_path):
    engine = engines(db_url)
    a = fake_run(tmp_path, 2025, "A", {"U1": "90.00", "U2": "80.00"})
    b = fake_run(tmp_path, 2025, "B", {"U1": "70.00", "U2": "60.00"})
    archive.publish(engine, a)
    env = dict(os.environ, KAOHE_TEST_PUBLISH_PAUSE="30")
    proc = subprocess.Popen([kaohe_exe(), "publish", str(b), "--supersede", "--reason", "测试", "--db", db_url],
                            env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "PUBLISHING"  # inside the transaction, one row written
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    fresh = engines(db_url)
    assert archive.current(fresh, 2025).run_id == "A"
    assert [h.run_id for h in archive.history(fresh, 2025)] == ["A"]
    assert archive.published_rows(fresh, 2025)["U1"]["final"] == "90.00"
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM published_results")).scalar() == 2
    # and the archive still works after the crash
    archive.publish(fresh, b, supersede=True, reason="重新发布")
    assert [(h.run_id, h.seq) for h in archive.history(fresh, 2025)] == [("A", 1), ("B", 2)]


@pytest.mark.parametrize("already", [False, True], ids=["first", "supersede"])
def test_concurrent_publishers_cannot_both_publish(db_url, engines, tmp_path, already):
    """Publisher 1 (a subprocess) is inside its transaction when publisher 2 reads the
    year's state: both saw the same state, so only one of them may write."""
    engine = engines(db_url)
    if already:
        archive.publish(engine, fake_run(tmp_path, 2025, "A", {"U1": "90.00", "U2": "80.00"}))
    b = fake_run(tmp_path, 2025, "B", {"U1": "70.00", "U2": "60.00"})
    c = fake_run(tmp_path, 2025, "C", {"U1": "75.00", "U2": "65.00"})
    # SQLite: publisher 2 waits for the write lock (5 s busy timeout), so publisher 1 must finish sooner
    pause = "2" if db_url.startswith("sqlite") else "3"
    args = ["--supersede", "--reason", "并发测试"] if already else []
    proc = subprocess.Popen([kaohe_exe(), "publish", str(b), "--db", db_url, *args],
                            env=dict(os.environ, KAOHE_TEST_PUBLISH_PAUSE=pause), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "PUBLISHING"
        with pytest.raises(RunError, match="另一发布者同时发布"):
            archive.publish(engine, c, supersede=already, reason="并发测试" if already else "")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    hist = archive.history(engine, 2025)
    expected = [("A", None, 1), ("B", "A", 2)] if already else [("B", None, 1)]
    assert [(h.run_id, h.supersedes_run_id, h.seq) for h in hist] == expected
    assert archive.published_rows(engine, 2025)["U1"]["final"] == "70.00"
    with engine.connect() as conn:  # nothing of publisher 2 was written
        assert conn.execute(text("SELECT COUNT(*) FROM published_results")).scalar() == 2 * len(hist)
    # publisher 2 can now supersede knowingly
    archive.publish(engine, c, supersede=True, reason="看过现行发布后替代")
    assert archive.current(engine, 2025).run_id == "C"


def test_one_publication_per_year_and_number(db_url, engines):
    """The unique (year, seq) constraint itself, below the application's checks."""
    engine = engines(db_url)
    insert = text(
        "INSERT INTO publications (year, seq, run_id, run_path, results_sha256, catalog_hash, code_version, "
        "published_at, supersedes_run_id, reason, publisher) "
        "VALUES (:y, :s, :r, '/x', 'h', 'c', 'v', '2026-01-01T00:00:00+00:00', NULL, '首次发布', '')"
    )
    with engine.begin() as conn:
        conn.execute(insert, {"y": 2025, "s": 1, "r": "A"})
        conn.execute(insert, {"y": 2024, "s": 1, "r": "Z"})  # another year: fine
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(insert, {"y": 2025, "s": 1, "r": "B"})
    assert [h.run_id for h in archive.history(engine, 2025)] == ["A"]


# The schema exactly as migration 1 shipped it (kept here verbatim, so that a
# later edit of MIGRATIONS[0] cannot hide an archive that no longer opens).
LEGACY_V1 = [
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
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    "INSERT INTO schema_version (version) VALUES (1)",
]


def test_archive_created_by_migration_1_still_opens(db_url, tmp_path):
    """An archive at schema version 1 (SQLite: in use; PostgreSQL: ids had no default) is upgraded."""
    old = create_engine(db_url)
    with old.begin() as conn:
        for stmt in LEGACY_V1:
            conn.execute(text(stmt))
        for pid, year, run in [(1, 2024, "Z"), (2, 2025, "A"), (3, 2025, "B")]:
            conn.execute(text(
                "INSERT INTO publications (id, year, run_id, run_path, results_sha256, catalog_hash, code_version, "
                "published_at, supersedes_run_id, reason, publisher) VALUES "
                "(:i, :y, :r, '/old', 'h', 'c', '0.1.0', '2025-01-01T00:00:00+00:00', :s, :why, '')"),
                {"i": pid, "y": year, "r": run, "s": "A" if run == "B" else None, "why": "更正" if run == "B" else "首次发布"})
            conn.execute(text(
                "INSERT INTO published_results (publication_id, unit_id, unit_name, unit_group, status, final, rank, grade, row_json) "
                "VALUES (:i, 'U1', '单位U1', '区县政府', 'scored', '80.00', 1, '良好', :j)"),
                {"i": pid, "j": json.dumps({"unit_id": "U1", "final": "80.00", "run": run}, ensure_ascii=False)})
    old.dispose()
    engine = archive.connect(db_url)
    try:
        assert archive.migrate(engine) == archive.MIGRATIONS[-1][0]
        assert [(h.id, h.run_id, h.seq) for h in archive.history(engine, 2025)] == [(2, "A", 1), (3, "B", 2)]
        assert archive.current(engine, 2024).seq == 1
        assert archive.published_rows(engine, 2025)["U1"]["run"] == "B"
        pub = archive.publish(engine, fake_run(tmp_path, 2025, "C", {"U1": "88.00"}), supersede=True, reason="升级后替代")
        assert (pub.id, pub.seq, pub.supersedes_run_id) == (4, 3, "B")  # ids continue after the old ones
        pub = archive.publish(engine, fake_run(tmp_path, 2026, "N", {"U1": "88.00"}))
        assert (pub.id, pub.seq) == (5, 1)
    finally:
        engine.dispose()


def test_resolve_url(tmp_path, monkeypatch):
    assert archive.resolve_url(tmp_path) == archive.default_url(tmp_path)
    monkeypatch.setenv("KAOHE_DB", "postgresql+psycopg://u:secret@db.example/kaohe")
    assert archive.resolve_url(tmp_path) == "postgresql+psycopg://u:secret@db.example/kaohe"
    assert archive.resolve_url(tmp_path, "sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    assert "secret" not in archive.display_url(archive.resolve_url(tmp_path))
    monkeypatch.setenv("KAOHE_DB", "")
    assert archive.resolve_url(tmp_path) == archive.default_url(tmp_path)


def test_unreachable_or_unknown_archive_is_a_run_error(tmp_path):
    with pytest.raises(RunError, match="无法连接结果库") as err:
        archive.connect(f"postgresql+psycopg://u:secret@/kaohe?host={tmp_path}&port=1")
    assert "secret" not in str(err.value)
    with pytest.raises(RunError, match="结果库"):
        archive.connect("nosuchdb://u@localhost/kaohe")
    with pytest.raises(RunError, match="无法连接结果库"):
        archive.connect(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'kaohe.sqlite'}")


def test_cli_publish_and_history_against_postgresql(pg_url, engines, tmp_path, capsys, monkeypatch):
    a = fake_run(tmp_path, 2025, "A", {"U1": "90.00"})
    b = fake_run(tmp_path, 2025, "B", {"U1": "80.00"})
    assert main(["publish", str(a), "--db", pg_url, "--publisher", "王敏"]) == 0
    assert main(["publish", str(b), "--db", pg_url]) == 2
    assert "--supersede" in capsys.readouterr().err
    monkeypatch.setenv("KAOHE_DB", pg_url)  # the environment instead of --db
    assert main(["publish", str(b), "--supersede", "--reason", "补正材料"]) == 0
    monkeypatch.delenv("KAOHE_DB")
    assert main(["history", "--year", "2025", "--out", str(tmp_path), "--db", pg_url]) == 0
    out = capsys.readouterr().out
    assert "运行 A" in out and "运行 B,替代 A" in out and "理由:补正材料" in out and "发布人:王敏" in out
    assert re.search(r"^\s+B\s.*★ 现行发布", out, re.M) and re.search(r"^\s+A\s.*已被替代", out, re.M)
    assert not (tmp_path / "kaohe.sqlite").exists()  # nothing went to the default SQLite file
    assert [h.run_id for h in archive.history(engines(pg_url), 2025)] == ["A", "B"]


def test_cli_publish_subprocess_against_postgresql(pg_url, engines, tmp_path):
    a = fake_run(tmp_path, 2025, "A", {"U1": "90.00"})
    env = dict(os.environ, KAOHE_DB=pg_url)
    r = subprocess.run([kaohe_exe(), "publish", str(a)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([kaohe_exe(), "history", "--year", "2025", "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "★ 现行发布" in r.stdout
    assert archive.current(engines(pg_url), 2025).run_id == "A"


def test_previous_results_come_from_kaohe_db(pg_url, engines, tmp_path, monkeypatch):
    """KAOHE_DB on PostgreSQL feeds next year's change columns (较上年)."""
    from kaohe.flows.year_end import previous_results

    run24 = fake_run(tmp_path, 2024, "Z", {"U1": "77.00", "U2": "66.00"})
    archive.publish(engines(pg_url), run24)
    monkeypatch.setenv("KAOHE_DB", pg_url)
    rows, source, last_run = previous_results(2025, str(tmp_path), None)
    assert rows["U1"]["final"] == "77.00" and set(rows) == {"U1", "U2"}
    assert last_run == run24.resolve() and source.endswith("#2024") and source.startswith("postgresql+psycopg://")
    assert previous_results(2024, str(tmp_path), None) == ({}, None, None)  # nothing published for 2023
    assert not (tmp_path / "kaohe.sqlite").exists()


def test_previous_results_without_sqlite_archive_creates_nothing(tmp_path):
    from kaohe.flows.year_end import previous_results

    assert previous_results(2025, str(tmp_path), None) == ({}, None, None)
    assert not (tmp_path / "kaohe.sqlite").exists()
    archive.publish(archive.connect(archive.default_url(tmp_path)), fake_run(tmp_path, 2024, "Z", {"U1": "77.00"}))
    rows, source, _ = previous_results(2025, str(tmp_path), None)
    assert rows["U1"]["final"] == "77.00" and source == f"{(tmp_path / 'kaohe.sqlite').resolve()}#2024"
