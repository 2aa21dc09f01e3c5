"""Real-world inputs and outputs through `ffsr upscale`, one case each (docs/inputs.md has the
table): every case is either processed right (size, frame count, timestamps, streams) or
refused with one sentence, a non-zero exit and nothing left behind. The inputs are made
here with the real ffmpeg; the CLI runs in this process (its entry point, exit status and
stderr as a user sees them) to keep the matrix fast."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env, isolated_cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffsr.model_card import ModelCard, find_card

pytest.importorskip("torch")

W, H = 176, 144


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="session")
def espcn_cache(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: Path,
                shared_data: Path) -> Path:
    """A cache home of its own (links to the real FFmpeg builds) where the README's
    `ffsr convert-model espcn` put ESPCN, ONNX only: all these cases need, and the lean
    default build that ffsr then finds by itself runs it."""
    home = isolated_cache(tmp_path_factory.mktemp("espcn-cache"))
    proc = subprocess.run([sys.executable, "-m", "ffsr", "convert-model", "espcn", "--backends",
                           "onnx"], env=clean_env(home), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    return home


@pytest.fixture(scope="session")
def espcn_card(espcn_cache: Path) -> ModelCard:
    return find_card("espcn", espcn_cache / "ffsr" / "models")


@pytest.fixture
def espcn(espcn_card: ModelCard, espcn_cache: Path, monkeypatch: pytest.MonkeyPatch) -> ModelCard:
    """That ESPCN: for one test, ffsr (in this process and the ones it starts) uses the cache
    holding it, and finds its ffmpeg and the model there as for a user."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(espcn_cache))
    return espcn_card


@dataclass
class Cli:
    code: int
    stderr: str


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
            cwd: Path, env: dict[str, str] | None = None) -> Cli:
    """`ffsr ARGS` through its console entry point, in this process."""
    from ffsr.cli import main

    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["ffsr", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return Cli(code, capsys.readouterr().err)


def make(ffmpeg: Path, *args: str) -> None:
    subprocess.run([str(ffmpeg), "-v", "error", "-y", *args], check=True, capture_output=True)


def lavfi(spec: str, frames: int | None = None) -> list[str]:
    """A lavfi input; ``frames`` limits the output (put it last when more inputs follow)."""
    return ["-f", "lavfi", "-i", spec] + (["-frames:v", str(frames)] if frames else [])


def src(size: str = f"{W}x{H}", rate: int = 25) -> str:
    return f"testsrc2=size={size}:rate={rate}"


def ffprobe_json(ffprobe: Path, path: Path, *entries: str) -> dict[str, Any]:
    out = subprocess.run([str(ffprobe), "-v", "error", "-of", "json", *entries, str(path)],
                         capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def streams(ffprobe: Path, path: Path) -> list[dict[str, Any]]:
    return list(ffprobe_json(ffprobe, path, "-show_streams")["streams"])


def video_frames(ffprobe: Path, path: Path) -> list[float]:
    """Timestamps (best effort, seconds) of every decoded frame of the first video stream."""
    data = ffprobe_json(ffprobe, path, "-select_streams", "v:0", "-show_entries",
                        "frame=best_effort_timestamp_time")
    return [float(f["best_effort_timestamp_time"]) for f in data["frames"]]


@dataclass
class Expect:
    """What a processed case must give; ``check`` looks at anything else."""

    output: str
    size: tuple[int, int]
    frames: int
    pts_of: str | None = None
    """An input whose frame timestamps the output must keep."""
    frames_of: str | None = None
    """An input whose decodable frames must all come out (``frames`` is then ignored)."""
    check: Callable[[Path, Path, str], None] | None = None
    """(output, ffprobe, stderr) -> None, asserting."""


@dataclass
class Case:
    args: list[str]
    expect: Expect | None = None
    refusal: str = ""
    """A regex the one-sentence error must match (when refused)."""
    env: dict[str, str] = field(default_factory=dict)
    leaves: set[str] | None = None
    """Names the work folder holds afterwards (default: the inputs, plus the output if any)."""


# ---------------------------------------------------------------- the cases


def vfr(d: Path, ff: Path) -> Case:
    """Phone/screen-recording style: 20 frames with uneven durations in Matroska."""
    make(ff, *lavfi(src(), 20), "-vf", "setpts='N*N*200/TB/1000'", "-fps_mode", "passthrough",
         "-c:v", "libx264", "-preset", "ultrafast", str(d / "vfr.mkv"))
    return Case(["upscale", "vfr.mkv", "-m", "espcn"],
                Expect("vfr_x2.mkv", (2 * W, 2 * H), 20, pts_of="vfr.mkv"))


def vfr_mp4(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 12), "-vf", "setpts='(2*N+mod(N*N,3))*40/TB/1000'", "-fps_mode", "passthrough",
         "-c:v", "libx264", "-preset", "ultrafast", str(d / "screen.mp4"))
    return Case(["upscale", "screen.mp4", "-m", "espcn", "-o", "out.mp4"],
                Expect("out.mp4", (2 * W, 2 * H), 12, pts_of="screen.mp4"))


def odd_size(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 5), "-vf", "scale=177:143,setsar=1,format=yuv444p", "-c:v", "ffv1",
         str(d / "odd.mkv"))
    return Case(["upscale", "odd.mkv", "-m", "espcn", "-o", "odd.mp4"],
                Expect("odd.mp4", (354, 286), 5))


