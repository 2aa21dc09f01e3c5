"""`--encoder libsvtav1` and `--encoder libvpx-vp9`, the AV1 and VP9 encoders ffsr's FFmpeg
build includes: the stream is that codec, every frame is there, and the frames are the
model's (against the same run to lossless FFV1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ffsr.media import count_frames, read_yuv420p_y
from ffsr.model_card import ModelCard
from ffsr.quality import psnr

CLIP = "carphone_176x144.mp4"
FRAMES = 6


def upscale(clip: Path, out: Path, encoder: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "ffsr", "upscale", str(clip), "-m", "espcn",
                           "--frames", str(FRAMES), "--encoder", encoder, "-o", str(out)],
                          capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("encoder", "suffix", "codec"), [("libsvtav1", ".mkv", "av1"),
                                                         ("libvpx-vp9", ".webm", "vp9")])
def test_encoder_writes_its_codec_with_the_models_frames(
        zoo_models: dict[str, ModelCard], ffmpeg_bin: Path, ffprobe_bin: Path, clips: Path,
        tmp_path: Path, encoder: str, suffix: str, codec: str) -> None:
    out, lossless = tmp_path / f"o{suffix}", tmp_path / "ffv1.mkv"
    upscale(clips / CLIP, out, encoder)
    upscale(clips / CLIP, lossless, "ffv1")
    probe = subprocess.run([str(ffprobe_bin), "-v", "error", "-select_streams", "v:0",
                            "-show_entries", "stream=codec_name", "-of", "csv=p=0", str(out)],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == codec
    assert count_frames(ffprobe_bin, out) == FRAMES
    got = read_yuv420p_y(ffmpeg_bin, out, 352, 288)
    want = read_yuv420p_y(ffmpeg_bin, lossless, 352, 288)
    assert got.shape == want.shape == (FRAMES, 288, 352)
    assert psnr(got, want) > 33, f"{encoder}: {psnr(got, want):.1f} dB from the lossless run"
