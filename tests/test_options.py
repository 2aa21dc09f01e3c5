"""Options a user types, end to end, as the README and --help give them: `ffsr models`,
--width/--height, --interpolation and --interpolate-after, --crf/--preset, --overwrite,
.mov output, `graph --fps`. Each run is a real ffsr process in a cache of its own (the
ffmpeg found by default, ESPCN converted by `ffsr convert-model` into its default place);
results are checked as a user would look at them: sizes, exact frame counts and
timestamps, pixels against a reference ffmpeg computes with a known filter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import clean_env, no_ffsr_build_env, safetensors_copy

from ffsr.media import count_frames, probe, read_frames
from ffsr.quality import psnr

CLIP = "carphone_176x144.mp4"  # 176x144, 29.97 fps, moving camera, no audio
SOUND = "realshort_320x240.mp4"  # 36 frames with AAC audio


def ffsr(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: Path, shared_data: Path) -> dict[str, str]:
    """A cache of its own with ESPCN converted (onnx, which openvino reads too) by the CLI."""
    environ = clean_env(tmp_path_factory.mktemp("cache"))
    proc = ffsr(environ, "convert-model", "espcn", "--backends", "onnx")
    assert proc.returncode == 0, proc.stderr
    return environ


@pytest.fixture(scope="module")
def clip25(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: Path, clips: Path) -> Path:
    """30 frames of the moving clip at exactly 25 fps, lossless (timestamps i/25)."""
    out = tmp_path_factory.mktemp("clip25") / "in.mkv"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(clips / CLIP), "-frames:v", "30",
                    "-vf", "setpts=N/25/TB", "-r", "25", "-c:v", "ffv1", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def upscaled25(env: dict[str, str], clip25: Path) -> Path:
    """`ffsr upscale` of clip25 without a new rate, lossless."""
    out = clip25.with_name("plain.mkv")
    proc = ffsr(env, "upscale", str(clip25), "-m", "espcn", "--encoder", "ffv1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def with_filter(ffmpeg: Path, src: Path, vf: str, out: Path) -> Path:
    """``src`` through one of ffmpeg's own filters, lossless: the independent reference."""
    subprocess.run([str(ffmpeg), "-v", "error", "-i", str(src), "-vf", vf, "-c:v", "ffv1", str(out)],
                   check=True)
    return out


def timestamps(ffprobe: Path, path: Path) -> list[float]:
    out = subprocess.run([str(ffprobe), "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=pts_time", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True)
    return [float(t) for t in out.stdout.split()]


def yuv_frames(ffmpeg: Path, path: Path, w: int, h: int) -> np.ndarray:
    return read_frames(ffmpeg, path, "gray", w, h).astype(np.int16)  # the Y plane


def test_models_lists_the_zoo_and_what_is_converted(env: dict[str, str], tmp_path: Path) -> None:
    from ffsr.zoo import zoo

    proc = ffsr(env, "models")
    assert proc.returncode == 0, proc.stderr
    rows = {ln.split()[0]: ln for ln in proc.stdout.splitlines() if ln.strip()}
    assert set(rows) == set(zoo())
    assert "converted: onnx" in rows["espcn"] and " x2 Y " in rows["espcn"]
    assert "not converted" in rows["srcnn"] and " x4 RGB " in rows["realesr-animevideov3"]
    fresh = ffsr(clean_env(tmp_path / "empty-cache"), "models")
    assert fresh.returncode == 0 and fresh.stdout.count("not converted") == len(zoo())


def test_width_and_height_scale_with_lanczos_after_the_model(env: dict[str, str], ffmpeg_bin: Path,
                                                             ffprobe_bin: Path, clips: Path,
                                                             tmp_path: Path) -> None:
    """--width/--height: the model's x2 frames, then lanczos to the asked size (the same
    frames ffmpeg's own scale filter makes from `ffsr upscale` without them)."""
    common = [str(clips / CLIP), "-m", "espcn", "--frames", "4", "--encoder", "ffv1"]
    sized, plain = tmp_path / "sized.mkv", tmp_path / "plain.mkv"
    proc = ffsr(env, "upscale", *common, "--width", "300", "--height", "200", "-o", str(sized))
    assert proc.returncode == 0, proc.stderr
    assert ffsr(env, "upscale", *common, "-o", str(plain)).returncode == 0
    info = probe(ffprobe_bin, sized)
    assert (info.width, info.height) == (300, 200) and count_frames(ffprobe_bin, sized) == 4
    ref = tmp_path / "ref.mkv"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(plain), "-vf",
                    "scale=w=300:h=200:flags=lanczos", "-c:v", "ffv1", str(ref)], check=True)
    got, want = yuv_frames(ffmpeg_bin, sized, 300, 200), yuv_frames(ffmpeg_bin, ref, 300, 200)
    assert got.shape == want.shape == (4, 200, 300, 1)
    assert psnr(got, want) > 45, "--width/--height are not the model's frames scaled with lanczos"


