"""Output containers and their sane encoder defaults."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ffsr.errors import FfsrError

GENERAL_VIDEO = frozenset({"libx264", "libx265", "libsvtav1", "libvpx-vp9", "ffv1",
                           "h264_nvenc", "hevc_nvenc", "av1_nvenc"})
MP4_AUDIO = frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"})
MOV_AUDIO = frozenset({"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le",
                       "pcm_s24be", "pcm_f32le"})
WEBM_AUDIO = frozenset({"opus", "vorbis"})


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
    video_encoders: frozenset[str] = GENERAL_VIDEO
    """The video encoders whose streams the container holds."""
    audio_copy: frozenset[str] | None = None
    """Audio codecs copied as they are (None: any); others are re-encoded."""
    audio_encoders: tuple[str, ...] = ()
    """Encoders for audio that cannot be copied, first available wins."""


OUTPUTS: dict[str, OutputKind] = {
    ".mp4": OutputKind("libx264", "yuv420p", audio=True, subtitle_codec="mov_text", crf=True,
                       audio_copy=MP4_AUDIO, audio_encoders=("aac",)),
    ".m4v": OutputKind("libx264", "yuv420p", audio=True, subtitle_codec="mov_text", crf=True,
                       audio_copy=MP4_AUDIO, audio_encoders=("aac",)),
    ".mov": OutputKind("libx264", "yuv420p", audio=True, subtitle_codec="mov_text", crf=True,
                       audio_copy=MOV_AUDIO, audio_encoders=("aac",)),
    ".mkv": OutputKind("libx264", "yuv420p", audio=True, subtitle_codec="copy", crf=True),
    ".webm": OutputKind("libvpx-vp9", "yuv420p", audio=True, subtitle_codec="webvtt", crf=True,
                        video_encoders=frozenset({"libvpx-vp9", "libsvtav1"}),
                        audio_copy=WEBM_AUDIO, audio_encoders=("libopus",)),
    ".gif": OutputKind("gif", "pal8", audio=False, subtitle_codec=None, alpha=True, gif=True,
                       video_encoders=frozenset({"gif"})),
    ".apng": OutputKind("apng", "rgba", audio=False, subtitle_codec=None, alpha=True,
                        video_encoders=frozenset({"apng"})),
    ".png": OutputKind("apng", "rgba", audio=False, subtitle_codec=None, alpha=True,
                       video_encoders=frozenset({"apng", "png"})),
    ".y4m": OutputKind("rawvideo", "yuv420p", audio=False, subtitle_codec=None,
                       video_encoders=frozenset({"rawvideo"})),
}


@dataclass(frozen=True)
class EncoderDefaults:
    """How ffsr drives one video encoder: its quality and speed options and their defaults."""

    pix_fmt: str | None
    """None: keep the graph's own 8-bit format (lossless)."""
    quality: tuple[str, int] | None = None
    """(option, default): CRF-like, lower is better."""
    preset: tuple[str, str] | None = None
    """(option, default) that --preset sets."""
    extra: tuple[str, ...] = ()


ENCODERS: dict[str, EncoderDefaults] = {
    "libx264": EncoderDefaults("yuv420p", ("-crf", 18), ("-preset", "medium")),
    # x265's CRF scale sits ~2 above x264's for the same look; main10 via --pix-fmt yuv420p10le.
    "libx265": EncoderDefaults("yuv420p", ("-crf", 20), ("-preset", "medium")),
    # SVT-AV1: CRF 0-63, presets 0 (slowest) - 13; 8 is its speed/quality middle ground.
    "libsvtav1": EncoderDefaults("yuv420p", ("-crf", 30), ("-preset", "8")),
    # libvpx-vp9: constant quality needs -b:v 0; --preset is its -cpu-used (0 best - 8 fastest).
    "libvpx-vp9": EncoderDefaults("yuv420p", ("-crf", 31), ("-cpu-used", "4"),
                                  ("-b:v", "0", "-row-mt", "1", "-deadline", "good")),
    "h264_nvenc": EncoderDefaults("yuv420p", ("-cq", 19), ("-preset", "p5")),
    "hevc_nvenc": EncoderDefaults("yuv420p", ("-cq", 19), ("-preset", "p5")),
    "av1_nvenc": EncoderDefaults("yuv420p", ("-cq", 30), ("-preset", "p5")),
    "ffv1": EncoderDefaults(None, extra=("-level", "3")),
}
AUDIO_BITRATE = {"aac": "192k", "libopus": "160k"}
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})
"""Subtitles that convert to another text format (bitmap ones, DVD/Blu-ray, do not)."""


