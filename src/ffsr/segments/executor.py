"""Local executor: segment workers as ffmpeg processes, at most ``jobs`` at a time.

Workers run in threads of this process (each thread waits on its own ffmpeg). Whatever
ends the wait in the main thread (Ctrl-C, SIGTERM through ffsr.signals, a failed segment)
stops every running ffmpeg before it propagates; segments already finished keep their
files and done records for --resume. Each ffmpeg also gets SIGKILL if ffsr itself dies
(ffsr.signals.die_with_parent), so a `kill -9` of ffsr leaves no ffmpeg behind.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.progress import ProgressUpdate, parse_progress
from ffsr.runtime import stop_process
from ffsr.signals import die_with_parent


@dataclass(frozen=True)
class Task:
    """One worker: its command, its log, and what to do once ffmpeg succeeded."""

    index: int
    argv: list[str]
    log: Path
    finish: Callable[[], None]
    name: str = ""
    """How a failure names it (default: "Segment <index>")."""
    starts_after: threading.Event | None = None
    """Wait for this before starting (the join waits for the first segment)."""
    late_argv: Callable[[], list[str]] | None = None
    """The command, made once ``starts_after`` is set, where it needs what happened before."""
    lifeline: bool = False
    """Give the command a stdin that stays open while this process lives and closes when it
    ends, however it ends (`docker run -i`: segments.container stops ffmpeg on its close)."""
    cleanup: Callable[[], None] | None = None
    """What to remove once the task ended, whether it succeeded, failed or was stopped."""
    on_start: Callable[[], None] | None = None
    """Called as its ffmpeg starts (a segment's done record says when and for how long)."""


class LocalExecutor:
    def __init__(self, jobs: int = 1) -> None:
        self.jobs = max(1, jobs)
        self._procs: dict[int, subprocess.Popen[str]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def run(self, tasks: Sequence[Task],
            on_progress: Callable[[int, ProgressUpdate], None] | None = None) -> None:
        """Run every task; raise the first failure after stopping the others."""
        if not tasks:
            return
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="ffsr-segment")
        try:
            futures: list[Future[None]] = [pool.submit(self._one, t, on_progress) for t in tasks]
            pending = set(futures)
            while pending:
                # Short waits: the main thread stays free to take a stop signal.
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                for f in done:
                    f.result()
        except BaseException:
            self.stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def stop_all(self) -> None:
        self._stopping.set()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            stop_process(proc)

    def _one(self, task: Task, on_progress: Callable[[int, ProgressUpdate], None] | None) -> None:
        try:
            self._run_task(task, on_progress)
        finally:
            if task.cleanup:
                task.cleanup()

    def _run_task(self, task: Task,
                  on_progress: Callable[[int, ProgressUpdate], None] | None) -> None:
        if task.starts_after is not None:
            while not task.starts_after.wait(0.05):
                if self._stopping.is_set():
                    return
        if self._stopping.is_set():
            return
        argv = task.late_argv() if task.late_argv else task.argv
        if task.on_start:
            task.on_start()
        with open(task.log, "w") as log:
            try:
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True,
                                        stdin=subprocess.PIPE if task.lifeline
                                        else subprocess.DEVNULL, preexec_fn=die_with_parent())
            except OSError as e:
                raise FfsrError(f"Cannot start {argv[0]}: {e.strerror}.") from e
            with self._lock:
                self._procs[task.index] = proc
            try:
                if self._stopping.is_set():  # stop_all ran while this one was starting
                    stop_process(proc)
                    return
                assert proc.stdout is not None
                parse_progress(proc.stdout, lambda u: on_progress(task.index, u) if on_progress
                               else None)
                rc = proc.wait()
            finally:
                with self._lock:
                    self._procs.pop(task.index, None)
                if proc.poll() is None:
                    stop_process(proc)
                if proc.stdin:
                    proc.stdin.close()
        if self._stopping.is_set():
            return
        if rc != 0:
            from ffsr.upscale_job import _first_error

            reason = _first_error(task.log.read_text(errors="replace"))
            raise FfsrError(f"{task.name or f'Segment {task.index}'} failed: {reason}",
                            log_path=str(task.log))
        task.finish()
