"""FFmpeg's OpenVINO backend as ffsr builds it: dynamic-shape ONNX models load (patch
0006), precision/streams/threads reach OpenVINO and the log says what ran (patch 0007),
the output size is known without an inference (patch 0008), and the pixels match the
model run in its own framework: f32 within 1 level, bf16 above 50 dB."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ffsr.media import read_frames, read_yuv420p_y
from ffsr.precision import cpu_has_bf16
from ffsr.quality import compare_8bit, psnr

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from conftest import no_ffsr_build_env, onnx_reference  # noqa: E402

W, H, N = 176, 144, 3
PRECISION_LINE = re.compile(r"OpenVINO compiled the model for CPU: inference precision (\w+)")


def run_ffmpeg(ffmpeg: Path, src: list[str], vf: str, out_fmt: str, out: Path, frames: int = N,
               timeout: float = 120, level: str = "info") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(ffmpeg), "-v", level, "-hide_banner", "-y", *src, "-frames:v", str(frames),
         "-vf", vf, "-f", "rawvideo", "-pix_fmt", out_fmt, str(out)],
        capture_output=True, timeout=timeout)


def espcn_ov(model: Path, extra: str = "") -> str:
    return f"format=yuv420p,dnn_processing=dnn_backend=openvino:model={model}:input=x:output=y{extra}"


def test_dynamic_shape_onnx_model_runs(ffmpeg_bin: Path, clips: Path,
                                       espcn_files: dict[str, Path], tmp_path: Path) -> None:
    """Patch 0006: 9.0.2 refused every dynamic-H/W model ("Failed to get input port shape")."""
    clip = clips / "carphone_176x144.mp4"
    out = tmp_path / "y.raw"
    proc = run_ffmpeg(ffmpeg_bin, ["-i", str(clip)],
                      espcn_ov(espcn_files["onnx"], ":precision=f32") + ",extractplanes=y",
                      "gray", out)
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    got = np.frombuffer(out.read_bytes(), np.uint8).reshape(-1, 2 * H, 2 * W)
    want = onnx_reference(espcn_files["onnx"], read_yuv420p_y(ffmpeg_bin, clip, W, H, frames=N))
    report = compare_8bit(got, want)
    assert report.passes, report


@pytest.mark.parametrize("size", ["177x143", "64x36", "8x8"])
def test_odd_frame_sizes(ffmpeg_bin: Path, espcn_files: dict[str, Path], tmp_path: Path,
                         size: str) -> None:
    """The model is reshaped to whatever size the frames have, odd ones included."""
    w, h = (int(v) for v in size.split("x"))
    clip = tmp_path / "in.mkv"
    # testsrc2 rounds sizes to even numbers: scale to the odd size afterwards.
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=180x144:rate=10",
                    "-vf", f"scale={w}:{h}", "-frames:v", "2", "-pix_fmt", "yuv444p", "-c:v", "ffv1",
                    str(clip)], check=True)
    out = tmp_path / "y.raw"
    proc = run_ffmpeg(ffmpeg_bin, ["-i", str(clip)], espcn_ov(espcn_files["onnx"], ":precision=f32")
                      + ",extractplanes=y", "gray", out, frames=2)
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    got = np.frombuffer(out.read_bytes(), np.uint8).reshape(-1, 2 * h, 2 * w)
    planes = read_frames(ffmpeg_bin, clip, "gray", w, h, frames=2,
                         vf="format=yuv420p,extractplanes=y")[..., 0]
    report = compare_8bit(got, onnx_reference(espcn_files["onnx"], planes))
    assert report.passes, report


def test_no_inference_to_learn_the_output_size(ffmpeg_bin: Path, clips: Path,
                                              espcn_files: dict[str, Path], tmp_path: Path) -> None:
    """Patch 0008: the output size comes from the reshaped model, not from running it once on
    a blank frame (serial start-up work: ~0.3 s for realesr-animevideov3 at 320x180). The
    backend logs each inference's input at verbose level, so N frames must log N."""
    out = tmp_path / "y.raw"
    proc = run_ffmpeg(ffmpeg_bin, ["-i", str(clips / "carphone_176x144.mp4")],
                      espcn_ov(espcn_files["onnx"], ":precision=f32") + ",extractplanes=y",
                      "gray", out, level="verbose")
    log = proc.stderr.decode()
    assert proc.returncode == 0, log[-800:]
    assert "OpenVINO output size from the model: 352x288" in log, log[-800:]
    assert log.count("OpenVINO model input:") == N, log[-1500:]
    assert out.stat().st_size == N * 2 * W * 2 * H


