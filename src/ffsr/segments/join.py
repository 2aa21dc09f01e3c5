"""The join: the single-process run's own command, reading the segments instead of running
the graph, started as soon as the first segment is done so that its encode runs beside the
workers (before it followed them: +22 % wall time on one worker, benchmarks/results).

The segments reach it as one Matroska stream through a FIFO in the work folder
(segments.matroska), fed in order by a thread as each segment finishes. The single-process
argv is reused as it is, with the stream as a second input and the graph replaced by a
timestamp shift: encoder, options, maps and output checks cannot drift from `ffsr upscale`.
Audio, subtitles and metadata come straight from the original (input 0).

Timestamps: the segments keep the original's absolute times (milliseconds). ffmpeg takes
the stream's start (the first segment's first frame) off every timestamp, so the graph adds
it back and takes away what the single-process run takes away: the file's start. With
--fps the encoder is told the rate, which the single-process graph's last filter gives it
(from millisecond timestamps ffmpeg guessed 19001/317 for 60000/1001 and moved frames).
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from ffsr.errors import FfsrError
from ffsr.progress import ProgressUpdate
from ffsr.segments.after import ticks_in
from ffsr.segments.executor import Task
from ffsr.segments.matroska import scan, stream_header, tracks_signature, write_clusters
from ffsr.segments.worker import Done, segment_file
from ffsr.upscale_job import UpscalePlan, UpscaleResult, check_result, publish

JOIN_INDEX = -1
STREAM = "join-stream.mkv"
POLL_S = 0.05


def rescale(a: int, b: int, c: int) -> int:
    """FFmpeg's av_rescale (a*b/c rounded to nearest, halves away from zero)."""
    if a < 0:
        return -rescale(-a, b, c)
    return (a * b + c // 2) // c


def with_graph(argv: Sequence[str], graph: str, new: str) -> list[str]:
    """The single-process command with ``new`` in place of its graph, checked to be the
    plan's ``graph`` (the join and the one-worker run reuse that command as it is)."""
    out = list(argv)
    try:
        g = out.index("-filter_complex")
    except ValueError:
        raise FfsrError("Internal: the upscale command has no graph.") from None
    if out[g + 1] != graph:
        raise FfsrError("Internal: the upscale command's graph is not the plan's.")
    out[g + 1] = new
    return out


def join_argv(argv: Sequence[str], graph: str, stream: Path, first_pts_ms: int, start_us: int,
              rate: Fraction | None = None, after: dict[str, Any] | None = None) -> list[str]:
    """The single-process command with the segments' stream as input 1 feeding [vout]
    (``after``: the manifest's join part, where the join interpolates: segments.after)."""
    if after:
        time_base = Fraction(*after["time_base"])
        new = f"[1:v:0]{ticks_in(time_base, first_pts_ms, after['shift'])},{after['tail']}"
    else:
        new = f"[1:v:0]settb=1/1000000,setpts=PTS{first_pts_ms * 1000 - start_us:+d}[vout]"
    out = with_graph(argv, graph, new)
    try:
        i = out.index("-i")
    except ValueError:
        raise FfsrError("Internal: the upscale command has no input.") from None
    out[i + 2:i + 2] = ["-f", "matroska", "-i", str(stream)]
    if rate and not after:  # with after, the graph's interpolator sets it
        out[-1:-1] = ["-r:v", str(rate)]
    return out


class Relay:
    """Feeds the finished segments, in order, into the FIFO the join reads."""

    def __init__(self, folder: Path, order: Sequence[int]) -> None:
        self.folder, self.order = folder, list(order)
        self.fifo = folder / STREAM
        self.fifo.unlink(missing_ok=True)
        os.mkfifo(self.fifo)
        self._ready = {i: threading.Event() for i in self.order}
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="ffsr-join-relay", daemon=True)
        self._thread.start()

    def ready(self, index: int) -> None:
        self._ready[index].set()

    def first_ready(self) -> threading.Event:
        return self._ready[self.order[0]]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.fifo.unlink(missing_ok=True)

    def _wait(self, event: threading.Event) -> bool:
        while not event.wait(POLL_S):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()

    def _open(self) -> int | None:
        """The FIFO's write end, once the join has opened it for reading (never blocks)."""
        while not self._stop.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                self._stop.wait(POLL_S)
                continue
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            return fd
        return None

    def _run(self) -> None:
        try:
            fd = self._open()
            if fd is None:
                return
            with os.fdopen(fd, "wb") as out:
                signature = b""
                for n, index in enumerate(self.order):
                    if not self._wait(self._ready[index]):
                        return
                    path = segment_file(self.folder, index)
                    seg = scan(path)
                    if n == 0:
                        signature = tracks_signature(seg.tracks)
                        out.write(stream_header(seg))
                    elif tracks_signature(seg.tracks) != signature:
                        raise FfsrError(f"{path.name} was encoded differently from the first "
                                        "segment (another FFmpeg build or settings on that "
                                        "worker?); make it again with the same ffsr.")
                    write_clusters(path, seg, out)
        except BrokenPipeError:
            return  # the join stopped; its own error says why
        except (OSError, FfsrError) as e:
            self.error = str(e)


def join_task(plan: UpscalePlan, relay: Relay, done: dict[int, Done], start_us: int,
              on_result: Callable[[UpscaleResult], None],
              frames: Callable[[], int], after: dict[str, Any] | None = None) -> Task:
    """The join as an executor task: it starts once the first segment is done (its first
    timestamp is in the command) and publishes the output when ffmpeg and the checks pass."""
    log = relay.folder / "join.log"

    def argv() -> list[str]:
        first = done[relay.order[0]]
        return join_argv(plan.argv, plan.graph, relay.fifo, first.first_pts_ms, start_us,
                         plan.request.fps, after)

    def finish() -> None:
        if relay.error:
            raise FfsrError(relay.error)
        check_result(plan, 0, frames(), log.read_text(errors="replace"), log)
        publish(plan.partial, plan.output, plan.request.overwrite)
        on_result(UpscaleResult(plan.output, frames(), 0.0))

    return Task(JOIN_INDEX, [], log, finish, "The join", relay.first_ready(), argv)


def progress_router(segments: Callable[[int, ProgressUpdate], None],
                    join: Callable[[ProgressUpdate], None]) -> Callable[[int, ProgressUpdate],
                                                                        None]:
    """One executor callback for both: the join's updates go to the join's bar."""
    def route(index: int, update: ProgressUpdate) -> None:
        (join(update) if index == JOIN_INDEX else segments(index, update))
    return route
