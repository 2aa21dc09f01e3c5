"""`--dedupe` with RIFE (forward deduplication): which frames are held, measured before the
run, because the graph re-times the distinct drawings evenly and that is only right when
every drawing is held the same number of frames (2: RIFE HD v3 only doubles).

The measurement is one decode of the video stream through mpdecimate (the same filter and
thresholds the graph uses), with showinfo printing the time of each frame it keeps.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from fractions import Fraction
from pathlib import Path

from ffsr.errors import FfsrError

HOLD = 2
"""Frames per drawing that --dedupe with RIFE handles (drawings re-timed at half the rate)."""
_PTS_TIME = re.compile(r"\] n:\s*\d+ .*?pts_time:\s*(\S+)")


def kept_times(ffmpeg: Path, src: Path, stream: int = 0) -> list[Fraction]:
    """The times (s) of the frames mpdecimate keeps: the first frame of each drawing."""
    proc = subprocess.run([str(ffmpeg), "-hide_banner", "-nostdin", "-v", "info", "-i", str(src),
                           "-map", f"0:{stream}", "-vf", "mpdecimate,showinfo", "-f", "null", "-"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise FfsrError(f"Could not measure the held frames of {src} (ffmpeg's mpdecimate failed).")
    return [Fraction(m.group(1)) for m in _PTS_TIME.finditer(proc.stderr)]


def holds(times: list[Fraction], rate: Fraction) -> list[int]:
    """Frames each drawing is held, from the times of consecutive drawings (the last drawing
    has no successor and is not counted)."""
    return [round((b - a) * rate) for a, b in zip(times, times[1:], strict=False)]


def check_holds(found: list[int]) -> None:
    """Refuse, in one sentence, a clip whose drawings are not all held exactly 2 frames."""
    if not found or all(h == 1 for h in found):
        raise FfsrError("--dedupe found no held frames in this clip (every frame differs from "
                        "the one before): drop --dedupe.")
    if any(h != HOLD for h in found):
        counts = ", ".join(f"{n} held {h}" for h, n in sorted(Counter(found).items()))
        raise FfsrError(f"--dedupe with --interpolation rife handles drawings held {HOLD} frames "
                        f"each; this clip's drawings are held differently ({counts}).")


def check_dedupe(ffmpeg: Path, src: Path, rate: Fraction | None, stream: int = 0) -> None:
    """Measure the input's holds and refuse what the dedupe graph would time wrongly."""
    if not rate:
        raise FfsrError("--dedupe with --interpolation rife needs an input with a known frame "
                        "rate.")
    check_holds(holds(kept_times(ffmpeg, src, stream), rate))
