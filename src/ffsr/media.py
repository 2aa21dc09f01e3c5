"""Reading media with the real ffmpeg/ffprobe: stream facts and raw frames as numpy."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from ffsr.errors import FfsrError

if TYPE_CHECKING:  # numpy costs ~0.2 s to import; only the frame readers need it
    import numpy as np

CHANNELS = {"gray": 1, "rgb24": 3, "bgr24": 3, "rgba": 4, "grayf32": 1}


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    pix_fmt: str
    frame_rate: Fraction
    frames: int | None
    duration: float | None
    codec: str
    has_audio: bool
    bits_per_raw_sample: int | None
    index: int = 0
    """The stream's index in the file (cover art and other attached pictures are skipped)."""
    audio_codecs: tuple[str, ...] = ()
    subtitle_codecs: tuple[str, ...] = ()

    @property
    def is_high_bit_depth(self) -> bool:
        return bool(self.bits_per_raw_sample and self.bits_per_raw_sample > 8) or any(
            tag in self.pix_fmt for tag in ("10", "12", "16"))

    @property
    def has_alpha(self) -> bool:
        return self.pix_fmt in {"rgba", "bgra", "argb", "abgr", "yuva420p", "pal8", "ya8"} or \
            self.pix_fmt.startswith("yuva")


def probe(ffprobe: Path, path: Path) -> VideoInfo:
    """Facts about the first video stream; a clear error for missing or unreadable files."""
    if not path.exists() and not is_sequence_pattern(path):
        raise FfsrError(f"Input file not found: {path}")
    if path.is_dir():
        raise FfsrError(f"Input is a directory, not a video file: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise FfsrError(f"{path} is empty (0 bytes).")
    out = subprocess.run(
        [str(ffprobe), "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True, text=True)
    if out.returncode != 0:
        first = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise FfsrError(f"{path} is not a readable video ({first.split(': ', 1)[-1]}).")
    data = json.loads(out.stdout or "{}")
    streams = data.get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video"]
    video = next((s for s in videos if not s.get("disposition", {}).get("attached_pic")), None)
    if video is None:
        only = " (only cover art)" if videos else ""
        raise FfsrError(f"{path} has no video stream{only}.")
    rate = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    nb = video.get("nb_frames")
    dur = video.get("duration") or data.get("format", {}).get("duration")
    bits = video.get("bits_per_raw_sample")
    return VideoInfo(
        width=int(video["width"]), height=int(video["height"]),
        pix_fmt=video.get("pix_fmt", "unknown"), frame_rate=rate,
        frames=int(nb) if nb and nb.isdigit() else None,
        duration=float(dur) if dur else None, codec=video.get("codec_name", "?"),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        bits_per_raw_sample=int(bits) if bits and str(bits).isdigit() else None,
        index=int(video.get("index", 0)),
        audio_codecs=tuple(str(s.get("codec_name", "?")) for s in streams
                           if s.get("codec_type") == "audio"),
        subtitle_codecs=tuple(str(s.get("codec_name", "?")) for s in streams
                              if s.get("codec_type") == "subtitle"),
    )


def _rate(text: str | None) -> Fraction:
    try:
        return Fraction(text or "0/1")
    except (ValueError, ZeroDivisionError):
        return Fraction(0)


def is_sequence_pattern(path: Path) -> bool:
    """An image-sequence pattern such as ``img%03d.png`` whose first files exist."""
    m = re.search(r"%(0?)(\d*)d", path.name)
    if not m or not path.parent.is_dir():
        return False
    digits = r"\d" + (f"{{{m.group(2)}}}" if m.group(1) and m.group(2) else "+")
    name = re.compile(re.escape(path.name[:m.start()]) + digits + re.escape(path.name[m.end():]) + "$")
    return any(name.match(p.name) for p in path.parent.iterdir())


def expected_frames(ffprobe: Path, path: Path, info: VideoInfo, fps: Fraction | None = None) -> int | None:
    """The frames ``path`` should give (at ``fps`` when a new rate is asked for); None when
    it cannot be known. Without a count in the container (Matroska, GIF, sequences) the
    packets are counted, demuxing only: duration x rate is wrong for variable-rate video
    (phones, screen recordings), and Matroska reports their rate as constant."""
    if fps and info.duration:
        return int(round(info.duration * fps))
    if info.frames is not None:
        return info.frames
    out = subprocess.run(
        [str(ffprobe), "-v", "error", "-count_packets", "-select_streams", str(info.index),
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True)
    first = out.stdout.strip().split(",")[0]
    return int(first) if out.returncode == 0 and first.isdigit() else None


def count_frames(ffprobe: Path, path: Path) -> int:
    """Decode and count video frames (exact, unlike container metadata)."""
    out = subprocess.run(
        [str(ffprobe), "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True)
    return int(out.stdout.strip().split(",")[0])


def read_frames(ffmpeg: Path, path: Path, pix_fmt: str, width: int, height: int,
                frames: int | None = None, vf: str | None = None) -> np.ndarray:
    """Decode to raw ``pix_fmt`` frames: uint8 array [N, H, W, C] (C=1 for gray)."""
    cmd = [str(ffmpeg), "-v", "error", "-i", str(path)]
    if vf:
        cmd += ["-vf", vf]
    if frames:
        cmd += ["-frames:v", str(frames)]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    out = subprocess.run(cmd, capture_output=True, check=False)
    if out.returncode != 0:
        raise FfsrError(f"ffmpeg could not decode {path}: {out.stderr.decode()[-300:]}")
    c = CHANNELS[pix_fmt]
    per = width * height * c
    n = len(out.stdout) // per
    import numpy as np

    return np.frombuffer(out.stdout[: n * per], np.uint8).reshape(n, height, width, c)


def read_yuv420p_y(ffmpeg: Path, path: Path, width: int, height: int,
                   frames: int | None = None, vf: str | None = None) -> np.ndarray:
    """Only the Y plane of yuv420p frames: uint8 [N, H, W]."""
    return read_frames(ffmpeg, path, "gray", width, height, frames,
                       vf=(vf + "," if vf else "") + "format=yuv420p,extractplanes=y")[..., 0]