def test_readme_fps_width_height_together(env: dict[str, str], ffmpeg_bin: Path,
                                          ffprobe_bin: Path, clip25: Path, tmp_path: Path) -> None:
    """The README's `ffsr upscale old.mp4 -m espcn --fps 60 --width 1920 --height 1080`: 1920x1080
    frames on exact 1/60 s timestamps, each the model's new-rate frame scaled with lanczos
    (ffmpeg's scale filter on `ffsr upscale --fps 60` without the size)."""
    common = [str(clip25), "-m", "espcn", "--fps", "60", "--frames", "12", "--encoder", "ffv1"]
    sized, plain = tmp_path / "sized.mkv", tmp_path / "plain.mkv"
    proc = ffsr(env, "upscale", *common, "--width", "1920", "--height", "1080", "-o", str(sized))
    assert proc.returncode == 0, proc.stderr
    assert ffsr(env, "upscale", *common, "-o", str(plain)).returncode == 0
    info = probe(ffprobe_bin, sized)
    assert (info.width, info.height) == (1920, 1080)
    assert timestamps(ffprobe_bin, sized) == pytest.approx([i / 60 for i in range(12)], abs=1e-3)
    ref = with_filter(ffmpeg_bin, plain, "scale=w=1920:h=1080:flags=lanczos", tmp_path / "ref.mkv")
    got, want = yuv_frames(ffmpeg_bin, sized, 1920, 1080), yuv_frames(ffmpeg_bin, ref, 1920, 1080)
    assert got.shape == want.shape == (12, 1080, 1920, 1)
    assert psnr(got, want) > 45, f"{psnr(got, want):.1f} dB from lanczos of the 60 fps x2 frames"


