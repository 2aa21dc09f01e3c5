"""ffmpeg's `-progress` key=value stream, turned into progress updates."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressUpdate:
    frame: int
    fps: float
    out_time_s: float
    speed: str
    done: bool
    worker_fps: tuple[float, ...] = ()
    """--segments: each running worker's fps (``fps`` is their sum)."""


def parse_progress(lines: Iterable[str], on_update: Callable[[ProgressUpdate], None]) -> int:
    """Feed updates to ``on_update`` as each block ends; return the last frame count."""
    block: dict[str, str] = {}
    frame = 0
    for raw in lines:
        key, sep, value = raw.strip().partition("=")
        if not sep:
            continue
        block[key] = value
        if key == "progress":
            frame = int(block.get("frame", "0") or 0)
            try:
                fps = float(block.get("fps", "0") or 0)
            except ValueError:
                fps = 0.0
            us = block.get("out_time_us", "0")
            out_s = int(us) / 1e6 if us.lstrip("-").isdigit() else 0.0
            on_update(ProgressUpdate(frame, fps, max(out_s, 0.0), block.get("speed", ""),
                                     value == "end"))
            block = {}
    return frame