def test_precision_option_is_honoured(ffmpeg_bin: Path, clips: Path,
                                      espcn_files: dict[str, Path], tmp_path: Path) -> None:
    """Patch 0007: precision reaches OpenVINO and the log names what was compiled; bf16 (where
    the CPU has it) stays above 50 dB of the f32 output."""
    clip = clips / "carphone_176x144.mp4"
    outputs = {}
    for precision in ("f32", "bf16") if cpu_has_bf16() else ("f32",):
        out = tmp_path / f"{precision}.raw"
        proc = run_ffmpeg(ffmpeg_bin, ["-i", str(clip)],
                          espcn_ov(espcn_files["onnx"], f":precision={precision}") + ",extractplanes=y",
                          "gray", out)
        log = proc.stderr.decode()
        assert proc.returncode == 0, log[-800:]
        assert PRECISION_LINE.search(log), log[-800:]
        assert PRECISION_LINE.search(log).group(1) == precision  # type: ignore[union-attr]
        outputs[precision] = np.frombuffer(out.read_bytes(), np.uint8)
    if "bf16" in outputs:
        assert psnr(outputs["bf16"], outputs["f32"]) >= 50
        assert not np.array_equal(outputs["bf16"], outputs["f32"])  # bf16 really ran


def test_unknown_precision_is_refused(ffmpeg_bin: Path, clips: Path,
                                      espcn_files: dict[str, Path], tmp_path: Path) -> None:
    proc = run_ffmpeg(ffmpeg_bin, ["-i", str(clips / "carphone_176x144.mp4")],
                      espcn_ov(espcn_files["onnx"], ":precision=int4"), "gray", tmp_path / "o.raw")
    assert proc.returncode != 0
    assert b"Unknown precision 'int4'" in proc.stderr


