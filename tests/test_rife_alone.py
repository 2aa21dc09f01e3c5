"""RIFE without an upscaling model (`-m none`) and `--dedupe` with RIFE (issue 12, parts 3
and 5), through the real CLI, the real checkpoint (converted on first use) and ffsr's
ffmpeg. Clips are a few 176x144 frames made here: RIFE on a 2-core CPU is slow."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from test_rife import ffsr, frame_times, run  # the same CLI, ffmpeg and ffprobe helpers

from ffsr.media import probe, read_frames

W, H = 176, 144
PAN = 4
"""Pixels the synthetic drawing moves between drawings."""


def horizontal_shift(a: np.ndarray, b: np.ndarray) -> float:
    """How far b's picture moved left of a's, in pixels (phase correlation, sub-pixel by a
    parabola through the peak; the border is cut off, where RIFE pads and the pan enters)."""
    fa, fb = (np.fft.fft2(f.astype(float).mean(axis=2)[16:-16, 16:-16]) for f in (a, b))
    cross = fa * np.conj(fb)
    r = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    y, x = np.unravel_index(int(r.argmax()), r.shape)
    n = r.shape[1]
    left, mid, right = r[y, (x - 1) % n], r[y, x], r[y, (x + 1) % n]
    curve = left - 2 * mid + right
    sx = x + ((left - right) / (2 * curve) if curve else 0.0)
    return float(sx - n if sx > n / 2 else sx)


def pan_clip(ffmpeg: Path, shared_data: Path, out: Path, holds: str, frames: int) -> Path:
    """A Set14 window moving PAN px per drawing at 24 fps, drawing n held for the frame
    counts ``holds`` gives (an ffmpeg expression of the frame number n), with a 1 s tone."""
    run(ffmpeg, "-loop", "1", "-framerate", "24", "-i",
        str(shared_data / "images/Set14/baboon.png"), "-f", "lavfi", "-i", "sine=f=440:d=1",
        "-filter_complex", f"[0:v]crop={W}:{H}:x='60+{PAN}*({holds})':y=40,format=rgb24,"
        f"trim=end_frame={frames}[v]", "-map", "[v]", "-map", "1:a", "-shortest",
        "-c:v", "ffv1", "-c:a", "flac", str(out))
    return out


@pytest.fixture(scope="module")
def plain_clip(ffmpeg_bin: Path, clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 lossless frames of carphone at 30000/1001 fps with a tone."""
    clip = tmp_path_factory.mktemp("rife_alone") / "plain.mkv"
    run(ffmpeg_bin, "-i", str(clips / "carphone_176x144.mp4"), "-f", "lavfi", "-i",
        "sine=f=440:d=1", "-map", "0:v", "-map", "1:a", "-frames:v", "4", "-vf", "format=rgb24",
        "-c:v", "ffv1", "-c:a", "flac", "-shortest", str(clip))
    return clip


@pytest.fixture(scope="module")
def interpolated_alone(plain_clip: Path) -> Path:
    """`ffsr upscale -m none --fps 60000/1001 --interpolation rife`: RIFE alone, lossless."""
    out = plain_clip.with_name("alone.mkv")
    proc = ffsr("upscale", str(plain_clip), "-m", "none", "--fps", "60000/1001",
                "--interpolation", "rife", "--encoder", "ffv1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_interpolation_alone_doubles_the_rate_keeps_originals_and_audio(
        interpolated_alone: Path, plain_clip: Path, ffmpeg_bin: Path, ffprobe_bin: Path) -> None:
    src = read_frames(ffmpeg_bin, plain_clip, "rgb24", W, H)
    out = read_frames(ffmpeg_bin, interpolated_alone, "rgb24", W, H)
    assert len(out) == 2 * len(src) == 8
    assert np.array_equal(out[0::2], src), "the original frames must pass through untouched"
    assert np.abs(out[1].astype(int) - src[0]).mean() > 0.2  # a new frame, not a copy
    times = frame_times(ffprobe_bin, interpolated_alone)  # Matroska keeps milliseconds
    step = 1 / Fraction(60000, 1001)
    assert all(abs(t - k * step) <= Fraction(1, 1000) for k, t in enumerate(times))
    info = probe(ffprobe_bin, interpolated_alone)
    assert (info.width, info.height) == (W, H) and info.has_audio


def test_printed_graph_without_a_model_gives_exact_timestamps_and_the_same_frames(
        interpolated_alone: Path, plain_clip: Path, ffmpeg_bin: Path, tmp_path: Path) -> None:
    graph = ffsr("graph", "-m", "none", "--fps", "60000/1001", "--interpolation", "rife")
    assert graph.returncode == 0, graph.stderr
    pasted, crc = tmp_path / "pasted.mkv", tmp_path / "pasted.crc"
    run(ffmpeg_bin, "-i", str(plain_clip), "-filter_complex",
        f"[0:v]{graph.stdout.strip()},split[o1][o2]", "-map", "[o1]", "-c:v", "ffv1", str(pasted),
        "-map", "[o2]", "-c:v", "rawvideo", "-f", "framecrc", str(crc))
    lines = crc.read_text().splitlines()
    assert "#tb 0: 1001/60000" in lines
    assert [int(ln.split(",")[2]) for ln in lines if not ln.startswith("#")] == list(range(8))
    assert np.array_equal(read_frames(ffmpeg_bin, pasted, "rgb24", W, H),
                          read_frames(ffmpeg_bin, interpolated_alone, "rgb24", W, H))


def test_model_none_without_fps_is_refused(plain_clip: Path, tmp_path: Path) -> None:
    proc = ffsr("upscale", str(plain_clip), "-m", "none", "-o", str(tmp_path / "no.mkv"))
    assert proc.returncode != 0
    assert "-m none runs no model, so it needs --fps" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "no.mkv").exists()


@pytest.fixture(scope="module")
def held2(ffmpeg_bin: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 frames at 24 fps: 4 drawings held 2 frames each (anime "on twos")."""
    return pan_clip(ffmpeg_bin, shared_data, tmp_path_factory.mktemp("held") / "held2.mkv",
                    "floor(n/2)", 8)


@pytest.fixture(scope="module")
def deduped(held2: Path) -> Path:
    out = held2.with_name("deduped.mkv")
    proc = ffsr("upscale", str(held2), "-m", "none", "--fps", "24", "--interpolation", "rife",
                "--dedupe", "--encoder", "ffv1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_dedupe_with_rife_redraws_held_frames_with_even_motion(
        deduped: Path, held2: Path, ffmpeg_bin: Path, ffprobe_bin: Path) -> None:
    src = read_frames(ffmpeg_bin, held2, "rgb24", W, H)
    assert [horizontal_shift(a, b) for a, b in zip(src, src[1:], strict=False)] == \
        pytest.approx([0, PAN] * 3 + [0], abs=0.25), "the input stutters: 0, 4, 0, 4 px"
    out = read_frames(ffmpeg_bin, deduped, "rgb24", W, H)
    assert len(out) == len(src), "same rate and count as the input"
    assert np.array_equal(out[0::2], src[0::2]), "each drawing kept bit for bit at its time"
    assert not any(np.array_equal(a, b) for a, b in zip(out, out[1:], strict=False))
    steps = [horizontal_shift(a, b) for a, b in zip(out, out[1:], strict=False)]
    # even motion: half the pan per frame; the last drawing has no successor and stays held
    assert steps[:-1] == pytest.approx([PAN / 2] * (len(out) - 2), abs=0.25)
    assert abs(steps[-1]) <= 0.25
    times = frame_times(ffprobe_bin, deduped)
    assert all(abs(t - Fraction(k, 24)) <= Fraction(1, 1000) for k, t in enumerate(times))
    assert probe(ffprobe_bin, deduped).has_audio


def test_printed_dedupe_graph_runs_in_plain_ffmpeg_with_the_same_frames(
        deduped: Path, held2: Path, ffmpeg_bin: Path, tmp_path: Path) -> None:
    graph = ffsr("graph", "-m", "none", "--fps", "24", "--interpolation", "rife", "--dedupe")
    assert graph.returncode == 0, graph.stderr
    assert graph.stdout.startswith("mpdecimate,setpts=expr=N*1/12/TB,")
    pasted = tmp_path / "pasted.mkv"
    run(ffmpeg_bin, "-i", str(held2), "-vf", graph.stdout.strip(), "-an", "-c:v", "ffv1",
        str(pasted))
    assert np.array_equal(read_frames(ffmpeg_bin, pasted, "rgb24", W, H),
                          read_frames(ffmpeg_bin, deduped, "rgb24", W, H))


@pytest.mark.parametrize(("holds", "fps", "message", "extra"), [
    ("n", "24", "--dedupe found no held frames in this clip", []),
    ("floor(n/3)", "24", "handles drawings held 2 frames each; this clip's drawings are held "
                         "differently (2 held 3)", []),
    ("floor(n/2)", "48", "--fps must be 24", []),
    # held 2 in the input, but the graph's mpdecimate runs after bwdif, which makes them differ:
    # measured on the raw input this passed, and the output ran twice as long as its audio
    ("floor(n/2)", "24", "--dedupe found no held frames after --deinterlace (bwdif makes held "
                         "frames differ from each other): drop --dedupe or --deinterlace.",
     ["--deinterlace"]),
], ids=["no-duplicates", "held-3", "double-rate", "deinterlaced"])
def test_dedupe_with_rife_refuses_what_it_would_time_wrongly(
        holds: str, fps: str, message: str, extra: list[str], ffmpeg_bin: Path,
        shared_data: Path, tmp_path: Path) -> None:
    clip = pan_clip(ffmpeg_bin, shared_data, tmp_path / "clip.mkv", holds, 9)
    proc = ffsr("upscale", str(clip), "-m", "none", "--fps", fps, "--interpolation", "rife",
                "--dedupe", *extra, "-o", str(tmp_path / "no.mkv"))
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "no.mkv").exists()
