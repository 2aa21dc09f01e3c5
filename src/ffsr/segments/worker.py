"""One segment: its ffmpeg command, its run, and the done record that proves it finished.

A worker reads the original (a keyframe seek one GOP early, so open-GOP and B-frame
references decode), keeps its own frames by absolute timestamp (-copyts: timestamps stay
the original's), runs the same filter graph as the single-process run and writes lossless
HuffYUV (ffvhuff) in Matroska under a temporary name, renamed when ffmpeg succeeded. The done record
(frame count, file size and sha256, first and last timestamp) is written last, also
atomically.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ffsr.errors import FfsrError
from ffsr.segments.dedupe import worker_body
from ffsr.segments.frames import Segment
from ffsr.segments.matroska import frame_times
from ffsr.zoo import sha256_file

INTERMEDIATE = ["-c:v", "ffvhuff"]
"""Lossless and intra-only. FFmpeg's ffvhuff costs a fifth of FFV1's CPU (300 640x360 frames:
0.5 against 2.4 CPU-s to write and read back) for 2.3x the disk: with OpenVINO bf16 running
ESPCN, FFV1 was most of a segmented job's overhead (docs/segments.md). It has no checksums
of its own; the done record's size and sha256 catch a damaged file on resume."""


INTERMEDIATE_FILE = [*INTERMEDIATE, "-fps_mode", "passthrough", "-enc_time_base:v", "1:1000",
                     "-map_metadata", "-1", "-f", "matroska"]
"""The output options of every intermediate (a segment, the pre-pass, the one-worker tap):
the codec, every frame as it comes, its pts as Matroska's milliseconds, no metadata."""


INTERMEDIATE_PIX_FMTS = frozenset((
    "yuv420p", "yuv422p", "yuv444p", "gray", "yuva420p", "yuva422p", "yuva444p", "yuv420p10le",
    "yuv422p10le", "yuv444p10le", "gbrp", "gbrap", "rgb24", "bgra"))
"""Output pixel formats ffvhuff stores as they are (`ffmpeg -h encoder=ffvhuff`). A worker
that runs the graph to its end converts to the output's format itself, where the single
process converts too (ffmpeg's format filter at the graph's end, for -pix_fmt): an RGB
model's frames are then stored as the encoder takes them (yuv420p: half of rgb24's bytes,
half its CPU to write and read back) instead of converted by the join."""


def segment_file(folder: Path, index: int) -> Path:
    return folder / f"segment-{index:04d}.mkv"


def done_file(folder: Path, index: int) -> Path:
    return folder / f"segment-{index:04d}.done.json"


def partial_file(folder: Path, index: int, attempt: str = "") -> Path:
    """Where ffmpeg writes before the rename; ``attempt`` names a retry's own file, so a
    lost worker that still writes (a partitioned node) never touches the retry's."""
    return folder / f".segment-{index:04d}{f'.{attempt}' if attempt else ''}.partial.mkv"


def _seconds(value: float) -> str:
    return f"{value:.6f}"


def select_filter(start: float | None, end: float | None) -> str:
    """``select`` keeping the frames with start <= t < end."""
    terms = []
    if start is not None:
        terms.append(f"gte(t\\,{_seconds(start)})")
    if end is not None:
        terms.append(f"lt(t\\,{_seconds(end)})")
    return f"select={'*'.join(terms)}" if terms else "null"


def worker_graph(graph: str, in_label: str, seg: Segment) -> str:
    """The single-process graph with this segment's frame selection in front of it (t:
    absolute, thanks to -copyts). A temporal segment reads its context too, gives the
    graph the single-process timestamps and keeps its own output slots at the end."""
    head, tail = f"[{in_label}]", "[vout]"
    if not graph.startswith(head) or not graph.endswith(tail):
        raise FfsrError(f"Internal: the filter graph does not run from {head} to {tail}.")
    body = graph[len(head):]
    if seg.dedupe_select is not None:
        body = worker_body(body, seg)
        if seg.shift is None:
            return f"{head}{body}"
        # RIFE after --dedupe (segments.dedupe): only its own output slots are kept
        return f"{head}{body[:-len(tail)]},{select_filter(seg.keep_start, seg.keep_end)}{tail}"
    if seg.shift is None:
        return f"{head}{select_filter(seg.start, seg.end)},{body}"
    return (f"{head}{select_filter(seg.read_start, seg.read_end)},setpts=PTS-{seg.shift},"
            f"{body[:-len(tail)]},{select_filter(seg.keep_start, seg.keep_end)}{tail}")


