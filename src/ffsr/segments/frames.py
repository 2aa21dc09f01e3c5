"""The frame table of a video (probed once, demuxing only) and where to cut it.

Segments start at keyframes and own the frames whose presentation time lies between the
midpoints that separate them from their neighbours: a worker can then select its frames
by absolute timestamp however the decoder orders them (B-frames, open GOPs).
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from ffsr.errors import FfsrError

CONTEXT = 2
"""Frames a temporal worker reads past each side of its own (RIFE, and the drawings before
RIFE with --dedupe): a middle frame needs one neighbour beyond the boundary; one more keeps
the fps filter's end-of-stream repeat outside the kept slots."""


@dataclass(frozen=True)
class FrameTable:
    """Presentation timestamps (in ``time_base`` units, sorted) and which are keyframes."""

    time_base: Fraction
    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    """Indices into ``pts`` of the keyframes, ascending."""

    def seconds(self, i: int) -> Fraction:
        return self.pts[i] * self.time_base


@dataclass(frozen=True)
class Segment:
    index: int
    first: int
    """Index of its first frame (a keyframe) in the table."""
    frames: int
    seek: float | None
    """Where its worker seeks (seconds from the file's start, one GOP early); None: no seek."""
    start: float | None
    """It owns frames at or after this time (seconds, absolute); None: from the first."""
    end: float | None
    """…and before this one; None: to the last."""
    shift: int | None = None
    """Temporal graphs only (segments.temporal): what the worker subtracts from every pts
    (input time base) before the graph, so the graph sees the single-process timestamps;
    None: a per-frame graph, which reads only its own frames (start, end)."""
    read_start: float | None = None
    """Temporal graphs: the frames read, context included (absolute seconds; None: open)."""
    read_end: float | None = None
    keep_start: float | None = None
    """Temporal graphs: the output frames kept, t >= keep_start and < keep_end (seconds on
    the graph's output time line, halfway between two output slots; None: open)."""
    keep_end: float | None = None
    dedupe_select: str | None = None
    """--dedupe (segments.dedupe): the ``select`` on the frames the whole-clip mpdecimate
    pass kept here, put where the graph has mpdecimate; ``frames`` then counts those."""
    kept_before: int | None = None
    """--dedupe: frames kept before this segment (setpts's N starts there)."""
    out_frames: int | None = None
    """Temporal graphs: how many output frames the worker keeps, so its ffmpeg stops there
    instead of decoding the rest of the file; None: to the end (the last segment)."""


def probe_frames(ffprobe: Path, path: Path, stream: int) -> FrameTable:
    """Every packet's pts and key flag of one stream (ffprobe, demuxing only: fast)."""
    out = subprocess.run(
        [str(ffprobe), "-v", "error", "-select_streams", str(stream), "-show_entries",
         "stream=time_base:packet=pts,flags", "-of", "compact=p=0:nk=1", str(path)],
        capture_output=True, text=True)
    if out.returncode != 0:
        raise FfsrError(f"Cannot read the frame table of {path} "
                        f"({(out.stderr.strip().splitlines() or ['unknown error'])[-1]}).")
    time_base: Fraction | None = None
    frames: list[tuple[int, bool]] = []
    for line in out.stdout.splitlines():
        fields = line.split("|")
        if len(fields) == 1 and "/" in fields[0]:
            time_base = Fraction(fields[0])
            continue
        if len(fields) < 2:
            continue
        pts, flags = fields[0], fields[1]
        if "D" in flags:  # discarded by the demuxer (edit lists): never decoded to a frame
            continue
        if not pts.lstrip("-").isdigit():
            raise FfsrError(f"{path} has frames without timestamps, so it cannot be cut into "
                            "segments; run without --segments.")
        frames.append((int(pts), "K" in flags))
    if time_base is None or not frames:
        raise FfsrError(f"{path} has no video frames to cut into segments.")
    frames.sort()
    return FrameTable(time_base, tuple(p for p, _ in frames),
                      tuple(i for i, (_, key) in enumerate(frames) if key))