def anamorphic(d: Path, ff: Path) -> Case:
    """A DVD-style non-square pixel: the display shape stays (SAR kept)."""
    make(ff, *lavfi(src("180x120"), 5), "-vf", "setsar=32/27", "-c:v", "libx264", "-preset",
         "ultrafast", str(d / "dvd.mp4"))

    def check(out: Path, ffprobe: Path, _: str) -> None:
        assert streams(ffprobe, out)[0]["sample_aspect_ratio"] == "32:27"

    return Case(["upscale", "dvd.mp4", "-m", "espcn", "-o", "o.mp4"],
                Expect("o.mp4", (360, 240), 5, check=check))


def rotated(d: Path, ff: Path) -> Case:
    """Phone video stored landscape with a 90° display matrix: upscaled as it is shown."""
    make(ff, *lavfi(src(), 5), "-c:v", "libx264", "-preset", "ultrafast", str(d / "raw.mp4"))
    make(ff, "-display_rotation", "90", "-i", str(d / "raw.mp4"), "-c", "copy", str(d / "phone.mp4"))
    (d / "raw.mp4").unlink()

    def check(out: Path, ffprobe: Path, _: str) -> None:
        side = streams(ffprobe, out)[0].get("side_data_list", [])
        assert not [s for s in side if s.get("rotation")], "rotated twice on playback"

    return Case(["upscale", "phone.mp4", "-m", "espcn", "-o", "o.mp4"],
                Expect("o.mp4", (2 * H, 2 * W), 5, check=check))


def interlaced(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 6), "-flags", "+ilme+ildct", "-c:v", "libx264", "-preset", "ultrafast",
         "-x264-params", "interlaced=1:tff=1", str(d / "tv.mkv"))
    assert streams(ff.with_name("ffprobe"), d / "tv.mkv")[0].get("field_order") in ("tt", "bt")
    return Case(["upscale", "tv.mkv", "-m", "espcn", "--deinterlace", "-o", "o.mp4"],
                Expect("o.mp4", (2 * W, 2 * H), 6))


def ten_bit(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 4), "-c:v", "ffv1", "-pix_fmt", "yuv420p10le", str(d / "ten.mkv"))

    def check(out: Path, ffprobe: Path, stderr: str) -> None:
        assert streams(ffprobe, out)[0]["pix_fmt"] == "yuv420p"
        assert "processed in 8 bits and written in 8 bits" in stderr

    return Case(["upscale", "ten.mkv", "-m", "espcn", "-o", "o.mp4"],
                Expect("o.mp4", (2 * W, 2 * H), 4, check=check))


