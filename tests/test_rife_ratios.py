"""RIFE v4 at rate ratios other than 2x (issue 12): the network written here equals the
reference IFNet; its timed wrapper ([frame a | frame b | t-band] in one image) exported to
ONNX equals PyTorch; in ffsr's graph (stock filters) 25 -> 60 and 12.5 -> 30 give the frame
count and pts of FFmpeg's fps filter, the originals bit for bit where a slot lands on one,
and in between the wrapper's frames; `ffsr upscale`/`ffsr graph` pick v4 from the rate.
RIFE on a 2-core CPU is slow, so every clip here is a few 176x144 frames."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def v4_checkpoint(shared_data: Path) -> Path:
    return shared_data / "checkpoints/rife/v4/flownet.pkl"


def _smooth_pair(h: int, w: int) -> tuple[object, object]:
    g = torch.Generator().manual_seed(7)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g),
                                           size=(h + 8, w + 8), mode="bicubic").clamp(0, 1)
    return base[:, :, 4:4 + h, 4:4 + w], base[:, :, 2:2 + h, 7:7 + w]


def test_v4_network_equals_the_reference_ifnet(shared_data: Path, v4_checkpoint: Path) -> None:
    """Our IFNetV4 against the reference code shipped with the checkpoint (loaded as it says:
    strict=False), at two timesteps, on one 128x192 pair (multiples of 64, no padding)."""
    from ffsr_convert.rife.net_v4 import SCALES, load_v4

    spec = importlib.util.spec_from_file_location(
        "rife_v4_reference", shared_data / "checkpoints/rife/v4/reference-ifnet.py")
    assert spec and spec.loader
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    ref = reference.IFNet(torch.device("cpu"))
    ref.load_state_dict(torch.load(str(v4_checkpoint), map_location="cpu", weights_only=True),
                        strict=False)
    ref.eval()
    ours = load_v4(v4_checkpoint)
    a, b = _smooth_pair(128, 192)
    for t in (0.5, 0.3):
        with torch.no_grad():
            want = ref(torch.cat((a, b), 1), t, SCALES)[2][4]
            got = ours(a, b, torch.tensor(t).view(1, 1, 1, 1))
        assert float((want - got).abs().max()) * 255 < 0.01
        # and t matters: the frame at 0.3 is not the one at 0.5
    with torch.no_grad():
        half = ours(a, b, torch.tensor(0.5).view(1, 1, 1, 1))
    assert float((half - got).abs().mean()) * 255 > 0.2


def test_timed_wrapper_reads_t_from_the_band(v4_checkpoint: Path) -> None:
    """The wrapper runs the network at exactly k/q (here 400/1001, the 24000/1001 -> 60
    case), padding 72x100 to 128x128 by edge replication and cropping back."""
    from ffsr_convert.rife.export import build_timed
    from ffsr_convert.rife.timed import timed_input

    wrapper = build_timed(v4_checkpoint)
    a, b = _smooth_pair(72, 100)
    pad = [0, 28, 0, 56]
    with torch.no_grad():
        got = wrapper(timed_input(a, b, 400, 1001))
        want = wrapper.net(torch.nn.functional.pad(a, pad, mode="replicate"),
                           torch.nn.functional.pad(b, pad, mode="replicate"),
                           torch.tensor(400 / 1001).view(1, 1, 1, 1))[:, :, :72, :100]
    assert got.shape == (1, 3, 72, 100)
    assert float((got - want.clamp(0, 1)).abs().max()) < 1e-6
    with pytest.raises(ValueError, match="does not fit"):
        timed_input(a[:, :, :8, :8], b[:, :, :8, :8], 1, 100)


@pytest.fixture(scope="module")
def rife_v4() -> Path:
    """RIFE v4 converted into the session's cache as --interpolation rife does on first use
    (export checked against PyTorch at two sizes and two timesteps)."""
    from ffsr.interpolation.rife import V4, rife_model

    model = rife_model(log=lambda _: None, name=V4)
    assert model.fidelity["onnxruntime_vs_torch_within_one_level"] >= 0.999
    assert model.fidelity["onnxruntime_vs_torch_max_levels"] <= 1.0
    return model.path


def test_v4_is_converted_with_its_card(rife_v4: Path) -> None:
    import json

    card = json.loads(rife_v4.with_name("rife-v4.interp.json").read_text())
    assert card["name"] == "rife-v4" and card["ratio"] == "any"
    assert "t-band" in card["layout"]
    assert card["source"]["path"] == "checkpoints/rife/v4/flownet.pkl"


# --- in the graph: frame counts and pts of fps=<rate>, originals kept, frames equal PyTorch --

W, H = 176, 144
CASES = {"25-60-onnx": ("25", "60", 4, "onnx"), "25-60-openvino": ("25", "60", 4, "openvino"),
         "12.5-30-onnx": ("12.5", "30", 3, "onnx"),
         "24000/1001-60-onnx": ("24000/1001", "60", 3, "onnx")}
"""Input rate, output rate, input frames, backend. 25 -> 60 and 12.5 -> 30 step t by 5/12
(a/b = 5/12, once from a rate that is not an integer); 24000/1001 -> 60 by 400/1001, from
Matroska's millisecond timestamps (41 or 42 ms apart), which the graph evens out first."""


