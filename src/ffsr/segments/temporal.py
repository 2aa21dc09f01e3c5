"""Segments for graphs that look across frames: `--fps` through RIFE (doubling the rate).

RIFE is stateless: each middle frame comes from one pair of neighbours, and the `fps`
filter that merges them puts output slot k at k/fps on the graph's time line. So a worker
reads CONTEXT frames on both sides of its own frames, subtracts the file's start as the
single-process run does (the graph then sees the same timestamps, so the output grid and
the interpolation phase are the same), runs the whole graph and keeps only the output
frames in its half-open interval of the output time line. Each boundary lies halfway
between two output slots, so no rounding can move a frame across it. With --deinterlace
(bwdif before the model) each frame is made from its input neighbours as well: the kept
slots need frames first-1 … first+frames exact, and bwdif makes those from inputs first-2 …
first+frames+1, which the CONTEXT of 2 reads (bwdif halves the time base and doubles the
pts, so the slots, computed in seconds, are the same).

The other `--fps` interpolators (minterpolate's EPZS motion search starts from the previous
frames' vectors, so every output depends on the whole history before it) run once over the
whole clip in a pre-pass (segments.prepass), or after upscaling in the join
(segments.after; with --deinterlace the pre-pass file carries ticks for it). `--dedupe`,
alone or before RIFE (with --deinterlace too): segments.dedupe.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

from ffsr.segments.frames import CONTEXT, FrameTable, Segment, midpoint, seek_before
from ffsr.segments.join import rescale

PERIOD = 2
"""The RIFE graph covers odd output frames (overlay enable=mod(n,2), n counted from the
worker's first output frame): a worker's first frame must land on a slot of the same
parity as frame 0's in the single-process run (odd where the file's start lies before the
video's). Without this a worker could swap originals and middles."""


def start_shift(time_base: Fraction, start_us: int) -> int:
    """What ffmpeg subtracts from every pts of a stream in ``time_base`` when it takes the
    file's start (µs) off (ffmpeg_demux.c: av_rescale_q of the file's ts_offset)."""
    return rescale(start_us, time_base.denominator, 1_000_000 * time_base.numerator)


def first_slot(table: FrameTable, i: int, shift: int, rate: Fraction) -> int:
    """The output slot the graph's fps filter gives frame i when it is the first it sees
    (av_rescale_q_rnd, near: its default rounding)."""
    tb = table.time_base
    return rescale(table.pts[i] - shift, tb.numerator * rate.numerator,
                   tb.denominator * rate.denominator)


def slots_before(boundary_s: float, start_time: Fraction, rate: Fraction) -> int:
    """The last output slot before an input boundary (absolute seconds), on the graph's
    time line (the file's start subtracted)."""
    return math.floor((Fraction(boundary_s) - start_time) * rate)


def between_slots(boundary_s: float, start_time: Fraction, rate: Fraction) -> float:
    """The output boundary for an input boundary: halfway between the two output slots
    around it."""
    return float((slots_before(boundary_s, start_time, rate) + Fraction(1, 2)) / rate)


def with_context(segments: list[Segment], table: FrameTable, start_time: Fraction,
                 start_us: int, rate: Fraction) -> list[Segment]:
    """The per-frame cut widened for a temporal graph whose output runs at ``rate``."""
    total, shift = len(table.pts), start_shift(table.time_base, start_us)
    phase = first_slot(table, 0, shift, rate)
    out = []
    for seg in segments:
        lo, hi = seg.first - CONTEXT, seg.first + seg.frames + CONTEXT
        while lo > 0 and (first_slot(table, lo, shift, rate) - phase) % PERIOD:
            lo -= 1
        first = phase if seg.start is None else slots_before(seg.start, start_time, rate) + 1
        out.append(replace(
            seg, shift=shift,
            seek=None if lo <= 0 else seek_before(table, lo, start_time),
            read_start=None if lo <= 0 else midpoint(table, lo),
            read_end=None if hi >= total else midpoint(table, hi),
            keep_start=None if seg.start is None else between_slots(seg.start, start_time, rate),
            keep_end=None if seg.end is None else between_slots(seg.end, start_time, rate),
            out_frames=None if seg.end is None else
            slots_before(seg.end, start_time, rate) - first + 1))
    return out


def refusal(fps: Fraction | None, interpolation: str, dedupe: bool,
            input_rate: Fraction | None, interpolate_after: bool = False) -> str | None:
    """Why --segments cannot run these temporal options exactly; None: it can (RIFE here,
    the other interpolators through segments.prepass, or after the model in the join:
    segments.after)."""
    if fps and interpolate_after and interpolation != "rife":
        return None  # the join interpolates (segments.after)
    if fps and interpolation != "rife":
        return None  # the whole-clip pre-pass (segments.prepass)
    if dedupe and fps:
        return None  # the drawings decided once, RIFE with context (segments.dedupe)
    if fps and (not input_rate or fps != 2 * input_rate):
        return ("--segments with --interpolation rife is proven for doubling the input's "
                "frame rate only (the cuts follow that graph's odd/even output slots); run "
                "without --segments.")
    return None
