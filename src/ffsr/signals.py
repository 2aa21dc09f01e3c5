"""Orderly stops: SIGTERM, SIGINT and SIGHUP become an exception in the main thread.

Process managers, ``docker stop``, job schedulers and Kubernetes stop programs with
SIGTERM; a closed terminal sends SIGHUP. Python's default for those ends the process at
once, so the ffmpeg (or container) it started would keep running and its partial output
would stay. Raised as ``Stopped``, the signal unwinds through the same cleanup as Ctrl-C:
ffmpeg is terminated (killed after a timeout), the container stopped, the partial file
removed; the CLI then exits with 128 + the signal's number.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` swallows it on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _replaceable(handler: object, signum: int) -> bool:
    """Only Python's own defaults are replaced: an application's handler stays in charge."""
    return handler in (signal.SIG_DFL, None) or (
        signum == signal.SIGINT and handler is signal.default_int_handler)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While active, the first stop signal raises Stopped in the main thread; later ones are
    ignored so that cleanup finishes. Outside the main thread this does nothing (Python
    delivers signals to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if stopping:
            return
        stopping.append(signum)
        raise Stopped(signum)

    previous = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if _replaceable(current, signum):
            previous[signum] = current
            signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL if ffsr itself dies without
    cleaning up (SIGKILL, a crash), so no ffmpeg outlives it. None off Linux. prctl is
    looked up here, in the parent: nothing may load between fork and exec.

    A parent that dies between the fork and the prctl sends no signal (the child has been
    handed to init by then), so the child checks that its parent is still the one that
    forked it: measured, a driver killed just as it started the join left that ffmpeg
    waiting on the join's FIFO for over an hour."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    parent = os.getpid()

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook
