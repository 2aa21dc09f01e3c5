"""Output containers and their sane encoder defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ffsr.errors import FfsrError


@dataclass(frozen=True)
class OutputKind:
    """What an output extension means for encoding and which streams it can keep."""

    encoder: str
    pix_fmt: str
    audio: bool
    subtitle_codec: str | None
    alpha: bool = False
    gif: bool = False
    crf: bool = False


OUTPUTS: dict[str, OutputKind] = {
    ".mp4": OutputKind("libx264", "yuv420p", audio=True, subtitle_codec="mov_text", crf=True),
    ".m4v": OutputKind("libx264", "yuv420p", audio=True, subtitle_codec="mov_text", crf=True),
    ".mov": OutputKind("libx264", "yuv420p", audio=True, subtitle_codec="mov_text", crf=True),
    ".mkv": OutputKind("libx264", "yuv420p", audio=True, subtitle_codec="copy", crf=True),
    ".gif": OutputKind("gif", "pal8", audio=False, subtitle_codec=None, alpha=True, gif=True),
    ".apng": OutputKind("apng", "rgba", audio=False, subtitle_codec=None, alpha=True),
    ".png": OutputKind("apng", "rgba", audio=False, subtitle_codec=None, alpha=True),
    ".y4m": OutputKind("rawvideo", "yuv420p", audio=False, subtitle_codec=None),
}
ENCODER_PIX_FMT = {"ffv1": None, "h264_nvenc": "yuv420p", "hevc_nvenc": "yuv420p",
                   "libx264": "yuv420p"}
"""None: keep the graph's own 8-bit format (lossless)."""


def output_kind(path: Path) -> OutputKind:
    kind = OUTPUTS.get(path.suffix.lower())
    if kind is None:
        raise FfsrError(f"Unsupported output type '{path.suffix}'; use one of: "
                        f"{', '.join(OUTPUTS)}.")
    return kind


def encoder_args(kind: OutputKind, encoder: str | None, crf: int | None, preset: str | None,
                 alpha: bool, available: frozenset[str]) -> list[str]:
    """-c:v/-crf/-pix_fmt for the output (the GIF palette is built in the graph)."""
    enc = encoder or kind.encoder
    if enc not in available:
        known = sorted(e for e in available if e in ENCODER_PIX_FMT or e in ("gif", "apng"))
        raise FfsrError(f"This ffmpeg has no '{enc}' encoder (video encoders ffsr knows here: "
                        f"{', '.join(known)}).")
    args = ["-c:v", enc]
    if enc == "libx264":
        args += ["-crf", str(18 if crf is None else crf), "-preset", preset or "medium"]
    elif enc.endswith("_nvenc"):
        args += ["-cq", str(19 if crf is None else crf), "-preset", preset or "p5"]
    elif enc == "ffv1":
        args += ["-level", "3"]
    if kind.gif:
        return args + ["-loop", "0"]
    pix_fmt = "rgba" if (alpha and kind.alpha) else ENCODER_PIX_FMT.get(enc, kind.pix_fmt)
    if enc == "apng" and not alpha:
        pix_fmt = "rgb24"
    return args + ["-pix_fmt", pix_fmt] if pix_fmt else args