def hdr(transfer: str) -> Callable[[Path, Path], Case]:
    """10-bit BT.2020 with PQ or HLG: processed in 8 bits, the colour tags kept."""
    def case(d: Path, ff: Path) -> Case:
        make(ff, *lavfi(src(), 3), "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params",
             f"log-level=error:colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc",
             str(d / "hdr.mkv"))

        def check(out: Path, ffprobe: Path, stderr: str) -> None:
            s = streams(ffprobe, out)[0]
            assert (s["pix_fmt"], s["codec_name"]) == ("yuv420p10le", "hevc")
            assert (s["color_primaries"], s["color_transfer"], s["color_space"]) == \
                ("bt2020", transfer, "bt2020nc")

        return Case(["upscale", "hdr.mkv", "-m", "espcn", "--encoder", "libx265", "--pix-fmt",
                     "yuv420p10le", "-o", "o.mkv"], Expect("o.mkv", (2 * W, 2 * H), 3, check=check))
    return case


def chroma(pix_fmt: str) -> Callable[[Path, Path], Case]:
    def case(d: Path, ff: Path) -> Case:
        make(ff, *lavfi(src(), 4), "-c:v", "ffv1", "-pix_fmt", pix_fmt, str(d / "c.mkv"))

        def check(out: Path, ffprobe: Path, _: str) -> None:
            assert streams(ffprobe, out)[0]["pix_fmt"] == "yuv420p"

        return Case(["upscale", "c.mkv", "-m", "espcn", "-o", "o.mp4"],
                    Expect("o.mp4", (2 * W, 2 * H), 4, check=check))
    return case


def alpha_mov(out_name: str, keeps_alpha: bool) -> Callable[[Path, Path], Case]:
    """PNG with alpha in QuickTime (motion graphics): alpha kept where the output can hold it."""
    def case(d: Path, ff: Path) -> Case:
        mask = f"testsrc=size={W}x{H},format=gray"
        make(ff, *lavfi(f"{src()}[c];{mask}[a];[c][a]alphamerge[out0]", 3), "-c:v", "png",
             "-pix_fmt", "rgba", str(d / "alpha.mov"))

        def check(out: Path, ffprobe: Path, stderr: str) -> None:
            fmt = streams(ffprobe, out)[0]["pix_fmt"]
            assert ("a" in fmt.replace("yuv", "")) == keeps_alpha, fmt
            if not keeps_alpha:
                assert "alpha" in stderr

        return Case(["upscale", "alpha.mov", "-m", "espcn", "-o", out_name],
                    Expect(out_name, (2 * W, 2 * H), 3, check=check))
    return case


def two_video_streams(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src()), *lavfi("testsrc=size=320x240:rate=25"), "-map", "0", "-map", "1",
         "-frames:v", "4", "-c:v", "ffv1", str(d / "two.mkv"))

    def check(out: Path, ffprobe: Path, _: str) -> None:
        assert [s["codec_type"] for s in streams(ffprobe, out)] == ["video"]

    return Case(["upscale", "two.mkv", "-m", "espcn", "-o", "o.mkv"],
                Expect("o.mkv", (2 * W, 2 * H), 4, check=check))


def cover_art(d: Path, ff: Path) -> Case:
    """A cover picture stored before the video (as taggers do): the video is upscaled."""
    make(ff, *lavfi("testsrc=size=64x64", 1), str(d / "cover.png"))
    make(ff, *lavfi(src()), "-i", str(d / "cover.png"), "-map", "1", "-map", "0", "-c:v:0",
         "png", "-c:v:1", "libx264", "-preset", "ultrafast", "-disposition:v:0", "attached_pic",
         "-frames:v:1", "5", str(d / "tagged.mp4"))
    (d / "cover.png").unlink()
    return Case(["upscale", "tagged.mp4", "-m", "espcn", "-o", "o.mp4"],
                Expect("o.mp4", (2 * W, 2 * H), 5))


