"""Ray executor: one Ray task per segment, on whichever node of a Ray cluster has room.

Each task runs the worker every executor runs (``segments.work.run_segment``: the same
ffmpeg command, the same done record) against the shared work folder, which every node
must see at the same path. A task asks for ``num_gpus`` GPUs, so Ray gives its ffmpeg its
own ``CUDA_VISIBLE_DEVICES``; a task whose worker or node is lost is run again
(``max_retries``), and running again is safe (each attempt writes its own partial file;
only a finished file is renamed into place). Ray is an optional extra: ``ffsr[ray]``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ffsr.errors import FfsrError
from ffsr.segments.worker import Done
from ffsr.signals import STOP_SIGNALS, Stopped

RAY_MISSING = "Ray is not installed; pip install 'ffsr[ray]' (on every node of the cluster)."
MAX_RETRIES = 3
"""Runs of a task after its worker or node was lost (Ray's max_retries)."""


def _segment_task(folder: str, index: int) -> dict[str, Any]:
    """In a Ray worker: make one segment. Errors come back as their sentence (an FfsrError
    is the user's to fix; retrying it on another node would not help)."""
    from ffsr.segments.work import run_segment

    try:
        return {"done": asdict(run_segment(Path(folder), index))}
    except FfsrError as e:
        return {"error": str(e)}


def _cancel(ray: Any, refs: Iterable[Any]) -> None:
    """Force-cancel: each task's worker dies, and with it its ffmpeg (die_with_parent)."""
    for ref in refs:
        ray.cancel(ref, force=True)


def require_ray() -> Any:
    """The ray module, or one sentence naming the extra that brings it."""
    try:
        import ray
    except ImportError:
        raise FfsrError(RAY_MISSING) from None
    return ray


class RayExecutor:
    def __init__(self, address: str | None = None, gpus_per_segment: float = 0.0,
                 max_retries: int = MAX_RETRIES) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.gpus = gpus_per_segment
        self.max_retries = max_retries

    def _connect(self, ray: Any) -> bool:
        """Join the cluster at ``address`` (None: start one on this machine); True when this
        call connected (and so disconnects at the end)."""
        if ray.is_initialized():
            return False
        try:
            if self.address:
                ray.init(address=self.address, logging_level=logging.WARNING,
                         log_to_driver=False)
            else:
                ray.init(include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = self.address or "a new local cluster"
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FfsrError(f"Cannot connect to Ray at {where} ({first.rstrip('.')}).") from None
        return True

    def run(self, folder: Path, indices: Sequence[int],
            on_done: Callable[[Done, int], None]) -> None:
        """Run the segments; raise the first failure (or Stopped) after cancelling the rest."""
        ray = require_ray()
        if not indices:
            return
        # Ray's core installs its own SIGTERM handler (it ends the driver at once), and an
        # exception raised by a handler inside ray.wait becomes a SystemError: while the
        # tasks run, a stop signal only sets a flag, read between short waits.
        main = threading.current_thread() is threading.main_thread()
        before = {s: signal.getsignal(s) for s in STOP_SIGNALS} if main else {}
        stops: list[int] = []
        connected = False
        try:
            connected = self._connect(ray)
            for signum in before:
                signal.signal(signum, lambda n, _frame: stops.append(n))
            self._wait_all(ray, folder, indices, on_done, stops)
        finally:
            if connected:
                ray.shutdown()
            for signum, handler in before.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            if stops:
                raise Stopped(stops[0])

    def _wait_all(self, ray: Any, folder: Path, indices: Sequence[int],
                  on_done: Callable[[Done, int], None], stops: list[int]) -> None:
        task = ray.remote(_segment_task).options(num_cpus=1, num_gpus=self.gpus,
                                                 max_retries=self.max_retries,
                                                 retry_exceptions=False)
        pending = {task.remote(str(folder.absolute()), i): i for i in indices}
        try:
            while pending and not stops:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    index = pending.pop(ref)
                    on_done(*self._result(ray, ref, index))
        except BaseException:
            _cancel(ray, pending)
            raise
        if stops:
            _cancel(ray, pending)

    def _result(self, ray: Any, ref: Any, index: int) -> tuple[Done, int]:
        try:
            out = ray.get(ref)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.OutOfMemoryError):
            raise FfsrError(f"Segment {index} lost its Ray worker {self.max_retries + 1} times "
                            "(node or worker died); finished segments are kept for --resume."
                            ) from None
        except ray.exceptions.RayError as e:
            raise FfsrError(f"Segment {index} failed in Ray ({type(e).__name__}); finished "
                            "segments are kept for --resume.") from None
        if "error" in out:
            raise FfsrError(out["error"])
        return Done(**out["done"]), index
