"""`--dedupe` with segments: mpdecimate decided once for the whole clip, applied by workers.

mpdecimate compares each frame with the last one it kept, so its decision about a frame
can depend on any frame before it: no context window reproduces it. The driver therefore
runs it once over the whole video stream (the same filter and thresholds as the graph),
writes each segment's kept timestamps and the number of frames kept before it into the
manifest, and a worker puts ``select`` on those exact timestamps where the graph has
``mpdecimate``, and counts ``setpts``'s N from the frames kept before it. The re-timed
frames then carry the single-process timestamps (N/FRAME_RATE from the clip's first kept
frame), and the rest of the graph works per frame.
"""

from __future__ import annotations

import re
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.filtergraph import DEINTERLACE
from ffsr.interpolation.dedupe import mpdecimate_kept
from ffsr.segments.frames import CONTEXT, FrameTable, Segment, seek_before

HEAD = re.compile(rf"^({re.escape(DEINTERLACE)},)?mpdecimate,setpts=(expr=)?N")
"""The graph's dedupe block as upscale.j2 renders it (plain --dedupe; before RIFE, after
bwdif with --deinterlace)."""
MAX_SELECT = 100_000
"""Characters of one worker's select expression (one argv string may hold 128 KiB)."""


def kept_pts(ffmpeg: str, src: Path, stream: int, deinterlace: bool = False) -> set[int]:
    """The pts (absolute: -copyts) of every frame mpdecimate keeps: in the stream's time base,
    or with ``deinterlace`` after bwdif, as the graph runs it (frames.as_deinterlaced)."""
    return {pts for pts, _ in mpdecimate_kept(ffmpeg, src, stream, copyts=True,
                                              deinterlace=deinterlace)}


def _ranges(indices: list[int]) -> list[tuple[int, int]]:
    """Runs of consecutive frame indices, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def select_kept(table: FrameTable, seg: Segment, kept: set[int]) -> tuple[str, int]:
    """``select`` on this segment's kept timestamps (runs of neighbours as one between())
    and how many frames it keeps."""
    own = [i for i in range(seg.first, seg.first + seg.frames) if table.pts[i] in kept]
    if not own:
        raise FfsrError(f"Segment {seg.index} holds only duplicate frames, so --dedupe keeps "
                        "nothing of it; use fewer segments.")
    return _select(table, seg, own), len(own)


def _select(table: FrameTable, seg: Segment, frames: list[int]) -> str:
    terms = [f"between(pts\\,{table.pts[a]}\\,{table.pts[b]})" for a, b in _ranges(frames)]
    expr = "+".join(terms)
    if len(expr) > MAX_SELECT:
        raise FfsrError(f"Segment {seg.index} keeps too many separate runs of frames for one "
                        "select expression; use more segments.")
    return f"select={expr}"


def with_decisions(segments: list[Segment], table: FrameTable, kept: set[int]) -> list[Segment]:
    """Each segment with its selection, its kept frame count and N's offset."""
    out, before = [], 0
    for seg in segments:
        select, count = select_kept(table, seg, kept)
        out.append(replace(seg, frames=count, dedupe_select=select, kept_before=before))
        before += count
    return out


def with_decisions_and_context(segments: list[Segment], table: FrameTable, kept: set[int],
                               start_time: Fraction, rate: Fraction) -> list[Segment]:
    """--dedupe before RIFE: the drawings kept, re-timed 2 output slots apart, then doubled.
    Each worker reads CONTEXT kept drawings past each side of its own (a middle frame needs
    its neighbour across the cut), counts N from the first it reads and keeps the 2 output
    slots of each of its own drawings: slot 2k at 2k/rate for drawing k, so the cut between
    slots lies at (2k - 1/2)/rate and the odd/even parity cannot slip. ``shift`` 0 marks it
    temporal (the frame count is checked as slots, not drawings).

    With --deinterlace ``table`` is frames.as_deinterlaced and ``kept`` was measured after
    bwdif: the select stands after bwdif, on its pts, where the single process has mpdecimate,
    so bwdif makes each drawing from the same input neighbours (selecting the drawings before
    bwdif gave other frames, measured). Only the first drawing a worker reads may miss its
    previous frame, and it is context: none of its output slots is kept."""
    order = sorted(i for i, p in enumerate(table.pts) if p in kept)
    out, before = [], 0
    for seg in with_decisions(segments, table, kept):
        own = seg.frames
        lo, hi = max(0, before - CONTEXT), min(len(order), before + own + CONTEXT)

        def edge(k: int) -> float | None:
            return None if k in (0, len(order)) else float((2 * k - Fraction(1, 2)) / rate)

        out.append(replace(
            seg, dedupe_select=_select(table, seg, order[lo:hi]), kept_before=lo, shift=0,
            seek=None if order[lo] == 0 else seek_before(table, order[lo], start_time),
            keep_start=edge(before), keep_end=edge(before + own),
            out_frames=None if before + own == len(order) else 2 * own))
        before += own
    return out


def worker_body(body: str, seg: Segment) -> str:
    """The graph after its input label with mpdecimate replaced by the segment's decision."""
    if seg.dedupe_select is None or seg.kept_before is None or not HEAD.match(body):
        raise FfsrError("Internal: the --dedupe graph does not start with mpdecimate,setpts.")
    return HEAD.sub(lambda m: f"{m.group(1) or ''}{seg.dedupe_select},setpts={m.group(2) or ''}"
                              f"(N+{seg.kept_before})", body, count=1)