def test_streams_and_requests_give_the_same_pixels(ffmpeg_bin: Path, clips: Path,
                                                    espcn_files: dict[str, Path],
                                                    tmp_path: Path) -> None:
    """Two streams with two requests in flight: frames stay in order, none is lost, and
    ffmpeg exits (no hang at teardown) even when stopped early."""
    clip = clips / "realshort_320x240.mp4"
    results = []
    for extra in (":precision=f32:nireq=1:async=0", ":precision=f32:num_streams=2:nireq=2:async=1"):
        out = tmp_path / "y.raw"
        try:
            proc = run_ffmpeg(ffmpeg_bin, ["-i", str(clip)],
                              espcn_ov(espcn_files["onnx"], extra) + ",extractplanes=y", "gray", out,
                              frames=5, timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ffmpeg hung with {extra}")
        assert proc.returncode == 0, proc.stderr.decode()[-800:]
        results.append(out.read_bytes())
    assert len(results[0]) == 5 * 640 * 480
    assert results[0] == results[1]


def test_rgb_model_keeps_channel_order(ffmpeg_bin: Path, clips: Path,
                                       zoo_models: dict[str, object], tmp_path: Path) -> None:
    """A 3-channel model on rgb24 frames: OpenVINO at f32 equals ONNX Runtime (the backend's
    code talks about BGR models; ffsr's models take RGB)."""
    import onnxruntime as ort

    from ffsr.model_card import ModelCard

    card = zoo_models["realesr-animevideox2v3"]
    assert isinstance(card, ModelCard)
    model = card.path_for("openvino")
    clip = clips / "carphone_176x144.mp4"
    out = tmp_path / "rgb.raw"
    vf = f"format=rgb24,dnn_processing=dnn_backend=openvino:model={model}:precision=f32:layout=nchw"
    proc = run_ffmpeg(ffmpeg_bin, ["-i", str(clip)], vf, "rgb24", out, frames=2)
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    got = np.frombuffer(out.read_bytes(), np.uint8).reshape(-1, 2 * H, 2 * W, 3)
    rgb = read_frames(ffmpeg_bin, clip, "rgb24", W, H, frames=2)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    want = np.stack([np.clip(np.rint(sess.run(None, {name: f.transpose(2, 0, 1)[None].astype(np.float32)
                                                     / 255})[0][0] * 255), 0, 255)
                     .astype(np.uint8).transpose(1, 2, 0) for f in rgb])
    report = compare_8bit(got, want)
    assert report.passes, report
    swapped = compare_8bit(got[..., ::-1].copy(), want)
    assert swapped.psnr < report.psnr - 10  # the test can tell RGB from BGR


def test_unreadable_model_fails_cleanly(ffmpeg_bin: Path, clips: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not an onnx file" * 10)
    proc = run_ffmpeg(ffmpeg_bin, ["-i", str(clips / "carphone_176x144.mp4")], espcn_ov(bad),
                      "gray", tmp_path / "o.raw", timeout=60)
    assert proc.returncode != 0
    assert b"Failed to read the network from model file" in proc.stderr


# ---- through `ffsr upscale`: the backend and precision ffsr picks, and its refusals


def ffsr(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


def test_upscale_runs_the_measured_backend_and_openvino_at_the_cpus_precision(
        zoo_models: dict[str, object], ffmpeg_bin: Path, clips: Path, tmp_path: Path) -> None:
    """No flag: the backend measured fastest on this CPU (tests/test_backend_choice.py);
    OpenVINO at bf16 where the CPU has it. The pixels stay within 50 dB of ONNX Runtime's f32
    (and equal it to 1 level with --precision f32), by default and on OpenVINO."""
    clip = clips / "carphone_176x144.mp4"
    dry = ffsr("upscale", str(clip), "-m", "espcn", "-o", str(tmp_path / "o.mkv"), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    chosen = re.search(r"^backend auto: (\w+) \(", dry.stderr, re.M)
    assert chosen and f"dnn_backend={chosen[1]}:" in dry.stdout, (dry.stderr, dry.stdout)
    ov = ffsr("upscale", str(clip), "-m", "espcn", "-o", str(tmp_path / "o.mkv"), "--dry-run",
              "--backend", "openvino")
    want_precision = "bf16" if cpu_has_bf16() else "f32"
    assert ov.returncode == 0 and f"precision={want_precision}" in ov.stdout, ov.stderr
    card = zoo_models["espcn"]
    from ffsr.model_card import ModelCard

    assert isinstance(card, ModelCard)
    want = onnx_reference(card.path_for("onnx"), read_yuv420p_y(ffmpeg_bin, clip, W, H, frames=5))
    for i, (args, check) in enumerate((((), lambda r: r.psnr >= 50),
                                       (("--precision", "f32"), lambda r: r.passes),
                                       (("--backend", "openvino"), lambda r: r.psnr >= 50),
                                       (("--backend", "openvino", "--precision", "f32"),
                                        lambda r: r.passes))):
        out = tmp_path / f"{i}.mkv"
        proc = ffsr("upscale", str(clip), "-m", "espcn", "-o", str(out), "--frames", "5",
                    "--encoder", "ffv1", *args)
        assert proc.returncode == 0, proc.stderr
        got = read_yuv420p_y(ffmpeg_bin, out, 2 * W, 2 * H)
        report = compare_8bit(got, want)
        assert check(report), (args, report)


def test_precision_and_backend_refusals(zoo_models: dict[str, object], clips: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from ffsr.errors import FfsrError
    from ffsr.upscale_job import UpscaleRequest, plan_upscale

    clip = clips / "carphone_176x144.mp4"
    out = tmp_path / "o.mp4"
    with pytest.raises(FfsrError, match=r"^The onnx backend runs f32 only; use --backend openvino"):
        plan_upscale(UpscaleRequest(clip, ["espcn"], out, backend="onnx", precision="bf16"))
    with pytest.raises(FfsrError, match=r"^Unknown precision 'int8'"):
        plan_upscale(UpscaleRequest(clip, ["espcn"], out, precision="int8"))
    # A CPU without bf16 units (what /proc/cpuinfo would say on one).
    monkeypatch.setattr("ffsr.precision.cpu_flags", lambda: frozenset({"avx2", "fma"}))
    with pytest.raises(FfsrError, match=r"^--precision bf16 needs a CPU with bf16 units"):
        plan_upscale(UpscaleRequest(clip, ["espcn"], out, precision="bf16"))
    assert plan_upscale(UpscaleRequest(clip, ["espcn"], out, backend="openvino")).precision == "f32"
    assert not out.exists()


def test_auto_keeps_f32_for_a_model_whose_bf16_check_failed(zoo_models: dict[str, object],
                                                           clips: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A conversion on a bf16 CPU records bf16 below 50 dB on the card instead of refusing the
    model; `auto` then runs that model in f32, and still bf16 for the others."""
    import dataclasses

    from ffsr.model_card import ModelCard
    from ffsr.upscale_job import UpscaleRequest, plan_upscale

    clip, out = clips / "carphone_176x144.mp4", tmp_path / "o.mp4"
    monkeypatch.setattr("ffsr.precision.cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert plan_upscale(UpscaleRequest(clip, ["espcn"], out, backend="openvino")).precision == "bf16"
    card = zoo_models["espcn"]
    assert isinstance(card, ModelCard)
    low = {**card.files["openvino"].fidelity,
           "ffmpeg_bf16": {"max_diff": 9, "within_one": 0.9, "psnr_db": 41.0, "passes": False}}
    files = {**card.files, "openvino": dataclasses.replace(card.files["openvino"], fidelity=low)}
    weak = dataclasses.replace(card, files=files)
    monkeypatch.setattr("ffsr.upscale_job.resolve_cards", lambda names, log: [weak])
    plan = plan_upscale(UpscaleRequest(clip, ["espcn"], out, backend="openvino"))
    assert (plan.backend, plan.precision) == ("openvino", "f32")
    assert not out.exists()


def test_openvino_asked_of_a_binary_without_it(zoo_models: dict[str, object], clips: Path,
                                               tmp_path: Path) -> None:
    """No ffsr build in the cache: ffsr falls back to Debian's ffmpeg on PATH, which lacks it."""
    if not Path("/usr/bin/ffmpeg").exists():
        pytest.fail("Debian's ffmpeg is missing (.ci/run installs it: apt-get install ffmpeg)")
    work = tmp_path / "work"
    work.mkdir()
    out = work / "o.mp4"
    proc = ffsr("upscale", str(clips / "carphone_176x144.mp4"), "-m", "espcn", "-o", str(out),
                "--backend", "openvino", env=no_ffsr_build_env(tmp_path / "cache"))
    assert proc.returncode == 1
    assert "lacks the openvino DNN backend" in proc.stderr
    assert list(work.iterdir()) == []
