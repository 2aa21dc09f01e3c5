"""Chained models and `ffsr graph`'s engine options, end to end through the CLI.

`-m a -m b` against the two models run one after the other (two `ffsr upscale` runs through
lossless files); `ffsr graph` with --backend/--precision/--device/--form/--interpolation/
--alpha pasted into ffsr's ffmpeg against `ffsr upscale` with the same options. The zoo
models come from the session's cache (converted there on first use, every backend)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ffsr.media import count_frames, read_frames
from ffsr.quality import compare_8bit

pytest.importorskip("torch")

CLIP = "carphone_176x144.mp4"  # 176x144, moving camera
FRAMES = "4"


def ffsr(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=900)
    assert proc.returncode == 0, proc.stderr
    return proc


def upscale(src: Path, out: Path, *options: str) -> Path:
    """`ffsr upscale` to a lossless file (ffv1), so frames compare exactly."""
    ffsr("upscale", str(src), *options, "--frames", FRAMES, "--encoder", "ffv1", "-o", str(out))
    return out


def rgb(ffmpeg: Path, path: Path, w: int, h: int, pix_fmt: str = "rgb24") -> np.ndarray:
    return read_frames(ffmpeg, path, pix_fmt, w, h)


# (first model, second model, total scale): two x2 models, and issue 11's waifu2x denoiser
# (x1 RGB) before ESPCN (x2 Y)
CHAINS = {"srcnn-espcn": ("srcnn", "espcn", 4),
          "waifu2x-vgg7-noise2-espcn": ("waifu2x-vgg7-noise2", "espcn", 2)}


@pytest.mark.parametrize("chain", list(CHAINS))
def test_chained_models_equal_the_two_runs_one_after_the_other(
        chain: str, zoo_models: dict[str, object], ffmpeg_bin: Path, ffprobe_bin: Path,
        clips: Path, tmp_path: Path) -> None:
    """`-m a -m b` makes what a then b make as two runs through a lossless file: the total
    scale, every frame, the same pixels; the order is kept (b first gives other pixels)."""
    a, b, scale = CHAINS[chain]
    w, h = 176 * scale, 144 * scale
    chained = upscale(clips / CLIP, tmp_path / "chain.mkv", "-m", a, "-m", b)
    first = upscale(clips / CLIP, tmp_path / "first.mkv", "-m", a)
    second = upscale(first, tmp_path / "then.mkv", "-m", b)
    assert count_frames(ffprobe_bin, chained) == int(FRAMES)
    got, want = rgb(ffmpeg_bin, chained, w, h), rgb(ffmpeg_bin, second, w, h)
    report = compare_8bit(got, want)
    assert got.shape == (int(FRAMES), h, w, 3)
    assert report.passes, report
    swapped = upscale(clips / CLIP, tmp_path / "swapped.mkv", "-m", b, "-m", a)
    assert not compare_8bit(rgb(ffmpeg_bin, swapped, w, h), want).passes, "order ignored"


# (graph/upscale options, text the printed graph must hold)
GRAPH_CASES = {
    "onnx-explicit": (["--backend", "onnx", "--form", "explicit"],
                      ["dnn_backend=onnx", "extractplanes=y+u+v"]),
    "tensorflow-sr": (["--backend", "tensorflow", "--form", "sr"], ["sr=dnn_backend=tensorflow"]),
    "openvino-f32": (["--backend", "openvino", "--precision", "f32"], ["dnn_backend=openvino"]),
    "torch-cpu": (["--backend", "torch", "--device", "cpu"], ["dnn_backend=torch"]),
    "framerate": (["--fps", "50", "--interpolation", "framerate"], ["framerate=fps=50"]),
    "dedupe": (["--dedupe"], ["mpdecimate"]),
}


@pytest.mark.parametrize("case", list(GRAPH_CASES))
def test_graph_options_pasted_into_ffmpeg_equal_upscale(
        zoo_models: dict[str, object], ffmpeg_bin: Path, clips: Path, tmp_path: Path,
        case: str) -> None:
    """`ffsr graph -m espcn OPTIONS` names the filters those options choose, and pasted into
    ffsr's ffmpeg it makes the frames `ffsr upscale -m espcn OPTIONS` makes."""
    options, filters = GRAPH_CASES[case]
    graph = ffsr("graph", "-m", "espcn", *options).stdout.strip()
    for text in filters:
        assert text in graph, graph
    pasted = tmp_path / "pasted.mkv"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(clips / CLIP), "-vf", graph,
                    "-frames:v", FRAMES, "-c:v", "ffv1", str(pasted)], check=True)
    upscaled = upscale(clips / CLIP, tmp_path / "upscaled.mkv", "-m", "espcn", *options)
    got, want = rgb(ffmpeg_bin, pasted, 352, 288), rgb(ffmpeg_bin, upscaled, 352, 288)
    assert got.shape == want.shape == (int(FRAMES), 288, 352, 3)
    assert (got == want).all(), compare_8bit(got, want)


def test_graph_alpha_pasted_into_ffmpeg_keeps_the_alpha_upscale_keeps(
        zoo_models: dict[str, object], ffmpeg_bin: Path, tmp_path: Path) -> None:
    """`ffsr graph --alpha` on a PNG with transparency: pasted into ffmpeg, the same RGBA
    pixels as `ffsr upscale` to .png, and the alpha is the source's (scaled), not opaque."""
    src = tmp_path / "in.png"
    left_clear = ("testsrc2=size=96x64[c];color=c=black:s=48x64,pad=96:64:0:0:white[a];"
                  "[c][a]alphamerge,format=rgba")
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-filter_complex", left_clear, "-frames:v", "1",
                    str(src)], check=True)
    graph = ffsr("graph", "-m", "espcn", "--alpha").stdout.strip()
    pasted = tmp_path / "pasted.png"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(src), "-vf", graph, str(pasted)],
                   check=True)
    upscaled = tmp_path / "upscaled.png"
    ffsr("upscale", str(src), "-m", "espcn", "-o", str(upscaled))
    got, want = rgb(ffmpeg_bin, pasted, 192, 128, "rgba"), rgb(ffmpeg_bin, upscaled, 192, 128, "rgba")
    assert (got == want).all(), compare_8bit(got, want)
    alpha = want[0, ..., 3]
    assert (alpha[:, :90] == 0).all() and (alpha[:, 102:] == 255).all()
