"""The progress reporter: fake clock, StringIO streams, both TTY and non-TTY."""

from __future__ import annotations

import io
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from kaohe.progress import NULL, Progress, format_duration


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, dt: float) -> None:
        self.t += dt


def make(tty: bool, **kw):
    clock = FakeClock()
    out = io.StringIO()
    return Progress(out, clock=clock, tty=tty, **kw), out, clock


def last_frame(text: str) -> str:
    """What a terminal shows last on the current TTY line."""
    return text.rsplit("\r", 1)[-1].replace("\x1b[K", "")


# -- time formatting --------------------------------------------------------
@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0秒"),
        (0.4, "0秒"),
        (0.5, "1秒"),
        (59, "59秒"),
        (59.6, "1分00秒"),
        (60, "1分00秒"),
        (72, "1分12秒"),
        (123, "2分03秒"),
        (3599, "59分59秒"),
        (3600, "1小时00分"),
        (3661, "1小时01分"),
        (86400, "24小时00分"),
        (-5, "0秒"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# -- percent and ETA --------------------------------------------------------
def test_percent_and_eta_hand_computed_tty():
    # 10 of 40 done in 5 s -> 2 per second -> 30 left -> 15 s
    p, out, clock = make(tty=True, min_interval=0)
    st = p.stage("read", "读取自评表", total=40, unit="份")
    clock.tick(5)
    st.advance(10)
    assert st.percent() == 25
    assert st.eta() == 15
    assert last_frame(out.getvalue()) == "读取自评表  10/40 份  25%  约 15秒 后完成"


def test_line_matches_the_documented_example():
    # 1,234 of 3,000 in 60 s -> 1,766 left at 1234/60 per s -> 85.87 s -> 86 s
    p, out, clock = make(tty=True, min_interval=0)
    st = p.stage("read", "读取自评表", total=3000, unit="份")
    clock.tick(60)
    st.advance(1234)
    assert last_frame(out.getvalue()) == "读取自评表  1,234/3,000 份  41%  约 1分26秒 后完成"
    clock.tick(63)
    st.advance(3000 - 1234)
    st.done()
    assert out.getvalue().endswith("\r读取自评表  3,000 份  用时 2分03秒\x1b[K\n")


def test_eta_unknown_until_two_items_and_one_second():
    p, out, clock = make(tty=True, min_interval=0)
    st = p.stage("r", "读取", total=100)
    assert last_frame(out.getvalue()) == "读取  0/100 份  0%  剩余时间 —"
    clock.tick(5)
    st.advance()  # one item only
    assert st.eta() is None
    p2, out2, clock2 = make(tty=True, min_interval=0)
    st2 = p2.stage("r", "读取", total=100)
    clock2.tick(0.5)
    st2.advance(50)  # many items but under a second
    assert st2.eta() is None
    assert last_frame(out2.getvalue()).endswith("剩余时间 —")
    clock2.tick(0.5)
    st2.advance(0)
    assert st2.eta() == 1


def test_eta_never_negative_and_percent_capped():
    p, out, clock = make(tty=True, min_interval=0)
    st = p.stage("r", "读取", total=10)
    clock.tick(3)
    st.advance(12)  # more than announced
    assert st.eta() == 0
    assert st.percent() == 100
    st.done()
    assert "12/10 份  用时 3秒" in out.getvalue()


def test_no_total_counts_only():
    p, out, clock = make(tty=True, min_interval=0)
    st = p.stage("scan", "扫描文件", total=None, unit="份")
    clock.tick(2)
    st.advance(7)
    frame = last_frame(out.getvalue())
    assert frame == "扫描文件  7 份  已用 2秒"
    assert "%" not in frame and "约" not in frame
    assert st.percent() is None and st.eta() is None
    st.done()
    assert out.getvalue().endswith("扫描文件  7 份  用时 2秒\x1b[K\n")


def test_zero_total():
    p, out, clock = make(tty=False)
    with p.stage("r", "渲染通报", total=0) as st:
        assert st.percent() == 100 and st.eta() is None
    assert out.getvalue() == "渲染通报  开始,共 0 份\n渲染通报  0 份  用时 0秒\n"


# -- TTY redraw throttling --------------------------------------------------
def test_tty_redraw_throttled():
    p, out, clock = make(tty=True, min_interval=0.5)
    st = p.stage("r", "读取", total=1000)
    assert out.getvalue().count("\r") == 1  # the initial frame
    for _ in range(100):  # 100 advances within 0.099 s: no redraw
        clock.tick(0.001)
        st.advance()
    assert out.getvalue().count("\r") == 1
    clock.tick(0.401)  # 0.5 s after the initial frame
    st.advance()
    assert out.getvalue().count("\r") == 2
    for _ in range(10):  # 10 × 0.1 s -> two more redraws (at +0.5 and +1.0)
        clock.tick(0.1)
        st.advance()
    assert out.getvalue().count("\r") == 4
    st.done()
    text = out.getvalue()
    assert text.count("\r") == 5 and text.count("\n") == 1 and text.endswith("\n")
    assert all(frame.endswith("\x1b[K") or frame.endswith("\x1b[K\n") for frame in text.split("\r")[1:])


def test_tty_line_truncated_to_width():
    p, out, clock = make(tty=True, min_interval=0, width=20)
    st = p.stage("r", "读取自评表", total=3000)
    frame = last_frame(out.getvalue())
    assert frame == "读取自评表  0/3,000"  # 10 + 2 + 7 = 19 columns
    st.done()


# -- non-TTY policy ---------------------------------------------------------
def test_non_tty_has_no_carriage_returns_and_logs_rarely():
    p, out, clock = make(tty=False)
    st = p.stage("pdf", "生成成绩单", total=100, unit="份")
    # fast stage: 100 items in 20 s -> 10 % steps come every 2 s, but the
    # 30 s rule is rarer -> no progress line at all
    for _ in range(100):
        clock.tick(0.2)
        st.advance()
    st.done()
    assert out.getvalue() == "生成成绩单  开始,共 100 份\n生成成绩单  100 份  用时 20秒\n"


def test_non_tty_slow_stage_logs_every_ten_percent():
    p, out, clock = make(tty=False)
    st = p.stage("pdf", "生成成绩单", total=100, unit="份")
    for _ in range(100):  # 10 s per item: the 10 % rule is rarer -> every 100 s
        clock.tick(10)
        st.advance()
    st.done()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[0] == "生成成绩单  开始,共 100 份"
    assert lines[-1] == "生成成绩单  100 份  用时 16分40秒"
    progress_lines = lines[1:-1]
    assert len(progress_lines) == 9  # 10 %, ..., 90 %; 100 % is the final line
    assert progress_lines[0] == "生成成绩单  10/100 份  10%  约 15分00秒 后完成"
    assert progress_lines[-1] == "生成成绩单  90/100 份  90%  约 1分40秒 后完成"


def test_non_tty_without_total_every_thirty_seconds():
    p, out, clock = make(tty=False)
    st = p.stage("scan", "扫描", total=None, unit="份")
    for _ in range(90):
        clock.tick(1)
        st.advance()
    st.done()
    assert out.getvalue().splitlines() == [
        "扫描  开始",
        "扫描  30 份  已用 30秒",
        "扫描  60 份  已用 1分00秒",
        "扫描  90 份  已用 1分30秒",
        "扫描  90 份  用时 1分30秒",
    ]


def test_tty_autodetect():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert Progress(Tty())._tty is True
    assert Progress(io.StringIO())._tty is False
    assert Progress(Tty(), tty=False)._tty is False
    assert Progress(Tty(), quiet=True)._tty is False


# -- final line -------------------------------------------------------------
@pytest.mark.parametrize("tty", [True, False])
def test_final_line_printed_exactly_once(tty):
    p, out, clock = make(tty=tty, min_interval=0)
    with p.stage("r", "校验", total=3) as st:
        st.advance(3)
        st.done()
        st.done()
    st.done()
    st.advance()  # a late callback: counted, not drawn
    assert st.count == 4
    assert out.getvalue().count("用时") == 1
    assert out.getvalue().endswith("校验  3 份  用时 0秒" + ("\x1b[K" if tty else "") + "\n")


def test_final_line_on_exception_marks_interruption():
    p, out, clock = make(tty=False)
    with pytest.raises(RuntimeError):
        with p.stage("r", "读取", total=10, unit="份") as st:
            st.advance(4)
            clock.tick(2)
            raise RuntimeError("boom")
    assert out.getvalue().splitlines()[-1] == "读取  4/10 份  用时 2秒(中断)"


def test_final_line_goes_to_logger(caplog):
    log = logging.getLogger("kaohe.test.progress")
    p, out, clock = make(tty=True, logger=log, min_interval=0)
    with caplog.at_level(logging.INFO, logger=log.name):
        with p.stage("units", "计分", total=44, unit="个单位") as st:
            clock.tick(3)
            st.advance(44)
    assert [r.getMessage() for r in caplog.records] == ["计分  44 个单位  用时 3秒"]
    rec = caplog.records[0]
    assert rec.levelno == logging.INFO
    assert rec.progress_stage == "units" and rec.progress_count == 44 and rec.progress_total == 44


# -- quiet and null ---------------------------------------------------------
@pytest.mark.parametrize("tty", [True, False])
def test_quiet_prints_nothing_but_counts(tty):
    p, out, clock = make(tty=tty, quiet=True, min_interval=0)
    with p.stage("r", "读取", total=10) as st:
        for _ in range(10):
            clock.tick(100)
            st.advance()
    p.echo("hello")
    assert out.getvalue() == ""
    assert st.count == 10 and p.stages["r"].count == 10 and st.finished


def test_quiet_still_logs_final_line(caplog):
    log = logging.getLogger("kaohe.test.progress.quiet")
    p, out, clock = make(tty=False, quiet=True, logger=log)
    with caplog.at_level(logging.INFO, logger=log.name):
        with p.stage("r", "读取", total=2) as st:
            st.advance(2)
    assert out.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == ["读取  2 份  用时 0秒"]


def test_null(capsys):
    for p in (NULL, Progress.null()):
        with p.stage("r", "读取", total=5) as st:
            st.advance(5)
            st.tick()
        assert st.count == 6
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# -- threads and callbacks --------------------------------------------------
@pytest.mark.parametrize("tty", [True, False])
def test_thread_safety(tty):
    p, out, clock = make(tty=tty, min_interval=0)
    st = p.stage("r", "读取", total=8000)
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        for _ in range(1000):
            st.advance()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st.done()
    assert st.count == 8000
    assert out.getvalue().count("用时") == 1


def test_advance_as_plain_hook_and_pool_callbacks():
    p, out, clock = make(tty=False)

    def library_code(items, advance=lambda n=1: None):  # knows nothing of Progress
        for _ in items:
            advance()

    with p.stage("a", "读取", total=3) as st:
        library_code(range(3), st.advance)
    assert st.count == 3

    with p.stage("b", "渲染", total=50) as st2:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for i in range(50):
                pool.submit(pow, i, 2).add_done_callback(st2.tick)  # passes the future
    assert st2.count == 50

    with pytest.raises(TypeError, match="stage.tick"):
        st2.advance(object())


def test_echo_clears_live_tty_line():
    p, out, clock = make(tty=True, min_interval=0)
    st = p.stage("r", "读取", total=2)
    p.echo("✗ a.xlsx:发现 1 处问题")
    st.done()
    assert "\r\x1b[K✗ a.xlsx:发现 1 处问题\n" in out.getvalue()


def test_broken_stream_does_not_break_the_work():
    class Broken(io.StringIO):
        def write(self, s):
            raise BrokenPipeError

    p = Progress(Broken(), tty=False)
    with p.stage("r", "读取", total=3) as st:
        st.advance(3)
    assert st.count == 3


def test_negative_total_rejected():
    with pytest.raises(ValueError):
        NULL.stage("r", "读取", total=-1)