def test_interpolation_fps_duplicates_frames_on_exact_timestamps(env: dict[str, str], ffmpeg_bin: Path,
                                                                 ffprobe_bin: Path, clip25: Path,
                                                                 upscaled25: Path, tmp_path: Path) -> None:
    out = tmp_path / "fps.mkv"
    proc = ffsr(env, "upscale", str(clip25), "-m", "espcn", "--fps", "50", "--interpolation", "fps",
                "--encoder", "ffv1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert timestamps(ffprobe_bin, out) == pytest.approx([i / 50 for i in range(60)], abs=1e-3)
    y, up = yuv_frames(ffmpeg_bin, out, 352, 288), yuv_frames(ffmpeg_bin, upscaled25, 352, 288)
    assert all((y[2 * k] == up[k]).all() and (y[2 * k + 1] == up[k]).all() for k in range(30)), \
        "--interpolation fps shows each upscaled frame twice"


def test_interpolation_framerate_after_upscaling_blends_the_upscaled_frames(
        env: dict[str, str], ffmpeg_bin: Path, ffprobe_bin: Path, clip25: Path, upscaled25: Path,
        tmp_path: Path) -> None:
    """--interpolation framerate --interpolate-after: ffmpeg's framerate filter on the upscaled
    frames, frame for frame (so the blend ran after the model, on the big frames). framerate
    keeps the input's frame durations; without the fps after it in the graph, -fps_mode cfr
    showed the first frame twice and every later one a frame late."""
    out = tmp_path / "blend.mkv"
    proc = ffsr(env, "upscale", str(clip25), "-m", "espcn", "--fps", "50", "--interpolation",
                "framerate", "--interpolate-after", "--encoder", "ffv1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    ref = with_filter(ffmpeg_bin, upscaled25, "framerate=fps=50", tmp_path / "ref.mkv")
    y, want = yuv_frames(ffmpeg_bin, out, 352, 288), yuv_frames(ffmpeg_bin, ref, 352, 288)
    n = len(want)
    # ffsr's -fps_mode cfr repeats the last frame once more, at the input's end time (1.2 s)
    assert n >= 58 and len(y) in (n, n + 1)
    assert timestamps(ffprobe_bin, out)[:n] == timestamps(ffprobe_bin, ref)
    assert np.abs(y[:n] - want).max() <= 1
    assert not (y[1] == y[0]).all() and not (y[1] == y[2]).all(), "frame 1 is a blend, not a copy"


def test_default_interpolation_makes_new_frames_not_copies(env: dict[str, str], ffmpeg_bin: Path,
                                                           ffprobe_bin: Path, clip25: Path,
                                                           tmp_path: Path) -> None:
    """--fps with the default minterpolate (before the model): as many frames as ffmpeg's
    minterpolate makes, on the new rate's timestamps, none of them a copy of a neighbour."""
    out = tmp_path / "mi.mkv"
    proc = ffsr(env, "upscale", str(clip25), "-m", "espcn", "--fps", "50", "--encoder", "ffv1",
                "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    ref = with_filter(ffmpeg_bin, clip25, "minterpolate=fps=50", tmp_path / "ref.mkv")
    n = count_frames(ffprobe_bin, ref)
    assert timestamps(ffprobe_bin, out) == pytest.approx([i / 50 for i in range(n)], abs=1e-3)
    y = yuv_frames(ffmpeg_bin, out, 352, 288)
    for k in range(1, n - 1, 2):
        assert not (y[k] == y[k - 1]).all() and not (y[k] == y[k + 1]).all(), f"frame {k} is a copy"


def test_crf_and_preset_reach_the_encoder(env: dict[str, str], clips: Path, tmp_path: Path) -> None:
    """x264 writes its settings into the stream: the asked crf and preset are there."""
    out = tmp_path / "q.mp4"
    proc = ffsr(env, "upscale", str(clips / CLIP), "-m", "espcn", "--frames", "3", "--crf", "31",
                "--preset", "ultrafast", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert b"crf=31.0" in data and b"cabac=0" in data, "ultrafast turns CABAC off"
    default = tmp_path / "d.mp4"
    assert ffsr(env, "upscale", str(clips / CLIP), "-m", "espcn", "--frames", "3", "-o",
                str(default)).returncode == 0
    assert b"crf=18.0" in default.read_bytes() and b"cabac=1" in default.read_bytes()


def test_overwrite_replaces_an_existing_output(env: dict[str, str], ffprobe_bin: Path, clips: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    out.write_text("an old file")
    refused = ffsr(env, "upscale", str(clips / CLIP), "-m", "espcn", "--frames", "3", "-o", str(out))
    assert refused.returncode == 1 and out.read_text() == "an old file"
    proc = ffsr(env, "upscale", str(clips / CLIP), "-m", "espcn", "--frames", "3", "-o", str(out),
                "--overwrite")
    assert proc.returncode == 0, proc.stderr
    info = probe(ffprobe_bin, out)
    assert (info.width, info.height) == (352, 288) and count_frames(ffprobe_bin, out) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"], "no staging file left"


def test_mov_output_keeps_the_audio(env: dict[str, str], ffmpeg_bin: Path, ffprobe_bin: Path,
                                    clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.mov"
    proc = ffsr(env, "upscale", str(clips / SOUND), "-m", "espcn", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    info = probe(ffprobe_bin, out)
    assert (info.codec, info.width, info.height) == ("h264", 640, 480) and info.has_audio
    assert count_frames(ffprobe_bin, out) == 36

    def audio_md5(path: Path) -> str:
        return subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(path), "-map", "0:a", "-c",
                               "copy", "-f", "md5", "-"], capture_output=True, text=True,
                              check=True).stdout
    assert audio_md5(out) == audio_md5(clips / SOUND)


def test_graph_fps_pasted_into_ffmpeg_gives_the_new_rate(env: dict[str, str], ffmpeg_bin: Path,
                                                         ffprobe_bin: Path, clip25: Path,
                                                         tmp_path: Path) -> None:
    """`ffsr graph -m espcn --fps 60` from the README: interpolation first, then the model; the
    pasted graph makes the frames `ffsr upscale --fps 60` makes."""
    proc = ffsr(env, "graph", "-m", "espcn", "--fps", "60")
    assert proc.returncode == 0, proc.stderr
    graph = proc.stdout.strip()
    assert graph.startswith("minterpolate=fps=60:") and "dnn_processing=" in graph
    pasted, upscaled = tmp_path / "pasted.mkv", tmp_path / "upscaled.mkv"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(clip25), "-vf", graph, "-c:v", "ffv1",
                    str(pasted)], check=True, env={**os.environ, **env})
    assert ffsr(env, "upscale", str(clip25), "-m", "espcn", "--fps", "60", "--encoder", "ffv1",
                "-o", str(upscaled)).returncode == 0
    assert probe(ffprobe_bin, pasted).frame_rate == 60
    a, b = yuv_frames(ffmpeg_bin, pasted, 352, 288), yuv_frames(ffmpeg_bin, upscaled, 352, 288)
    assert len(a) == len(b) >= 60 and (a == b).all()


def test_a_wrong_command_line_exits_2(tmp_path: Path) -> None:
    """The README's exit status 2: an unknown option or a missing argument, said on stderr."""
    env = clean_env(tmp_path / "cache")
    unknown = ffsr(env, "upscale", "in.mp4", "-m", "espcn", "--no-such-option")
    assert unknown.returncode == 2 and "--no-such-option" in unknown.stderr and unknown.stdout == ""
    missing = ffsr(env, "upscale", "in.mp4")
    assert missing.returncode == 2 and "--model" in missing.stderr


def test_y4m_output_with_a_matching_scale(env: dict[str, str], ffmpeg_bin: Path, ffprobe_bin: Path,
                                          clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.y4m"
    proc = ffsr(env, "upscale", str(clips / CLIP), "-m", "espcn", "--scale", "2", "--frames", "3",
                "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    info = probe(ffprobe_bin, out)
    assert (info.codec, info.width, info.height) == ("rawvideo", 352, 288)
    assert count_frames(ffprobe_bin, out) == 3


def test_dedupe_drops_the_repeated_frames(env: dict[str, str], ffmpeg_bin: Path, ffprobe_bin: Path,
                                          clip25: Path, upscaled25: Path, tmp_path: Path) -> None:
    """Every frame shown twice (fps=50 on a 25 fps clip): --dedupe keeps each one once, and
    those are the upscaled frames."""
    doubled = with_filter(ffmpeg_bin, clip25, "fps=50", tmp_path / "doubled.mkv")
    out = tmp_path / "dd.mkv"
    proc = ffsr(env, "upscale", str(doubled), "-m", "espcn", "--dedupe", "--encoder", "ffv1",
                "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    y, up = yuv_frames(ffmpeg_bin, out, 352, 288), yuv_frames(ffmpeg_bin, upscaled25, 352, 288)
    assert y.shape == up.shape and (y == up).all()


def test_fps_on_a_short_clip(env: dict[str, str], ffprobe_bin: Path, clip25: Path,
                             ffmpeg_bin: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.mkv"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(clip25), "-frames:v", "10", "-c", "copy",
                    str(short)], check=True)
    proc = ffsr(env, "upscale", str(short), "-m", "espcn", "--fps", "60", "-o", str(tmp_path / "o.mp4"))
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def onnx_compact(zoo_models: dict[str, object], clips: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ESPCN on the onnx backend in the default (compact) form: the reference the other
    backends and forms must match. The session's cache holds every zoo model, all backends."""
    out = tmp_path_factory.mktemp("onnx-compact") / "onnx.mkv"
    proc = ffsr(dict(os.environ), "upscale", str(clips / CLIP), "-m", "espcn", "--backend", "onnx",
                "--frames", "4", "--encoder", "ffv1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize(("backend", "form"), [("onnx", "explicit"), ("openvino", "compact"),
                                               ("torch", "compact"), ("tensorflow", "compact"),
                                               ("tensorflow", "sr"), ("auto", "sr")])
def test_backend_and_form_through_upscale(onnx_compact: Path, ffmpeg_bin: Path, clips: Path,
                                          tmp_path: Path, backend: str, form: str) -> None:
    """`ffsr upscale --backend B --form F`: the ffmpeg ffsr picks for B (the full build for
    torch and tensorflow) runs B, and the frames are ESPCN's (the Y plane as onnx gives it).
    `--form sr` with `--backend auto` takes tensorflow, the only backend with the sr filter."""
    args = ["upscale", str(clips / CLIP), "-m", "espcn", "--backend", backend, "--form", form,
            "--frames", "4", "--encoder", "ffv1", "-o", str(tmp_path / "o.mkv")]
    plan = ffsr(dict(os.environ), *args, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    runs = "tensorflow" if backend == "auto" else backend
    assert f"dnn_backend={runs}" in plan.stdout, plan.stdout
    assert (",sr=dnn_backend=" in plan.stdout) == (form == "sr")
    assert ("extractplanes=y+u+v" in plan.stdout) == (form == "explicit")
    proc = ffsr(dict(os.environ), *args)
    assert proc.returncode == 0, proc.stderr
    got = yuv_frames(ffmpeg_bin, tmp_path / "o.mkv", 352, 288)
    want = yuv_frames(ffmpeg_bin, onnx_compact, 352, 288)
    assert got.shape == want.shape == (4, 288, 352, 1)
    # torch runs ESPCN's RGB wrapper (rgb24 in and out): the colour round trip costs ~44 dB
    floor = 40 if backend == "torch" else 45
    assert psnr(got, want) > floor, f"{backend}/{form}: {psnr(got, want):.1f} dB from onnx"


def test_form_sr_without_a_tensorflow_build_is_one_sentence(env: dict[str, str], clips: Path,
                                                            tmp_path: Path) -> None:
    """`--form sr` (backend auto) where the only ffmpeg lacks TensorFlow (no ffsr build in the
    cache, Debian's on PATH): one sentence naming the backend and the fix, nothing written."""
    work = tmp_path / "work"
    work.mkdir()
    models = Path(env["XDG_CACHE_HOME"]) / "ffsr" / "models"
    proc = ffsr(no_ffsr_build_env(tmp_path / "cache", models), "upscale", str(clips / CLIP), "-m",
                "espcn", "--form", "sr", "-o", str(work / "o.mkv"))
    assert proc.returncode == 1, proc.stderr
    assert re.fullmatch(r"error: This ffmpeg \([^)]+\) lacks the tensorflow DNN backend "
                        r"\(it has: none\); run `ffsr build-ffmpeg --backends tensorflow`\.",
                        proc.stderr.strip()), proc.stderr
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("kind", ["pth", "safetensors", "ckpt"])
def test_convert_model_checkpoint_succeeds(env: dict[str, str], shared_data: Path, tmp_path: Path,
                                           kind: str) -> None:
    """`ffsr convert-model --checkpoint FILE` on each kind the README names: the card says the
    .onnx matches the source framework, and ffmpeg, to within one level."""
    ckpts = shared_data / "checkpoints"
    if kind == "ckpt":
        args = ["--checkpoint", str(ckpts / "hvrr-sr" / "espcn" / "model_100.ckpt"), "--arch", "espcn",
                "--name", "mine"]
    else:
        pth = ckpts / "realesrgan" / "small-grayrealesrx2.pth"
        path = pth if kind == "pth" else safetensors_copy(pth, tmp_path / "mine.safetensors")
        args = ["--checkpoint", str(path), "--name", "mine"]
    out = tmp_path / "models"
    proc = ffsr(env, "convert-model", *args, "--backends", "onnx", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    from ffsr.model_card import find_card

    card = find_card("mine", out)
    assert card.scale == 2 and set(card.files) == {"onnx"}
    for check in ("runtime", "ffmpeg"):
        result = card.files["onnx"].fidelity[check]
        assert result["passes"] and result["within_one"] >= 0.999, (check, result)


def test_convert_model_verify_clip_checks_on_the_clip_given(env: dict[str, str], clips: Path,
                                                           tmp_path: Path) -> None:
    """`ffsr convert-model espcn --verify-clip CLIP`: the card says the outputs were checked on
    that clip (against the source framework and in ffmpeg); a missing clip is one sentence
    and no model is written."""
    out = tmp_path / "models"
    proc = ffsr(env, "convert-model", "espcn", "--backends", "onnx", "--verify-clip",
                str(clips / SOUND), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    from ffsr.model_card import find_card

    fidelity = find_card("espcn", out).files["onnx"].fidelity
    assert fidelity["clip"] == SOUND and fidelity["frames"] >= 1, fidelity
    assert fidelity["runtime"]["passes"] and fidelity["ffmpeg"]["passes"], fidelity
    missing = ffsr(env, "convert-model", "espcn", "--backends", "onnx", "--verify-clip",
                   str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "none"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: Verification clip not found: {tmp_path / 'nope.mp4'} " \
                                     "(pass --verify-clip).", missing.stderr
    assert not (tmp_path / "none" / "espcn").exists()


def test_graph_with_labels_and_size_pasted_into_filter_complex(env: dict[str, str], ffmpeg_bin: Path,
                                                               clips: Path, tmp_path: Path) -> None:
    """`ffsr graph --in-label 0:v --out-label up --width --height` is a -filter_complex chain
    with those pads; pasted, it makes the frames `ffsr upscale --width --height` makes."""
    size = ["--width", "300", "--height", "200"]
    proc = ffsr(env, "graph", "-m", "espcn", *size, "--in-label", "0:v", "--out-label", "up")
    assert proc.returncode == 0, proc.stderr
    graph = proc.stdout.strip()
    assert graph.startswith("[0:v]") and graph.endswith("[up]")
    pasted, upscaled = tmp_path / "pasted.mkv", tmp_path / "upscaled.mkv"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(clips / CLIP), "-filter_complex", graph,
                    "-map", "[up]", "-frames:v", "4", "-c:v", "ffv1", str(pasted)], check=True)
    assert ffsr(env, "upscale", str(clips / CLIP), "-m", "espcn", *size, "--frames", "4",
                "--encoder", "ffv1", "-o", str(upscaled)).returncode == 0
    a, b = yuv_frames(ffmpeg_bin, pasted, 300, 200), yuv_frames(ffmpeg_bin, upscaled, 300, 200)
    assert a.shape == b.shape == (4, 200, 300, 1) and (a == b).all()

