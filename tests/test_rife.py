"""RIFE inside the filter graph (issue 12, stock filters): the real checkpoint exported to
ONNX, run by the project's real ffmpeg (onnx backend) on a tiny clip, against the same
wrapper in PyTorch; frame count and timestamps exactly 2x; no frame blended across a hard
cut; `ffsr graph` and `ffsr upscale` with --interpolation rife. RIFE on a 2-core CPU is
slow, so every clip here is a few 176x144 frames."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ffsr.filtergraph import RIFE_BACKENDS, GraphOptions, render_interpolation
from ffsr.media import probe, read_frames
from ffsr.model_card import ModelCard
from ffsr.paths import converted_models_dir

torch = pytest.importorskip("torch")

W, H = 176, 144
RATE = Fraction(30000, 1001)
BEFORE_CUT = 3
"""Frames of carphone before the cut; the clip then continues with realshort."""


def ffsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=600)


def run(ffmpeg: Path, *args: str) -> None:
    subprocess.run([str(ffmpeg), "-v", "error", "-y", *args], check=True, capture_output=True)


def frame_times(ffprobe: Path, path: Path) -> list[Fraction]:
    out = subprocess.run([str(ffprobe), "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=pts:stream=time_base", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    tb = Fraction(data["streams"][0]["time_base"])
    return [f["pts"] * tb for f in data["frames"]]


@pytest.fixture(scope="module")
def rife(shared_data: Path) -> Path:
    """The RIFE wrapper converted from the shared checkpoint into the session's cache, as
    `--interpolation rife` does on first use (the export is checked against PyTorch)."""
    from ffsr.interpolation.rife import rife_model

    model = rife_model(log=lambda _: None)
    assert model.fidelity["onnxruntime_vs_torch_within_one_level"] >= 0.999
    return model.path


@pytest.fixture(scope="module")
def cut_clip(ffmpeg_bin: Path, clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 lossless frames at 30000/1001 fps: 3 of carphone, then a hard cut to 2 of realshort
    scaled to the same size."""
    d = tmp_path_factory.mktemp("rife_clip")
    clip = d / "cut.mkv"
    run(ffmpeg_bin, "-i", str(clips / "carphone_176x144.mp4"),
        "-i", str(clips / "realshort_320x240.mp4"), "-filter_complex",
        f"[0:v]trim=end_frame={BEFORE_CUT},setpts=PTS-STARTPTS,setsar=1,format=rgb24[a];"
        f"[1:v]trim=start_frame=10:end_frame=12,scale={W}:{H},setsar=1,setpts=PTS-STARTPTS,"
        "format=rgb24[b];[a][b]concat=n=2:v=1:a=0,fps=30000/1001[v]",
        "-map", "[v]", "-c:v", "ffv1", str(clip))
    return clip