def stream_time_base(ffprobe: Path, path: Path, stream: int) -> Fraction:
    """One stream's time base (what its decoded frames carry into the graph)."""
    out = subprocess.run([str(ffprobe), "-v", "error", "-select_streams", str(stream),
                          "-show_entries", "stream=time_base", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True)
    try:
        return Fraction(out.stdout.strip().split("\n")[0])
    except (ValueError, ZeroDivisionError):
        raise FfsrError(f"Cannot read the time base of {path}'s video stream.") from None


def graph_time_base(input_time_base: Fraction, deinterlace: bool) -> Fraction:
    """The time base after the graph's deinterlacer: the input's, halved by bwdif, which
    doubles every pts (yadif_common.c's config_output, where the halved denominator fits an
    int; else both stay); mpdecimate and setpts keep it."""
    halved = input_time_base / 2
    return halved if deinterlace and halved.denominator <= 2**31 - 1 else input_time_base


def as_deinterlaced(table: FrameTable) -> FrameTable:
    """The frame table as the filters after bwdif see it: its time base, every pts scaled
    to it (the same instants, so seconds() and the seeks are unchanged)."""
    time_base = graph_time_base(table.time_base, True)
    factor = 2 if time_base != table.time_base else 1
    return replace(table, time_base=time_base, pts=tuple(p * factor for p in table.pts))


def count_for_length(duration_s: float | None, length_s: float) -> int:
    """How many segments a clip of ``duration_s`` is cut into for ``--segment-length``: each at
    most about ``length_s`` long (the cuts then move to the nearest keyframes)."""
    if not length_s > 0:
        raise FfsrError("--segment-length must be more than 0 seconds.")
    if not duration_s:
        raise FfsrError("--segment-length needs the input's duration, which its container does "
                        "not give; pass --segments N instead.")
    return max(1, math.ceil(round(duration_s / length_s, 6)))


def cut(table: FrameTable, count: int, start_time: Fraction = Fraction(0)) -> list[Segment]:
    """At most ``count`` segments of about equal frame counts, each starting at a keyframe.
    ``start_time`` is the file's start (ffmpeg's -ss counts from there)."""
    if count < 1:
        raise FfsrError("--segments must be at least 1.")
    total = len(table.pts)
    cuts: list[int] = [0]
    keys = [k for k in table.keyframes if k > 0]
    for n in range(1, count):
        target = total * n / count
        if not keys:
            break
        best = min(keys, key=lambda k: abs(k - target))
        if best > cuts[-1]:
            cuts.append(best)
    cuts = sorted(set(cuts))
    segments = []
    for i, first in enumerate(cuts):
        last = cuts[i + 1] if i + 1 < len(cuts) else total
        start = None if i == 0 else midpoint(table, first)
        end = None if i + 1 == len(cuts) else midpoint(table, last)
        seek = None if i == 0 else seek_before(table, first, start_time)
        segments.append(Segment(i, first, last - first, seek, start, end))
    return segments


def seek_before(table: FrameTable, frame: int, start_time: Fraction) -> float:
    """Where to seek (seconds from the file's start) to decode frame ``frame``: the keyframe
    before it (one GOP early: open-GOP leading B-frames then have their references)."""
    earlier = [k for k in table.keyframes if k < frame]
    from_key = earlier[-1] if earlier else 0
    # A little before that keyframe: the demuxer lands on it or on an earlier one.
    return max(0.0, float(table.seconds(from_key) - start_time) - 0.001)


def midpoint(table: FrameTable, i: int) -> float:
    """Halfway between frame i-1 and frame i: a boundary no rounding can move a frame across."""
    return float((table.seconds(i - 1) + table.seconds(i)) / 2)


def format_start(ffprobe: Path, path: Path) -> Fraction:
    """The file's start time, which ffmpeg subtracts from every timestamp (and -ss counts from)."""
    out = subprocess.run([str(ffprobe), "-v", "error", "-show_entries", "format=start_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    try:
        return Fraction(out.stdout.strip().split("\n")[0])
    except (ValueError, ZeroDivisionError):
        return Fraction(0)