def audio_with_cover_only(d: Path, ff: Path) -> Case:
    make(ff, *lavfi("testsrc=size=64x64", 1), str(d / "cover.png"))
    make(ff, *lavfi("sine=duration=1"), "-i", str(d / "cover.png"), "-map", "0", "-map", "1",
         "-c:a", "aac", "-c:v", "png", "-disposition:v:0", "attached_pic", str(d / "song.mp4"))
    (d / "cover.png").unlink()
    (d / "song.mp4").rename(d / "song.m4a")  # this build muxes .mp4, not the ipod flavour
    return Case(["upscale", "song.m4a", "-m", "espcn", "-o", "o.mp4"],
                refusal=r"song\.m4a has no video stream \(only cover art\)\.$")


def audio_only(d: Path, ff: Path) -> Case:
    make(ff, *lavfi("sine=duration=1"), "-c:a", "aac", str(d / "talk.mp4"))
    (d / "talk.mp4").rename(d / "talk.m4a")
    return Case(["upscale", "talk.m4a", "-m", "espcn", "-o", "o.mp4"],
                refusal=r"talk\.m4a has no video stream\.$")


def one_frame(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 1), "-c:v", "libx264", "-preset", "ultrafast", str(d / "one.mp4"))
    return Case(["upscale", "one.mp4", "-m", "espcn"], Expect("one_x2.mp4", (2 * W, 2 * H), 1))


def tiny(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src("8x8"), 3), "-c:v", "ffv1", str(d / "tiny.mkv"))
    return Case(["upscale", "tiny.mkv", "-m", "espcn"], Expect("tiny_x2.mkv", (16, 16), 3))


def still(suffix: str) -> Callable[[Path, Path], Case]:
    """A photo stays a photo: <name>_x2.png."""
    def case(d: Path, ff: Path) -> Case:
        make(ff, *lavfi(src(), 1), str(d / "photo.png"))
        if suffix != ".png":  # this build has no JPEG encoder: Pillow writes the photo
            from PIL import Image

            with Image.open(d / "photo.png") as im:
                im.convert("RGB").save(d / f"photo{suffix}", quality=90)
            (d / "photo.png").unlink()

        def check(out: Path, ffprobe: Path, _: str) -> None:
            assert streams(ffprobe, out)[0]["codec_name"] in ("png", "apng")

        return Case(["upscale", f"photo{suffix}", "-m", "espcn"],
                    Expect("photo_x2.png", (2 * W, 2 * H), 1, check=check))
    return case


def image_sequence(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 6), str(d / "img%03d.png"))
    return Case(["upscale", "img%03d.png", "-m", "espcn"], Expect("img_x2.mp4", (2 * W, 2 * H), 6))


def unicode_paths(d: Path, ff: Path) -> Case:
    sub = d / "vidéos d'été 夏"
    sub.mkdir()
    make(ff, *lavfi(src(), 3), "-c:v", "libx264", "-preset", "ultrafast", str(sub / "plage ünï.mp4"))
    return Case(["upscale", str(sub / "plage ünï.mp4"), "-m", "espcn"],
                Expect(f"{sub.name}/plage ünï_x2.mp4", (2 * W, 2 * H), 3))


def with_audio(suffix: str, codec: str, out_suffix: str, want: str) -> Callable[[Path, Path], Case]:
    """Audio is copied when the output container holds it, else re-encoded (``want``)."""
    def case(d: Path, ff: Path) -> Case:
        make(ff, *lavfi(src()), *lavfi("sine=duration=0.4:sample_rate=48000"), "-frames:v", "10",
             "-c:v", "libx264", "-preset", "ultrafast", "-c:a", codec, str(d / f"a{suffix}"))

        def check(out: Path, ffprobe: Path, _: str) -> None:
            audio = [s["codec_name"] for s in streams(ffprobe, out) if s["codec_type"] == "audio"]
            assert audio == [want]

        return Case(["upscale", f"a{suffix}", "-m", "espcn", "-o", f"o{out_suffix}"],
                    Expect(f"o{out_suffix}", (2 * W, 2 * H), 10, check=check))
    return case