def frames_written(seg: Segment) -> int | None:
    """The frames the segment's file holds: its own (per-frame graphs), its output slots
    (temporal graphs); None: not known before (the last temporal segment)."""
    return seg.frames if seg.shift is None else seg.out_frames


def worker_argv(ffmpeg: str, source: str, graph: str, in_label: str, seg: Segment,
                out: Path, pix_fmt: str | None = None) -> list[str]:
    """``pix_fmt``: the output's, where the worker's graph runs to the output's end."""
    cap = frames_written(seg)  # ffmpeg stops there rather than decode the rest of the file
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-v", "info", "-progress", "pipe:1",
            "-nostats", "-copyts"]
    if seg.seek is not None:
        argv += ["-noaccurate_seek", "-ss", _seconds(seg.seek)]
    argv += ["-i", source, "-filter_complex", worker_graph(graph, in_label, seg),
             "-map", "[vout]", *(["-pix_fmt", pix_fmt] if pix_fmt else []),
             *([] if cap is None else ["-frames:v", str(cap)]), *INTERMEDIATE_FILE, str(out)]
    return argv


@dataclass(frozen=True)
class Done:
    frames: int
    size: int
    sha256: str
    first_pts_ms: int
    last_pts_ms: int
    worker: dict[str, str | None] = field(default_factory=dict)
    """Where and when it was made: host, the CUDA_VISIBLE_DEVICES its ffmpeg inherited, when
    that ffmpeg started (UTC, ISO 8601) and its seconds to the done record (a slow node or
    GPU shows in them)."""

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1)

    def describe(self) -> str:
        """What, where and when, for people: one line per segment in every report."""
        w = self.worker
        return (f"{self.frames} frames on {w.get('host')} (CUDA_VISIBLE_DEVICES="
                f"{w.get('cuda_visible_devices') or ''}), started {w.get('started')}, "
                f"{w.get('seconds')} s")


def when(started: float | None) -> dict[str, str | None]:
    """The done record's times: ``started`` (time.time()) as UTC and the seconds since."""
    if started is None:
        return {"started": None, "seconds": None}
    return {"started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="milliseconds"),
            "seconds": f"{time.time() - started:.3f}"}


def record_done(folder: Path, seg: Segment, started: float | None = None) -> Done:
    """Check the finished file (frame count) and write its done record atomically. Frames
    and timestamps come from the Matroska block headers (an intra-only codec has one block
    per frame), not from a decode: a decode of every segment cost ~4 % of a cheap model's
    job, and no ffprobe is needed (a worker in the image has none of its own here)."""
    path = segment_file(folder, seg.index)
    try:
        times = frame_times(path)
    except (OSError, FfsrError):
        times = []
    return write_done(folder, seg, times, sha256_file(path) if times else "", started)


def write_done(folder: Path, seg: Segment, times: list[int], sha256: str,
               started: float | None) -> Done:
    """The done record of the segment file in place, from its frames' timestamps and its
    sha256 (read back by a worker, measured while writing by segments.checkpoint)."""
    path = segment_file(folder, seg.index)
    if not times:
        raise FfsrError(f"{path.name} has unreadable timestamps.")
    frames, first, last = len(times), times[0], times[-1]
    expected = frames_written(seg)
    if expected is not None and frames != expected:
        raise FfsrError(f"Segment {seg.index} came out with {frames} of {expected} frames (the "
                        "input decodes differently than its frame table says); run without "
                        "--segments.")
    done = Done(frames, path.stat().st_size, sha256, first, last,
                {"host": socket.gethostname(),
                 "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), **when(started)})
    tmp = folder / f".{done_file(folder, seg.index).name}.tmp"
    tmp.write_text(done.to_json())
    os.replace(tmp, done_file(folder, seg.index))
    return done


def read_done(folder: Path, seg: Segment) -> tuple[Done | None, str | None]:
    """The segment's done record when it and its file check out; else (None, why) where
    there was a record to doubt (None, None: simply not finished)."""
    record, path = done_file(folder, seg.index), segment_file(folder, seg.index)
    if not record.is_file():
        return None, None
    try:
        data: dict[str, Any] = json.loads(record.read_text())
        done = Done(**data)
    except (OSError, ValueError, TypeError):
        return None, f"segment {seg.index}'s done record is unreadable; it is made again."
    if not path.is_file():
        return None, f"segment {seg.index}'s file is missing (deleted?); it is made again."
    if path.stat().st_size != done.size or sha256_file(path) != done.sha256 or \
            done.frames != (frames_written(seg) or done.frames):
        return None, (f"segment {seg.index}'s file does not match its done record "
                      "(corrupted?); it is made again.")
    return done, None