def output_kind(path: Path) -> OutputKind:
    kind = OUTPUTS.get(path.suffix.lower())
    if kind is None:
        raise FfsrError(f"Unsupported output type '{path.suffix}'; use one of: "
                        f"{', '.join(OUTPUTS)}.")
    return kind


def encoder_args(kind: OutputKind, encoder: str | None, crf: int | None, preset: str | None,
                 alpha: bool, available: frozenset[str], pix_fmt: str | None = None,
                 suffix: str = "") -> list[str]:
    """-c:v/-crf/-preset/-pix_fmt for the output (the GIF palette is built in the graph).
    ``pix_fmt`` overrides the encoder's default (e.g. yuv420p10le: 10-bit output)."""
    enc = encoder or kind.encoder
    if enc not in available:
        known = sorted(e for e in available if e in ENCODERS or e in ("gif", "apng"))
        raise FfsrError(f"This ffmpeg has no '{enc}' encoder (video encoders ffsr knows here: "
                        f"{', '.join(known)}).")
    if enc not in kind.video_encoders:
        where = suffix or "this output type"
        raise FfsrError(f"A {where} file cannot hold {enc} video; use one of: "
                        f"{', '.join(sorted(kind.video_encoders))}.")
    defaults = ENCODERS.get(enc, EncoderDefaults(kind.pix_fmt))
    args = ["-c:v", enc]
    if defaults.quality:
        option, value = defaults.quality
        args += [option, str(value if crf is None else crf)]
    elif crf is not None:
        raise FfsrError(f"--crf does not apply to the {enc} encoder.")
    if defaults.preset:
        args += [defaults.preset[0], preset or defaults.preset[1]]
    elif preset is not None:
        raise FfsrError(f"--preset does not apply to the {enc} encoder.")
    args += list(defaults.extra)
    if kind.gif:
        return args + ["-loop", "0"]
    fmt = "rgba" if (alpha and kind.alpha) else defaults.pix_fmt
    if enc in ("apng", "png") and not alpha:
        fmt = "rgb24"
    fmt = pix_fmt or fmt
    return args + ["-pix_fmt", fmt] if fmt else args


def subtitle_args(kind: OutputKind, codecs: Sequence[str],
                  available: frozenset[str]) -> tuple[list[str], str | None]:
    """(-c:s for the output or [] to leave subtitles out, a note saying why they are)."""
    if not codecs or kind.subtitle_codec is None:
        return [], None
    if kind.subtitle_codec == "copy":
        return ["-c:s", "copy"], None
    if kind.subtitle_codec not in available:
        return [], (f"subtitles left out: this ffmpeg has no {kind.subtitle_codec} encoder "
                    "(.mkv keeps them as they are).")
    if not all(c in TEXT_SUBTITLES for c in codecs):
        return [], (f"subtitles left out: {', '.join(codecs)} cannot become {kind.subtitle_codec} "
                    "(.mkv keeps them as they are).")
    return ["-c:s", kind.subtitle_codec], None


def audio_args(kind: OutputKind, codecs: Sequence[str], available: frozenset[str]) -> list[str]:
    """-c:a for the input's audio streams: copied when the container holds every one of
    ``codecs``, else re-encoded with the first encoder this ffmpeg has."""
    if kind.audio_copy is None or all(c in kind.audio_copy for c in codecs):
        return ["-c:a", "copy"]
    for enc in kind.audio_encoders:
        if enc in available:
            return ["-c:a", enc, "-b:a", AUDIO_BITRATE.get(enc, "192k")]
    raise FfsrError(f"The audio ({', '.join(codecs)}) cannot be copied into this output type and "
                    f"this ffmpeg has no {' or '.join(kind.audio_encoders)} encoder; choose "
                    "another output type (.mkv keeps any audio).")