def subtitles(d: Path, ff: Path) -> Case:
    (d / "s.srt").write_text("1\n00:00:00,000 --> 00:00:00,300\nBonjour\n")
    make(ff, *lavfi(src()), "-i", str(d / "s.srt"), "-frames:v", "10", "-c:v", "libx264",
         "-preset", "ultrafast", "-c:s", "srt", str(d / "subs.mkv"))
    (d / "s.srt").unlink()

    from ffsr.ffmpeg_tools import capabilities

    has_mov_text = "mov_text" in capabilities(ff).encoders

    def check(out: Path, ffprobe: Path, stderr: str) -> None:
        kept = [s["codec_name"] for s in streams(ffprobe, out)][1:]
        # Kept as mov_text where this ffmpeg has that encoder, else left out with a note.
        if has_mov_text:
            assert kept == ["mov_text"]
        else:
            assert kept == [] and "subtitles left out: this ffmpeg has no mov_text encoder" in stderr

    return Case(["upscale", "subs.mkv", "-m", "espcn", "-o", "o.mp4"],
                Expect("o.mp4", (2 * W, 2 * H), 10, check=check))


def encoded(out_name: str, codec: str, pix_fmt: str, bits: int,
            *options: str) -> Callable[[Path, Path], Case]:
    """The output encoders: codec, pixel format and bit depth as ffprobe reads them back."""
    def case(d: Path, ff: Path) -> Case:
        make(ff, *lavfi(src()), *lavfi("sine=duration=0.2:sample_rate=48000"), "-frames:v", "5",
             "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(d / "in.mp4"))

        def check(out: Path, ffprobe: Path, _: str) -> None:
            video, *rest = streams(ffprobe, out)
            assert (video["codec_name"], video["pix_fmt"]) == (codec, pix_fmt)
            raw = ffprobe_json(ffprobe, out, "-select_streams", "v:0", "-show_entries",
                               "frame=pix_fmt", "-read_intervals", "%+#1")["frames"][0]["pix_fmt"]
            assert raw == pix_fmt and (bits == 10) == raw.endswith("10le")
            assert [s["codec_type"] for s in rest] == ["audio"]

        return Case(["upscale", "in.mp4", "-m", "espcn", *options, "-o", out_name],
                    Expect(out_name, (2 * W, 2 * H), 5, check=check))
    return case


# Refusals


def zero_length(d: Path, ff: Path) -> Case:
    (d / "empty.mp4").write_bytes(b"")
    return Case(["upscale", "empty.mp4", "-m", "espcn"], refusal=r"empty\.mp4 is empty \(0 bytes\)\.$")


def random_bytes(d: Path, ff: Path) -> Case:
    (d / "noise.mkv").write_bytes(os.urandom(4096))
    return Case(["upscale", "noise.mkv", "-m", "espcn"], refusal=r"noise\.mkv is not a readable video")


def truncated_faststart(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 50), "-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart",
         str(d / "full.mp4"))
    data = (d / "full.mp4").read_bytes()
    (d / "full.mp4").unlink()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])
    return Case(["upscale", "cut.mp4", "-m", "espcn"],
                refusal=r"^Only \d+ of 50 frames came out: the input is truncated or damaged; "
                        r"output discarded\.")


def truncated_no_index(d: Path, ff: Path) -> Case:
    """An mp4 cut before its index (moov at the end, as a crashed recorder leaves it)."""
    make(ff, *lavfi(src(), 50), "-c:v", "libx264", "-preset", "ultrafast", str(d / "full.mp4"))
    data = (d / "full.mp4").read_bytes()
    (d / "full.mp4").unlink()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])
    return Case(["upscale", "cut.mp4", "-m", "espcn"],
                refusal=r"cut\.mp4 is not a readable video \(.+\)\.$")