@pytest.fixture(scope="module", params=RIFE_BACKENDS)
def interpolated(request: pytest.FixtureRequest, ffmpeg_bin: Path, cut_clip: Path, rife: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The clip through the RIFE part of ffsr's graph, in plain ffsr-built ffmpeg, on each
    backend that runs RIFE: the frames (lossless .mkv) and their exact timestamps
    (framecrc, in the output time base)."""
    opts = GraphOptions(backend=request.param, fps=2 * RATE, interpolation="rife",
                        interpolator_model=str(rife))
    graph = render_interpolation(opts)
    assert f"dnn_backend={request.param}" in graph
    d = tmp_path_factory.mktemp("rife_out")
    frames, crc = d / "out.mkv", d / "out.crc"
    run(ffmpeg_bin, "-i", str(cut_clip), "-filter_complex", f"[0:v]{graph},split[o1][o2]",
        "-map", "[o1]", "-c:v", "ffv1", str(frames),
        "-map", "[o2]", "-c:v", "rawvideo", "-f", "framecrc", str(crc))
    return frames, crc


def pytorch_middle(rife_wrapper: object, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.concatenate([a, b], axis=1).astype(np.float32) / 255)
    with torch.no_grad():
        y = rife_wrapper(x.permute(2, 0, 1)[None])  # type: ignore[operator]
    return np.clip(np.rint(y[0].permute(1, 2, 0).numpy() * 255), 0, 255).astype(np.uint8)


def test_rate_and_timestamps_are_exactly_doubled(interpolated: tuple[Path, Path], cut_clip: Path,
                                                 ffprobe_bin: Path) -> None:
    n_in = len(frame_times(ffprobe_bin, cut_clip))
    lines = interpolated[1].read_text().splitlines()
    assert f"#tb 0: {(1 / (2 * RATE)).numerator}/{(1 / (2 * RATE)).denominator}" in lines
    pts = [int(ln.split(",")[2]) for ln in lines if not ln.startswith("#")]
    assert pts == list(range(2 * n_in))


def test_in_graph_rife_equals_pytorch_and_no_frame_blends_across_the_cut(
        interpolated: tuple[Path, Path], cut_clip: Path, ffmpeg_bin: Path,
        shared_data: Path) -> None:
    from ffsr_convert.rife.export import build_wrapper

    src = read_frames(ffmpeg_bin, cut_clip, "rgb24", W, H)
    out = read_frames(ffmpeg_bin, interpolated[0], "rgb24", W, H)
    assert len(src) == 2 * BEFORE_CUT - 1 and len(out) == 2 * len(src)
    assert np.array_equal(out[0::2], src), "the original frames must pass through untouched"
    wrapper = build_wrapper(shared_data / "checkpoints/rife/hdv3/flownet.pkl")
    nxt = np.concatenate([src[1:], src[-1:]])  # the last frame pairs with itself
    for n, (a, b) in enumerate(zip(src, nxt, strict=True)):
        want = pytorch_middle(wrapper, a, b).astype(int)
        diff = np.abs(out[2 * n + 1].astype(int) - want)
        assert (diff <= 1).mean() >= 0.999, f"middle frame {n}: {(diff > 1).mean():.3%} off by >1"
    # across the cut the frame before it is repeated, not blended with the one after it
    at_cut = out[2 * BEFORE_CUT - 1].astype(int)
    assert np.abs(at_cut - src[BEFORE_CUT - 1]).max() <= 1
    # and elsewhere RIFE really interpolated (not a copy of either neighbour)
    assert np.abs(out[1].astype(int) - src[0]).mean() > 0.2
    assert np.abs(out[1].astype(int) - src[1]).mean() > 0.2


@pytest.fixture(scope="module")
def x2_model(ffmpeg_bin: Path, shared_data: Path) -> ModelCard:
    """One small upscaler (onnx only) for the CLI runs: upscale + interpolate in one pass."""
    from ffsr.convert_model import convert_zoo_model

    return convert_zoo_model("realesr-animevideox2v3", converted_models_dir(), backends=("onnx",),
                             log=lambda _: None)


@pytest.fixture(scope="module")
def upscaled(x2_model: ModelCard, rife: Path, cut_clip: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ffsr upscale --fps 60000/1001 --interpolation rife`: x2 model and RIFE in one pass."""
    out = tmp_path_factory.mktemp("rife_up") / "up.mkv"
    proc = ffsr("upscale", str(cut_clip), "-m", x2_model.name, "--backend", "onnx",
                "--fps", "60000/1001", "--interpolation", "rife", "--encoder", "ffv1",
                "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_upscale_with_rife_doubles_the_rate_in_one_pass(upscaled: Path, ffprobe_bin: Path) -> None:
    info = probe(ffprobe_bin, upscaled)
    assert (info.width, info.height) == (2 * W, 2 * H)
    times = frame_times(ffprobe_bin, upscaled)  # Matroska keeps milliseconds
    assert len(times) == 10
    assert all(abs(t - k / (2 * RATE)) <= Fraction(1, 1000) for k, t in enumerate(times))


def test_printed_graph_runs_in_plain_ffmpeg_with_the_same_frames(
        x2_model: ModelCard, upscaled: Path, cut_clip: Path, ffmpeg_bin: Path,
        tmp_path: Path) -> None:
    graph = ffsr("graph", "-m", x2_model.name, "--backend", "onnx", "--fps", "60000/1001",
                 "--interpolation", "rife")
    assert graph.returncode == 0, graph.stderr
    import ffsr as api  # the Python API prints the same graph

    assert api.graph(x2_model.name, backend="onnx", fps="60000/1001",
                     interpolation="rife") == graph.stdout.strip()
    pasted = tmp_path / "pasted.mkv"
    run(ffmpeg_bin, "-i", str(cut_clip), "-vf", graph.stdout.strip(), "-c:v", "ffv1",
        str(pasted))
    got = read_frames(ffmpeg_bin, pasted, "rgb24", 2 * W, 2 * H)
    want = read_frames(ffmpeg_bin, upscaled, "rgb24", 2 * W, 2 * H)
    assert got.shape[0] == 10
    assert np.array_equal(got, want)


@pytest.mark.parametrize("command", ["upscale", "graph"])
def test_rife_with_runtime_docker_is_one_sentence(clips: Path, tmp_path: Path,
                                                  command: str) -> None:
    """The image does not carry RIFE yet: `--runtime docker` with rife ends in one sentence
    saying so, nothing written."""
    args = (["upscale", str(clips / "carphone_176x144.mp4"), "-o", str(tmp_path / "no.mp4")]
            if command == "upscale" else ["graph"])
    proc = ffsr(*args, "-m", "espcn", "--fps", "60000/1001", "--interpolation", "rife",
                "--runtime", "docker")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: --interpolation rife runs with --runtime local only for now (the image does not "
        "carry the RIFE model yet)."), proc.stderr
    assert "Traceback" not in proc.stderr and "Docker" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_rife_refuses_a_one_frame_clip(ffmpeg_bin: Path, clips: Path, tmp_path: Path) -> None:
    """Refused before any model is converted or run: nothing to pair."""
    one = tmp_path / "one.mp4"
    run(ffmpeg_bin, "-i", str(clips / "carphone_176x144.mp4"), "-frames:v", "1", str(one))
    proc = ffsr("upscale", str(one), "-m", "espcn", "--fps", "60000/1001",
                "--interpolation", "rife", "-o", str(tmp_path / "no.mp4"))
    assert proc.returncode != 0
    assert "needs at least 2 frames" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "no.mp4").exists()


def test_animated_gif_at_twice_its_rate(ffmpeg_bin: Path, ffprobe_bin: Path, clips: Path,
                                        tmp_path: Path) -> None:
    """The README's GIF case at 2x rate: newtonscradle (50 fps on average, frame delays of 2
    and 5 cs) to 100 fps stays a GIF with FFmpeg's fps filter's frame count and one frame
    per 1/100 s, and RIFE drew frames (more distinct pictures than the input has: the fps
    filter alone would only repeat them)."""
    gif = clips / "newtonscradle_200x150.gif"
    out = tmp_path / "twice.gif"
    proc = ffsr("upscale", str(gif), "-m", "none", "--fps", "100", "--interpolation", "rife",
                "-o", str(out))
    assert proc.returncode == 0, proc.stderr

    def frames(path: Path, vf: str = "null") -> list[list[str]]:
        text = subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(path), "-vf", vf,
                               "-pix_fmt", "rgba", "-f", "framemd5", "-"], check=True,
                              capture_output=True, text=True).stdout
        return [[f.strip() for f in ln.split(",")] for ln in text.splitlines()
                if not ln.startswith("#")]

    got, want = frames(out), frames(gif, "fps=100")
    assert probe(ffprobe_bin, out).codec == "gif"
    assert len(got) == len(want)
    assert [int(f[2]) for f in got] == list(range(len(got)))  # pts in 1/100 s
    assert len({f[5] for f in got}) > len({f[5] for f in frames(gif)})


def test_a_model_is_not_an_interpolation(clips: Path, tmp_path: Path) -> None:
    """`--interpolation espcn` (an upscaler where an interpolator belongs): one sentence
    naming the interpolators, nothing written."""
    proc = ffsr("upscale", str(clips / "carphone_176x144.mp4"), "-m", "espcn", "--fps", "60",
                "--interpolation", "espcn", "-o", str(tmp_path / "no.mp4"))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: Unknown interpolation 'espcn'; choose one of"), proc.stderr
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []
