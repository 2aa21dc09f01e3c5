"""The ffsr-built FFmpeg runs dnn_processing with onnx, torch and tensorflow on a real
clip, and each gives the same pixels as the model run in its own framework."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from ffsr.media import read_frames, read_yuv420p_y
from ffsr.quality import compare_8bit, to_8bit

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")

from conftest import onnx_reference, torch_reference  # noqa: E402
from ffsr_convert.exporters import run_frozen_pb  # noqa: E402

W, H, N = 176, 144, 4


def run_ffmpeg(ffmpeg: Path, clip: Path, vf: str, out_fmt: str, out: Path,
               frames: int = N, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(ffmpeg), "-v", "warning", "-y", "-i", str(clip), "-frames:v", str(frames),
         "-vf", vf, "-f", "rawvideo", "-pix_fmt", out_fmt, str(out)],
        capture_output=True, timeout=timeout)


def y_in(ffmpeg: Path, clip: Path) -> np.ndarray:
    return read_yuv420p_y(ffmpeg, clip, W, H, frames=N)


@pytest.mark.parametrize("graph", ["yuv420p", "extractplanes"])
def test_onnx_backend_matches_onnxruntime(ffmpeg_bin: Path, clips: Path, espcn_files: dict[str, Path],
                                          tmp_path: Path, graph: str) -> None:
    """Also proves patch 0001: with the extractplanes graph, 9.0.2 fed the model garbage."""
    clip = clips / "carphone_176x144.mp4"
    dnn = f"dnn_processing=dnn_backend=onnx:model={espcn_files['onnx']}:input=x:output=y"
    vf = (f"format=yuv420p,{dnn},extractplanes=y" if graph == "yuv420p"
          else f"format=yuv420p,extractplanes=y,{dnn}")
    out = tmp_path / "y.raw"
    proc = run_ffmpeg(ffmpeg_bin, clip, vf, "gray", out)
    assert proc.returncode == 0, proc.stderr.decode()
    got = np.frombuffer(out.read_bytes(), np.uint8).reshape(-1, 2 * H, 2 * W)
    assert got.shape == (N, 2 * H, 2 * W)
    report = compare_8bit(got, onnx_reference(espcn_files["onnx"], y_in(ffmpeg_bin, clip)))
    assert report.passes, report


@pytest.mark.parametrize("filter_name", ["dnn_processing", "sr"])
def test_tensorflow_backend_matches_tensorflow(ffmpeg_bin: Path, clips: Path,
                                               espcn_files: dict[str, Path], tmp_path: Path,
                                               filter_name: str) -> None:
    """The frozen graph through dnn_processing and through the sr filter (x2, Y only)."""
    clip = clips / "carphone_176x144.mp4"
    scale_option = ":scale_factor=2" if filter_name == "sr" else ""
    vf = (f"format=yuv420p,{filter_name}=dnn_backend=tensorflow:model={espcn_files['pb']}"
          f":input=x:output=y{scale_option},extractplanes=y")
    out = tmp_path / "y.raw"
    proc = run_ffmpeg(ffmpeg_bin, clip, vf, "gray", out)
    assert proc.returncode == 0, proc.stderr.decode()
    got = np.frombuffer(out.read_bytes(), np.uint8).reshape(-1, 2 * H, 2 * W)
    want = np.stack([to_8bit(run_frozen_pb(espcn_files["pb"], p.astype(np.float32) / 255))
                     for p in y_in(ffmpeg_bin, clip)])
    report = compare_8bit(got, want)
    assert report.passes, report


@pytest.mark.parametrize("variant", ["pt", "pt_unfrozen"])
def test_torch_backend_matches_torch(ffmpeg_bin: Path, clips: Path, espcn_files: dict[str, Path],
                                     tmp_path: Path, variant: str) -> None:
    """The frozen variant proves patch 0002 (9.0.2 segfaulted on a module without parameters)."""
    clip = clips / "carphone_176x144.mp4"
    vf = f"format=rgb24,dnn_processing=dnn_backend=torch:model={espcn_files[variant]}"
    out = tmp_path / "rgb.raw"
    proc = run_ffmpeg(ffmpeg_bin, clip, vf, "rgb24", out)
    assert proc.returncode == 0, proc.stderr.decode()
    got = np.frombuffer(out.read_bytes(), np.uint8).reshape(-1, 2 * H, 2 * W, 3)
    rgb = read_frames(ffmpeg_bin, clip, "rgb24", W, H, frames=N)
    report = compare_8bit(got, torch_reference(espcn_files[variant], rgb))
    assert report.passes, report


def test_torch_async_stops_early_without_crash(ffmpeg_bin: Path, clips: Path,
                                                espcn_files: dict[str, Path], tmp_path: Path) -> None:
    """Patch 0003: -frames:v N with async=1 (default) freed the model mid-inference."""
    clip = clips / "realshort_320x240.mp4"
    vf = f"format=rgb24,dnn_processing=dnn_backend=torch:model={espcn_files['pt']}:async=1"
    for frames in (1, 3):
        out = tmp_path / f"rgb{frames}.raw"
        proc = run_ffmpeg(ffmpeg_bin, clip, vf, "rgb24", out, frames=frames)
        assert proc.returncode == 0, f"ffmpeg exit {proc.returncode}: {proc.stderr.decode()[-500:]}"
        assert out.stat().st_size == frames * 640 * 480 * 3


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_nireq_above_one_does_not_hang(ffmpeg_bin: Path, clips: Path, espcn_files: dict[str, Path],
                                        tmp_path: Path, backend: str) -> None:
    """Patch 0004: nireq=2 waited forever at exit for a second request that never existed."""
    clip = clips / "carphone_176x144.mp4"
    if backend == "onnx":
        vf = (f"format=yuv420p,dnn_processing=dnn_backend=onnx:model={espcn_files['onnx']}"
              ":input=x:output=y:nireq=2")
    else:
        vf = f"format=rgb24,dnn_processing=dnn_backend=torch:model={espcn_files['pt']}:nireq=2"
    out = tmp_path / "o.raw"
    try:
        proc = run_ffmpeg(ffmpeg_bin, clip, vf, "rgb24", out, frames=2, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ffmpeg hung at exit with {backend} nireq=2")
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"nireq=2 is not supported" in proc.stderr
