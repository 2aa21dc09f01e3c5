"""One local worker: the single-process run itself, cutting the segments from a second output.

With one worker and nothing kept from an earlier run, the workers would make the segments
one after another with the single process's own graph, and the join would read them all
back. Instead ffsr runs the single-process command with a second output: the graph's
frames in the intermediate codec (Matroska, into a FIFO in the work folder), with the
original's timestamps, as a worker writes them. A thread here cuts that stream into the
segment files and done records, each as its last frame arrives. The output is the single
process's by construction and nothing is read back: what segmenting costs is the
intermediate's encode (docs/segments.md). The segments are there for a crash: --resume
joins them with what workers make of the rest, as after any interrupted run.

Per-frame graphs, and graphs whose tail the join would run (--interpolate-after's
interpolator, a .gif's palette: segments.after), where the tap stands after the model and
writes the worker's ticks: there a segment is a run of the model's frames, as its worker
would write them. Context frames, --dedupe's decisions, the pre-pass and the image keep
the workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from ffsr.errors import FfsrError
from ffsr.segments.after import ticks_out
from ffsr.segments.executor import Task
from ffsr.segments.frames import Segment
from ffsr.segments.join import JOIN_INDEX, with_graph
from ffsr.segments.matroska import CHUNK, read_live
from ffsr.segments.worker import (
    INTERMEDIATE_FILE,
    Done,
    frames_written,
    partial_file,
    segment_file,
    write_done,
)
from ffsr.upscale_job import UpscalePlan, UpscaleResult, check_result, publish

STREAM = "checkpoint-stream.mkv"
TAP = "ffsr_segments"
POLL_MS = 50


def checkpoint_graph(graph: str, pix_fmt: str | None, shift: int,
                     join_tail: str | None = None, ticks: Fraction | None = None) -> str:
    """The single-process graph with a second branch, [ffsr_segments], whose frames are the
    segments': ``shift`` ticks added back to every pts (what ffmpeg took off: the file's
    start). At the graph's end by default, in the output's pixel format where the
    intermediate holds it (converted once, before the split, for both). With ``join_tail``
    (what the join would run: segments.after), before that tail, in ``ticks`` of the
    stream's time base, as the workers write them there."""
    tail = "[vout]"
    if not graph.endswith(tail):
        raise FfsrError(f"Internal: the filter graph does not end in {tail}.")
    if join_tail is None:
        convert = f"format={pix_fmt}," if pix_fmt else ""
        return (f"{graph[:-len(tail)]},{convert}split=2{tail}[ffsr_tap];"
                f"[ffsr_tap]setpts=PTS{shift:+d}[{TAP}]")
    head = graph[:-len(join_tail) - 1]
    if ticks is None or graph != f"{head},{join_tail}":
        raise FfsrError("Internal: the filter graph does not end in the join's tail.")
    return (f"{head},split=2[ffsr_main][ffsr_tap];[ffsr_main]{join_tail};"
            f"[ffsr_tap]setpts=PTS{shift:+d},{ticks_out(ticks)}[{TAP}]")


def checkpoint_argv(argv: Sequence[str], graph: str, tapped: str, stream: Path) -> list[str]:
    """The single-process command with ``tapped`` (checkpoint_graph) for its ``graph`` and
    the tap as a second output: the worker's intermediate settings (worker.worker_argv),
    into ``stream``."""
    return [*with_graph(argv, graph, tapped), "-map", f"[{TAP}]", *INTERMEDIATE_FILE,
            str(stream)]


