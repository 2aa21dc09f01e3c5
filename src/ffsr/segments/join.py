"""The join: the finished segments, concatenated, encoded once with the single-process
run's own command; audio, subtitles and metadata come straight from the original.

The single-process argv is reused as it is, with the segments as extra inputs and the
graph replaced by their concatenation: encoder, options, maps and output checks cannot
drift from `ffsr upscale`. ffsr's FFmpeg has no concat demuxer, so the ``concat`` filter
joins them. ffmpeg starts each input at 0 (it subtracts the file's start) and the filter
adds to each segment the summed "ends" of the segments before it (the last timestamp
stretched by one mean frame duration); each segment is shifted by exactly the difference
first, so every frame leaves the filter with its original absolute timestamp
(microseconds), whatever the frame durations (VFR).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.segments.worker import Done, segment_file


def rescale(a: int, b: int, c: int) -> int:
    """FFmpeg's av_rescale (a*b/c rounded to nearest, halves away from zero)."""
    if a < 0:
        return -rescale(-a, b, c)
    return (a * b + c // 2) // c


def concat_shifts(done: Sequence[Done]) -> list[int]:
    """Per segment, what to add (µs) so that the concat filter's output is absolute: the
    filter adds ``delta``, ffmpeg took away the file's first timestamp."""
    shifts, delta = [], 0
    for d in done:
        shift = d.first_pts_ms * 1000 - delta
        shifts.append(shift)
        last = (d.last_pts_ms - d.first_pts_ms) * 1000 + shift  # as the filter sees it
        delta += last if d.frames < 2 else rescale(last, d.frames, d.frames - 1)
    return shifts


def join_graph(done: Sequence[Done], first_input: int, start_us: int) -> str:
    """Segments (inputs ``first_input``…) → absolute timestamps minus the file's start, as
    the single-process run sees them."""
    parts = [f"[{first_input + k}:v:0]settb=1/1000000,setpts=PTS{shift:+d}[ffsr_s{k}]"
             for k, shift in enumerate(concat_shifts(done))]
    labels = "".join(f"[ffsr_s{k}]" for k in range(len(done)))
    return ";".join([*parts, f"{labels}concat=n={len(done)}:v=1:a=0,setpts=PTS{-start_us:+d}[vout]"])


def join_argv(argv: Sequence[str], graph: str, folder: Path, done: Sequence[Done],
              start_us: int, rate: Fraction | None = None) -> list[str]:
    """The single-process command with the segments as inputs 1… feeding [vout]. With
    --fps, ``rate`` is told to the encoder: in the single process the graph's last filter
    gives it, while the segments' millisecond timestamps would make ffmpeg guess one
    (59.94 from 1001/60000 s frames rounded to ms: 19001/317) whose time base moves some
    frames by a millisecond."""
    out = list(argv)
    try:
        i = out.index("-i")
        g = out.index("-filter_complex")
    except ValueError:
        raise FfsrError("Internal: the upscale command has no input or graph.") from None
    if out[g + 1] != graph:
        raise FfsrError("Internal: the upscale command's graph is not the plan's.")
    out[g + 1] = join_graph(done, 1, start_us)
    inputs = [a for k in range(len(done)) for a in ("-i", str(segment_file(folder, k)))]
    out[i + 2:i + 2] = inputs
    if rate:
        out[-1:-1] = ["-r:v", str(rate)]
    return out