def run(ffmpeg: Path, *args: str) -> None:
    subprocess.run([str(ffmpeg), "-v", "error", "-y", *args], check=True, capture_output=True)


def ffsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=600)


def crc_rows(path: Path) -> list[list[str]]:
    return [line.split(", ") for line in path.read_text().splitlines() if not line.startswith("#")]


def make_clip(ffmpeg: Path, clips: Path, rate: str, frames: int, out: Path) -> Path:
    """``frames`` lossless frames of carphone at ``rate`` (Matroska: 1 ms time base, exact
    for 25 and 12.5 fps, rounded for 24000/1001; it records no frame count, so ffsr counts
    a short clip's)."""
    run(ffmpeg, "-i", str(clips / "carphone_176x144.mp4"), "-vf",
        f"trim=end_frame={frames},setpts=N/({rate})/TB,format=rgb24", "-r", rate,
        "-c:v", "ffv1", str(out))
    return out


@pytest.fixture(scope="module", params=list(CASES))
def ratio_run(request: pytest.FixtureRequest, ffmpeg_bin: Path, clips: Path, rife_v4: Path,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The clip through ffsr's RIFE v4 graph, and through plain fps=<rate>, as framecrc, plus
    the interpolated frames (lossless)."""
    from ffsr.filtergraph import GraphOptions, render_interpolation

    rin, rout, frames, backend = CASES[request.param]
    d = tmp_path_factory.mktemp(f"ratio_{request.param.replace('/', '_')}")
    clip = make_clip(ffmpeg_bin, clips, rin, frames, d / "in.mkv")
    graph = render_interpolation(GraphOptions(
        backend=backend, fps=Fraction(rout), interpolation="rife", input_rate=Fraction(rin),
        interpolator_model=str(rife_v4)))
    assert f"dnn_backend={backend}" in graph and "rife-v4.onnx" in graph
    run(ffmpeg_bin, "-i", str(clip), "-filter_complex", f"[0:v]{graph},split[o1][o2]",
        "-map", "[o1]", "-c:v", "ffv1", str(d / "out.mkv"),
        "-map", "[o2]", "-c:v", "rawvideo", "-f", "framecrc", str(d / "out.crc"))
    run(ffmpeg_bin, "-i", str(clip), "-vf", f"fps={rout},format=rgb24", "-c:v", "rawvideo",
        "-f", "framecrc", str(d / "fps.crc"))
    return {"clip": clip, "out": d / "out.mkv", "crc": d / "out.crc", "fps": d / "fps.crc",
            "ratio": Fraction(rin) / Fraction(rout), "backend": backend, "case": request.param}


def test_frame_count_and_pts_equal_the_fps_filter(ratio_run: dict[str, object]) -> None:
    got, want = crc_rows(ratio_run["crc"]), crc_rows(ratio_run["fps"])  # type: ignore[arg-type]
    assert [r[2] for r in got] == [r[2] for r in want]
    assert len(got) >= 7
    tb = [ln for ln in Path(ratio_run["crc"]).read_text().splitlines()  # type: ignore[arg-type]
          if ln.startswith("#tb")]
    assert tb == [ln for ln in Path(ratio_run["fps"]).read_text().splitlines()  # type: ignore[arg-type]
                  if ln.startswith("#tb")]


def test_originals_exact_and_in_betweens_equal_pytorch(ratio_run: dict[str, object],
                                                       ffmpeg_bin: Path,
                                                       v4_checkpoint: Path) -> None:
    from ffsr_convert.rife.export import build_timed
    from ffsr_convert.rife.timed import timed_input

    from ffsr.media import read_frames

    src = read_frames(ffmpeg_bin, ratio_run["clip"], "rgb24", W, H)  # type: ignore[arg-type]
    out = read_frames(ffmpeg_bin, ratio_run["out"], "rgb24", W, H)  # type: ignore[arg-type]
    ratio: Fraction = ratio_run["ratio"]  # type: ignore[assignment]
    a, b = ratio.numerator, ratio.denominator
    wrapper = build_timed(v4_checkpoint)

    def tensor(frame: np.ndarray) -> object:
        return torch.from_numpy(frame.astype(np.float32) / 255).permute(2, 0, 1)[None]

    originals = interpolated = 0
    for n, frame in enumerate(out):
        i, k = divmod(n * a, b)
        if k == 0:
            assert np.array_equal(frame, src[i]), f"slot {n} must be input frame {i} untouched"
            originals += 1
            continue
        pair = (src[i], src[min(i + 1, len(src) - 1)])  # the last frame pairs with itself
        with torch.no_grad():
            y = wrapper(timed_input(tensor(pair[0]), tensor(pair[1]), k, b))
        want = np.clip(np.rint(y[0].permute(1, 2, 0).numpy() * 255), 0, 255).astype(int)
        diff = np.abs(frame.astype(int) - want)
        assert (diff <= 1).mean() >= 0.999, f"slot {n} (t = {k}/{b}): {(diff > 1).mean():.3%} off"
        if i + 1 < len(src) and b <= 4 * k <= 3 * b:  # RIFE drew the frame: neither neighbour
            assert min(np.abs(frame.astype(int) - p).mean() for p in pair) > 0.2
        interpolated += 1
    assert originals >= 1 and interpolated >= 5


def test_cli_upscale_and_printed_graph_make_those_frames(ffmpeg_bin: Path, clips: Path,
                                                         rife_v4: Path, tmp_path: Path) -> None:
    """`ffsr upscale -m none --fps 60 --interpolation rife` on a 25 fps clip (RIFE v4 picked
    from the probed rate), and `ffsr graph --input-rate 25` pasted into ffmpeg: the same
    frames, as many as fps=60 makes."""
    clip = make_clip(ffmpeg_bin, clips, "25", 4, tmp_path / "in.mkv")
    up = tmp_path / "up.mkv"
    proc = ffsr("upscale", str(clip), "-m", "none", "--fps", "60", "--interpolation", "rife",
                "--backend", "onnx", "--encoder", "ffv1", "-o", str(up))
    assert proc.returncode == 0, proc.stderr
    graph = ffsr("graph", "-m", "none", "--fps", "60", "--interpolation", "rife",
                 "--input-rate", "25", "--backend", "onnx")
    assert graph.returncode == 0, graph.stderr
    assert "rife-v4.onnx" in graph.stdout and "mod(n*5\\,12)" in graph.stdout
    pasted = tmp_path / "pasted.mkv"
    run(ffmpeg_bin, "-i", str(clip), "-vf", graph.stdout.strip(), "-c:v", "ffv1", str(pasted))
    from ffsr.media import read_frames

    got = read_frames(ffmpeg_bin, up, "rgb24", W, H)
    assert got.shape[0] == 10  # 4 frames at 25 fps last 0.16 s: fps=60 makes 10 (9.6 rounded)
    assert np.array_equal(got, read_frames(ffmpeg_bin, pasted, "rgb24", W, H))


def test_rife_refuses_a_one_frame_clip_at_any_ratio(ffmpeg_bin: Path, clips: Path,
                                                    tmp_path: Path) -> None:
    clip = make_clip(ffmpeg_bin, clips, "25", 1, tmp_path / "one.mkv")
    proc = ffsr("upscale", str(clip), "-m", "none", "--fps", "60", "--interpolation", "rife",
                "-o", str(tmp_path / "no.mkv"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "needs at least 2 frames; this input has 1" in proc.stderr
    assert not (tmp_path / "no.mkv").exists()


def test_rife_refuses_more_timesteps_than_the_frame_has_pixels(ffmpeg_bin: Path,
                                                               tmp_path: Path) -> None:
    """24000/1001 -> 60 has 1001 distinct t; a 16x16 frame has 256 pixels to mark them."""
    clip = tmp_path / "tiny.mkv"
    run(ffmpeg_bin, "-f", "lavfi", "-i", "testsrc2=s=16x16:r=24000/1001", "-frames:v", "3",
        "-c:v", "ffv1", str(clip))
    proc = ffsr("upscale", str(clip), "-m", "none", "--fps", "60", "--interpolation", "rife",
                "-o", str(tmp_path / "no.mkv"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "has 1001 distinct timesteps, more than a 16x16 frame has pixels" in proc.stderr
    assert not (tmp_path / "no.mkv").exists()