class Splitter:
    """Reads the tap's stream from a FIFO and cuts it into the segment files, in order: each
    written under its partial name, renamed and given its done record (sha256 and
    timestamps measured while writing) once its last frame is in."""

    def __init__(self, folder: Path, segments: Sequence[Segment],
                 on_done: Callable[[Done, int], None]) -> None:
        self.folder, self.segments, self.on_done = folder, list(segments), on_done
        self.fifo = folder / STREAM
        self.fifo.unlink(missing_ok=True)
        os.mkfifo(self.fifo)
        self.error: str | None = None
        self.made = 0
        self.frames = 0
        """Frames cut so far (the segments' bar: the output's may be interpolated)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ffsr-segment-splitter",
                                        daemon=True)
        self._thread.start()

    def finish(self, timeout: float = 60.0) -> None:
        """After ffmpeg succeeded: the stream's end read and every segment made, or why not."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise FfsrError("Internal: the segments' stream did not end with ffmpeg.")
        if self.error:
            raise FfsrError(self.error)
        if self.made != len(self.segments):
            raise FfsrError(f"The graph made the frames of {self.made} of {len(self.segments)} "
                            "segments only (the input decodes differently than its frame table "
                            "says); run without --segments.")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.fifo.unlink(missing_ok=True)

    def _open(self) -> BinaryIO | None:
        """The FIFO's read end once ffmpeg writes to it; None when stopped before (ffmpeg
        failed or was stopped before it opened its outputs)."""
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)  # never blocks
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll(POLL_MS):  # Linux: no POLLHUP before a writer came
            if self._stop.is_set():
                os.close(fd)
                return None
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        # A frame or more per wake-up instead of 64 KiB (a 640x360 frame is ~120 KiB); over
        # this user's limit (/proc/sys/fs/pipe-max-size) the default works too.
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, CHUNK)
        return os.fdopen(fd, "rb", buffering=CHUNK)

    def _run(self) -> None:
        try:
            f = self._open()
            if f is None:
                return
            with f:
                try:
                    self._cut(f)
                except (OSError, FfsrError) as e:
                    self.error = str(e)
                    while f.read(CHUNK):  # ffmpeg must never block on a FIFO nobody reads
                        pass
        except OSError as e:
            self.error = f"Cannot read the segments' stream: {e.strerror}."

    def _cut(self, f: BinaryIO) -> None:
        header, clusters = read_live(f, STREAM)
        pending = iter(self.segments)
        seg = next(pending, None)
        out: BinaryIO | None = None
        digest = hashlib.sha256()
        times: list[int] = []
        begun = time.time()
        try:
            for cluster in clusters:
                at = 0
                while at < len(cluster.blocks):
                    if seg is None:
                        raise FfsrError("The graph made more frames than the input's frame "
                                        "table says; run without --segments.")
                    want = frames_written(seg)
                    if want is None:
                        raise FfsrError("Internal: a segment of a temporal graph was to be cut.")
                    if out is None:
                        # open across clusters; closed when the segment is in, or below
                        out = open(partial_file(self.folder, seg.index), "wb")  # noqa: SIM115
                        digest, times = hashlib.sha256(header), []
                        out.write(header)
                    take = min(len(cluster.blocks) - at, want - len(times))
                    data = cluster.part(at, at + take)
                    out.write(data)
                    digest.update(data)
                    times += [t for t, _, _ in cluster.blocks[at:at + take]]
                    at += take
                    self.frames += take
                    if len(times) == want:
                        out.close()
                        out = None
                        os.replace(partial_file(self.folder, seg.index),
                                   segment_file(self.folder, seg.index))
                        self.on_done(write_done(self.folder, seg, times, digest.hexdigest(),
                                                begun), seg.index)
                        self.made += 1
                        begun, seg = time.time(), next(pending, None)
        finally:
            if out is not None:  # stopped inside a segment: nothing half-written looks made
                out.close()
                partial_file(self.folder, seg.index if seg else 0).unlink(missing_ok=True)


def checkpoint_task(plan: UpscalePlan, splitter: Splitter, tapped: str,
                    on_result: Callable[[UpscaleResult], None],
                    frames: Callable[[], int]) -> Task:
    """The single-process run with the tap (``tapped``: checkpoint_graph), as an executor
    task: the output is published once ffmpeg, the segments and the output's checks all
    passed."""
    log = splitter.folder / "upscale.log"

    def finish() -> None:
        splitter.finish()
        check_result(plan, 0, frames(), log.read_text(errors="replace"), log)
        publish(plan.partial, plan.output, plan.request.overwrite)
        on_result(UpscaleResult(plan.output, frames(), 0.0))

    argv = checkpoint_argv(plan.argv, plan.graph, tapped, splitter.fifo)
    return Task(JOIN_INDEX, argv, log, finish, "The upscale")
