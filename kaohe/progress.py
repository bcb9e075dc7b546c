"""A small, dependency-free progress reporter for long CLI work.

The year-end run reads thousands of workbooks, validates them and renders
thousands of PDFs; this module tells the office how far along it is.

    progress = Progress(logger=log)                      # stderr, auto TTY detection
    with progress.stage("read", "读取自评表", total=len(files), unit="份") as st:
        for f in files:
            read(f)
            st.advance()
    # TTY:      读取自评表  1,234/3,000 份  41%  约 1分12秒 后完成   (redrawn in place)
    # finally:  读取自评表  3,000 份  用时 2分03秒

Output policy
-------------
* TTY: one line redrawn in place (``\\r`` + text + clear-to-end), at most once
  every ``min_interval`` seconds (default 0.5 s), truncated to the terminal
  width so it never wraps. ``done()`` writes the final line and a newline.
* Not a TTY (logs, CI, pipes): no ``\\r`` and no escape codes. One line when the
  stage starts, then a progress line only when *both* at least
  ``log_every_fraction`` of the total (default 10 %) has been done *and* at
  least ``log_every_seconds`` (default 30 s) have passed since the last line
  written -- "whichever is rarer", so a stage writes at most ~10 progress lines
  and never more than one per 30 s (none at 100 %: the final line says it).
  Without a total only the 30 s rule applies. Then the final line.
* ``quiet=True``: nothing is written to the stream; counting still works.
* ``logger``: each stage's final line is also logged at INFO (independent of
  ``quiet``, which only concerns the stream).

ETA: from the average rate since the stage started, shown once at least
``2`` items are done *and* ``1`` s has passed (before that "—"); rounded up to
whole seconds, never negative. ``total=None`` counts only (no percent, no ETA).

Threads and callbacks: a stage handle is guarded by a lock, so ``advance`` may
be called from worker threads or from a pool's result callback (for
``Future.add_done_callback`` / ``Pool.apply_async(callback=...)``, which pass an
argument, use ``stage.tick``). Handles are not picklable: advance in the parent
process, from the results, not inside worker processes. Library code that must
not import this module can take a plain ``Callable[[int], None]`` and be given
``stage.advance``.

Progress output must never break the work it reports on: a failing stream
(closed pipe, encoding error) silently turns the stream output off.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from typing import IO, Any

__all__ = ["NULL", "Progress", "Stage", "format_duration"]

UNKNOWN = "—"
_CLEAR_EOL = "\x1b[K"

# ETA is shown only after this many items and this many seconds.
ETA_MIN_ITEMS = 2
ETA_MIN_SECONDS = 1.0


def format_duration(seconds: float) -> str:
    """``X秒`` below a minute, ``X分YY秒`` below an hour, ``X小时YY分`` above.

    Rounded to the nearest second first; negative values count as 0. Hours
    drop the seconds (minutes are truncated).
    """
    if seconds is None or math.isnan(seconds):
        return UNKNOWN
    s = int(math.floor(max(0.0, float(seconds)) + 0.5))
    if s < 60:
        return f"{s}秒"
    if s < 3600:
        return f"{s // 60}分{s % 60:02d}秒"
    return f"{s // 3600}小时{s % 3600 // 60:02d}分"


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _truncate(text: str, width: int) -> str:
    out, used = [], 0
    for c in text:
        w = 2 if unicodedata.east_asian_width(c) in "WF" else 1
        if used + w > width:
            break
        out.append(c)
        used += w
    return "".join(out)


class Stage:
    """One stage of work; obtained from :meth:`Progress.stage`. Thread-safe."""

    def __init__(self, progress: Progress, key: str, label: str, total: int | None, unit: str) -> None:
        if total is not None and total < 0:
            raise ValueError(f"total must be >= 0 or None, got {total!r}")
        self._p = progress
        self.key = key
        self.label = label
        self.total = total
        self.unit = unit
        self._lock = threading.Lock()
        self._count = 0
        self._finished = False
        self.started = progress._clock()
        self.ended: float | None = None
        self._last_draw = self.started   # TTY redraw throttle
        self._last_log_time = self.started  # non-TTY: time and count of the last line
        self._last_log_count = 0
        with self._lock:
            if progress._tty:
                self._p._draw(self._line(self.started))
            else:
                self._p._emit(self._start_line())

    # -- counting -------------------------------------------------------
    @property
    def count(self) -> int:
        return self._count

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def elapsed(self) -> float:
        end = self.ended if self.ended is not None else self._p._clock()
        return max(0.0, end - self.started)

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done. Safe from any thread.

        After :meth:`done` the count still grows but nothing is drawn.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(
                f"advance(n) takes an int, got {type(n).__name__}; "
                "as a future/pool callback use stage.tick"
            )
        with self._lock:
            self._count += n
            if self._finished or self._p._silent:
                return
            now = self._p._clock()
            if self._p._tty:
                if now - self._last_draw >= self._p.min_interval:
                    self._last_draw = now
                    self._p._draw(self._line(now))
            elif self._log_due(now):
                self._last_log_time = now
                self._last_log_count = self._count
                self._p._emit(self._line(now))

    def tick(self, *_args: Any, **_kwargs: Any) -> None:
        """``advance(1)``, ignoring any arguments: a ready-made callback for
        ``Future.add_done_callback`` or ``Pool.apply_async(callback=...)``."""
        self.advance(1)

    def done(self, *, interrupted: bool = False) -> None:
        """Write the final line (once; later calls do nothing)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self.ended = self._p._clock()
            line = self._final_line(interrupted)
            if self._p._tty:
                self._p._draw(line, final=True)
            else:
                self._p._emit(line)
            self._p._log(self, line, interrupted)

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.done(interrupted=exc_type is not None)

    # -- numbers ----------------------------------------------------------
    def percent(self) -> int | None:
        """Whole percent done (floored, capped at 100); None without a total."""
        if self.total is None:
            return None
        if self.total == 0:
            return 100
        return min(100, self._count * 100 // self.total)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds remaining from the average rate so far; None when unknown."""
        if self.total is None:
            return None
        now = self._p._clock() if now is None else now
        elapsed = now - self.started
        n = self._count
        if n < ETA_MIN_ITEMS or elapsed < ETA_MIN_SECONDS:
            return None
        remaining = max(0, self.total - n) * elapsed / n
        # round up (a little slack for float noise) so "0秒" means done
        return float(max(0, math.ceil(remaining - 1e-9)))

    # -- text -----------------------------------------------------------
    def _start_line(self) -> str:
        if self.total is None:
            return f"{self.label}  开始"
        return f"{self.label}  开始,共 {self.total:,} {self.unit}"

    def _line(self, now: float) -> str:
        if self.total is None:
            return f"{self.label}  {self._count:,} {self.unit}  已用 {format_duration(now - self.started)}"
        eta = self.eta(now)
        tail = f"约 {format_duration(eta)} 后完成" if eta is not None else f"剩余时间 {UNKNOWN}"
        return f"{self.label}  {self._count:,}/{self.total:,} {self.unit}  {self.percent()}%  {tail}"

    def _final_line(self, interrupted: bool) -> str:
        n = self._count
        shown = f"{n:,}" if self.total is None or n == self.total else f"{n:,}/{self.total:,}"
        line = f"{self.label}  {shown} {self.unit}  用时 {format_duration(self.ended - self.started)}"
        return line + "(中断)" if interrupted else line

    def _log_due(self, now: float) -> bool:
        if now - self._last_log_time < self._p.log_every_seconds:
            return False
        if self.total is not None and self._count >= self.total:
            return False  # the final line says it
        if not self.total:  # None (count only) or 0: the time rule alone
            return self.total is None
        return (self._count - self._last_log_count) >= self._p.log_every_fraction * self.total

    def __repr__(self) -> str:
        return f"Stage({self.key!r}, {self._count}/{self.total}, finished={self._finished})"


class Progress:
    """Progress reporter for the CLI. See the module docstring for the policy.

    ``tty=None`` asks ``stream.isatty()`` (and treats ``TERM=dumb`` as not a
    TTY); pass True/False to force. ``width`` is the TTY line width; None asks
    the terminal at each redraw (no truncation if it cannot be known).
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.5,
        logger: logging.Logger | None = None,
        tty: bool | None = None,
        width: int | None = None,
        log_every_fraction: float = 0.10,
        log_every_seconds: float = 30.0,
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.quiet = quiet
        self._clock = clock
        self.min_interval = min_interval
        self.logger = logger
        self.width = width
        self.log_every_fraction = log_every_fraction
        self.log_every_seconds = log_every_seconds
        self._tty = (not quiet) and (self._detect_tty() if tty is None else bool(tty))
        self._broken = False
        self._write_lock = threading.Lock()  # one writer at a time across stages
        self.stages: dict[str, Stage] = {}

    @classmethod
    def null(cls) -> Progress:
        """A reporter that writes and logs nothing (stages still count)."""
        return cls(quiet=True)

    def stage(self, key: str, label: str, total: int | None = None, unit: str = "份") -> Stage:
        """Start a stage; use the handle as a context manager or call ``done()``.

        ``key`` identifies the stage (``progress.stages[key]``, log records);
        ``label`` is the Chinese text shown; ``unit`` e.g. "份" or "个单位".
        """
        st = Stage(self, key, label, total, unit)
        self.stages[key] = st
        return st

    def echo(self, text: str) -> None:
        """Print a line of ordinary output without garbling a live TTY line."""
        if self._silent:
            return
        with self._write_lock:
            self._write(("\r" + _CLEAR_EOL if self._tty else "") + text + "\n")

    # -- internals --------------------------------------------------------
    @property
    def _silent(self) -> bool:
        return self.quiet or self._broken

    def _detect_tty(self) -> bool:
        try:
            isatty = self.stream.isatty()
        except (AttributeError, ValueError, OSError):
            return False
        return bool(isatty) and os.environ.get("TERM") != "dumb"

    def _columns(self) -> int | None:
        if self.width is not None:
            return self.width
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):  # incl. io.UnsupportedOperation
            return None

    def _draw(self, line: str, final: bool = False) -> None:
        if self._silent:
            return
        cols = self._columns()
        if cols and _display_width(line) > cols - 1:
            # keep one column spare so the cursor never wraps; the final line
            # is a normal line and may wrap freely
            line = line if final else _truncate(line, cols - 1)
        with self._write_lock:
            self._write("\r" + line + _CLEAR_EOL + ("\n" if final else ""))

    def _emit(self, line: str) -> None:
        if self._silent:
            return
        with self._write_lock:
            self._write(line + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError, UnicodeError):
            self._broken = True

    def _log(self, stage: Stage, line: str, interrupted: bool) -> None:
        if self.logger is None:
            return
        self.logger.info(
            "%s", line,
            extra={"progress_stage": stage.key, "progress_count": stage.count,
                   "progress_total": stage.total, "progress_interrupted": interrupted},
        )


NULL = Progress.null()
"""Shared do-nothing reporter for library callers and tests."""


_CURRENT: Progress = NULL


def use(progress: Progress) -> Progress:
    """Make ``progress`` the one long-running code reports to (the CLI sets it; default: NULL)."""
    global _CURRENT
    previous, _CURRENT = _CURRENT, progress
    return previous


def current() -> Progress:
    """The progress reporter set by :func:`use` (NULL unless a CLI command set one)."""
    return _CURRENT
