"""`--dedupe` with RIFE (forward deduplication): which frames are held, measured before the
run, because the graph re-times the distinct drawings evenly and that is only right when
every drawing is held the same number of frames (2: RIFE HD v3 only doubles).

The measurement is one decode of the video stream through mpdecimate (the same filter and
thresholds the graph uses, after bwdif where the graph deinterlaces first), with showinfo
printing the time of each frame it keeps. bwdif makes held frames differ (anime on twos: 24
of 48 frames kept without it, all 48 after it), so measuring the raw input passed clips whose
graph then kept every frame and ran twice as long as its audio.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from fractions import Fraction
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.signals import die_with_parent

HOLD = 2
"""Frames per drawing that --dedupe with RIFE handles (drawings re-timed at half the rate)."""
_KEPT = re.compile(r"\] n:\s*\d+ pts:\s*(-?\d+) .*?pts_time:\s*(\S+)")


def mpdecimate_kept(ffmpeg: Path | str, src: Path, stream: int = 0, copyts: bool = False,
                    deinterlace: bool = False) -> list[tuple[int, Fraction]]:
    """(pts in the stream's time base, seconds) of every frame mpdecimate keeps: one decode of
    the video stream through the graph's own filter and thresholds. ``copyts`` keeps the
    file's absolute timestamps (segments select by them); ``deinterlace``: after bwdif, as
    the graph does (the pts are then in its halved time base)."""
    from ffsr.filtergraph import DEINTERLACE

    chain = f"{DEINTERLACE + ',' if deinterlace else ''}mpdecimate,showinfo"
    argv = [str(ffmpeg), "-hide_banner", "-nostdin", "-v", "info", *(["-copyts"] if copyts else []),
            "-i", str(src), "-map", f"0:{stream}", "-vf", chain, "-f", "null", "-"]
    proc = subprocess.run(argv, capture_output=True, text=True, preexec_fn=die_with_parent())
    if proc.returncode != 0:
        raise FfsrError(f"Could not find the held frames of {src} (ffmpeg's mpdecimate failed).")
    return [(int(m.group(1)), Fraction(m.group(2))) for m in _KEPT.finditer(proc.stderr)]


def kept_times(ffmpeg: Path, src: Path, stream: int = 0,
               deinterlace: bool = False) -> list[Fraction]:
    """The times (s) of the frames mpdecimate keeps: the first frame of each drawing."""
    return [t for _, t in mpdecimate_kept(ffmpeg, src, stream, deinterlace=deinterlace)]


def holds(times: list[Fraction], rate: Fraction) -> list[int]:
    """Frames each drawing is held, from the times of consecutive drawings (the last drawing
    has no successor and is not counted)."""
    return [round((b - a) * rate) for a, b in zip(times, times[1:], strict=False)]


def check_holds(found: list[int], deinterlaced: bool = False) -> None:
    """Refuse, in one sentence, a clip whose drawings are not all held exactly 2 frames."""
    if not found or all(h == 1 for h in found):
        raise FfsrError("--dedupe found no held frames after --deinterlace (bwdif makes held "
                        "frames differ from each other): drop --dedupe or --deinterlace."
                        if deinterlaced else
                        "--dedupe found no held frames in this clip (every frame differs from "
                        "the one before): drop --dedupe.")
    if any(h != HOLD for h in found):
        counts = ", ".join(f"{n} held {h}" for h, n in sorted(Counter(found).items()))
        raise FfsrError(f"--dedupe with --interpolation rife handles drawings held {HOLD} frames "
                        f"each; this clip's drawings are held differently ({counts}).")


def check_dedupe(ffmpeg: Path, src: Path, rate: Fraction | None, stream: int = 0,
                 deinterlace: bool = False) -> None:
    """Measure the input's holds and refuse what the dedupe graph would time wrongly."""
    if not rate:
        raise FfsrError("--dedupe with --interpolation rife needs an input with a known frame "
                        "rate.")
    check_holds(holds(kept_times(ffmpeg, src, stream, deinterlace), rate), deinterlace)