def truncated_mkv(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 50), "-c:v", "libx264", "-preset", "ultrafast", str(d / "full.mkv"))
    data = (d / "full.mkv").read_bytes()
    (d / "full.mkv").unlink()
    (d / "cut.mkv").write_bytes(data[: len(data) // 2])
    return Case(["upscale", "cut.mkv", "-m", "espcn"],
                refusal=r"^cut\.mkv ends before its stated duration \(a truncated file\); output "
                        r"discarded\.")


def garbage_mid_stream(d: Path, ff: Path) -> Case:
    """Bytes overwritten in the middle of the video data: every frame ffmpeg can still read
    (the damaged ones concealed) is upscaled."""
    make(ff, *lavfi(src(), 50), "-c:v", "libx264", "-preset", "ultrafast", "-g", "10",
         str(d / "hurt.mkv"))
    data = bytearray((d / "hurt.mkv").read_bytes())
    mid = len(data) // 2
    data[mid:mid + 2000] = bytes((i * 7919) % 251 for i in range(2000))
    (d / "hurt.mkv").write_bytes(bytes(data))
    return Case(["upscale", "hurt.mkv", "-m", "espcn", "-o", "o.mkv"],
                Expect("o.mkv", (2 * W, 2 * H), -1, frames_of="hurt.mkv"))


def missing_input(d: Path, ff: Path) -> Case:
    return Case(["upscale", "nope.mp4", "-m", "espcn"], refusal=r"^Input file not found: nope\.mp4$")


def directory_input(d: Path, ff: Path) -> Case:
    (d / "folder.mp4").mkdir()
    return Case(["upscale", "folder.mp4", "-m", "espcn", "-o", "o.mp4"],
                refusal=r"^No video files in folder\.mp4 \(by extension")


def existing_output(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 2), "-c:v", "libx264", str(d / "in.mp4"))
    (d / "in_x2.mp4").write_bytes(b"keep me")
    return Case(["upscale", "in.mp4", "-m", "espcn"], refusal=r"in_x2\.mp4 exists; pass --overwrite")


def unsupported_output(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 2), "-c:v", "libx264", str(d / "in.mp4"))
    return Case(["upscale", "in.mp4", "-m", "espcn", "-o", "o.avi"],
                refusal=r"^Unsupported output type '\.avi'")


def wrong_container_for_encoder(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 2), "-c:v", "libx264", str(d / "in.mp4"))
    return Case(["upscale", "in.mp4", "-m", "espcn", "--encoder", "libx265", "-o", "o.webm"],
                refusal=r"^A \.webm file cannot hold libx265 video; use one of: libsvtav1, libvpx-vp9\.$")


def changed_model(d: Path, ff: Path) -> Case:
    """A converted model edited after conversion: its card's sha256 no longer matches."""
    from ffsr.model_card import find_card

    card = find_card("espcn")
    copy = d / "models" / "espcn"
    shutil.copytree(card.directory, copy)
    onnx = copy / card.files["onnx"].path
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    make(ff, *lavfi(src(), 2), "-c:v", "libx264", str(d / "in.mp4"))
    return Case(["upscale", "in.mp4", "-m", str(copy / "espcn.card.json"), "-o", "o.mp4"],
                refusal=r"^Model espcn's onnx file changed after conversion \(its sha256 no longer "
                        r"matches the card\): convert it again")


def no_docker_engine(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 2), "-c:v", "libx264", str(d / "in.mp4"))
    return Case(["upscale", "in.mp4", "-m", "espcn", "--runtime", "docker", "-o", "o.mp4"],
                refusal=r"^No Docker engine is reachable at unix://.*dead\.sock",
                env={"DOCKER_HOST": f"unix://{d}/dead.sock"})


def mount_tmpfs(path: Path, options: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def read_only_folder(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 2), "-c:v", "libx264", str(d / "in.mp4"))
    mount_tmpfs(d / "ro", "ro,size=64k")
    return Case(["upscale", "in.mp4", "-m", "espcn", "-o", "ro/o.mp4"],
                refusal=r"^Output folder is not writable: ro$", leaves={"in.mp4", "ro"})


def disk_full(d: Path, ff: Path) -> Case:
    make(ff, *lavfi(src(), 30), "-c:v", "libx264", "-preset", "ultrafast", str(d / "in.mp4"))
    mount_tmpfs(d / "small", "size=48k")
    return Case(["upscale", "in.mp4", "-m", "espcn", "--encoder", "ffv1", "-o", "small/o.mkv"],
                refusal=r"(No space left on device|disk is full)", leaves={"in.mp4", "small"})


