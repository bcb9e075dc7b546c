"""Publishing: once per year, supersede only with a reason, atomic under a killed process."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kaohe import archive
from kaohe.cli import main
from kaohe.errors import RunError
from helpers import fake_run


@pytest.fixture
def engine(tmp_path):
    return archive.connect(archive.default_url(tmp_path))


def test_publish_supersede_history(tmp_path, engine):
    a = fake_run(tmp_path, 2025, "A", {"U1": "90.00", "U2": "85.00"})
    b = fake_run(tmp_path, 2025, "B", {"U1": "91.00", "U2": "85.00"})
    before = {p: p.read_bytes() for p in a.rglob("*") if p.is_file()}
    archive.publish(engine, a)
    with pytest.raises(RunError, match="--supersede"):
        archive.publish(engine, b)
    with pytest.raises(RunError, match="理由"):
        archive.publish(engine, b, supersede=True, reason="  ")
    pub = archive.publish(engine, b, supersede=True, reason="市公安局补正材料后重新计分", publisher="王敏")
    assert pub.supersedes_run_id == "A" and pub.reason == "市公安局补正材料后重新计分"
    hist = archive.history(engine, 2025)
    assert [(h.run_id, h.supersedes_run_id) for h in hist] == [("A", None), ("B", "A")]
    assert archive.published_rows(engine, 2025)["U1"]["final"] == "91.00"
    assert {p: p.read_bytes() for p in a.rglob("*") if p.is_file()} == before  # never edited in place


def test_cli_publish_and_history(tmp_path, capsys):
    a = fake_run(tmp_path, 2025, "A", {"U1": "90.00"})
    assert main(["publish", str(a)]) == 0
    assert main(["publish", str(fake_run(tmp_path, 2025, "B", {"U1": "80.00"}))]) == 2
    assert main(["history", "--year", "2025", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "★ 现行发布" in out and "运行 A" in out


def test_killed_publish_leaves_previous_state(tmp_path, engine):
    a = fake_run(tmp_path, 2025, "A", {"U1": "90.00", "U2": "80.00"})
    b = fake_run(tmp_path, 2025, "B", {"U1": "70.00", "U2": "60.00"})
    archive.publish(engine, a)
    kaohe = shutil.which("kaohe") or str(Path(sys.executable).parent / "kaohe")
    env = dict(os.environ, KAOHE_TEST_PUBLISH_PAUSE="30")
    proc = subprocess.Popen([kaohe, "publish", str(b), "--supersede", "--reason", "测试"], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "PUBLISHING"  # inside the transaction, one row written
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    fresh = archive.connect(archive.default_url(tmp_path))
    assert archive.current(fresh, 2025).run_id == "A"
    assert [h.run_id for h in archive.history(fresh, 2025)] == ["A"]
    assert archive.published_rows(fresh, 2025)["U1"]["final"] == "90.00"
    # and the archive still works after the crash
    archive.publish(fresh, b, supersede=True, reason="重新发布")
    assert archive.current(fresh, 2025).run_id == "B"


def test_migrations_are_versioned(tmp_path):
    engine = archive.connect(archive.default_url(tmp_path))
    assert archive.migrate(engine) == archive.MIGRATIONS[-1][0]