CASES: dict[str, Callable[[Path, Path], Case]] = {
    "vfr-mkv": vfr,
    "vfr-mp4": vfr_mp4,
    "odd-177x143": odd_size,
    "anamorphic-sar": anamorphic,
    "rotation-metadata": rotated,
    "interlaced": interlaced,
    "10-bit": ten_bit,
    "hdr-pq": hdr("smpte2084"),
    "hdr-hlg": hdr("arib-std-b67"),
    "yuv422p": chroma("yuv422p"),
    "yuv444p": chroma("yuv444p"),
    "alpha-mov-to-mov": alpha_mov("o.mov", keeps_alpha=False),
    "alpha-mov-to-apng": alpha_mov("o.apng", keeps_alpha=True),
    "two-video-streams": two_video_streams,
    "cover-art-first": cover_art,
    "audio-with-cover-only": audio_with_cover_only,
    "audio-only": audio_only,
    "one-frame": one_frame,
    "8x8": tiny,
    "still-png": still(".png"),
    "still-jpeg": still(".jpg"),
    "image-sequence": image_sequence,
    "unicode-spaces-paths": unicode_paths,
    "aac-into-mp4-copied": with_audio(".mp4", "aac", ".mp4", "aac"),
    "pcm-into-mp4-reencoded": with_audio(".mkv", "pcm_s16le", ".mp4", "aac"),
    "aac-into-webm-reencoded": with_audio(".mp4", "aac", ".webm", "opus"),
    "opus-into-webm-copied": with_audio(".mkv", "libopus", ".webm", "opus"),
    "subtitles-srt-to-mp4": subtitles,
    "webm-default-vp9-opus": encoded("o.webm", "vp9", "yuv420p", 8),
    "x265-10-bit": encoded("o.mp4", "hevc", "yuv420p10le", 10, "--encoder", "libx265", "--pix-fmt",
                           "yuv420p10le"),
    "svt-av1-10-bit": encoded("o.mkv", "av1", "yuv420p10le", 10, "--encoder", "libsvtav1",
                              "--pix-fmt", "yuv420p10le"),
    "vp9-10-bit-webm": encoded("o.webm", "vp9", "yuv420p10le", 10, "--pix-fmt", "yuv420p10le"),
    "zero-length": zero_length,
    "random-bytes": random_bytes,
    "truncated-mp4-faststart": truncated_faststart,
    "truncated-mp4-no-index": truncated_no_index,
    "truncated-mkv": truncated_mkv,
    "garbage-mid-stream": garbage_mid_stream,
    "missing-input": missing_input,
    "directory-input": directory_input,
    "existing-output": existing_output,
    "unsupported-output": unsupported_output,
    "encoder-container-mismatch": wrong_container_for_encoder,
    "model-changed-after-conversion": changed_model,
    "docker-without-engine": no_docker_engine,
    "read-only-output-folder": read_only_folder,
    "disk-full": disk_full,
}


def names_under(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if not p.is_dir() or p.is_mount()}


@pytest.mark.parametrize("name", list(CASES))
def test_input(name: str, espcn: ModelCard, ffmpeg_bin: Path, ffprobe_bin: Path, tmp_path: Path,
               capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    case = CASES[name](work, ffmpeg_bin)
    before = names_under(work)
    try:
        result = run_cli(case.args, capsys, monkeypatch, work, case.env)
        after = names_under(work)
    finally:
        for mount in [p for p in work.iterdir() if p.is_mount()]:
            subprocess.run(["umount", str(mount)], check=False)
    assert "Traceback" not in result.stderr
    if case.expect is None:
        assert result.code != 0, f"not refused: {result.stderr}"
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: "), result.stderr
        assert re.search(case.refusal, last.removeprefix("error: ")), last
        assert after == (case.leaves or before), "something was left behind"
        return
    exp = case.expect
    assert result.code == 0, result.stderr
    assert after == before | {exp.output}, "unexpected files"
    out = work / exp.output
    s = streams(ffprobe_bin, out)[0]
    assert (s["width"], s["height"]) == exp.size
    pts = video_frames(ffprobe_bin, out)
    assert len(pts) == (len(video_frames(ffprobe_bin, work / exp.frames_of)) if exp.frames_of
                        else exp.frames)
    if exp.pts_of:
        assert pts == pytest.approx(video_frames(ffprobe_bin, work / exp.pts_of), abs=1e-3)
    if exp.check:
        exp.check(out, ffprobe_bin, result.stderr)


def test_two_runs_writing_the_same_output(espcn: ModelCard, ffmpeg_bin: Path, ffprobe_bin: Path,
                                          tmp_path: Path) -> None:
    """Started together: one writes same.mp4, the other refuses in one sentence (it never
    replaces a file it did not plan to replace), and no partial file of either stays."""
    make(ffmpeg_bin, *lavfi(src(), 30), "-c:v", "libx264", "-preset", "ultrafast",
         str(tmp_path / "in.mp4"))
    cmd = [sys.executable, "-m", "ffsr", "upscale", "in.mp4", "-m", "espcn", "-o", "same.mp4"]
    runs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = sorted(((p.wait(timeout=600), p.communicate()[1]) for p in runs), key=lambda r: r[0])
    (ok, _), (refused, stderr) = results
    assert ok == 0 and refused == 1, results
    assert "Traceback" not in stderr
    assert re.fullmatch(r"error: same\.mp4 (appeared while this run was writing it \(another ffsr "
                        r"run\?\)|exists); pass --overwrite to replace it\.",
                        stderr.strip().splitlines()[-1]), stderr
    assert {p.name for p in tmp_path.iterdir()} == {"in.mp4", "same.mp4"}
    assert len(video_frames(ffprobe_bin, tmp_path / "same.mp4")) == 30


@pytest.mark.docker
@pytest.mark.slow
def test_docker_with_relative_paths(espcn: ModelCard, cpu_image: str, ffmpeg_bin: Path,
                                    ffprobe_bin: Path, tmp_path: Path) -> None:
    """`--runtime docker` with a relative input, output and model path: Docker takes a
    relative host path for a volume name, so every path ffsr hands it must be absolute."""
    (tmp_path / "in").mkdir()
    make(ffmpeg_bin, *lavfi(src(), 5), "-c:v", "libx264", "-preset", "ultrafast",
         str(tmp_path / "in" / "clip.mp4"))
    shutil.copytree(espcn.directory, tmp_path / "models" / "espcn")
    proc = subprocess.run([sys.executable, "-m", "ffsr", "upscale", "in/clip.mp4", "-m", "models/espcn",
                           "--runtime", "docker", "--image", cpu_image, "-o", "out.mp4"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    s = streams(ffprobe_bin, tmp_path / "out.mp4")[0]
    assert (s["width"], s["height"]) == (2 * W, 2 * H)
    assert len(video_frames(ffprobe_bin, tmp_path / "out.mp4")) == 5
    assert {p.name for p in tmp_path.iterdir()} == {"in", "models", "out.mp4"}, "staging left behind"


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_bytes_and_cut_clips_never_give_a_traceback(
        data: st.DataObject, espcn: ModelCard, clips: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Random bytes, and real clips cut at random points (with random bytes spliced in):
    either a result or one sentence, never a Python traceback, never a file left behind."""
    clip = data.draw(st.sampled_from(["carphone_176x144.mp4", "realshort_320x240.mp4",
                                      "newtonscradle_200x150.gif"]))
    real = (clips / clip).read_bytes()
    if data.draw(st.booleans()):
        body = data.draw(st.binary(min_size=0, max_size=4096))
    else:
        cut = data.draw(st.integers(min_value=0, max_value=len(real)))
        body = real[:cut] + data.draw(st.binary(max_size=256))
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    name = "in" + Path(clip).suffix
    (work / name).write_bytes(body)
    result = run_cli(["upscale", name, "-m", "espcn", "--frames", "3", "-o", "o.mp4"], capsys,
                     monkeypatch, work)
    assert "Traceback" not in result.stderr
    names = {p.name for p in work.iterdir()}
    if result.code == 0:
        assert names == {name, "o.mp4"}
    else:
        assert result.stderr.strip().splitlines()[-1].startswith("error: "), result.stderr
        assert names == {name}
